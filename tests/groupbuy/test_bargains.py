"""Bargains: starting, friends' helps, buying, what paying or cancelling the purchase order does,
the expiry sweep and the operators' rules (on PostgreSQL, with the shop's events delivered
through the outbox after commit)."""

import logging
import uuid
from datetime import datetime, timedelta

import pytest
import time_machine
from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from core.errors import ApplicationError
from core.models import Notification, OutboxEvent
from groupbuy import locks, subscribers, tasks
from groupbuy.cuts import cut_plan
from groupbuy.models import Bargain, BargainCampaign, BargainHelp
from groupbuy.services import bargains as services
from groupbuy.services.bargains import (
    bargain_campaign_end,
    bargain_order_cancelled,
    bargain_order_paid,
    bargains_expire_due,
    check_bargain_campaign,
)
from shop import events
from shop.models import Order, Product, Sku
from shop.services.orders import order_cancel, orders_expire_due
from tests.db_snapshot import db_snapshot
from tests.factories import SkuFactory
from tests.groupbuy.factories_bargains import bargain_campaign, buy, helped, start, to_floor
from tests.shop.factories_orders import (
    QuickCustomerFactory,
    paid,
    pay,
    place,
    quick_pickup_point,
)

pytestmark = pytest.mark.django_db


def code_of(call) -> str:
    with pytest.raises(ApplicationError) as caught:
        call()
    return caught.value.code


def refused_without_a_write(call) -> str:
    before = db_snapshot()
    code = code_of(call)
    assert db_snapshot() == before
    return code


def fresh(row):
    row.refresh_from_db()
    return row


def notes(bargain: Bargain, kind: str) -> list[Notification]:
    return list(Notification.objects.filter(kind=kind, data__bargain_id=bargain.pk).order_by("pk"))


def local(year, month, day, hour, minute) -> datetime:
    return timezone.make_aware(datetime(year, month, day, hour, minute))  # TIME_ZONE's wall time


# --- start ----------------------------------------------------------------------------------------
def test_starting_stores_the_plan_drawn_from_its_seed_and_makes_the_first_cut():
    made = bargain_campaign(
        start_price=1990,
        floor_price=990,
        helps_needed=5,
        first_cut_min_bps=1000,
        first_cut_max_bps=3000,
        bargain_ttl_seconds=3600,
    )
    initiator = QuickCustomerFactory()

    with time_machine.travel(timezone.now(), tick=False):
        bargain = fresh(start(made, initiator))
        assert bargain.expires_at == timezone.now() + timedelta(seconds=3600)

    assert (bargain.campaign, bargain.initiator, bargain.status) == (made, initiator, "active")
    assert (bargain.start_price, bargain.floor_price, bargain.helps_needed) == (1990, 990, 5)
    assert bargain.helps_done == 0 and bargain.order is None
    assert 100 <= bargain.first_cut <= 300  # 10-30 % of the 1000 fen between start and floor
    assert bargain.current_price == 1990 - bargain.first_cut
    assert len(bargain.cuts) == 5 and all(isinstance(c, int) and c >= 1 for c in bargain.cuts)
    assert bargain.first_cut + sum(bargain.cuts) == 1000
    assert cut_plan(
        seed=bargain.seed,
        start_price=1990,
        floor_price=990,
        helps=5,
        first_cut_min_bps=1000,
        first_cut_max_bps=3000,
    ) == (bargain.first_cut, tuple(bargain.cuts))
    other = fresh(start(made))
    assert other.seed != bargain.seed  # each bargain draws its own plan


def test_a_bargain_never_runs_past_its_campaigns_end_and_keeps_its_snapshot():
    made = bargain_campaign(lasts=timedelta(hours=2), bargain_ttl_seconds=86_400)

    bargain = fresh(start(made))
    BargainCampaign.objects.filter(pk=made.pk).update(start_price=1500, floor_price=500)

    assert bargain.expires_at == made.ends_at
    assert (fresh(bargain).start_price, fresh(bargain).floor_price) == (1990, 990)


