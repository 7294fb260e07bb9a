"""Group-buy groups: opening, joining, and what paying or cancelling a seat's order does (on
PostgreSQL, with the shop's events delivered through the outbox after commit)."""

import logging
from datetime import timedelta

import pytest
import time_machine
from django.db import IntegrityError, transaction
from django.utils import timezone

from core import outbox
from core.errors import ApplicationError
from core.models import Notification, OutboxEvent
from groupbuy import subscribers
from groupbuy.models import Group, GroupCampaign, GroupSeat
from groupbuy.services.groups import seat_mark_paid
from shop import events
from shop.models import Order
from shop.services.orders import order_cancel, orders_expire_due
from tests.db_snapshot import db_snapshot
from tests.factories import SkuFactory
from tests.groupbuy.factories import campaign, join, open_group, sku_of
from tests.shop.factories_orders import QuickCustomerFactory, pay, quick_pickup_point

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


def seat_of(order: Order) -> GroupSeat:
    return GroupSeat.objects.get(order=order)


# --- open -----------------------------------------------------------------------------------------
def test_opening_a_group_holds_the_leaders_seat_with_an_order_at_the_leader_price():
    made = campaign(size=3, price=1990, group_price=990, leader_price=890)
    leader = QuickCustomerFactory()
    point = quick_pickup_point()
    before = timezone.now()

    group, order = open_group(made, leader, point=point, quantity=1)

    group = fresh(group)
    assert (group.status, group.size, group.held_seats, group.paid_seats) == ("open", 3, 1, 0)
    assert (group.leader, group.community_id) == (leader, point.community_id)
    assert before + timedelta(days=1) <= group.expires_at <= timezone.now() + timedelta(days=1)
    assert len(group.share_token) >= 20
    seat = seat_of(order)
    assert (seat.group, seat.customer, seat.is_leader, seat.status) == (group, leader, True, "held")
    assert (order.source, order.source_ref, order.fulfilment_held) == ("group_buy", group.pk, True)
    assert (order.status, order.total) == ("pending_payment", 890)
    line = order.lines.get()
    assert (line.sku_id, line.list_unit_price, line.unit_price, line.quantity) == (
        sku_of(made),
        1990,
        890,
        1,
    )
    assert before + timedelta(seconds=900) <= order.payment_deadline <= group.expires_at
    assert order.payment_deadline <= timezone.now() + timedelta(seconds=900)


def test_without_a_leader_price_the_leader_pays_the_group_price():
    made = campaign(group_price=990, leader_price=None)

    _, order = open_group(made)

    assert (order.total, order.lines.get().unit_price) == (990, 990)


def test_a_seat_is_never_held_past_the_groups_expiry():
    made = campaign(group_ttl_seconds=600, seat_payment_ttl_seconds=900)

    with time_machine.travel(timezone.now(), tick=False):
        group, order = open_group(made)

        assert order.payment_deadline == group.expires_at == timezone.now() + timedelta(seconds=600)


def test_a_campaign_that_is_missing_not_active_or_outside_its_window_opens_no_group():
    point = quick_pickup_point()
    customer = QuickCustomerFactory()
    draft = campaign(status=GroupCampaign.Status.DRAFT)
    ended = campaign(status=GroupCampaign.Status.ENDED)
    not_started = campaign(starts_in=timedelta(minutes=5))
    over = campaign(starts_in=timedelta(days=-2), lasts=timedelta(days=1))
    gone = campaign()
    gone.pk = 10**9

    assert refused_without_a_write(lambda: open_group(gone, customer, point=point, sku_id=1)) == (
        "campaign_not_found"
    )
    for made in (draft, ended, not_started, over):
        assert refused_without_a_write(
            lambda made=made: open_group(made, customer, point=point)
        ) == ("campaign_not_active")


