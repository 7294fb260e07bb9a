"""The group-buy expiry sweep: expired groups fail (paid members refunded in full, once) or
auto-complete; payments that no longer count are refunded (PostgreSQL, sandbox provider, the
outbox and Celery eager: an approved refund is sent after commit and succeeds at once)."""

import logging
from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone

from core import outbox
from core.models import Notification, OutboxEvent
from groupbuy import events, tasks
from groupbuy.models import Group, GroupSeat
from groupbuy.services.groups import groups_expire_due, seat_mark_paid
from shop.models import Order, Refund, Sku
from shop.services.refunds import refund_for_group, refund_request
from tests.db_snapshot import db_snapshot
from tests.groupbuy.factories import campaign, join, open_group, sku_of
from tests.shop.factories_orders import pay

pytestmark = pytest.mark.django_db

received: list[tuple[str, dict]] = []


def on_succeeded(**payload):
    received.append((events.GROUP_SUCCEEDED, payload))


def on_failed(**payload):
    received.append((events.GROUP_FAILED, payload))


@pytest.fixture
def announced():
    received.clear()
    outbox.subscribe(events.GROUP_SUCCEEDED, on_succeeded)
    outbox.subscribe(events.GROUP_FAILED, on_failed)
    yield received
    outbox.unsubscribe(events.GROUP_SUCCEEDED, on_succeeded)
    outbox.unsubscribe(events.GROUP_FAILED, on_failed)


def fresh(row):
    row.refresh_from_db()
    return row


def later() -> timezone.datetime:
    return timezone.now() + timedelta(days=2)  # past the default group TTL of a day


def stock(made) -> int:
    return Sku.objects.values_list("stock", flat=True).get(pk=sku_of(made))


def two_paid_one_held(committed, **fields):
    made = campaign(size=3, stock=100, **fields)
    group, leader_order = open_group(made)
    member_order = join(group)[1]
    held_order = join(group)[1]
    committed(pay, leader_order)
    committed(pay, member_order)
    assert stock(made) == 97
    return made, group, [leader_order, member_order], held_order


def group_refunds(order: Order) -> list[Refund]:
    return list(Refund.objects.filter(order=order, reason=Refund.Reason.GROUP_FAILED))


# --- failure --------------------------------------------------------------------------------------
def test_an_expired_group_fails_refunds_each_paid_order_once_and_cancels_the_held_one(
    committed, announced
):
    made, group, paid_orders, held_order = two_paid_one_held(committed)

    assert committed(groups_expire_due, now=later()) == 1

    group = fresh(group)
    assert (group.status, group.held_seats, group.paid_seats) == ("failed", 0, 2)
    assert group.failed_at is not None and group.succeeded_at is None
    for order in paid_orders:
        [refund] = group_refunds(order)
        assert (refund.status, refund.amount, refund.restock) == ("succeeded", order.total, True)
        assert refund.requested_by is None and refund.decided_at is not None
        assert fresh(order).status == "refunded"
        assert GroupSeat.objects.get(order=order).status == "paid"
    held_order = fresh(held_order)
    assert (held_order.status, held_order.cancel_reason) == ("cancelled", "group_closed")
    assert GroupSeat.objects.get(order=held_order).status == "released"
    assert Refund.objects.filter(order=held_order).count() == 0
    assert stock(made) == 100  # the held unit at the cancel, the paid ones at their refunds
    assert received == [
        (
            "group_failed",
            {
                "group_id": group.pk,
                "campaign_id": made.pk,
                "order_ids": sorted(o.pk for o in paid_orders),
                "auto_completed": False,
            },
        )
    ]
    notes = Notification.objects.filter(kind="group_failed")
    assert notes.count() == 3
    refunded_note = notes.get(user=paid_orders[0].customer.user)
    assert "refunded" in refunded_note.body and refunded_note.data["group_id"] == group.pk
    assert "cancelled" in notes.get(user=held_order.customer.user).body


def test_running_the_sweep_again_changes_nothing(committed, announced):
    _, _, _, _ = two_paid_one_held(committed)
    committed(groups_expire_due, now=later())
    before = db_snapshot()

    assert committed(groups_expire_due, now=later()) == 0

    assert db_snapshot() == before
    assert len(received) == 1


def test_a_group_not_yet_expired_is_untouched(committed):
    _, group, _, _ = two_paid_one_held(committed)
    before = db_snapshot()

    assert committed(groups_expire_due) == 0
    assert committed(groups_expire_due, now=group.expires_at - timedelta(seconds=1)) == 0

    assert db_snapshot() == before


def test_the_group_refund_is_one_per_order(committed):
    _, _, paid_orders, _ = two_paid_one_held(committed)
    committed(groups_expire_due, now=later())
    order = paid_orders[0]
    [first] = group_refunds(order)

    assert committed(refund_for_group, order_id=order.pk) == first
    assert group_refunds(order) == [first]


def test_an_approved_refund_left_unsent_is_resent_by_the_stuck_sweep():
    from shop.services.payments import refunds_resend_stuck

    made = campaign(size=2)
    group, order = open_group(made)
    pay(order)  # no commit hooks: the seat stays held, the refund is never sent
    Group.objects.filter(pk=group.pk).update(status="failed", failed_at=timezone.now())

    seat_mark_paid(order_id=order.pk, group_id=group.pk)
    [refund] = group_refunds(order)
    assert refund.status == "approved"

    assert refunds_resend_stuck(older_than=timedelta(0)) == 1
    assert fresh(refund).status == "succeeded"


