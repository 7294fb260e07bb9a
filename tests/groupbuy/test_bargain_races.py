"""Bargain races on real PostgreSQL with threads, each with its own connection; exact outcomes.
And the bargain lock helpers really lock (seen from a second connection)."""

from collections import Counter
from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from core.errors import ApplicationError
from core.models import Notification, OutboxEvent
from core.realtime import topic_last_seq
from groupbuy import locks
from groupbuy.models import Bargain, BargainCampaign, BargainHelp
from groupbuy.services.bargains import bargains_expire_due
from shop import events
from shop.models import Order
from tests.conftest import run_in_threads
from tests.groupbuy.factories_bargains import bargain_campaign, buy, helped, start, to_floor
from tests.shop.factories_orders import QuickCustomerFactory, quick_pickup_point
from tests.shop.test_locks import is_locked

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

HELPERS = 25  # threads hold a connection each: PostgreSQL allows 100 here, shared with others


def outcome(result) -> str:
    return result.code if isinstance(result, ApplicationError) else type(result).__name__


def test_25_helpers_on_the_last_cut_make_exactly_one_help_and_the_price_lands_on_the_floor():
    # given: a bargain of 5 helps with 4 done
    made = bargain_campaign(start_price=1990, floor_price=990, helps_needed=5)
    bargain = start(made)
    for _ in range(4):
        helped(bargain)
    helpers = [QuickCustomerFactory() for _ in range(HELPERS)]
    # when: all of them help at once
    results = run_in_threads(HELPERS, lambda i: helped(bargain, helpers[i]))
    # then
    assert sorted(outcome(r) for r in results) == ["BargainHelp"] + ["bargain_closed"] * 24
    bargain.refresh_from_db()
    assert (bargain.status, bargain.helps_done, bargain.current_price) == ("floor_reached", 5, 990)
    assert BargainHelp.objects.filter(bargain=bargain).count() == 5
    [last] = [r for r in results if isinstance(r, BargainHelp)]
    assert (last.seq, last.price_after, last.helper in helpers) == (5, 990, True)


def test_25_helpers_on_a_fresh_bargain_of_10_make_exactly_10_helps_in_plan_order():
    made = bargain_campaign(start_price=5000, floor_price=1000, helps_needed=10)
    bargain = start(made)
    bargain.refresh_from_db()
    helpers = [QuickCustomerFactory() for _ in range(HELPERS)]

    results = run_in_threads(HELPERS, lambda i: helped(bargain, helpers[i]))

    assert sorted(outcome(r) for r in results) == ["BargainHelp"] * 10 + ["bargain_closed"] * 15
    helps = list(BargainHelp.objects.filter(bargain=bargain).order_by("seq"))
    assert [h.seq for h in helps] == list(range(1, 11))
    assert [h.cut for h in helps] == bargain.cuts  # each help took the plan's next cut
    assert sum(h.cut for h in helps) == 5000 - bargain.first_cut - 1000
    prices = [h.price_after for h in helps]
    assert prices == sorted(prices, reverse=True) and prices[-1] == 1000
    bargain.refresh_from_db()
    assert (bargain.status, bargain.helps_done, bargain.current_price) == (
        "floor_reached",
        10,
        1000,
    )


def test_one_helper_helping_one_bargain_from_6_threads_helps_once():
    bargain = start(bargain_campaign(helps_needed=5))
    helper = QuickCustomerFactory()

    results = run_in_threads(6, lambda i: helped(bargain, helper))

    assert sorted(outcome(r) for r in results) == ["BargainHelp"] + ["already_helped"] * 5
    assert BargainHelp.objects.filter(bargain=bargain, helper=helper).count() == 1
    assert Bargain.objects.get(pk=bargain.pk).helps_done == 1


def test_one_helper_helping_k_plus_3_bargains_at_once_stays_within_the_daily_limit():
    made = bargain_campaign(helps_per_helper_per_day=3)
    bargains = [start(made) for _ in range(6)]
    helper = QuickCustomerFactory()

    results = run_in_threads(6, lambda i: helped(bargains[i], helper))

    assert sorted(outcome(r) for r in results) == ["BargainHelp"] * 3 + ["help_limit_reached"] * 3
    assert BargainHelp.objects.filter(helper=helper).count() == 3
    assert sum(Bargain.objects.filter(campaign=made).values_list("helps_done", flat=True)) == 3