def test_a_campaign_that_is_missing_not_active_or_outside_its_window_starts_nothing():
    customer = QuickCustomerFactory()
    draft = bargain_campaign(status=BargainCampaign.Status.DRAFT)
    ended = bargain_campaign(status=BargainCampaign.Status.ENDED)
    not_started = bargain_campaign(starts_in=timedelta(minutes=5))
    over = bargain_campaign(starts_in=timedelta(days=-2), lasts=timedelta(days=1))

    assert refused_without_a_write(
        lambda: services.bargain_start(campaign_id=10**9, customer=customer)
    ) == ("bargain_campaign_not_found")
    for made in (draft, ended, not_started, over):
        assert refused_without_a_write(lambda made=made: start(made, customer)) == (
            "bargain_campaign_not_active"
        )


def test_an_item_that_is_not_on_sale_starts_no_bargain():
    inactive = bargain_campaign()
    Sku.objects.filter(pk=inactive.sku_id).update(is_active=False)
    off_sale = bargain_campaign()
    Product.objects.filter(pk=off_sale.product_id).update(status=Product.Status.DRAFT)

    customer = QuickCustomerFactory()

    for made in (inactive, off_sale):
        assert refused_without_a_write(lambda made=made: start(made, customer)) == (
            "product_unavailable"
        )


def test_a_customer_starts_at_most_the_campaigns_number_of_bargains():
    made = bargain_campaign(max_bargains_per_customer=2)
    customer = QuickCustomerFactory()
    start(made, customer)
    start(made, customer)

    assert refused_without_a_write(lambda: start(made, customer)) == "too_many_bargains"
    assert Bargain.objects.filter(initiator=customer).count() == 2
    start(bargain_campaign(), customer)  # another campaign has its own limit


def test_expired_bargains_free_the_limit_and_bought_ones_do_not(committed):
    made = bargain_campaign(max_bargains_per_customer=1, helps_needed=2)
    customer = QuickCustomerFactory()
    first = start(made, customer)
    Bargain.objects.filter(pk=first.pk).update(status="expired", expired_at=timezone.now())

    bought = to_floor(start(made, customer))
    committed(pay, buy(bought))

    assert fresh(bought).status == "purchased"
    assert code_of(lambda: start(made, customer)) == "too_many_bargains"


def test_a_live_bargain_past_its_expiry_counts_only_while_its_order_may_still_be_paid():
    made = bargain_campaign(max_bargains_per_customer=1, bargain_ttl_seconds=600)
    customer = QuickCustomerFactory()
    waiting = start(made, customer)

    with time_machine.travel(waiting.expires_at + timedelta(seconds=1)):
        again = start(made, customer)  # the first can only expire now
        Bargain.objects.filter(pk=again.pk).update(
            order=stray_order(again), expires_at=timezone.now() - timedelta(milliseconds=1)
        )
        assert code_of(lambda: start(made, customer)) == "too_many_bargains"


def stray_order(bargain: Bargain) -> Order:
    """An unpaid order of the bargain's SKU, placed around the bargain's purchase rules."""
    return place(bargain.initiator, [(bargain.campaign.sku, 1)], source="bargain")


# --- help -----------------------------------------------------------------------------------------
def test_a_help_makes_the_next_cut_of_the_plan_and_keeps_the_device_and_ip_hash():
    bargain = fresh(start(bargain_campaign(helps_needed=3)))
    helper = QuickCustomerFactory()
    device = uuid.uuid4()

    made = helped(bargain, helper, device_id=device, ip_hash="a" * 64)

    assert (made.bargain, made.helper, made.seq, made.cut) == (bargain, helper, 1, bargain.cuts[0])
    assert made.price_after == bargain.current_price - bargain.cuts[0]
    assert (made.device_id, made.ip_hash) == (device, "a" * 64)
    bargain = fresh(bargain)
    assert (bargain.helps_done, bargain.current_price, bargain.status) == (
        1,
        made.price_after,
        "active",
    )