def test_a_sku_outside_the_campaign_or_too_many_units_opens_no_group():
    made = campaign(max_quantity_per_order=2)
    other = SkuFactory()
    customer, point = QuickCustomerFactory(), quick_pickup_point()

    assert refused_without_a_write(
        lambda: open_group(made, customer, point=point, sku_id=other.pk)
    ) == ("campaign_sku_not_found")
    assert refused_without_a_write(lambda: open_group(made, customer, point=point, quantity=3)) == (
        "quantity_over_limit"
    )
    assert refused_without_a_write(lambda: open_group(made, customer, point=point, quantity=0)) == (
        "quantity_over_limit"
    )
    _, order = open_group(made, customer, point=point, quantity=2)
    assert order.lines.get().quantity == 2


def test_a_customer_leads_at_most_the_campaigns_number_of_open_groups():
    made = campaign(max_open_groups_per_customer=2)
    leader, point = QuickCustomerFactory(), quick_pickup_point()
    open_group(made, leader, point=point)
    open_group(made, leader, point=point)

    assert refused_without_a_write(lambda: open_group(made, leader, point=point)) == (
        "too_many_open_groups"
    )
    assert Group.objects.filter(leader=leader).count() == 2
    open_group(campaign(), leader, point=point)  # another campaign has its own limit


def test_a_group_past_its_expiry_no_longer_counts_against_the_limit():
    made = campaign(group_ttl_seconds=600)
    leader = QuickCustomerFactory()
    open_group(made, leader)

    with time_machine.travel(timezone.now() + timedelta(seconds=601)):
        group, _ = open_group(made, leader)

    assert Group.objects.filter(leader=leader, status="open").count() == 2
    assert group.leader == leader


def test_a_refused_checkout_leaves_no_group_or_seat():
    made = campaign(stock=0)
    customer, point = QuickCustomerFactory(), quick_pickup_point()

    assert refused_without_a_write(lambda: open_group(made, customer, point=point)) == (
        "out_of_stock"
    )
    other = campaign()
    assert refused_without_a_write(
        lambda: open_group(other, customer, delivery_mode="courier")
    ) == ("address_required")
    assert Group.objects.count() == 0


# --- join -----------------------------------------------------------------------------------------
def test_a_second_customer_joins_through_the_share_token_at_the_group_price():
    made = campaign(size=3, group_price=990, leader_price=890)
    group, _ = open_group(made)
    member = QuickCustomerFactory()

    joined, order = join(group, member)

    assert joined.pk == group.pk
    group = fresh(group)
    assert (group.held_seats, group.paid_seats, group.status) == (2, 0, "open")
    seat = seat_of(order)
    assert (seat.customer, seat.is_leader, seat.status) == (member, False, "held")
    assert (order.source, order.source_ref, order.fulfilment_held) == ("group_buy", group.pk, True)
    assert (order.total, order.lines.get().unit_price) == (990, 990)
    assert order.payment_deadline <= group.expires_at


def test_the_same_customer_cannot_join_twice_nor_the_leader_their_own_group():
    made = campaign(size=4)
    leader = QuickCustomerFactory()
    group, _ = open_group(made, leader)
    member, point = QuickCustomerFactory(), quick_pickup_point()
    join(group, member, point=point)

    assert refused_without_a_write(lambda: join(group, member, point=point)) == "already_joined"
    assert refused_without_a_write(lambda: join(group, leader, point=point)) == "already_joined"
    assert fresh(group).held_seats == 2


def test_one_live_seat_per_customer_is_also_a_database_rule():
    group, order = open_group(campaign(size=3))
    other_order = join(group)[1]

    with pytest.raises(IntegrityError), transaction.atomic():
        GroupSeat.objects.filter(order=other_order).update(customer=order.customer)


def test_a_full_group_refuses_another_buyer():
    group, _ = open_group(campaign(size=2))
    join(group)
    late, point = QuickCustomerFactory(), quick_pickup_point()

    assert refused_without_a_write(lambda: join(group, late, point=point)) == "group_full"
    assert (fresh(group).held_seats, GroupSeat.objects.filter(group=group).count()) == (2, 2)