def test_one_customer_starting_bargains_at_once_stays_within_the_limit():
    made = bargain_campaign(max_bargains_per_customer=2)
    customer = QuickCustomerFactory()

    results = run_in_threads(6, lambda i: start(made, customer))

    assert sorted(outcome(r) for r in results) == ["Bargain"] * 2 + ["too_many_bargains"] * 4
    assert Bargain.objects.filter(initiator=customer).count() == 2


def test_the_initiator_buying_from_6_threads_places_one_order():
    bargain = to_floor(start(bargain_campaign(helps_needed=2)))
    point = quick_pickup_point()

    results = run_in_threads(6, lambda i: buy(bargain, point=point))

    assert sorted(outcome(r) for r in results) == ["Order"] + ["bargain_order_pending"] * 5
    [order] = Order.objects.filter(source="bargain", source_ref=bargain.pk)
    assert Bargain.objects.get(pk=bargain.pk).order == order


def test_two_sweeps_at_once_expire_each_bargain_once_and_cancel_each_pending_order_once():
    # given: three expired bargains, two of them with an unpaid order
    made = bargain_campaign(helps_needed=2, buy_at_any_price=True)
    idle = start(made)
    pending = [start(made) for _ in range(2)]
    orders = [buy(bargain) for bargain in pending]
    later = timezone.now() + timedelta(days=2)
    # when: two sweeps run at once
    results = run_in_threads(2, lambda i: bargains_expire_due(now=later))
    # then: between them, each bargain expired once
    assert sum(results) == 3 and sorted(results) in ([0, 3], [1, 2])
    for bargain in [idle, *pending]:
        bargain.refresh_from_db()
        assert (bargain.status, bargain.expired_at) == ("expired", later)
        assert Notification.objects.filter(dedupe_key=f"bargain:{bargain.pk}:expired").count() == 1
    for order in orders:
        order.refresh_from_db()
        assert (order.status, order.cancel_reason) == ("cancelled", "bargain_expired")
    cancelled = Counter(
        event.payload["order_id"]
        for event in OutboxEvent.objects.filter(name=events.ORDER_CANCELLED)
    )
    assert cancelled == {order.pk: 1 for order in orders}


# --- the helpers lock their rows ------------------------------------------------------------------
def test_each_bargain_lock_helper_holds_its_row_until_commit():
    bargain = start(bargain_campaign())
    rows = [
        (
            BargainCampaign,
            bargain.campaign_id,
            lambda: locks.lock_bargain_campaign(bargain.campaign_id),
        ),
        (Bargain, bargain.pk, lambda: locks.lock_bargain(bargain.pk)),
    ]
    for model, pk, take in rows:
        assert not is_locked(model, pk)
        with transaction.atomic():
            assert take().pk == pk
            assert is_locked(model, pk)
        assert not is_locked(model, pk)


def test_a_bargain_lock_leaves_its_campaign_unlocked():
    bargain = start(bargain_campaign())

    with transaction.atomic():
        assert locks.lock_bargain(bargain.pk).campaign.pk == bargain.campaign_id
        assert not is_locked(BargainCampaign, bargain.campaign_id)


def test_a_missing_bargain_row_is_none():
    with transaction.atomic():
        assert locks.lock_bargain_campaign(10**9) is None
        assert locks.lock_bargain(10**9) is None


def test_two_sweeps_at_once_warn_of_an_expiry_once():
    bargain = start(bargain_campaign(bargain_ttl_seconds=1800))  # expires within the hour
    topic = f"bargain:{bargain.pk}"

    run_in_threads(2, lambda i: bargains_expire_due())

    bargain.refresh_from_db()
    assert bargain.status == "active" and bargain.expiry_warned_at is not None
    assert topic_last_seq(topic) == 1  # one bargain_expiring_soon pushed
    assert Notification.objects.filter(dedupe_key=f"bargain:{bargain.pk}:expiring").count() == 1
