"""Community chain sign-up (接龙): a community leader posts a list of items at community prices
with a deadline; members add themselves with quantities, each entry paid through its own order;
at the deadline the list closes and the leader gets a pickup sheet, then tells everyone when the
delivery has arrived.

A post's states (each change under the post's row lock, groupbuy/locks.py)::

    open --deadline passed (posts_close_due, every 15 s)--> closed (then arrived_at, once)

An entry's states (one entry per order; a member has at most one live entry per post)::

    live (unpaid) --its order is paid (entry_order_paid)--> live, paid_at set
    live --its order is cancelled or expires (entry_order_cancelled)--> dropped
    live --the member cancels (entry_cancel)--> dropped (unpaid order cancelled, paid refunded)
    live (unpaid) --the post closes (posts_close_due)--> dropped (order cancelled, post_closed)

``live_entries <= max_entries`` and ``units_taken <= max_units`` always (check constraints back
the services): an entry and its units are taken when its order is placed, in the same
transaction, and held until the order's payment deadline, ``min(CHAIN_ENTRY_PAYMENT_TTL, whole
seconds until the deadline)``, so a place is never sold twice and an unpaid one frees itself when
the shop expires its order. ``seq`` is the entry's number on the list: ``post.next_seq`` when it
is written, never reused (a dropped entry's number stays a gap).

The shop never calls into groupbuy: the order-paid and order-cancelled reactions are outbox
subscribers (groupbuy/subscribers.py, order source ``chain_signup``, ``source_ref`` the post),
delivered at least once after the shop's commit, and idempotent.

Rules chosen where the brief was silent:
- Publishing (``post_publish``): an unknown community is 404 ``community_not_found`` (the shop's
  code); a customer author must be the community's leader and a post without an author needs a
  staff ``created_by`` (403 ``not_community_leader`` otherwise); then 422 ``post_invalid``
  (``details.field``, ``details.reason``), first problem only, in this order: the community is
  not active; ``title`` (stripped) 1..200 characters; ``body`` (stripped) at most 5000; the
  deadline at least a minute and at most 30 days ahead; the pickup point is the community's and
  active; ``max_entries`` ≥ 1 or empty; 1..20 items; per item (``items.<i>.<field>``) no SKU
  twice, the SKU exists, is active, its product is on sale and offered in this community (a
  product tied to other communities could never be bought here), price 1 fen..the SKU's price,
  ``max_units`` ≥ 1 or empty. ``check_post`` is that validation alone (the admin calls it).
- Signing up (``entry_create``), refusals in this order, cheap ones before any write
  transaction: 404 ``post_not_found``, 403 ``not_community_member``, 422 ``entry_invalid``
  (1..20 lines, no SKU twice, 1..999 units each), 404 ``post_item_not_found``, 409
  ``post_closed``, 409 ``out_of_stock`` (a known-short or plainly short SKU, as groups.py), then
  under the post's lock again 409 ``post_closed`` (not open, or less than a second before the
  deadline), ``already_signed_up``, ``post_full``, ``post_item_sold_out`` (``details.sku_id``,
  ``details.units_left``), then the checkout's own errors. The order is a pickup order at the
  post's pickup point; each unit costs ``min(item price, SKU price)`` (never more than the list
  price); coupons do not apply (the community price is the price).
- A payment lands on a live entry whatever the post's state (its order's deadline was before
  the post's); the entry's ``paid_at`` is the order's. A payment for a dropped entry changes
  nothing and is logged as an error: it can only be an ``order_paid`` delivered after the member
  withdrew a paid entry (already refunded by ``entry_cancel``); a payment for an order already
  cancelled is refused and refunded by the shop itself (``payment_succeeded`` ->
  ``refund_for_unapplied_payment``) and never reaches this module.
- A member cancels (``entry_cancel``) while the post is open and before its deadline: 404
  ``post_not_found`` / ``entry_not_found`` (no live entry), 409 ``post_closed``, 409
  ``entry_not_cancellable`` when the order was already handed over (fulfilled or completed: a
  paid chain order gets its pickup code at once, so a leader may redeem it early). An unpaid
  order is cancelled (reason ``entry_cancelled``), a paid one refunded in full
  (``refund_for_flow``, reason ``entry_cancelled``, one per order, sent after commit); an order
  already cancelled or refunded needs nothing. The entry drops in the same transaction; the
  subscriber's later call is a no-op; the member may sign up again (a new ``seq``).
- The deadline sweep (``posts_close_due``) closes each open post with ``deadline <= now`` once,
  under its lock, re-checking its state: each live entry's order is locked; unpaid ones are
  cancelled (reason ``post_closed``) and their entries dropped; an order cancelled whose event
  has not arrived yet drops its entry with the order's reason; a paid one is kept (and marked
  paid if its ``order_paid`` has not arrived yet). The author (or, for an operator's post, the
  operator who posted it) is notified once.
- The pickup sheet and "delivery arrived" are for the community's leader and operators with
  ``groupbuy.view_chainpost`` / ``groupbuy.change_chainpost`` (the phone numbers on the sheet
  are personal data: being staff is not enough), 403 ``not_community_leader`` otherwise, and
  only once the list closed (409 ``post_not_closed``). Both count the paid live entries (by
  ``seq``) net of refunds: a line's units and amount less what was refunded; a member with
  nothing left is not listed. Marking arrived is idempotent: the second call changes nothing
  and tells nobody again.

Realtime (after commit): ``post:<id>`` gets ``post_updates`` messages, each with the topic's
``seq`` and its ``items``, the post's changes in the order they committed: ``post_entry_added``
(the ``entry``: seq, created_at, nickname, avatar, items, paid), ``post_entry_paid`` and
``post_entry_dropped`` (``entry_seq``, the entry's number) and ``post_closed``, each with the
post's ``status``, ``live_entries`` and ``max_entries`` (added and dropped also with the changed
items' ``units_left``). A busy post's changes are coalesced (core.side_effects.TopicCoalescer):
the first change of a quiet post goes out at once, later ones within
``POST_PUSH_WINDOW_SECONDS`` (0.25 s) go together at the window's end, so a burst of sign-ups
costs each of hundreds of sockets a few messages a second, not one per entry.
``GET /posts/{id}`` is the snapshot.
``community:<id>`` gets ``post_published`` and ``pickup_ready`` (groupbuy/services/community.py).
Nothing is conditional on sharing.

Lock order (groupbuy/locks.py, shop/locks.py): post -> entry -> order -> customer -> SKU
stock. Signing up, the entry and the post's counters are written inside the checkout's
``reserve`` step just before the stock reservation, so the hot stock row is still locked last.
"""

