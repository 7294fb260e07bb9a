"""The group topic ``group:<id>`` over the real ASGI app: who may follow it, and each seat's
change pushed after commit with the topic's seq, which the snapshot (``GET /groups/{id}``)
names."""

import pytest
from channels.db import database_sync_to_async

from tests.conftest import ApiClient, token_for
from tests.core.ws import connect_and_auth, receive
from tests.factories import UserFactory
from tests.groupbuy.factories import campaign, join, open_group
from tests.shop.factories_orders import QuickCustomerFactory, pay

pytestmark = pytest.mark.django_db(transaction=True)


async def _follow(token: str, topic: str):
    comm = await connect_and_auth(token)
    await comm.send_json_to({"type": "subscribe", "topic": topic})
    assert await receive(comm) == {"type": "subscribed", "topic": topic}
    return comm


@database_sync_to_async
def _customer():
    customer = QuickCustomerFactory()
    return customer, token_for(customer.user)


def _counters(message: dict) -> tuple:
    return (
        message["type"],
        message["status"],
        message["paid_seats"],
        message["held_seats"],
        message["seats_left"],
    )


async def test_a_viewer_follows_the_group_and_sees_each_seat_then_the_success():
    made = await database_sync_to_async(campaign)(size=2)
    group, leader_order = await database_sync_to_async(open_group)(made)
    viewer, token = await _customer()
    topic = f"group:{group.pk}"
    comm = await _follow(token, topic)

    member_order = (await database_sync_to_async(join)(group, viewer))[1]
    taken = await receive(comm)
    assert _counters(taken) == ("group_seat_taken", "open", 0, 2, 0)
    assert (taken["topic"], taken["group_id"], taken["size"]) == (topic, group.pk, 2)

    await database_sync_to_async(pay)(leader_order)
    paid = await receive(comm)
    assert _counters(paid) == ("group_seat_paid", "open", 1, 1, 0)
    told = await receive(comm)  # the member's own notification (stored): the leader joined
    assert told["type"] == "notification" and told["notification"]["kind"] == "group_joined"
    snapshot = await database_sync_to_async(
        lambda: ApiClient(token).get(f"/api/v1/groups/{group.pk}").json()
    )()
    assert (snapshot["topic"], snapshot["seq"]) == (topic, paid["seq"])
    assert paid["seq"] == taken["seq"] + 1

    await database_sync_to_async(pay)(member_order)
    done = await receive(comm)
    assert _counters(done) == ("group_succeeded", "succeeded", 2, 0, 0)
    assert done["seq"] == paid["seq"] + 1
    await comm.disconnect()


async def test_only_customers_follow_and_only_groups_that_exist():
    made = await database_sync_to_async(campaign)(size=2)
    group, _ = await database_sync_to_async(open_group)(made)
    not_a_customer = await database_sync_to_async(lambda: token_for(UserFactory()))()
    _, customer = await _customer()
    for token, topic in (
        (not_a_customer, f"group:{group.pk}"),
        (customer, "group:999999999"),
    ):
        comm = await connect_and_auth(token)
        await comm.send_json_to({"type": "subscribe", "topic": topic})
        assert (await receive(comm))["code"] == "topic_forbidden"
        await comm.disconnect()