def test_the_floor_is_reached_exactly_at_the_last_help_never_before():
    made = bargain_campaign(
        start_price=1990, floor_price=990, helps_needed=4, payment_ttl_seconds=1800
    )
    bargain = fresh(start(made))
    prices = []

    for seq in range(1, 4):
        prices.append(helped(bargain).price_after)
        assert (fresh(bargain).status, fresh(bargain).helps_done) == ("active", seq)
        assert fresh(bargain).current_price > 990
    with time_machine.travel(timezone.now(), tick=False):
        last = helped(bargain)
        bargain = fresh(bargain)
        assert bargain.floor_reached_at == timezone.now()
        assert bargain.expires_at == timezone.now() + timedelta(seconds=1800)

    assert (last.seq, last.price_after) == (4, 990)
    assert (bargain.status, bargain.current_price, bargain.helps_done) == ("floor_reached", 990, 4)
    assert prices == sorted(prices, reverse=True)
    assert [h.cut for h in bargain.helps.order_by("seq")] == bargain.cuts
    assert code_of(lambda: helped(bargain)) == "bargain_closed"
    assert BargainHelp.objects.filter(bargain=bargain).count() == 4


def test_nobody_helps_their_own_bargain_or_an_unknown_one():
    bargain = start(bargain_campaign())

    assert refused_without_a_write(lambda: helped(bargain, bargain.initiator)) == (
        "cannot_help_own_bargain"
    )
    helper = QuickCustomerFactory()
    assert refused_without_a_write(
        lambda: services.bargain_help(bargain_id=10**9, helper=helper)
    ) == ("bargain_not_found")
    with pytest.raises(ApplicationError) as caught:
        services.bargain_help(bargain_id=bargain.pk, helper=bargain.initiator)
    assert caught.value.details == {"bargain_id": bargain.pk}


def test_a_friend_helps_a_bargain_once():
    bargain = start(bargain_campaign(helps_needed=3))
    helper = QuickCustomerFactory()
    helped(bargain, helper)

    assert refused_without_a_write(lambda: helped(bargain, helper)) == "already_helped"
    assert fresh(bargain).helps_done == 1


def test_a_friend_who_helped_is_told_so_before_any_limit():
    made = bargain_campaign(helps_per_helper_per_day=1, helps_per_device_per_day=1)
    bargain = start(made)
    helper, device = QuickCustomerFactory(), uuid.uuid4()
    helped(bargain, helper, device_id=device)  # both of today's limits are used up now

    assert refused_without_a_write(lambda: helped(bargain, helper, device_id=device)) == (
        "already_helped"
    )


def test_the_unique_help_per_friend_answers_already_helped_even_past_the_check():
    bargain = start(bargain_campaign(helps_needed=3))
    helper = QuickCustomerFactory()
    helped(bargain, helper)

    with transaction.atomic():  # the check skipped: the insert's unique constraint still holds
        locked = locks.lock_bargain(bargain.pk)
        with pytest.raises(ApplicationError) as caught:
            services._cut(locked, helper=helper, device_id=None, ip_hash="", now=timezone.now())
    assert caught.value.code == "already_helped"
    with transaction.atomic():  # another constraint (the seq) is not mistaken for it
        stale = locks.lock_bargain(bargain.pk)
        stale.helps_done = 0
        with pytest.raises(IntegrityError):
            services._cut(
                stale, helper=QuickCustomerFactory(), device_id=None, ip_hash="", now=timezone.now()
            )
    assert fresh(bargain).helps_done == 1


def test_an_expired_or_closed_bargain_or_one_with_an_order_pending_takes_no_help():
    made = bargain_campaign(bargain_ttl_seconds=600, buy_at_any_price=True)
    late = start(made)
    closed = start(made)
    Bargain.objects.filter(pk=closed.pk).update(status="expired", expired_at=timezone.now())
    pending = start(made)
    buy(pending)
    helper = QuickCustomerFactory()

    with time_machine.travel(late.expires_at):
        assert refused_without_a_write(lambda: helped(late, helper)) == "bargain_closed"
    assert refused_without_a_write(lambda: helped(closed, helper)) == "bargain_closed"
    assert refused_without_a_write(lambda: helped(pending, helper)) == "bargain_closed"
    helped(late, helper)  # before its expiry it takes the help


