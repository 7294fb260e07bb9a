"""Group-buy races on real PostgreSQL with threads, each with its own connection; exact outcomes.
And the lock helpers really lock (seen from a second connection)."""

from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from core import outbox
from core.errors import ApplicationError
from core.models import OutboxDelivery, OutboxEvent
from groupbuy import events, locks
from groupbuy.models import Group, GroupCampaign, GroupSeat
from groupbuy.services.groups import groups_expire_due
from shop.models import Order, Refund
from tests.conftest import run_in_threads
from tests.groupbuy.factories import campaign, join, open_group
from tests.shop.factories_orders import QuickCustomerFactory, pay, quick_pickup_point
from tests.shop.test_locks import from_another_connection, is_locked

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

JOINERS = 30  # threads hold a connection each: PostgreSQL allows 100 here, shared with others


def outcome(result) -> str:
    return result.code if isinstance(result, ApplicationError) else type(result).__name__


def test_30_buyers_for_the_last_free_seat_get_exactly_one_seat():
    # given: a group of 3 with the leader's seat and one member's taken
    group, _ = open_group(campaign(size=3, stock=100))
    join(group)
    point = quick_pickup_point()
    buyers = [QuickCustomerFactory() for _ in range(JOINERS)]
    # when: all of them join at once
    results = run_in_threads(JOINERS, lambda i: join(group, buyers[i], point=point))
    # then
    outcomes = sorted(outcome(result) for result in results)
    assert outcomes == ["group_full"] * (JOINERS - 1) + ["tuple"]
    group.refresh_from_db()
    assert (group.held_seats, group.paid_seats, group.size) == (3, 0, 3)
    assert GroupSeat.objects.filter(group=group, status="held").count() == 3
    assert Order.objects.count() == 3  # exactly one new order
    [winner] = [result for result in results if isinstance(result, tuple)]
    assert GroupSeat.objects.get(order=winner[1]).customer in buyers


def test_one_buyer_joining_twice_at_once_gets_one_seat():
    group, _ = open_group(campaign(size=5, max_quantity_per_order=1))
    buyer, point = QuickCustomerFactory(), quick_pickup_point()

    results = run_in_threads(6, lambda i: join(group, buyer, point=point))

    assert sorted(outcome(result) for result in results) == ["already_joined"] * 5 + ["tuple"]
    assert GroupSeat.objects.filter(group=group, customer=buyer).count() == 1
    assert Group.objects.get(pk=group.pk).held_seats == 2


def test_one_customer_opening_groups_at_once_stays_within_the_limit():
    made = campaign(max_open_groups_per_customer=2)
    leader, point = QuickCustomerFactory(), quick_pickup_point()

    results = run_in_threads(6, lambda i: open_group(made, leader, point=point))

    assert (
        sorted(outcome(result) for result in results)
        == ["too_many_open_groups"] * 4 + ["tuple"] * 2
    )
    assert Group.objects.filter(leader=leader).count() == 2


def test_every_seat_paid_at_once_makes_the_group_succeed_once_and_releases_every_order():
    # given: a full group of 4 whose seats all await payment
    group, leader_order = open_group(campaign(size=4))
    seat_orders = [leader_order] + [join(group)[1] for _ in range(3)]
    # when: the four payments land at once (each delivers its order_paid after its commit)
    results = run_in_threads(4, lambda i: pay(seat_orders[i]))
    # then
    assert [outcome(result) for result in results] == ["Payment"] * 4
    group.refresh_from_db()
    assert (group.status, group.held_seats, group.paid_seats) == ("succeeded", 0, 4)
    released = Order.objects.filter(pk__in=[o.pk for o in seat_orders], fulfilment_held=False)
    assert released.exclude(pickup_code=None).count() == 4
    assert OutboxDelivery.objects.exclude(status="done").count() == 0


def _on_group_failed(**payload):
    pass


def test_two_expiry_sweeps_at_once_fail_the_group_once_and_refund_each_paid_order_once():
    # given: an expired group of 3 with two seats paid and one held
    group, leader_order = open_group(campaign(size=3))
    member_order = join(group)[1]
    held_order = join(group)[1]
    pay(leader_order)
    pay(member_order)
    outbox.subscribe(events.GROUP_FAILED, _on_group_failed)
    try:
        # when: two sweeps run at once
        later = timezone.now() + timedelta(days=2)
        results = run_in_threads(2, lambda i: groups_expire_due(now=later))
    finally:
        outbox.unsubscribe(events.GROUP_FAILED, _on_group_failed)
    # then: one of them closed it, once
    assert sorted(results) == [0, 1]
    group.refresh_from_db()
    assert (group.status, group.held_seats, group.paid_seats) == ("failed", 0, 2)
    for order in (leader_order, member_order):
        refunds = Refund.objects.filter(order=order, reason=Refund.Reason.GROUP_FAILED)
        assert [refund.status for refund in refunds] == ["succeeded"]
    assert Order.objects.get(pk=held_order.pk).status == "cancelled"
    assert OutboxEvent.objects.filter(name=events.GROUP_FAILED).count() == 1


# --- the helpers lock their rows ------------------------------------------------------------------
def test_each_lock_helper_holds_its_row_until_commit():
    group, order = open_group(campaign(size=2))
    seat = GroupSeat.objects.get(order=order)
    rows = [
        (GroupCampaign, group.campaign_id, lambda: locks.lock_campaign(group.campaign_id)),
        (Group, group.pk, lambda: locks.lock_group(group.pk)),
        (GroupSeat, seat.pk, lambda: locks.lock_seat_by_order(order.pk)),
    ]
    for model, pk, take in rows:
        assert not is_locked(model, pk)
        with transaction.atomic():
            assert take().pk == pk
            assert is_locked(model, pk)
        assert not is_locked(model, pk)


def test_a_group_lock_leaves_its_campaign_unlocked():
    group, _ = open_group(campaign(size=2))

    with transaction.atomic():
        assert locks.lock_group(group.pk).campaign.pk == group.campaign_id
        assert not is_locked(GroupCampaign, group.campaign_id)


def test_a_missing_row_is_none():
    with transaction.atomic():
        assert locks.lock_campaign(10**9) is None
        assert locks.lock_group(10**9) is None
        assert locks.lock_seat_by_order(10**9) is None


def test_a_join_on_a_full_group_is_refused_without_waiting_for_the_groups_lock():
    # given: a full group whose row another transaction holds locked
    group, _ = open_group(campaign(size=2))
    join(group)
    late, point = QuickCustomerFactory(), quick_pickup_point()
    with transaction.atomic():
        locks.lock_group(group.pk)
        # when: a late buyer joins from another connection (which gives up on a lock after 3 s)
        result = from_another_connection(lambda: join(group, late, point=point))
    # then: refused from the plain read, not after queueing for the lock
    assert outcome(result) == "group_full"