import logging
import math
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from core.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from core.models import User
from core.notifications import notify
from core.side_effects import topic_push_coalesced_on_commit
from groupbuy import locks
from groupbuy.error_codes import ChainErrorCode
from groupbuy.models import ChainEntry, ChainPost, ChainPostItem
from groupbuy.realtime import post_topic
from groupbuy.selectors import chains as selectors
from groupbuy.services import community as community_feed
from groupbuy.services.sweeps import close_each
from shop.error_codes import CommunityErrorCode
from shop.models import (
    Community,
    CommunityMembership,
    Customer,
    Order,
    OrderLine,
    PickupPoint,
    Product,
    Refund,
    Sku,
)
from shop.services import orders
from shop.services.refunds import refund_for_flow
from shop.services.stock import (
    out_of_stock,
    stock_refuse_known_short,
    stock_remember_short,
    stock_reserve,
)

logger = logging.getLogger(__name__)

OPEN = ChainPost.Status.OPEN
CLOSED = ChainPost.Status.CLOSED
LIVE = ChainEntry.Status.LIVE
S = Order.Status
PAID = (S.PAID, S.PARTIALLY_REFUNDED)
HANDED_OVER = (S.FULFILLED, S.COMPLETED)

TITLE_MAX = 200
BODY_MAX = 5000
MIN_LEAD = timedelta(minutes=1)
MAX_LEAD = timedelta(days=30)
MAX_ITEMS = 20
MAX_LINES = 20
MAX_QUANTITY = 999
ARRIVED_PERM = "groupbuy.change_chainpost"


# --- errors ---------------------------------------------------------------------------------------
def _closed(post: ChainPost) -> Conflict:
    return Conflict(
        "Sign-up for this post is closed.",
        code=ChainErrorCode.POST_CLOSED,
        details={"post_id": post.pk, "status": post.status},
    )


def _post_invalid(field: str, reason: str) -> InvalidInput:
    return InvalidInput(
        f"Invalid sign-up post: {reason}.",
        code=ChainErrorCode.POST_INVALID,
        details={"field": field, "reason": reason},
    )