def test_a_campaign_for_new_customers_refuses_helpers_who_ever_had_an_order_paid():
    made = bargain_campaign(helpers_must_be_new=True)
    bargain = start(made)
    veteran = QuickCustomerFactory()
    paid(veteran)
    unpaid_only = QuickCustomerFactory()
    place(unpaid_only)

    assert refused_without_a_write(lambda: helped(bargain, veteran)) == "helper_not_new"
    helped(bargain, unpaid_only)
    helped(start(bargain_campaign()), veteran)  # a campaign open to everyone


def test_a_helper_helps_at_most_k_bargains_of_a_campaign_per_local_day():
    evening = local(2031, 3, 4, 23, 50)  # Asia/Shanghai: 15:50 UTC
    helper = QuickCustomerFactory()

    with time_machine.travel(evening, tick=False):
        made = bargain_campaign(helps_per_helper_per_day=2)
        bargains = [start(made) for _ in range(3)]
        helped(bargains[0], helper)
        helped(bargains[1], helper)
        assert refused_without_a_write(lambda: helped(bargains[2], helper)) == (
            "help_limit_reached"
        )
        helped(start(bargain_campaign()), helper)  # another campaign
    with time_machine.travel(local(2031, 3, 5, 0, 10), tick=False):  # 16:10 UTC, the same UTC day
        helped(bargains[2], helper)

    assert BargainHelp.objects.filter(helper=helper).count() == 4


def test_one_device_helps_at_most_its_daily_number_of_bargains_of_a_campaign():
    made = bargain_campaign(helps_per_device_per_day=2)
    bargain = start(made)
    device = uuid.uuid4()
    helped(bargain, device_id=device)
    helped(start(made), device_id=device)

    third = QuickCustomerFactory()
    assert refused_without_a_write(lambda: helped(bargain, third, device_id=device)) == (
        "device_help_limit_reached"
    )
    helped(bargain, device_id=uuid.uuid4())
    helped(bargain)  # without a device id: not counted per device
    assert fresh(bargain).helps_done == 3


def test_the_initiator_is_told_of_each_cut_and_of_the_floor_once():
    bargain = start(bargain_campaign(helps_needed=2))
    first = QuickCustomerFactory(nickname="Lan")

    helped(bargain, first)
    to_floor(bargain)

    cuts = notes(bargain, "bargain_cut")
    assert [n.user_id for n in cuts] == [bargain.initiator.user_id] * 2
    assert [n.dedupe_key for n in cuts] == [
        f"bargain:{bargain.pk}:help:1",
        f"bargain:{bargain.pk}:help:2",
    ]
    assert "Lan cut" in cuts[0].body
    [floor] = notes(bargain, "bargain_floor_reached")
    assert floor.dedupe_key == f"bargain:{bargain.pk}:floor"
    assert "9.90 CNY" in floor.body


# --- purchase -------------------------------------------------------------------------------------
def test_at_the_floor_the_initiator_buys_one_unit_at_the_floor_price_until_the_deadline():
    made = bargain_campaign(price=1990, start_price=1990, floor_price=990, helps_needed=2)

    with time_machine.travel(timezone.now(), tick=False):
        bargain = to_floor(start(made))
        order = buy(bargain)

    assert (order.source, order.source_ref, order.status) == (
        "bargain",
        bargain.pk,
        "pending_payment",
    )
    assert (order.total, order.discount, order.fulfilment_held) == (990, 0, False)
    line = order.lines.get()
    assert (line.sku_id, line.quantity, line.list_unit_price, line.unit_price) == (
        made.sku_id,
        1,
        1990,
        990,
    )
    assert order.payment_deadline == bargain.expires_at  # the floor's deadline to buy
    assert fresh(bargain).order == order
    assert fresh(bargain).status == "floor_reached"