def test_an_expired_or_finished_group_is_closed():
    made = campaign(size=3, group_ttl_seconds=600)
    expired, _ = open_group(made)
    failed, _ = open_group(made)
    Group.objects.filter(pk=failed.pk).update(status="failed", failed_at=timezone.now())
    customer, point = QuickCustomerFactory(), quick_pickup_point()

    assert refused_without_a_write(lambda: join(failed, customer, point=point)) == "group_closed"
    with time_machine.travel(expired.expires_at - timedelta(milliseconds=500)):
        # less than a second left: no seat could be paid in time
        assert refused_without_a_write(lambda: join(expired, customer, point=point)) == (
            "group_closed"
        )
    with time_machine.travel(expired.expires_at + timedelta(seconds=1)):
        assert refused_without_a_write(lambda: join(expired, customer, point=point)) == (
            "group_closed"
        )


def test_a_late_joiners_seat_is_held_only_until_the_group_expires():
    made = campaign(size=3, group_ttl_seconds=3600, seat_payment_ttl_seconds=900)
    group, _ = open_group(made)

    with time_machine.travel(group.expires_at - timedelta(seconds=120), tick=False):
        _, order = join(group)

    assert order.payment_deadline == group.expires_at


def test_an_unknown_group_or_sku_or_too_many_units_are_refused():
    group, _ = open_group(campaign(size=3))
    customer, point = QuickCustomerFactory(), quick_pickup_point()
    group.share_token = "no-such-token"

    assert refused_without_a_write(lambda: join(group, customer, point=point)) == "group_not_found"
    group = fresh(group)
    other = SkuFactory()
    assert refused_without_a_write(lambda: join(group, customer, point=point, sku_id=other.pk)) == (
        "campaign_sku_not_found"
    )
    assert refused_without_a_write(lambda: join(group, customer, point=point, quantity=2)) == (
        "quantity_over_limit"
    )


def test_by_id_a_share_token_group_is_not_joinable_and_a_community_group_only_from_it():
    token_only, _ = open_group(campaign(size=3))
    point = quick_pickup_point()
    community_group, _ = open_group(
        campaign(size=3, join_mode=GroupCampaign.JoinMode.COMMUNITY), point=point
    )
    neighbour, stranger = QuickCustomerFactory(), QuickCustomerFactory()
    elsewhere = quick_pickup_point()

    assert refused_without_a_write(
        lambda: join(token_only, neighbour, point=point, by_id=True)
    ) == ("group_not_joinable")
    assert refused_without_a_write(
        lambda: join(community_group, stranger, point=elsewhere, by_id=True)
    ) == ("group_not_joinable")
    _, order = join(community_group, neighbour, point=point, by_id=True)
    assert order.community_id == point.community_id
    join(community_group, stranger, point=elsewhere)  # through the share link: allowed
    assert fresh(community_group).held_seats == 3


# --- paid -----------------------------------------------------------------------------------------
def test_the_last_paid_seat_makes_the_group_succeed_and_releases_every_order(committed):
    group, leader_order = open_group(campaign(size=3))
    member_order = join(group)[1]
    last_order = join(group)[1]

    committed(pay, leader_order)
    committed(pay, member_order)

    group = fresh(group)
    assert (group.status, group.held_seats, group.paid_seats) == ("open", 1, 2)
    for order in (leader_order, member_order):
        order = fresh(order)
        assert (order.status, order.fulfilment_held, order.pickup_code) == ("paid", True, None)
        assert seat_of(order).status == "paid"

    committed(pay, last_order)

    group = fresh(group)
    assert (group.status, group.held_seats, group.paid_seats) == ("succeeded", 0, 3)
    assert group.succeeded_at is not None
    codes = set()
    for order in (leader_order, member_order, last_order):
        order = fresh(order)
        assert (order.status, order.fulfilment_held) == ("paid", False)
        assert order.pickup_code and len(order.pickup_code) == 8
        codes.add(order.pickup_code)
        assert seat_of(order).paid_at is not None
    assert len(codes) == 3