def _entry_invalid(field: str, reason: str) -> InvalidInput:
    return InvalidInput(
        f"Invalid sign-up: {reason}.",
        code=ChainErrorCode.ENTRY_INVALID,
        details={"field": field, "reason": reason},
    )


# --- realtime -------------------------------------------------------------------------------------
def _push_post(post: ChainPost, kind: str, **fields: Any) -> None:
    """``kind`` with the post's counters, to ``post:<id>`` once the transaction commits, through
    the coalescer: one ``post_updates`` message carries every change of its window, in order."""
    topic_push_coalesced_on_commit(
        post_topic(post.pk),
        "post_updates",
        {
            "type": kind,
            "post_id": post.pk,
            "status": post.status,
            "live_entries": post.live_entries,
            "max_entries": post.max_entries,
            **fields,
        },
        settings.POST_PUSH_WINDOW_SECONDS,
    )


def _units(items: Sequence[ChainPostItem]) -> list[dict[str, Any]]:
    return [{"sku_id": item.sku_id, "units_left": selectors.units_left(item)} for item in items]


# --- publish --------------------------------------------------------------------------------------
def check_post(
    *,
    community: Community,
    pickup_point_id: int,
    title: str,
    body: str,
    deadline: datetime,
    max_entries: int | None,
    items: Sequence[tuple[int, int, int | None]],
    now: datetime,
) -> tuple[str, str]:
    """A post's content against the rules (module docstring), first problem only: 422
    ``post_invalid``. Returns the stripped title and body."""
    if not community.is_active:
        raise _post_invalid("community_id", "the community is not active")
    title = title.strip()
    if not 1 <= len(title) <= TITLE_MAX:
        raise _post_invalid("title", f"a title of 1 to {TITLE_MAX} characters")
    body = body.strip()
    if len(body) > BODY_MAX:
        raise _post_invalid("body", f"at most {BODY_MAX} characters")
    if not now + MIN_LEAD <= deadline <= now + MAX_LEAD:
        raise _post_invalid("deadline", "at least 1 minute and at most 30 days ahead")
    point = PickupPoint.objects.filter(pk=pickup_point_id).first()
    if point is None or point.community_id != community.pk:
        raise _post_invalid("pickup_point_id", "a pickup point of this community")
    if not point.is_active:
        raise _post_invalid("pickup_point_id", "the pickup point is not active")
    if max_entries is not None and max_entries < 1:
        raise _post_invalid("max_entries", "at least 1, or empty for no cap")
    if not 1 <= len(items) <= MAX_ITEMS:
        raise _post_invalid("items", f"1 to {MAX_ITEMS} items")
    skus = Sku.objects.select_related("product").in_bulk([sku_id for sku_id, _, _ in items])
    offered_in = Product.communities.through.objects.filter(
        product_id__in={sku.product_id for sku in skus.values()}
    ).values_list("product_id", "community_id")
    restricted = {product_id for product_id, _ in offered_in}
    offered = {product_id for product_id, where in offered_in if where == community.pk}
    seen: set[int] = set()
    for index, (sku_id, price, max_units) in enumerate(items):
        field = f"items.{index}"
        if sku_id in seen:
            raise _post_invalid(f"{field}.sku_id", "the same SKU twice")
        seen.add(sku_id)
        sku = skus.get(sku_id)
        if sku is None:
            raise _post_invalid(f"{field}.sku_id", "no such SKU")
        if not sku.is_active or sku.product.status != Product.Status.ON_SALE:
            raise _post_invalid(f"{field}.sku_id", "the SKU is not on sale")
        if sku.product_id in restricted and sku.product_id not in offered:
            raise _post_invalid(f"{field}.sku_id", "the product is not offered in this community")
        if not 1 <= price <= sku.price:
            raise _post_invalid(f"{field}.price", "between 1 fen and the SKU's price")
        if max_units is not None and max_units < 1:
            raise _post_invalid(f"{field}.max_units", "at least 1, or empty for no cap")
    return title, body