def test_before_the_floor_only_a_buy_at_any_price_campaign_sells_at_the_current_price():
    strict = start(bargain_campaign())
    anytime = fresh(start(bargain_campaign(buy_at_any_price=True)))
    point = quick_pickup_point()

    assert refused_without_a_write(lambda: buy(strict, point=point)) == "bargain_not_at_floor"
    with time_machine.travel(timezone.now(), tick=False):
        order = buy(anytime)
        assert order.payment_deadline == timezone.now() + settings.STOCK_RESERVATION_TTL
    assert order.total == anytime.current_price


def test_a_purchase_is_never_payable_past_the_bargains_end():
    bargain = start(bargain_campaign(buy_at_any_price=True, bargain_ttl_seconds=3600))

    with time_machine.travel(bargain.expires_at - timedelta(seconds=120), tick=False):
        order = buy(bargain)

    assert order.payment_deadline == bargain.expires_at


def test_the_price_is_never_above_the_skus_own_price():
    made = bargain_campaign(price=1990, start_price=1990, floor_price=990, helps_needed=2)
    bargain = start(made)
    helped(bargain)
    Sku.objects.filter(pk=made.sku_id).update(price=800)
    to_floor(bargain)

    order = buy(bargain)

    assert (order.total, order.lines.get().unit_price, order.lines.get().list_unit_price) == (
        800,
        800,
        800,
    )


def test_only_the_initiator_buys_and_others_learn_nothing():
    bargain = to_floor(start(bargain_campaign(helps_needed=2)))
    point, other = quick_pickup_point(), QuickCustomerFactory()

    assert refused_without_a_write(
        lambda: services.bargain_purchase(
            bargain_id=bargain.pk,
            customer=other,
            delivery_mode="pickup",
            pickup_point_id=point.pk,
        )
    ) == ("bargain_not_found")
    assert refused_without_a_write(
        lambda: services.bargain_purchase(
            bargain_id=10**9,
            customer=bargain.initiator,
            delivery_mode="pickup",
            pickup_point_id=point.pk,
        )
    ) == ("bargain_not_found")


def test_a_pending_order_is_paid_or_cancelled_before_another():
    bargain = to_floor(start(bargain_campaign(helps_needed=2)))
    order = buy(bargain)

    with pytest.raises(ApplicationError) as caught:
        buy(bargain)

    assert (caught.value.code, caught.value.details["order_id"]) == (
        "bargain_order_pending",
        order.pk,
    )
    assert Order.objects.filter(source="bargain").count() == 1


def test_an_expired_or_bought_bargain_or_one_about_to_end_is_closed(committed):
    made = bargain_campaign(helps_needed=2, buy_at_any_price=True)
    expired = start(made)
    Bargain.objects.filter(pk=expired.pk).update(status="expired", expired_at=timezone.now())
    bought = to_floor(start(made))
    committed(pay, buy(bought))
    ending = start(made)
    point = quick_pickup_point()

    assert refused_without_a_write(lambda: buy(expired, point=point)) == "bargain_closed"
    assert refused_without_a_write(lambda: buy(bought, point=point)) == "bargain_closed"
    with time_machine.travel(ending.expires_at - timedelta(milliseconds=500)):
        assert refused_without_a_write(lambda: buy(ending, point=point)) == "bargain_closed"


def test_a_refused_checkout_leaves_the_bargain_without_an_order():
    made = bargain_campaign(helps_needed=2)
    bargain = to_floor(start(made))
    point = quick_pickup_point()

    assert refused_without_a_write(lambda: buy(bargain, delivery_mode="courier")) == (
        "address_required"
    )
    Product.objects.filter(pk=made.product_id).update(status=Product.Status.DRAFT)
    assert refused_without_a_write(lambda: buy(bargain, point=point)) == "product_unavailable"
    Sku.objects.filter(pk=made.sku_id).update(stock=0)
    Product.objects.filter(pk=made.product_id).update(status=Product.Status.ON_SALE)
    assert refused_without_a_write(lambda: buy(bargain, point=point)) == "out_of_stock"
    assert fresh(bargain).order is None


