"""Group-buy (拼团): opening and joining groups, and what a seat's order being paid or cancelled
does to its group.

A group's states (each change under the group's row lock, groupbuy/locks.py)::

    open --the last seat is paid (seat_mark_paid)--> succeeded
    open --expired (groups_expire_due, every 30 s)--> failed, or succeeded (auto_completed)

A seat's states (one seat per order; a customer has at most one live seat per group)::

    held --its order is paid (seat_mark_paid)--> paid
    held --its order is cancelled or expires (seat_release)--> released
    held --its group expires (groups_expire_due)--> released (its unpaid order cancelled,
           reason ``group_closed``), or paid (its order was paid in time)

``held_seats + paid_seats <= size`` always (a check constraint backs the services): a seat is
taken when its order is placed, in the same transaction, and held until the order's payment
deadline, ``min(seat_payment_ttl_seconds, seconds until the group expires)``, so a seat is never
sold twice and an unpaid one frees itself when the shop expires its order. Every order of a group
is placed with ``hold_fulfilment``: paid members get no pickup code and nothing is handed over
until the group succeeds, when every paid order is released (``order_release_hold``).

The shop never calls into groupbuy: the order-paid and order-cancelled reactions are outbox
subscribers (groupbuy/subscribers.py), delivered at least once after the shop's commit, and
idempotent (a seat already paid or released is left as it is).

Rules chosen where the brief was silent:
- A campaign is open for new groups while it is ``active`` and ``starts_at <= now < ends_at``.
  Groups already open run until their own ``expires_at`` (``now + group_ttl_seconds``), even
  past the campaign's end: the leader paid for that time. Joining checks the group, not the
  campaign.
- ``max_open_groups_per_customer`` counts the customer's groups of this campaign that are open
  and not past their expiry (an expired group waiting for the sweep no longer counts); it is
  checked under the customer's row lock, so two concurrent opens by one customer are counted
  one after the other.
- The leader pays ``leader_price`` (or ``group_price``), members ``group_price``; any campaign
  price above the SKU's current price is lowered to it (never charge more than the list price).
  Coupons do not apply: the group price is the price.
- The buyer's community (join mode ``community``) is the community their order is placed in
  (its pickup point's, or ``community_id``); the group's community is the leader's order's.
  Joining by id is refused (409 ``group_not_joinable``) in mode ``share_token``, and in mode
  ``community`` unless the two communities are the same; joining by the share token is always
  allowed (the link was shared with the buyer).
- Refusals come in this order, cheap ones before any write transaction. Opening: 404
  ``campaign_not_found``, 404 ``campaign_sku_not_found``, 422 ``quantity_over_limit``, 409
  ``campaign_not_active``, sold out, then under the customer's lock 409 ``too_many_open_groups``,
  then the checkout's own errors. Joining: 404 ``group_not_found``, 409 ``group_not_joinable`` (by
  id in mode ``share_token``, or a group with no community), 404 ``campaign_sku_not_found``, 422
  ``quantity_over_limit``, sold out, then 409 ``group_closed`` (not open, past its expiry, or
  less than a second left to pay), ``already_joined``, ``group_full`` (checked on a plain read,
  then again under the group's lock, which decides), then the checkout's errors, and last,
  inside it, the community check (``group_not_joinable``; the order is rolled back with the
  rest).
- A seat's payment time is whole seconds, ``min(seat_payment_ttl_seconds, seconds left)``
  rounded down, so its order's deadline is the group's expiry at the latest (give or take the
  milliseconds between this clock read and the checkout's).
- A payment lands on its seat while the group is ``open``, even after ``expires_at`` if the
  expiry sweep has not failed the group yet (the order's deadline was within the group's life;
  the sweep, which locks the group too, decides failure once). A payment for a seat that was
  released or of a group no longer open changes no group and moves nobody to another group: it
  is logged as an error and the order is refunded in full (``refund_for_group``, the same
  idempotent refund as a failed group's).
- When the leader's order is cancelled or expires while the group is open, leadership passes to
  the earliest other live seat (paid first, then held); with none, the next buyer to join
  becomes the leader. Passing leadership never reprices an order: only the opener gets the
  leader price. ``is_leader`` marks the current leader's seat (one live leader seat per group).
- A group left with no live seat stays open until it expires (the sweep fails it).
- Members are told (stored notifications, pushed to their own sockets) when another member's
  seat is paid (``group_joined``, with the seats still free), and when the group succeeds or
  fails; the group's topic carries every seat change for whoever watches the share page.
- The expiry sweep (``groups_expire_due``) closes each open group with ``expires_at <= now``
  once, under the group's lock, re-checking its status. Held seats first: unpaid orders are
  cancelled (reason ``group_closed``), already-paid ones count as paid. All seats paid: it
  succeeds. ``auto_complete`` with at least one paid seat and ``paid * 10000 >= size *
  auto_complete_min_fill_bps``: it succeeds with ``auto_completed`` and ``waived_seats = size -
  paid`` (logged at INFO); otherwise it fails. A success releases every paid order's hold; a
  failure refunds every paid order in full, automatically, with reason ``group_failed`` (exactly
  one such refund per order, checked under the order's lock; created in the failure's
  transaction and sent to the provider after commit; the stuck-refund sweep resends it). Paid
  seats of a failed group stay ``paid`` (the refund is the order's). Members are notified
  (``group_succeeded`` / ``group_failed``, once per member and group) and ``group_succeeded`` /
  ``group_failed`` are recorded in the outbox (groupbuy/events.py), a normal success included.

Operators (the admin, groupbuy/admin/groups.py): a campaign's SKUs must be of its product and sell
below their price (``check_campaign_sku``, 422 ``campaign_invalid``); ``campaign_end`` stops new
groups (open ones run until they expire); ``group_force_fail`` closes an open group now as its
expiry would, without auto-complete (a group whose seats are all paid succeeds instead).

Lock order (groupbuy/locks.py, shop/locks.py): group -> seat -> order -> customer -> SKU stock.
Placing an order, the seat and the group's counters are written inside the checkout's
``reserve`` step just before the stock reservation, so the hot stock row is still locked last.
"""