def post_publish(
    *,
    created_by: User,
    author: Customer | None,
    community_id: int,
    pickup_point_id: int,
    title: str,
    body: str = "",
    deadline: datetime,
    max_entries: int | None = None,
    items: Sequence[tuple[int, int, int | None]],
) -> ChainPost:
    """Publish a sign-up list of ``items`` (``(sku_id, price, max_units)``) in a community,
    open until ``deadline``, and announce it (``post_published`` to ``community:<id>``).

    404 ``community_not_found``; 403 ``not_community_leader`` (a customer author who does not
    lead the community, or no author and a ``created_by`` who is not staff); 422
    ``post_invalid`` (``check_post``)."""
    community = Community.objects.filter(pk=community_id).first()
    if community is None:
        raise NotFound(
            "This community does not exist.", code=CommunityErrorCode.COMMUNITY_NOT_FOUND
        )
    leads = author is not None and community.leader_id == author.pk
    if not (leads or (author is None and created_by.is_staff)):
        raise PermissionDenied(
            "Only the community's leader may post a sign-up list here.",
            code=ChainErrorCode.NOT_COMMUNITY_LEADER,
            details={"community_id": community.pk},
        )
    title, body = check_post(
        community=community,
        pickup_point_id=pickup_point_id,
        title=title,
        body=body,
        deadline=deadline,
        max_entries=max_entries,
        items=items,
        now=timezone.now(),
    )
    with transaction.atomic():
        post = ChainPost.objects.create(
            community=community,
            pickup_point_id=pickup_point_id,
            author=author,
            created_by=created_by,
            title=title,
            body=body,
            deadline=deadline,
            max_entries=max_entries,
        )
        ChainPostItem.objects.bulk_create(
            ChainPostItem(post=post, sku_id=sku_id, price=price, max_units=max_units)
            for sku_id, price, max_units in items
        )
        community_feed.push_to_community(
            community.pk,
            "post_published",
            post_id=post.pk,
            title=post.title,
            deadline=post.deadline.isoformat(),
            items_count=len(items),
        )
    return post


# --- sign up --------------------------------------------------------------------------------------
def _check_lines(lines: Sequence[tuple[int, int]]) -> dict[int, int]:
    """``{sku_id: quantity}`` of 1..20 lines, no SKU twice, 1..999 units each (422
    ``entry_invalid`` naming the line)."""
    if not 1 <= len(lines) <= MAX_LINES:
        raise _entry_invalid("items", f"1 to {MAX_LINES} items")
    quantities: dict[int, int] = {}
    for index, (sku_id, quantity) in enumerate(lines):
        if sku_id in quantities:
            raise _entry_invalid(f"items.{index}.sku_id", "the same item twice")
        if not 1 <= quantity <= MAX_QUANTITY:
            raise _entry_invalid(f"items.{index}.quantity", f"1 to {MAX_QUANTITY} units")
        quantities[sku_id] = quantity
    return quantities


def _post_items(post: ChainPost, quantities: dict[int, int]) -> dict[int, ChainPostItem]:
    """The post's items for these SKUs (with their SKU and product); 404
    ``post_item_not_found`` for the first SKU not on the post."""
    items = {
        item.sku_id: item
        for item in ChainPostItem.objects.select_related("sku__product").filter(
            post=post, sku_id__in=quantities
        )
    }
    for sku_id in quantities:
        if sku_id not in items:
            raise NotFound(
                "This item is not on the sign-up list.",
                code=ChainErrorCode.POST_ITEM_NOT_FOUND,
                details={"post_id": post.pk, "sku_id": sku_id},
            )
    return items


def _payment_ttl(post: ChainPost, now: datetime) -> int:
    """Seconds the new entry's order may wait for payment: ``CHAIN_ENTRY_PAYMENT_TTL``, never
    past the deadline. 409 ``post_closed`` when the post is not open or less than a second is
    left."""
    left = math.floor((post.deadline - now).total_seconds())
    if post.status != OPEN or left < 1:
        raise _closed(post)
    return min(int(settings.CHAIN_ENTRY_PAYMENT_TTL.total_seconds()), left)


def _refuse_short(items: dict[int, ChainPostItem], quantities: dict[int, int]) -> None:
    """Sold out is refused before any write, as the shop's checkout does (the entry's own
    ``reserve`` step skips the checkout's check). The conditional update stays the guard."""
    stock_refuse_known_short(quantities=quantities)
    for sku_id, quantity in sorted(quantities.items()):
        sku = items[sku_id].sku
        if sku.stock < quantity:
            stock_remember_short(sku_id=sku_id, available=sku.stock)
            raise out_of_stock(sku_id=sku_id, available=sku.stock)