# --- paid, cancelled ------------------------------------------------------------------------------
def test_paying_the_order_makes_the_bargain_purchased_once(committed, caplog):
    bargain = to_floor(start(bargain_campaign(helps_needed=2)))
    order = buy(bargain)

    committed(pay, order)

    bargain = fresh(bargain)
    assert (bargain.status, bargain.order_id) == ("purchased", order.pk)
    assert bargain.purchased_at is not None
    before = db_snapshot()
    caplog.clear()
    for event in OutboxEvent.objects.filter(name=events.ORDER_PAID):
        subscribers.on_order_paid(**event.payload)
    assert db_snapshot() == before
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []  # replays are normal


def test_a_payment_of_an_order_that_is_not_the_bargains_changes_nothing(caplog):
    bargain = to_floor(start(bargain_campaign(helps_needed=2)))
    stray = stray_order(bargain)
    gone = start(bargain_campaign())
    Bargain.objects.filter(pk=gone.pk).update(status="expired", expired_at=timezone.now())
    Bargain.objects.filter(pk=gone.pk).update(order=stray_order(gone))
    caplog.set_level(logging.ERROR, logger="groupbuy.services.bargains")
    before = db_snapshot()

    bargain_order_paid(order_id=stray.pk, bargain_id=bargain.pk)
    bargain_order_paid(order_id=stray.pk, bargain_id=None)
    bargain_order_paid(order_id=fresh(gone).order_id, bargain_id=gone.pk)

    assert db_snapshot() == before
    assert caplog.text.count("is not the order of bargain") == 2
    assert f"was paid for bargain {gone.pk}, which is expired" in caplog.text


def test_a_cancelled_order_lets_the_initiator_buy_again_and_friends_help_again(committed):
    bargain = start(bargain_campaign(helps_needed=3, buy_at_any_price=True))
    order = buy(bargain)
    assert code_of(lambda: helped(bargain)) == "bargain_closed"

    committed(order_cancel, order_id=order.pk, customer=bargain.initiator)

    assert fresh(bargain).order is None
    helped(bargain)
    again = buy(bargain)
    assert fresh(bargain).order == again
    assert again.total == fresh(bargain).current_price


def test_an_order_expired_unpaid_is_dropped_and_a_replay_changes_nothing(committed):
    bargain = to_floor(start(bargain_campaign(helps_needed=2)))
    order = buy(bargain)

    with time_machine.travel(order.payment_deadline + timedelta(seconds=1)):
        assert committed(orders_expire_due) == 1

    assert (fresh(order).cancel_reason, fresh(bargain).order_id) == ("expired", None)
    assert fresh(bargain).status == "floor_reached"
    before = db_snapshot()
    [event] = OutboxEvent.objects.filter(name=events.ORDER_CANCELLED)
    subscribers.on_order_cancelled(**event.payload)
    bargain_order_cancelled(order_id=order.pk, bargain_id=bargain.pk)
    assert db_snapshot() == before


def test_the_cancel_of_an_order_the_bargain_no_longer_holds_keeps_its_new_order(committed):
    bargain = to_floor(start(bargain_campaign(helps_needed=2)))
    first = buy(bargain)
    committed(order_cancel, order_id=first.pk)
    second = buy(bargain)

    bargain_order_cancelled(order_id=first.pk, bargain_id=bargain.pk)  # a late replay

    assert fresh(bargain).order == second


def test_a_cancel_for_an_unknown_bargain_is_logged(caplog):
    caplog.set_level(logging.ERROR, logger="groupbuy.services.bargains")

    bargain_order_cancelled(order_id=1, bargain_id=10**9)

    assert "has no bargain" in caplog.text