import logging
import math
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Case, IntegerField, Value, When
from django.utils import timezone

from core.errors import Conflict, InvalidInput, NotFound
from core.notifications import notify
from groupbuy import events, locks
from groupbuy.error_codes import GroupBuyErrorCode
from groupbuy.models import Group, GroupCampaign, GroupCampaignSku, GroupSeat
from groupbuy.realtime import push_group
from groupbuy.services import community
from groupbuy.services.sweeps import close_each
from shop import locks as shop_locks
from shop.models import Customer, Order, Sku
from shop.services import orders
from shop.services.refunds import refund_for_group
from shop.services.stock import (
    out_of_stock,
    stock_refuse_known_short,
    stock_remember_short,
    stock_reserve,
)

logger = logging.getLogger(__name__)

OPEN = Group.Status.OPEN
SEAT = GroupSeat.Status


# --- checks ---------------------------------------------------------------------------------------
def _campaign_sku(campaign: GroupCampaign, sku_id: int) -> GroupCampaignSku:
    offer = GroupCampaignSku.objects.select_related("sku").filter(campaign=campaign, sku_id=sku_id)
    found = offer.first()
    if found is None:
        raise NotFound(
            "This item is not part of the group-buy campaign.",
            code=GroupBuyErrorCode.CAMPAIGN_SKU_NOT_FOUND,
            details={"campaign_id": campaign.pk, "sku_id": sku_id},
        )
    return found


def _check_quantity(campaign: GroupCampaign, quantity: int) -> None:
    if not 1 <= quantity <= campaign.max_quantity_per_order:
        raise InvalidInput(
            f"A group-buy order has 1 to {campaign.max_quantity_per_order} units.",
            code=GroupBuyErrorCode.QUANTITY_OVER_LIMIT,
            details={"quantity": quantity, "max": campaign.max_quantity_per_order},
        )


def _refuse_short(sku: Sku, quantity: int) -> None:
    """Sold out is refused before any write (as the shop's checkout does; the group's own
    ``reserve`` step skips the checkout's check). The conditional update stays the guard."""
    stock_refuse_known_short(quantities={sku.pk: quantity})
    if sku.stock < quantity:
        stock_remember_short(sku_id=sku.pk, available=sku.stock)
        raise out_of_stock(sku_id=sku.pk, available=sku.stock)