def _place(
    *,
    post: ChainPost,
    customer: Customer,
    items: dict[int, ChainPostItem],
    quantities: dict[int, int],
    payment_ttl: int,
) -> tuple[ChainEntry, Order]:
    """The entry's order through the shop's checkout (inside the caller's transaction, with the
    post locked). Its ``reserve`` step writes the entry and the counters, then reserves the
    stock."""
    placed: list[ChainEntry] = []

    def reserve(order: Order, lines: list[tuple[Sku, int]], deadline: datetime) -> None:
        entry = ChainEntry.objects.create(
            post=post, customer=customer, order=order, seq=post.next_seq
        )
        post.next_seq += 1
        post.live_entries += 1
        post.save(update_fields=["next_seq", "live_entries"])
        for sku_id, quantity in quantities.items():
            item = items[sku_id]
            item.units_taken += quantity
            item.save(update_fields=["units_taken"])
        _push_post(
            post,
            "post_entry_added",
            entry={
                "seq": entry.seq,
                "created_at": entry.created_at.isoformat(),
                "nickname": customer.nickname,
                "avatar_url": customer.avatar_url,
                "items": [
                    {"sku_id": sku.pk, "title": sku.product.title, "quantity": quantity}
                    for sku, quantity in lines
                ],
                "paid": False,
            },
            items=_units(sorted(items.values(), key=lambda item: item.pk)),
        )
        stock_reserve(order=order, lines=lines, expires_at=deadline)
        placed.append(entry)

    order = orders.order_create(
        customer=customer,
        lines=list(quantities.items()),
        delivery_mode=Order.DeliveryMode.PICKUP,
        pickup_point_id=post.pickup_point_id,
        community_id=post.community_id,
        source=Order.Source.CHAIN_SIGNUP,
        source_ref=post.pk,
        unit_prices={sku_id: min(item.price, item.sku.price) for sku_id, item in items.items()},
        payment_ttl=payment_ttl,
        reserve=reserve,
    )
    return placed[0], order


def entry_create(
    *, post_id: int, customer: Customer, lines: Sequence[tuple[int, int]]
) -> tuple[ChainEntry, Order]:
    """Add ``customer`` to the post's list with ``lines`` of ``(sku_id, quantity)``: the entry
    (the next ``seq``) and its unpaid order, placed in one transaction. Refusals and their order:
    the module docstring."""
    post = ChainPost.objects.filter(pk=post_id).first()
    if post is None:
        raise selectors.post_not_found()
    member = CommunityMembership.objects.filter(community_id=post.community_id, customer=customer)
    if not member.exists():
        raise PermissionDenied(
            "Join this community to sign up.",
            code=ChainErrorCode.NOT_COMMUNITY_MEMBER,
            details={"community_id": post.community_id},
        )
    quantities = _check_lines(lines)
    items = _post_items(post, quantities)
    _payment_ttl(post, timezone.now())  # closed: said before sold out, and before any write
    _refuse_short(items, quantities)
    with transaction.atomic():
        post = locks.lock_post(post_id)
        if post is None:  # deleted since it was read
            raise selectors.post_not_found()
        payment_ttl = _payment_ttl(post, timezone.now())
        if ChainEntry.objects.filter(post=post, customer=customer, status=LIVE).exists():
            raise Conflict(
                "You are already on this sign-up list.",
                code=ChainErrorCode.ALREADY_SIGNED_UP,
                details={"post_id": post.pk},
            )
        if post.max_entries is not None and post.live_entries >= post.max_entries:
            raise Conflict(
                "This sign-up list is full.",
                code=ChainErrorCode.POST_FULL,
                details={"post_id": post.pk, "max_entries": post.max_entries},
            )
        items = _post_items(post, quantities)  # read again under the post's lock: current
        for sku_id, quantity in quantities.items():
            left = selectors.units_left(items[sku_id])
            if left is not None and quantity > left:
                raise Conflict(
                    "Not enough of this item is left on the list.",
                    code=ChainErrorCode.POST_ITEM_SOLD_OUT,
                    details={"sku_id": sku_id, "units_left": left},
                )
        return _place(
            post=post,
            customer=customer,
            items=items,
            quantities=quantities,
            payment_ttl=payment_ttl,
        )