# --- the expiry sweep -----------------------------------------------------------------------------
def test_an_expired_bargain_is_closed_once_and_its_initiator_told_once(committed):
    bargain = start(bargain_campaign(bargain_ttl_seconds=600))
    later = bargain.expires_at + timedelta(seconds=1)

    assert committed(bargains_expire_due, now=later) == 1
    assert committed(bargains_expire_due, now=later) == 0

    bargain = fresh(bargain)
    assert (bargain.status, bargain.expired_at) == ("expired", later)
    [note] = notes(bargain, "bargain_expired")
    assert (note.user_id, note.dedupe_key) == (
        bargain.initiator.user_id,
        f"bargain:{bargain.pk}:expired",
    )
    assert code_of(lambda: helped(bargain)) == "bargain_closed"


def test_a_bargain_given_more_time_after_the_sweep_listed_it_is_not_expired():
    bargain = start(bargain_campaign(helps_needed=2, bargain_ttl_seconds=600))
    listed_at = bargain.expires_at  # the sweep read it as due at this time
    to_floor(bargain)  # meanwhile the last help moved its deadline to the payment time

    assert services._expire(bargain.pk, listed_at) is False

    assert fresh(bargain).status == "floor_reached"
    assert notes(bargain, "bargain_expired") == []


def test_a_bargain_before_its_expiry_is_left_alone():
    bargain = start(bargain_campaign(bargain_ttl_seconds=7200))

    assert bargains_expire_due(now=bargain.expires_at - timedelta(seconds=1)) == 0

    assert fresh(bargain).status == "active"


def test_the_sweep_cancels_an_unpaid_order_and_gives_its_stock_back(committed):
    made = bargain_campaign(helps_needed=2, stock=10)
    bargain = to_floor(start(made))
    order = buy(bargain)
    assert Sku.objects.get(pk=made.sku_id).stock == 9

    assert committed(bargains_expire_due, now=bargain.expires_at) == 1

    order = fresh(order)
    assert (order.status, order.cancel_reason) == ("cancelled", "bargain_expired")
    assert Sku.objects.get(pk=made.sku_id).stock == 10
    bargain = fresh(bargain)
    assert (bargain.status, bargain.order_id) == ("expired", order.pk)
    assert "unpaid order was cancelled" in notes(bargain, "bargain_expired")[0].body


def test_an_order_paid_before_the_sweep_makes_the_bargain_purchased_not_expired(committed):
    bargain = to_floor(start(bargain_campaign(helps_needed=2)))
    order = buy(bargain)
    pay(order)  # its order_paid not delivered yet

    assert bargains_expire_due(now=bargain.expires_at + timedelta(seconds=5)) == 0

    bargain = fresh(bargain)
    assert (bargain.status, bargain.purchased_at) == ("purchased", fresh(order).paid_at)
    assert fresh(order).status == "paid"
    assert notes(bargain, "bargain_expired") == []
    bargain_order_paid(order_id=order.pk, bargain_id=bargain.pk)  # arriving late: nothing more
    assert fresh(bargain).purchased_at == fresh(order).paid_at


def test_initiators_are_warned_once_when_a_bargain_expires_soon(committed):
    made = bargain_campaign(bargain_ttl_seconds=86_400)
    soon = start(made)
    far = start(made)
    Bargain.objects.filter(pk=far.pk).update(expires_at=timezone.now() + timedelta(days=2))
    at = soon.expires_at - settings.BARGAIN_EXPIRING_SOON

    assert committed(bargains_expire_due, now=at - timedelta(seconds=1)) == 0
    assert fresh(soon).expiry_warned_at is None
    committed(bargains_expire_due, now=at)
    committed(bargains_expire_due, now=at + timedelta(minutes=5))

    assert fresh(soon).expiry_warned_at == at
    [note] = notes(soon, "bargain_expiring_soon")
    assert note.dedupe_key == f"bargain:{soon.pk}:expiring"
    assert note.body.startswith("Ask friends to help before ")
    assert f"{timezone.localtime(soon.expires_at):%Y-%m-%d %H:%M}." in note.body
    assert fresh(far).expiry_warned_at is None
    assert notes(far, "bargain_expiring_soon") == []