def test_fewer_paid_seats_than_the_size_keep_every_order_held(committed):
    group, leader_order = open_group(campaign(size=2))
    member_order = join(group)[1]

    committed(pay, leader_order)

    assert (fresh(group).status, fresh(group).paid_seats, fresh(group).held_seats) == ("open", 1, 1)
    assert fresh(leader_order).fulfilment_held is True
    assert fresh(member_order).status == "pending_payment"


def test_the_other_members_hear_of_each_paid_seat_once_with_the_seats_left(committed):
    group, leader_order = open_group(campaign(size=3))
    member_order = join(group, QuickCustomerFactory(nickname="Lan"))[1]
    leader_user = leader_order.customer.user_id

    committed(pay, member_order)
    seat_mark_paid(order_id=member_order.pk, group_id=group.pk)  # a second delivery

    [told] = Notification.objects.filter(kind="group_joined")
    assert (told.user_id, told.data) == (leader_user, {"group_id": group.pk, "seats_left": 1})
    assert "Lan joined: 1 seat(s)" in told.body
    committed(pay, leader_order)  # the leader's own seat: the member hears of it, not the leader
    member_user = member_order.customer.user_id
    assert Notification.objects.filter(kind="group_joined", user_id=member_user).count() == 1
    assert Notification.objects.filter(kind="group_joined", user_id=leader_user).count() == 1


def test_a_second_delivery_of_order_paid_changes_nothing(committed, caplog):
    group, leader_order = open_group(campaign(size=2))
    member_order = join(group)[1]
    committed(pay, leader_order)
    committed(pay, member_order)
    assert fresh(group).status == "succeeded"
    before = db_snapshot()
    caplog.clear()

    for event in OutboxEvent.objects.filter(name=events.ORDER_PAID):
        subscribers.on_order_paid(**event.payload)

    assert db_snapshot() == before
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []  # replays are normal


def test_a_payment_for_a_group_no_longer_open_changes_no_group_and_is_refunded(committed, caplog):
    group, order = open_group(campaign(size=2))
    Group.objects.filter(pk=group.pk).update(status="failed", failed_at=timezone.now())
    caplog.set_level(logging.ERROR, logger="groupbuy.services.groups")

    committed(pay, order)

    group = fresh(group)
    assert (group.status, group.held_seats, group.paid_seats) == ("failed", 1, 0)
    assert seat_of(order).status == "held"
    assert fresh(order).fulfilment_held is True
    assert fresh(order).status == "refunded"  # in full, reason group_failed (test_expiry.py)
    assert Group.objects.count() == 1  # nobody was moved to another group
    assert "was paid for a held seat of a failed group" in caplog.text


def test_a_payment_for_a_released_seat_changes_nothing(committed, caplog):
    group, _ = open_group(campaign(size=3))
    order = join(group)[1]
    committed(order_cancel, order_id=order.pk)
    caplog.set_level(logging.ERROR, logger="groupbuy.services.groups")
    before = db_snapshot()

    seat_mark_paid(order_id=order.pk, group_id=group.pk)

    assert db_snapshot() == before
    assert "was paid for a released seat" in caplog.text


def test_orders_of_other_sources_and_unknown_seats_are_ignored(committed, caplog):
    normal = join(open_group(campaign(size=3))[0])[1]
    Order.objects.filter(pk=normal.pk).update(source="normal", source_ref=None)
    before = db_snapshot()

    subscribers.on_order_paid(order_id=normal.pk, source="normal", source_ref=None)
    subscribers.on_order_paid(order_id=normal.pk, source="group_buy", source_ref=10**9)

    assert db_snapshot() == before
    assert "has no seat in group" in caplog.text