def _closed(group: Group) -> Conflict:
    return Conflict(
        "This group is no longer open.",
        code=GroupBuyErrorCode.GROUP_CLOSED,
        details={"group_id": group.pk, "status": group.status},
    )


def _not_joinable(group: Group) -> Conflict:
    return Conflict(
        "This group can only be joined through its share link.",
        code=GroupBuyErrorCode.GROUP_NOT_JOINABLE,
        details={"group_id": group.pk},
    )


def _payment_ttl(group: Group, now: datetime) -> int:
    """Seconds the new seat is held: the campaign's seat TTL, never past the group's expiry.
    409 ``group_closed`` when less than a second is left."""
    left = math.floor((group.expires_at - now).total_seconds())
    if group.status != OPEN or left < 1:
        raise _closed(group)
    return min(group.campaign.seat_payment_ttl_seconds, left)


# --- placing a seat's order ---------------------------------------------------------------------
def _place(
    *,
    group: Group,
    customer: Customer,
    offer: GroupCampaignSku,
    quantity: int,
    unit_price: int,
    is_leader: bool,
    delivery_mode: str,
    pickup_point_id: int | None,
    address_id: int | None,
    community_id: int | None,
    opening: bool = False,
    same_community: bool = False,
) -> Order:
    """The seat's order through the shop's checkout (inside the caller's transaction, with the
    group locked or new). Its ``reserve`` step takes the seat, then reserves the stock."""

    def reserve(order: Order, lines: list[tuple[Sku, int]], deadline: datetime) -> None:
        if same_community and order.community_id != group.community_id:
            raise _not_joinable(group)
        GroupSeat.objects.create(
            group=group, customer=customer, order=order, is_leader=is_leader, status=SEAT.HELD
        )
        group.held_seats += 1
        fields = ["held_seats"]
        if is_leader and group.leader_id != customer.pk:
            group.leader = customer
            fields.append("leader")
        if opening and order.community_id is not None:
            group.community_id = order.community_id
            fields.append("community")
            community.push_group_opened(group)  # pushed after commit
        group.save(update_fields=fields)
        push_group(group, "group_seat_taken")
        stock_reserve(order=order, lines=lines, expires_at=deadline)

    return orders.order_create(
        customer=customer,
        lines=[(offer.sku_id, quantity)],
        delivery_mode=delivery_mode,
        community_id=community_id,
        pickup_point_id=pickup_point_id,
        address_id=address_id,
        source=Order.Source.GROUP_BUY,
        source_ref=group.pk,
        unit_prices={offer.sku_id: min(unit_price, offer.sku.price)},
        payment_ttl=_payment_ttl(group, timezone.now()),
        hold_fulfilment=True,
        reserve=reserve,
    )


# --- open -----------------------------------------------------------------------------------------
def group_open(
    *,
    campaign_id: int,
    customer: Customer,
    sku_id: int,
    quantity: int,
    delivery_mode: str,
    pickup_point_id: int | None = None,
    address_id: int | None = None,
    community_id: int | None = None,
) -> tuple[Group, Order]:
    """Open a group of the campaign led by ``customer``, with their seat held by their unpaid
    order (at the leader price), all in one transaction.

    404 ``campaign_not_found`` / ``campaign_sku_not_found``; 409 ``campaign_not_active`` (not
    active or outside its window), ``too_many_open_groups``; 422 ``quantity_over_limit``;
    otherwise the errors of the shop's checkout (delivery details, product not on sale, out of
    stock, purchase limit, ...).
    """
    now = timezone.now()
    campaign = GroupCampaign.objects.filter(pk=campaign_id).first()
    if campaign is None:
        raise NotFound("Group-buy campaign not found.", code=GroupBuyErrorCode.CAMPAIGN_NOT_FOUND)
    offer = _campaign_sku(campaign, sku_id)
    _check_quantity(campaign, quantity)
    active = campaign.status == GroupCampaign.Status.ACTIVE
    if not (active and campaign.starts_at <= now < campaign.ends_at):
        raise Conflict(
            "This group-buy campaign is not running.",
            code=GroupBuyErrorCode.CAMPAIGN_NOT_ACTIVE,
            details={"campaign_id": campaign.pk, "status": campaign.status},
        )
    _refuse_short(offer.sku, quantity)
    with transaction.atomic():
        shop_locks.lock_customer(customer.pk)
        leading = Group.objects.filter(
            campaign=campaign, leader=customer, status=OPEN, expires_at__gt=now
        ).count()
        if leading >= campaign.max_open_groups_per_customer:
            raise Conflict(
                "You already lead as many open groups of this campaign as allowed.",
                code=GroupBuyErrorCode.TOO_MANY_OPEN_GROUPS,
                details={"limit": campaign.max_open_groups_per_customer, "open": leading},
            )
        group = Group.objects.create(
            campaign=campaign,
            leader=customer,
            size=campaign.group_size,
            expires_at=now + timedelta(seconds=campaign.group_ttl_seconds),
        )
        order = _place(
            group=group,
            customer=customer,
            offer=offer,
            quantity=quantity,
            unit_price=offer.leader_price or offer.group_price,
            is_leader=True,
            delivery_mode=delivery_mode,
            pickup_point_id=pickup_point_id,
            address_id=address_id,
            community_id=community_id,
            opening=True,
        )
    return group, order