def test_a_bargain_that_cannot_be_closed_is_logged_and_retried_by_the_next_run(
    committed, monkeypatch, caplog
):
    made = bargain_campaign(helps_needed=2)
    broken = to_floor(start(made))
    broken_order = buy(broken)
    fine = start(bargain_campaign(bargain_ttl_seconds=60))
    later = broken.expires_at + timedelta(seconds=1)
    real_cancel = services.orders.order_cancel

    def failing(**kwargs):
        raise RuntimeError("provider down")

    monkeypatch.setattr(services.orders, "order_cancel", failing)
    assert committed(bargains_expire_due, now=later) == 1
    assert "closing expired bargain" in caplog.text
    assert (fresh(broken).status, fresh(fine).status) == ("floor_reached", "expired")

    monkeypatch.setattr(services.orders, "order_cancel", real_cancel)
    assert committed(bargains_expire_due, now=later) == 1
    assert (fresh(broken).status, fresh(broken_order).status) == ("expired", "cancelled")


def test_the_periodic_task_runs_the_sweep():
    bargain = start(bargain_campaign(bargain_ttl_seconds=60))

    with time_machine.travel(bargain.expires_at + timedelta(seconds=1)):
        assert tasks.bargains_expire_due.delay().get() == 1

    assert fresh(bargain).status == "expired"


# --- operators ------------------------------------------------------------------------------------
def _checked(**overrides):
    sku = overrides.pop("sku", None) or SkuFactory(price=1990)
    values = {
        "product_id": sku.product_id,
        "sku": sku,
        "start_price": 1990,
        "floor_price": 990,
        "helps_needed": 5,
        "first_cut_min_bps": 1000,
        "first_cut_max_bps": 3000,
        **overrides,
    }
    return lambda: check_bargain_campaign(**values)


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"product_id": 10**9}, "sku"),
        ({"start_price": 1991}, "start_price"),
        ({"floor_price": 0}, "floor_price"),
        ({"helps_needed": 1}, "helps_needed"),
        ({"floor_price": 1985, "helps_needed": 5}, "floor_price"),
        ({"first_cut_min_bps": 0}, "first_cut_min_bps"),
        ({"first_cut_min_bps": 3001}, "first_cut_min_bps"),
        ({"first_cut_max_bps": 10_000, "first_cut_min_bps": 10_000}, "first_cut_max_bps"),
    ],
)
def test_a_campaign_that_breaks_the_rules_is_invalid(overrides, field):
    with pytest.raises(ApplicationError) as caught:
        _checked(**overrides)()

    assert (caught.value.code, caught.value.status) == ("bargain_campaign_invalid", 422)
    assert caught.value.details["field"] == field
    assert caught.value.details["reason"]


def test_the_narrowest_valid_campaign_passes():
    check = _checked(
        start_price=1990,
        floor_price=1984,
        helps_needed=5,
        first_cut_min_bps=1,
        first_cut_max_bps=9999,
    )

    assert check() is None  # no campaign_invalid: one fen for the first cut and each help


def test_ending_a_campaign_stops_new_bargains_and_lets_started_ones_run():
    made = bargain_campaign(helps_needed=2)
    running = start(made)

    assert bargain_campaign_end(campaign_id=made.pk).status == "ended"
    assert bargain_campaign_end(campaign_id=made.pk).status == "ended"  # idempotent

    assert code_of(lambda: start(made)) == "bargain_campaign_not_active"
    assert buy(to_floor(running)).source_ref == running.pk
    assert code_of(lambda: bargain_campaign_end(campaign_id=10**9)) == "bargain_campaign_not_found"


def test_a_bargain_no_longer_live_when_its_warning_is_due_is_not_warned(committed):
    """The sweep lists bargains expiring soon, then warns each under its lock: one bought (or
    expired) in between is left alone."""
    bargain = to_floor(start(bargain_campaign(helps_needed=2)))
    Bargain.objects.filter(pk=bargain.pk).update(
        status="purchased", purchased_at=timezone.now(), order=buy(bargain)
    )

    committed(services._warn, bargain.pk, bargain.expires_at - timedelta(minutes=1))

    assert fresh(bargain).expiry_warned_at is None
    assert notes(bargain, "bargain_expiring_soon") == []
