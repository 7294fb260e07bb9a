"""The flash sale topic ``flash:<id>`` over the real ASGI app: who may follow it, the sold-out
push after commit, and the periodic countdown / start / stock / end pushes, each with its seq."""

from datetime import timedelta

import pytest
import time_machine
from channels.db import database_sync_to_async
from django.utils import timezone

from core.errors import ApplicationError
from shop.models import FlashSession
from shop.services import flash
from tests.conftest import ApiClient, token_for
from tests.core.ws import connect_and_auth, receive
from tests.factories import StaffFactory, UserFactory
from tests.shop.factories_flash import buy, flash_item
from tests.shop.factories_orders import QuickCustomerFactory

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _clean_flash_memo():
    flash.flash_memo_clear()
    yield
    flash.flash_memo_clear()


async def _follow(token: str, topic: str):
    comm = await connect_and_auth(token)
    await comm.send_json_to({"type": "subscribe", "topic": topic})
    assert await receive(comm) == {"type": "subscribed", "topic": topic}
    return comm


def _buy_at(item, moment, **kwargs):
    with time_machine.travel(moment):
        return buy(item, **kwargs)


@database_sync_to_async
def _customer_token() -> str:
    return token_for(QuickCustomerFactory().user)


async def test_any_customer_follows_a_published_session_and_sees_the_sold_out_push():
    item = await database_sync_to_async(flash_item)(stock=2, cap=2)
    topic = f"flash:{item.session_id}"
    comm = await _follow(await _customer_token(), topic)

    await database_sync_to_async(buy)(item, quantity=1)
    assert await comm.receive_nothing(timeout=0.2)  # one left: no push from the order itself
    await database_sync_to_async(buy)(item, quantity=1)

    assert await receive(comm) == {
        "type": "flash_sold_out",
        "session_id": item.session_id,
        "item_id": item.pk,
        "topic": topic,
        "seq": 1,
    }
    snapshot = await database_sync_to_async(
        lambda: ApiClient().get(f"/api/v1/flash/sessions/{item.session_id}").json()
    )()
    assert snapshot["seq"] == 1
    assert snapshot["items"][0]["remaining"] == 0
    await comm.disconnect()


async def test_a_refused_order_pushes_nothing():
    item = await database_sync_to_async(flash_item)(stock=1, cap=1)
    customer = await database_sync_to_async(QuickCustomerFactory)()
    comm = await _follow(await _customer_token(), f"flash:{item.session_id}")

    await database_sync_to_async(buy)(item, customer)
    assert (await receive(comm))["type"] == "flash_sold_out"
    with pytest.raises(ApplicationError, match=r"sold out"):
        await database_sync_to_async(buy)(item, customer)

    assert await comm.receive_nothing(timeout=0.2)
    await comm.disconnect()


@pytest.mark.parametrize("who", ["no_customer", "unpublished", "unknown"])
async def test_who_may_not_follow_a_session(who):
    item = await database_sync_to_async(flash_item)()
    session_id = item.session_id
    if who == "no_customer":
        token = await database_sync_to_async(lambda: token_for(UserFactory()))()
    else:
        token = await _customer_token()
    if who == "unpublished":
        await database_sync_to_async(FlashSession.objects.filter(pk=session_id).update)(
            is_published=False
        )
    if who == "unknown":
        session_id += 1000
    comm = await connect_and_auth(token)

    await comm.send_json_to({"type": "subscribe", "topic": f"flash:{session_id}"})

    assert (await receive(comm))["code"] == "topic_forbidden"
    await comm.disconnect()


async def test_operators_may_follow_a_session():
    item = await database_sync_to_async(flash_item)()
    token = await database_sync_to_async(lambda: token_for(StaffFactory()))()
    topic = f"flash:{item.session_id}"
    comm = await connect_and_auth(token)
    await comm.send_json_to({"type": "subscribe", "topic": topic})
    assert await receive(comm) == {"type": "subscribed", "topic": topic}
    await comm.disconnect()


async def test_the_tick_pushes_countdown_start_stock_and_end_once_each_in_seq_order():
    item = await database_sync_to_async(flash_item)(
        stock=3, cap=3, starts_in=timedelta(minutes=2), lasts=timedelta(minutes=30)
    )
    session = item.session
    topic = f"flash:{session.pk}"
    comm = await _follow(await _customer_token(), topic)
    tick = database_sync_to_async(lambda at: flash.flash_sessions_tick(now=at))
    before = timezone.now()

    assert await tick(before) == 1
    countdown = await receive(comm)
    assert (countdown["type"], countdown["seq"], 115 <= countdown["starts_in"] <= 120) == (
        "flash_countdown",
        1,
        True,
    )
    assert await tick(before + timedelta(seconds=10)) == 0  # at most one countdown a minute

    live = session.starts_at + timedelta(seconds=1)
    assert await tick(live) == 2
    started, stock = await receive(comm), await receive(comm)
    assert (started["type"], started["seq"]) == ("flash_started", 2)
    assert (stock["type"], stock["seq"], stock["items"]) == (
        "flash_stock",
        3,
        [{"item_id": item.pk, "remaining": 3}],
    )
    assert await tick(live + timedelta(seconds=2)) == 0  # nothing changed: nothing pushed

    await database_sync_to_async(_buy_at)(item, live + timedelta(seconds=3), quantity=2)
    assert await tick(live + timedelta(seconds=4)) == 1
    stock = await receive(comm)
    assert (stock["seq"], stock["items"]) == (4, [{"item_id": item.pk, "remaining": 1}])

    assert await tick(session.ends_at + timedelta(seconds=1)) == 1
    ended = await receive(comm)
    assert (ended["type"], ended["seq"]) == ("flash_ended", 5)
    assert await tick(session.ends_at + timedelta(seconds=3)) == 0
    await comm.disconnect()