# --- join -----------------------------------------------------------------------------------------
def group_join(
    *,
    group_id: int | None = None,
    share_token: str | None = None,
    customer: Customer,
    sku_id: int,
    quantity: int,
    delivery_mode: str,
    pickup_point_id: int | None = None,
    address_id: int | None = None,
    community_id: int | None = None,
) -> tuple[Group, Order]:
    """Take a seat in a group, found by ``group_id`` or by ``share_token`` (exactly one), held by
    the buyer's unpaid order at the group price, in one transaction with the group locked.

    404 ``group_not_found`` / ``campaign_sku_not_found``; 409 ``group_closed``, ``already_joined``,
    ``group_full``, ``group_not_joinable``; 422 ``quantity_over_limit``; otherwise the errors of
    the shop's checkout.
    """
    if (group_id is None) == (share_token is None):
        raise ValueError("join a group by group_id or by share_token")
    found = Group.objects.select_related("campaign")
    if group_id is not None:
        found = found.filter(pk=group_id)
    else:
        found = found.filter(share_token=share_token)
    hint = found.first()
    if hint is None:
        raise NotFound("Group not found.", code=GroupBuyErrorCode.GROUP_NOT_FOUND)
    campaign = hint.campaign
    by_id = group_id is not None
    if by_id and (
        campaign.join_mode != GroupCampaign.JoinMode.COMMUNITY or hint.community_id is None
    ):
        raise _not_joinable(hint)
    offer = _campaign_sku(campaign, sku_id)
    _check_quantity(campaign, quantity)
    _refuse_short(offer.sku, quantity)
    _refuse_join(hint, customer)  # a plain read first: most losers of a last seat stop here
    with transaction.atomic():
        group = locks.lock_group(hint.pk)
        if group is None:  # deleted since it was read
            raise NotFound("Group not found.", code=GroupBuyErrorCode.GROUP_NOT_FOUND)
        live = _refuse_join(group, customer)  # the same checks, now under the group's lock
        order = _place(
            group=group,
            customer=customer,
            offer=offer,
            quantity=quantity,
            unit_price=offer.group_price,
            is_leader=not any(leader for _, leader in live),
            delivery_mode=delivery_mode,
            pickup_point_id=pickup_point_id,
            address_id=address_id,
            community_id=community_id,
            same_community=by_id,
        )
    return group, order


def _refuse_join(group: Group, customer: Customer) -> list[tuple[int, bool]]:
    """409 ``group_closed`` (not open, past its expiry or under a second left to pay),
    ``already_joined``, ``group_full``, in this order; else the live seats' ``(customer id,
    is_leader)``. Run on a plain read before the write transaction (so the many losers of a last
    seat never queue for the group's lock) and again under the lock, where it decides."""
    _payment_ttl(group, timezone.now())
    live = list(
        GroupSeat.objects.filter(group=group, status__in=GroupSeat.LIVE).values_list(
            "customer_id", "is_leader"
        )
    )
    if any(member == customer.pk for member, _ in live):
        raise Conflict(
            "You are already in this group.",
            code=GroupBuyErrorCode.ALREADY_JOINED,
            details={"group_id": group.pk},
        )
    if group.held_seats + group.paid_seats >= group.size:
        raise Conflict(
            "This group is full.",
            code=GroupBuyErrorCode.GROUP_FULL,
            details={"group_id": group.pk, "size": group.size},
        )
    return live


