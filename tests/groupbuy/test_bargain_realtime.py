"""The bargain topic ``bargain:<id>`` over the real ASGI app: who may follow it (its initiator, its
helpers once they helped, operators), and each cut, the floor and the purchase pushed after
commit with the topic's seq, which the snapshot (``GET /bargains/{id}``) names."""

import pytest
from channels.db import database_sync_to_async

from tests.conftest import ApiClient, token_for
from tests.core.ws import connect_and_auth, receive
from tests.factories import StaffFactory, UserFactory
from tests.groupbuy.factories_bargains import bargain_campaign, buy, helped, start
from tests.shop.factories_orders import QuickCustomerFactory, pay

pytestmark = pytest.mark.django_db(transaction=True)


async def _follow(token: str, topic: str):
    comm = await connect_and_auth(token)
    await comm.send_json_to({"type": "subscribe", "topic": topic})
    assert await receive(comm) == {"type": "subscribed", "topic": topic}
    return comm


async def _refused(token: str, topic: str) -> None:
    comm = await connect_and_auth(token)
    await comm.send_json_to({"type": "subscribe", "topic": topic})
    assert (await receive(comm))["code"] == "topic_forbidden"
    await comm.disconnect()


async def _on_topic(comm) -> dict:
    """The next message of the topic (the initiator's socket also gets their notifications)."""
    while True:
        message = await receive(comm)
        if message["type"] != "notification":
            return message


@database_sync_to_async
def _customer():
    customer = QuickCustomerFactory()
    return customer, token_for(customer.user)


def _state(message: dict) -> tuple:
    return (
        message["type"],
        message["status"],
        message["current_price"],
        message["helps_done"],
        message["helps_left"],
    )


async def test_the_initiator_follows_each_cut_then_the_floor_then_the_purchase():
    made = await database_sync_to_async(bargain_campaign)(
        start_price=1990, floor_price=990, helps_needed=2
    )
    initiator, token = await _customer()
    bargain = await database_sync_to_async(start)(made, initiator)
    topic = f"bargain:{bargain.pk}"
    comm = await _follow(token, topic)

    first = await database_sync_to_async(helped)(bargain)
    cut = await _on_topic(comm)
    assert _state(cut) == ("bargain_cut", "active", first.price_after, 1, 1)
    assert (cut["topic"], cut["bargain_id"], cut["help_seq"], cut["cut"]) == (
        topic,
        bargain.pk,
        1,
        first.cut,
    )
    assert cut["helps_needed"] == 2
    snapshot = await database_sync_to_async(
        lambda: ApiClient(token).get(f"/api/v1/bargains/{bargain.pk}").json()
    )()
    assert (snapshot["topic"], snapshot["seq"]) == (topic, cut["seq"])

    last = await database_sync_to_async(helped)(bargain)
    second = await _on_topic(comm)
    floor = await _on_topic(comm)
    assert _state(second) == ("bargain_cut", "floor_reached", 990, 2, 0)
    assert (second["help_seq"], second["cut"], last.price_after) == (2, last.cut, 990)
    assert _state(floor) == ("bargain_floor_reached", "floor_reached", 990, 2, 0)
    assert [second["seq"], floor["seq"]] == [cut["seq"] + 1, cut["seq"] + 2]

    order = await database_sync_to_async(buy)(bargain)
    await database_sync_to_async(pay)(order)
    bought = await _on_topic(comm)
    assert _state(bought) == ("bargain_purchased", "purchased", 990, 2, 0)
    assert bought["seq"] == floor["seq"] + 1
    await comm.disconnect()


async def test_a_helper_follows_once_they_helped_and_strangers_never():
    made = await database_sync_to_async(bargain_campaign)(helps_needed=3)
    bargain = await database_sync_to_async(start)(made)
    topic = f"bargain:{bargain.pk}"
    helper, helper_token = await _customer()
    _, stranger = await _customer()
    not_a_customer = await database_sync_to_async(lambda: token_for(UserFactory()))()
    operator = await database_sync_to_async(lambda: token_for(StaffFactory()))()

    await _refused(helper_token, topic)
    await database_sync_to_async(helped)(bargain, helper)
    comm = await _follow(helper_token, topic)
    await database_sync_to_async(helped)(bargain)
    assert (await receive(comm))["helps_done"] == 2
    await comm.disconnect()

    await _refused(stranger, topic)
    await _refused(not_a_customer, topic)
    await _refused(helper_token, "bargain:999999999")
    staff = await _follow(operator, topic)
    await staff.disconnect()