def test_a_customers_open_refund_request_is_superseded_by_the_group_refund(committed):
    _, _, paid_orders, _ = two_paid_one_held(committed)
    order = paid_orders[0]
    asked = refund_request(order_id=order.pk, customer=order.customer, amount=100)

    committed(groups_expire_due, now=later())

    assert fresh(asked).status == "rejected"
    [refund] = group_refunds(order)
    assert (refund.status, refund.amount) == ("succeeded", order.total)


# --- auto-complete ----------------------------------------------------------------------------
def test_auto_complete_with_enough_fill_succeeds_with_waived_seats(committed, announced, caplog):
    caplog.set_level(logging.INFO, logger="groupbuy.services.groups")
    made, group, paid_orders, held_order = two_paid_one_held(
        committed, auto_complete=True, auto_complete_min_fill_bps=6600
    )

    assert committed(groups_expire_due, now=later()) == 1

    group = fresh(group)
    assert (group.status, group.auto_completed, group.waived_seats) == ("succeeded", True, 1)
    assert (group.held_seats, group.paid_seats, group.failed_at) == (0, 2, None)
    assert group.succeeded_at is not None
    for order in paid_orders:
        order = fresh(order)
        assert (order.status, order.fulfilment_held) == ("paid", False)
        assert order.pickup_code
        assert Refund.objects.filter(order=order).count() == 0
    assert fresh(held_order).status == "cancelled"
    assert stock(made) == 98
    assert "auto-completed with 2 of 3 seats paid (1 waived)" in caplog.text
    assert received == [
        (
            "group_succeeded",
            {
                "group_id": group.pk,
                "campaign_id": made.pk,
                "order_ids": sorted(o.pk for o in paid_orders),
                "auto_completed": True,
            },
        )
    ]
    assert Notification.objects.filter(kind="group_succeeded").count() == 2


def test_auto_complete_without_enough_fill_fails(committed):
    _, group, paid_orders, _ = two_paid_one_held(
        committed, auto_complete=True, auto_complete_min_fill_bps=6700
    )

    committed(groups_expire_due, now=later())

    assert fresh(group).status == "failed"
    assert all(len(group_refunds(order)) == 1 for order in paid_orders)


def test_auto_complete_never_completes_a_group_without_a_paid_seat(committed):
    group, order = open_group(campaign(size=2, auto_complete=True, auto_complete_min_fill_bps=0))

    committed(groups_expire_due, now=later())

    group = fresh(group)
    assert (group.status, group.auto_completed, group.waived_seats) == ("failed", False, 0)
    assert fresh(order).status == "cancelled"


def test_a_paid_order_whose_event_is_late_counts_as_paid_at_expiry(committed, announced):
    group, leader_order = open_group(campaign(size=2))
    member_order = join(group)[1]
    committed(pay, leader_order)
    pay(member_order)  # paid, but its order_paid has not reached the seat yet
    assert GroupSeat.objects.get(order=member_order).status == "held"

    committed(groups_expire_due, now=later())

    group = fresh(group)
    assert (group.status, group.auto_completed, group.paid_seats) == ("succeeded", False, 2)
    assert fresh(member_order).fulfilment_held is False
    assert Refund.objects.count() == 0
    assert [name for name, _ in received] == ["group_succeeded"]


# --- payments that no longer count ------------------------------------------------------------
def test_a_payment_after_the_group_failed_is_refunded(committed, caplog):
    group, order = open_group(campaign(size=2))
    Group.objects.filter(pk=group.pk).update(status="failed", failed_at=timezone.now())

    committed(pay, order)

    [refund] = group_refunds(order)
    assert refund.status == "succeeded"
    assert fresh(order).status == "refunded"
    assert Group.objects.count() == 1
    assert "refunding it" in caplog.text


def test_a_normal_success_records_group_succeeded(committed, announced):
    made = campaign(size=2)
    group, leader_order = open_group(made)
    member_order = join(group)[1]
    committed(pay, leader_order)
    committed(pay, member_order)

    assert received == [
        (
            "group_succeeded",
            {
                "group_id": group.pk,
                "campaign_id": made.pk,
                "order_ids": sorted([leader_order.pk, member_order.pk]),
                "auto_completed": False,
            },
        )
    ]
    assert OutboxEvent.objects.filter(name="group_succeeded").count() == 1


# --- wiring -----------------------------------------------------------------------------------
def test_the_sweep_is_a_periodic_task_and_the_events_are_registered(committed):
    entry = settings.CELERY_BEAT_SCHEDULE["groups-expire-due"]
    assert entry == {"task": "groupbuy.tasks.groups_expire_due", "schedule": 30.0}
    assert tasks.groups_expire_due.name == "groupbuy.tasks.groups_expire_due"
    assert outbox.registered_events()["group_failed"] == "groupbuy"
    assert outbox.registered_events()["group_succeeded"] == "groupbuy"
    open_group(campaign(size=2))
    Group.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    assert committed(tasks.groups_expire_due.delay).get() == 1