# --- reactions to the shop's order events ---------------------------------------------------------
def _locked_seat(*, order_id: int, group_id: int | None) -> tuple[Group, GroupSeat] | None:
    """The group, then the order's seat, locked; None (logged) if they do not belong together."""
    group = locks.lock_group(group_id) if group_id is not None else None
    seat = locks.lock_seat_by_order(order_id) if group is not None else None
    if group is None or seat is None or seat.group_id != group.pk:
        logger.error("group-buy order %s has no seat in group %s", order_id, group_id)
        return None
    return group, seat


def seat_mark_paid(*, order_id: int, group_id: int | None) -> GroupSeat | None:
    """The seat's order was paid: the seat is paid; the group's last paid seat makes it
    succeed (``group_succeeded``) and releases every member's order. Idempotent (a paid seat is
    returned as is). A payment for a released seat or of a group no longer open changes no group
    and moves nobody to another group: the order is refunded in full (``refund_for_group``, one
    per order), in this transaction, and sent after commit."""
    with transaction.atomic():
        found = _locked_seat(order_id=order_id, group_id=group_id)
        if found is None:
            return None
        group, seat = found
        if seat.status == SEAT.PAID:
            return seat
        if seat.status != SEAT.HELD or group.status != OPEN:
            logger.error(
                "group-buy order %s was paid for a %s seat of a %s group %s: refunding it",
                order_id,
                seat.status,
                group.status,
                group.pk,
            )
            refund_for_group(order_id=order_id)
            return seat
        now = timezone.now()
        _seat_paid(group, seat, now)
        fields = ["held_seats", "paid_seats"]
        if group.paid_seats == group.size:
            fields += _succeed(group, now)
        group.save(update_fields=fields)
        if group.status == Group.Status.SUCCEEDED:
            _after_success(group)
        else:
            push_group(group, "group_seat_paid")
            _tell_joined(group, seat)
        return seat


def _tell_joined(group: Group, seat: GroupSeat) -> None:
    """The group's other members with a live seat hear that someone joined (paid), and how many
    seats are left (stored, once per seat and member)."""
    left = group.size - group.paid_seats - group.held_seats
    members = (
        GroupSeat.objects.filter(group=group, status__in=GroupSeat.LIVE)
        .exclude(pk=seat.pk)
        .values_list("customer__user_id", flat=True)
    )
    joiner = Customer.objects.filter(pk=seat.customer_id).values_list("nickname", flat=True).first()
    for user_id in members:
        notify(
            user_id=user_id,
            kind="group_joined",
            title="Someone joined your group-buy",
            body=f"{joiner or 'A neighbour'} joined: {left} seat(s) still free.",
            data={"group_id": group.pk, "seats_left": left},
            dedupe_key=f"group:{group.pk}:joined:{seat.pk}",
        )


def _seat_paid(group: Group, seat: GroupSeat, now: datetime) -> None:
    """Held -> paid (the caller saves the group's counters)."""
    seat.status = SEAT.PAID
    seat.paid_at = now
    seat.save(update_fields=["status", "paid_at"])
    group.held_seats -= 1
    group.paid_seats += 1


def _succeed(group: Group, now: datetime, *, waived: int = 0) -> list[str]:
    group.status = Group.Status.SUCCEEDED
    group.succeeded_at = now
    fields = ["status", "succeeded_at"]
    if waived:
        group.auto_completed = True
        group.waived_seats = waived
        fields += ["auto_completed", "waived_seats"]
    return fields


def _paid_orders(group: Group) -> list[int]:
    return list(
        GroupSeat.objects.filter(group=group, status=SEAT.PAID)
        .order_by("order_id")
        .values_list("order_id", flat=True)
    )


def _members(group: Group, order_ids: list[int]) -> list[tuple[int, int]]:
    """(order id, user id) of these orders' buyers."""
    return list(
        Order.objects.filter(pk__in=order_ids).order_by("pk").values_list("pk", "customer__user_id")
    )