# --- reactions to the shop's order events ---------------------------------------------------------
def _locked_entry(*, order_id: int, post_id: int | None) -> tuple[ChainPost, ChainEntry] | None:
    """The post, then the order's entry, locked; None (logged) if they do not belong together."""
    post = locks.lock_post(post_id) if post_id is not None else None
    entry = locks.lock_entry_by_order(order_id) if post is not None else None
    if post is None or entry is None or entry.post_id != post.pk:
        logger.error("chain sign-up order %s has no entry on post %s", order_id, post_id)
        return None
    return post, entry


def _mark_paid(post: ChainPost, entry: ChainEntry, paid_at: datetime) -> None:
    entry.paid_at = paid_at
    entry.save(update_fields=["paid_at"])
    _push_post(post, "post_entry_paid", entry_seq=entry.seq)


def _drop(post: ChainPost, entry: ChainEntry, *, reason: str, now: datetime) -> None:
    """Live -> dropped: the entry's place and units go back to the post."""
    entry.status = ChainEntry.Status.DROPPED
    entry.dropped_at = now
    entry.drop_reason = reason
    entry.save(update_fields=["status", "dropped_at", "drop_reason"])
    post.live_entries -= 1
    post.save(update_fields=["live_entries"])
    lines = OrderLine.objects.filter(order_id=entry.order_id)
    taken = dict(lines.values_list("sku_id", "quantity"))
    items = list(ChainPostItem.objects.filter(post=post, sku_id__in=taken).order_by("pk"))
    for item in items:
        item.units_taken -= taken[item.sku_id]
        item.save(update_fields=["units_taken"])
    _push_post(post, "post_entry_dropped", entry_seq=entry.seq, reason=reason, items=_units(items))


def entry_order_paid(*, order_id: int, post_id: int | None) -> ChainEntry | None:
    """The entry's order was paid: the live entry is paid (``paid_at`` the order's;
    ``post_entry_paid``). Idempotent. A dropped entry changes nothing (logged as an error: see
    the module docstring)."""
    with transaction.atomic():
        found = _locked_entry(order_id=order_id, post_id=post_id)
        if found is None:
            return None
        post, entry = found
        if entry.status != LIVE:
            logger.error(
                "chain sign-up order %s was paid for dropped entry %s of post %s (%s): "
                "nothing changes",
                order_id,
                entry.seq,
                post.pk,
                entry.drop_reason,
            )
            return entry
        if entry.paid_at is None:
            paid_at = Order.objects.filter(pk=order_id).values_list("paid_at", flat=True).get()
            _mark_paid(post, entry, paid_at or timezone.now())
        return entry


def entry_order_cancelled(*, order_id: int, post_id: int | None) -> ChainEntry | None:
    """The entry's order was cancelled or expired unpaid: the live entry drops off with the
    order's cancel reason (e.g. ``expired``), giving its place and units back
    (``post_entry_dropped``). Idempotent."""
    with transaction.atomic():
        found = _locked_entry(order_id=order_id, post_id=post_id)
        if found is None:
            return None
        post, entry = found
        if entry.status != LIVE:
            return entry
        order = Order.objects.filter(pk=order_id)
        status, reason = order.values_list("status", "cancel_reason").get()
        if status != S.CANCELLED:
            logger.error("chain sign-up order %s reported cancelled is %s", order_id, status)
            return entry
        _drop(post, entry, reason=reason or "cancelled", now=timezone.now())
        return entry


# --- a member withdraws ---------------------------------------------------------------------------
def entry_cancel(*, post_id: int, customer: Customer) -> ChainEntry:
    """The member takes their live entry off the list while the post is open: an unpaid order is
    cancelled, a paid one refunded in full (``entry_cancelled``), and the entry drops now. 404
    ``post_not_found`` / ``entry_not_found``; 409 ``post_closed`` / ``entry_not_cancellable``."""
    with transaction.atomic():
        post = locks.lock_post(post_id)
        if post is None:
            raise selectors.post_not_found()
        entry = locks.lock_live_entry(post_id=post.pk, customer_id=customer.pk)
        if entry is None:
            raise NotFound("You are not on this sign-up list.", code=ChainErrorCode.ENTRY_NOT_FOUND)
        now = timezone.now()
        if post.status != OPEN or post.deadline <= now:
            raise _closed(post)
        order = orders.lock_order(order_id=entry.order_id)
        if order.status in HANDED_OVER:
            raise Conflict(
                "This order was already handed over; ask for a refund of the order instead.",
                code=ChainErrorCode.ENTRY_NOT_CANCELLABLE,
                details={"order_id": order.pk, "order_status": order.status},
            )
        if order.status == S.PENDING_PAYMENT:
            orders.order_cancel(order_id=order.pk, reason="entry_cancelled", actor=customer.user)
        elif order.status in PAID:
            refund_for_flow(order_id=order.pk, reason=Refund.Reason.ENTRY_CANCELLED)
        _drop(post, entry, reason="entry_cancelled", now=now)
        return entry