def test_the_subscribers_are_registered_with_the_outbox():
    assert outbox.subscribers(events.ORDER_PAID)[
        outbox.handler_name(subscribers.on_order_paid)
    ] is (subscribers.on_order_paid)
    assert outbox.subscribers(events.ORDER_CANCELLED)[
        outbox.handler_name(subscribers.on_order_cancelled)
    ] is (subscribers.on_order_cancelled)


# --- cancelled / expired --------------------------------------------------------------------------
def test_a_cancelled_seat_order_frees_the_seat_for_someone_else(committed):
    group, _ = open_group(campaign(size=2))
    member_order = join(group)[1]
    late, point = QuickCustomerFactory(), quick_pickup_point()
    assert code_of(lambda: join(group, late, point=point)) == "group_full"

    committed(order_cancel, order_id=member_order.pk, customer=member_order.customer)

    seat = seat_of(member_order)
    assert (seat.status, seat.released_at is not None) == ("released", True)
    assert (fresh(group).held_seats, fresh(group).paid_seats) == (1, 0)
    _, order = join(group, late, point=point)
    assert seat_of(order).status == "held"
    assert fresh(group).held_seats == 2


def test_an_expired_seat_order_frees_the_seat_and_its_customer_may_join_again(committed):
    group, _ = open_group(campaign(size=2, seat_payment_ttl_seconds=900))
    member = QuickCustomerFactory()
    member_order = join(group, member)[1]

    with time_machine.travel(member_order.payment_deadline + timedelta(seconds=1)):
        assert committed(orders_expire_due) == 2  # the leader's unpaid order expired too

    assert seat_of(member_order).status == "released"
    assert fresh(member_order).cancel_reason == "expired"
    assert fresh(group).held_seats == 0
    assert fresh(group).status == "open"  # until it expires (the sweep is step 2)
    _, again = join(group, member)
    assert seat_of(again).status == "held"


def test_a_second_delivery_of_order_cancelled_changes_nothing(committed):
    group, _ = open_group(campaign(size=3))
    order = join(group)[1]
    committed(order_cancel, order_id=order.pk)
    before = db_snapshot()

    [event] = OutboxEvent.objects.filter(name=events.ORDER_CANCELLED)
    subscribers.on_order_cancelled(**event.payload)

    assert db_snapshot() == before
    assert fresh(group).held_seats == 1


def test_the_leaders_cancelled_order_passes_leadership_to_the_earliest_paid_seat(committed):
    leader = QuickCustomerFactory()
    group, leader_order = open_group(campaign(size=4), leader)
    held_first = join(group)[1]
    paid_later = join(group)[1]
    committed(pay, paid_later)

    committed(order_cancel, order_id=leader_order.pk, customer=leader)

    group = fresh(group)
    assert group.leader == paid_later.customer
    assert (seat_of(paid_later).is_leader, seat_of(held_first).is_leader) == (True, False)
    old = seat_of(leader_order)
    assert (old.status, old.is_leader) == ("released", False)
    assert (group.status, group.held_seats, group.paid_seats) == ("open", 1, 1)


def test_without_a_paid_seat_leadership_passes_to_the_earliest_held_one(committed):
    group, leader_order = open_group(campaign(size=4))
    first = join(group)[1]
    join(group)

    committed(order_cancel, order_id=leader_order.pk)

    assert fresh(group).leader == first.customer
    assert seat_of(first).is_leader is True
    assert GroupSeat.objects.filter(group=group, is_leader=True).count() == 1


def test_a_group_left_without_seats_stays_open_and_its_next_buyer_leads(committed):
    leader = QuickCustomerFactory()
    group, leader_order = open_group(campaign(size=2), leader)

    committed(order_cancel, order_id=leader_order.pk)

    group = fresh(group)
    assert (group.status, group.held_seats, group.leader) == ("open", 0, leader)
    newcomer = QuickCustomerFactory()
    _, order = join(group, newcomer)
    assert seat_of(order).is_leader is True
    assert fresh(group).leader == newcomer
    assert order.total == 990  # leadership never reprices: the group price