def _after_success(group: Group) -> None:
    """Release every paid order, tell the members, announce ``group_succeeded`` (outbox and the
    group's topic)."""
    push_group(group, "group_succeeded")
    paid_orders = _paid_orders(group)
    for paid_order_id in paid_orders:
        orders.order_release_hold(order_id=paid_order_id)
    _tell(
        group,
        paid_orders,
        kind="group_succeeded",
        title="Your group-buy succeeded",
        body="Your group is complete: your order will now be prepared.",
    )
    events.group_succeeded(group, paid_orders)


def _tell(group: Group, order_ids: list[int], *, kind: str, title: str, body: str) -> None:
    """Notify the buyer of each of these orders, once per group and kind."""
    for order_id, user_id in _members(group, order_ids):
        notify(
            user_id=user_id,
            kind=kind,
            title=title,
            body=body,
            data={"group_id": group.pk, "order_id": order_id},
            dedupe_key=f"group:{group.pk}:{kind.removeprefix('group_')}",
        )


# --- the expiry sweep -----------------------------------------------------------------------------
def groups_expire_due(*, now: datetime | None = None) -> int:
    """Periodic: close every open group past its expiry (``expires_at <= now``), one at a time in
    pk order, each in its own transaction with the group locked and re-checked (another sweep or
    a payment may have closed it meanwhile). Returns how many groups this run closed.

    Held seats: an unpaid order is cancelled (reason ``group_closed``: stock and coupons come
    back) and its seat released; an order already paid whose ``order_paid`` has not reached the
    seat yet counts as paid (its payment landed while the group was open). Then, with every seat
    paid the group succeeds; with ``auto_complete`` and at least one paid seat and
    ``paid * 10000 >= size * auto_complete_min_fill_bps`` it succeeds with ``auto_completed`` and
    the missing seats waived (no member is invented); either way every paid order is released.
    Otherwise the group fails and every paid order is refunded in full (``refund_for_group``:
    approved, reason ``group_failed``, one per order, in the same transaction, sent to the
    provider after commit). Members are notified; ``group_succeeded`` / ``group_failed`` is
    recorded. A group that cannot be closed (an error) is logged and retried by the next run."""
    now = now or timezone.now()
    due = list(
        Group.objects.filter(status=OPEN, expires_at__lte=now)
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    closed = close_each(due, lambda pk: _expire(pk, now), what="expired group")
    return closed


def _expire(group_id: int, now: datetime, *, force_fail: bool = False) -> bool:
    with transaction.atomic():
        group = locks.lock_group(group_id)
        if group is None or group.status != OPEN:
            return False  # closed by another run (or by its last payment) meanwhile
        if group.expires_at > now and not force_fail:
            return False
        cancelled: list[int] = []
        held = GroupSeat.objects.filter(group=group, status=SEAT.HELD).order_by("order_id")
        for seat in held:
            order = orders.lock_order(order_id=seat.order_id)
            if order.status in (Order.Status.PAID, Order.Status.PARTIALLY_REFUNDED):
                _seat_paid(group, seat, now)  # paid in time; its order_paid is on its way
                continue
            if order.status == Order.Status.PENDING_PAYMENT:
                orders.order_cancel(order_id=order.pk, reason="group_closed")
            cancelled.append(order.pk)
            seat.status = SEAT.RELEASED
            seat.released_at = now
            seat.is_leader = False
            seat.save(update_fields=["status", "released_at", "is_leader"])
            group.held_seats -= 1
        fields = ["held_seats", "paid_seats"]
        campaign = group.campaign
        paid = group.paid_seats
        filled = paid * 10_000 >= group.size * campaign.auto_complete_min_fill_bps
        if paid == group.size:  # every seat paid: even a forced close cannot fail it
            group.save(update_fields=fields + _succeed(group, now))
            _after_success(group)
        elif campaign.auto_complete and paid >= 1 and filled and not force_fail:
            group.save(update_fields=fields + _succeed(group, now, waived=group.size - paid))
            logger.info(
                "group %s of campaign %s auto-completed with %s of %s seats paid (%s waived)",
                group.pk,
                campaign.pk,
                paid,
                group.size,
                group.waived_seats,
            )
            _after_success(group)
        else:
            group.status = Group.Status.FAILED
            group.failed_at = now
            group.save(update_fields=[*fields, "status", "failed_at"])
            _after_failure(group, cancelled)
        return True


def _after_failure(group: Group, cancelled: list[int]) -> None:
    """Refund every paid order (sent after commit), tell the members, announce ``group_failed``
    (outbox and the group's topic)."""
    push_group(group, "group_failed")
    paid_orders = _paid_orders(group)
    for paid_order_id in paid_orders:
        refund_for_group(order_id=paid_order_id)
    failed = {"kind": "group_failed", "title": "Your group-buy did not succeed"}
    _tell(
        group,
        paid_orders,
        **failed,
        body="Your group did not fill in time: your payment is being refunded in full.",
    )
    _tell(
        group,
        cancelled,
        **failed,
        body="Your group did not fill in time: your unpaid order was cancelled.",
    )
    events.group_failed(group, paid_orders)


def seat_release(*, order_id: int, group_id: int | None) -> GroupSeat | None:
    """The seat's order was cancelled or expired unpaid: a held seat is released, which frees it
    for another buyer. If it was the leader's and the group is open, leadership passes to the
    earliest other live seat (paid first, then held). Idempotent."""
    with transaction.atomic():
        found = _locked_seat(order_id=order_id, group_id=group_id)
        if found is None:
            return None
        group, seat = found
        if seat.status != SEAT.HELD:
            return seat
        was_leader = seat.is_leader
        seat.status = SEAT.RELEASED
        seat.released_at = timezone.now()
        seat.is_leader = False
        seat.save(update_fields=["status", "released_at", "is_leader"])
        group.held_seats -= 1
        fields = ["held_seats"]
        if was_leader and group.status == OPEN:
            successor = (
                GroupSeat.objects.filter(group=group, status__in=GroupSeat.LIVE)
                .order_by(
                    Case(
                        When(status=SEAT.PAID, then=Value(0)),
                        default=1,
                        output_field=IntegerField(),
                    ),
                    "created_at",
                    "pk",
                )
                .first()
            )
            if successor is not None:
                successor.is_leader = True
                successor.save(update_fields=["is_leader"])
                group.leader_id = successor.customer_id
                fields.append("leader")
        group.save(update_fields=fields)
        push_group(group, "group_seat_released")
        return seat


# --- operators ------------------------------------------------------------------------------------
def check_campaign_sku(
    *, product_id: int, sku: Sku, group_price: int, leader_price: int | None
) -> None:
    """A campaign SKU must be of the campaign's product and sell below its price: 422
    ``campaign_invalid`` (``details.field``) otherwise."""

    def invalid(field: str, reason: str) -> InvalidInput:
        return InvalidInput(
            f"Invalid group-buy SKU: {reason}",
            code=GroupBuyErrorCode.CAMPAIGN_INVALID,
            details={"field": field, "reason": reason},
        )

    if sku.product_id != product_id:
        raise invalid("sku", "the SKU is not of the campaign's product")
    if not 1 <= group_price < sku.price:
        raise invalid("group_price", "between 1 fen and below the SKU's price")
    if leader_price is not None and not 1 <= leader_price <= group_price:
        raise invalid("leader_price", "between 1 fen and the group price")


def campaign_end(*, campaign_id: int) -> GroupCampaign:
    """An operator ends a campaign: no new groups; groups already open run until they expire
    (their members paid for that time). Idempotent."""
    with transaction.atomic():
        campaign = locks.lock_campaign(campaign_id)
        if campaign is None:
            raise NotFound(
                "Group-buy campaign not found.", code=GroupBuyErrorCode.CAMPAIGN_NOT_FOUND
            )
        if campaign.status != GroupCampaign.Status.ENDED:
            campaign.status = GroupCampaign.Status.ENDED
            campaign.save(update_fields=["status"])
        return campaign


def group_force_fail(*, group_id: int) -> bool:
    """An operator fails an open group now, as its expiry would (unpaid seats cancelled, every
    paid member refunded in full, members told) but without auto-complete. A group whose seats
    are all paid succeeds instead. False when the group is not open (nothing to do)."""
    return _expire(group_id, timezone.now(), force_fail=True)