# --- the deadline sweep ---------------------------------------------------------------------------
def posts_close_due(*, now: datetime | None = None) -> int:
    """Periodic: close every open post past its deadline (``deadline <= now``), one at a time in
    pk order, each in its own transaction with the post locked and re-checked (another sweep may
    have closed it meanwhile). Unpaid entries' orders are cancelled (``post_closed``) and the
    entries dropped, paid ones kept; ``post_closed`` is pushed and the author notified once.
    Returns how many posts this run closed. A post that cannot be closed (an error) is logged and
    retried by the next run."""
    now = now or timezone.now()
    due = list(
        ChainPost.objects.filter(status=OPEN, deadline__lte=now)
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    closed = close_each(due, lambda pk: _close(pk, now), what="chain post")
    return closed


def _close(post_id: int, now: datetime) -> bool:
    with transaction.atomic():
        post = locks.lock_post(post_id)
        if post is None or post.status != OPEN or post.deadline > now:
            return False  # closed by another run meanwhile
        for entry in ChainEntry.objects.filter(post=post, status=LIVE).order_by("order_id"):
            order = orders.lock_order(order_id=entry.order_id)
            if order.status == S.PENDING_PAYMENT:
                orders.order_cancel(order_id=order.pk, reason="post_closed")
                _drop(post, entry, reason="post_closed", now=now)
            elif order.status == S.CANCELLED:  # its order_cancelled is on its way
                _drop(post, entry, reason=order.cancel_reason or "cancelled", now=now)
            elif entry.paid_at is None:  # paid in time; its order_paid is on its way
                _mark_paid(post, entry, order.paid_at or now)
        post.status = CLOSED
        post.closed_at = now
        post.save(update_fields=["status", "closed_at"])
        _push_post(post, "post_closed")
        notify(
            user_id=post.author.user_id if post.author else post.created_by_id,
            kind="post_closed",
            title=f"Sign-up closed: {post.title}",
            body=f"Sign-up closed with {post.live_entries} entries.",
            data={"post_id": post.pk, "live_entries": post.live_entries},
            dedupe_key=f"post:{post.pk}:closed",
        )
        return True


# --- delivery arrived -----------------------------------------------------------------------------
def post_mark_arrived(*, post_id: int, viewer_user: User) -> ChainPost:
    """The leader (or an operator with ``groupbuy.change_chainpost``) says the goods are at the
    pickup point: ``arrived_at`` is set once, ``pickup_ready`` goes to the community's topic and
    each paid member is notified with their pickup code. Idempotent. 404 ``post_not_found``, 403
    ``not_community_leader``, 409 ``post_not_closed``."""
    selectors.post_for_manager(post_id=post_id, user=viewer_user, perm=ARRIVED_PERM)
    with transaction.atomic():
        post = locks.lock_post(post_id)
        if post is None:
            raise selectors.post_not_found()
        if post.status != CLOSED:
            raise selectors.post_not_closed(post)
        if post.arrived_at is not None:
            return post
        post.arrived_at = timezone.now()
        post.save(update_fields=["arrived_at"])
        point = post.pickup_point
        community_feed.push_to_community(
            post.community_id,
            "pickup_ready",
            post_id=post.pk,
            title=post.title,
            pickup_point={"id": point.pk, "name": point.name, "address": point.address},
        )
        for entry in selectors.paid_entries(post):
            notify(
                user_id=entry.customer.user_id,
                kind="pickup_ready",
                title=f"Ready for pickup: {post.title}",
                body=(
                    f"Your order is at {point.name} ({point.address}). "
                    f"Show pickup code {entry.order.pickup_code}."
                ),
                data={
                    "post_id": post.pk,
                    "order_id": entry.order_id,
                    "pickup_code": entry.order.pickup_code,
                    "pickup_point_id": point.pk,
                },
                dedupe_key=f"post:{post.pk}:arrived",
            )
        return post
