"""Flash sales (秒杀): sessions, flash stock separate from SKU stock, per-customer caps, the
reserve hot path, and the session topic ``flash:<id>``.

A session (``FlashSession``) is ``scheduled`` before ``starts_at``, ``live`` until ``ends_at``,
then ``ended`` (computed from its times, shop.selectors.flash). Each ``FlashItem`` sells one SKU
at its flash price from its own counter ``remaining``; a buyer holds at most
``per_customer_limit`` units of it (``FlashQuota``), and the product's ``purchase_limit`` applies
too (checked by ``order_create`` over all the customer's orders).

The hot path (``flash_order_create``), at the limit:

- sold out is refused without a write: from a process-local memo of items recently seen short
  (no query), else from the plain read of the item every request makes anyway (no transaction);
- the order is the shop's one checkout (``order_create`` with the flash price, ``source``
  ``flash_sale`` and the session's payment TTL); its ``reserve`` runs last in the order's
  transaction and is ONE statement: decrement the item if enough is left, then add the units to
  the buyer's quota if that stays within the cap, then write the reservation row naming the
  item. Either guard failing raises, and the whole order rolls back. The hot row is thus locked
  for one round trip plus the commit, and no unit can be sold twice or past the cap: the
  conditional ``UPDATE`` and the conditional upsert are the guards, check constraints the backstop.

Lock order: flash item, then the buyer's quota row, in the checkout (inside that one statement)
and on release alike (``stock_release`` gives units back to the item, then ``flash_release`` to
the quota), so a buyer cancelling one order while placing another cannot deadlock.

Rules chosen where the brief was silent:
- Unpaid flash orders expire at their deadline (the session's ``payment_ttl``, 300 s by default)
  through the ``orders_expire_due`` sweep (every 30 s): their units go back to the item and to the
  buyer's quota. Refunds of paid flash orders give back neither (the sale happened; a restock goes
  to the SKU's normal stock).
- Coupons do not apply to flash orders: the flash price is the price.
- A session's start, its items and their prices change only while it is scheduled; its end, its
  items' caps and their stock may change while live (stock never below what is held).
- Realtime, on ``flash:<id>`` (any logged-in customer): ``flash_sold_out`` per item right after
  the commit that took its last unit; from the periodic ``flash_sessions_tick``: a
  ``flash_countdown`` every minute in the last 10 minutes before the start, ``flash_started``
  and ``flash_ended`` once each, and ``flash_stock`` (every live item's ``remaining``) at most once
  per tick and only when something changed, so a burst of sales is one message per tick.
"""

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.core.cache import cache
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from core.errors import Conflict, InvalidInput, NotFound
from core.side_effects import topic_push_now, topic_push_on_commit
from shop.error_codes import CatalogErrorCode, FlashErrorCode, OrderErrorCode
from shop.models import (
    Customer,
    FlashItem,
    FlashSession,
    Order,
    Sku,
    StockReservation,
)
from shop.selectors.flash import LIVE, SCHEDULED, flash_topic, seconds_until, session_status
from shop.services import orders
from shop.services.flash_stock import (  # noqa: F401  (flash_release: part of this module's API)
    _forget_short,
    _refuse_known_short,
    _remember_short,
    flash_memo_clear,
    flash_out_of_stock,
    flash_release,
)

logger = logging.getLogger(__name__)

DEFAULT_PAYMENT_TTL = 300
MIN_PAYMENT_TTL, MAX_PAYMENT_TTL = 30, 3600
MAX_ITEM_STOCK = 10_000_000
MAX_PER_CUSTOMER = 999
COUNTDOWN_WINDOW = timedelta(minutes=10)
COUNTDOWN_EVERY_SECONDS = 60
ANNOUNCE_WINDOW = timedelta(minutes=10)


# --- staff: sessions and items ----------------------------------------------------------------
@dataclass(frozen=True)
class FlashItemSpec:
    sku_id: int
    flash_price: int
    total_stock: int
    per_customer_limit: int = 1
    sort_order: int = 0


def _invalid(message: str, **details: Any) -> InvalidInput:
    return InvalidInput(message, code=FlashErrorCode.FLASH_SESSION_INVALID, details=details)


def _started(session: FlashSession) -> Conflict:
    return Conflict(
        "This flash sale has started: its start, items and prices can no longer change.",
        code=FlashErrorCode.FLASH_SESSION_STARTED,
        details={"session_id": session.pk},
    )


def check_session(*, title: str, starts_at: datetime, ends_at: datetime, payment_ttl: int) -> None:
    """422 ``flash_session_invalid`` unless the session's fields make sense."""
    if not title.strip():
        raise _invalid("A flash sale needs a title.", field="title")
    if ends_at <= starts_at:
        raise _invalid("A flash sale ends after it starts.", field="ends_at")
    if not MIN_PAYMENT_TTL <= payment_ttl <= MAX_PAYMENT_TTL:
        raise _invalid(
            f"Time to pay is {MIN_PAYMENT_TTL} to {MAX_PAYMENT_TTL} seconds.",
            field="payment_ttl",
            min=MIN_PAYMENT_TTL,
            max=MAX_PAYMENT_TTL,
        )


def check_item(*, sku: Sku, flash_price: int, total_stock: int, per_customer_limit: int) -> None:
    """422 ``flash_session_invalid`` unless the item's price is a discount on the SKU's price and
    its stock and cap are in range."""
    if not 1 <= flash_price < sku.price:
        raise _invalid(
            "The flash price is at least 1 fen and below the SKU's price.",
            field="flash_price",
            sku_id=sku.pk,
            sku_price=sku.price,
        )
    if not 1 <= total_stock <= MAX_ITEM_STOCK:
        raise _invalid(f"Flash stock is 1 to {MAX_ITEM_STOCK} units.", field="total_stock")
    if not 1 <= per_customer_limit <= MAX_PER_CUSTOMER:
        raise _invalid(
            f"The per-customer limit is 1 to {MAX_PER_CUSTOMER}.", field="per_customer_limit"
        )


def _sku(sku_id: int) -> Sku:
    sku = Sku.objects.filter(pk=sku_id).first()
    if sku is None:
        raise NotFound("SKU not found.", code=CatalogErrorCode.SKU_NOT_FOUND)
    return sku


def _create_item(session: FlashSession, spec: FlashItemSpec) -> FlashItem:
    sku = _sku(spec.sku_id)
    check_item(
        sku=sku,
        flash_price=spec.flash_price,
        total_stock=spec.total_stock,
        per_customer_limit=spec.per_customer_limit,
    )
    if FlashItem.objects.filter(session=session, sku=sku).exists():
        raise _invalid("This SKU is already in this flash sale.", field="sku_id", sku_id=sku.pk)
    return FlashItem.objects.create(
        session=session,
        sku=sku,
        flash_price=spec.flash_price,
        total_stock=spec.total_stock,
        remaining=spec.total_stock,
        per_customer_limit=spec.per_customer_limit,
        sort_order=spec.sort_order,
    )


def flash_session_create(
    *,
    title: str,
    starts_at: datetime,
    ends_at: datetime,
    payment_ttl: int = DEFAULT_PAYMENT_TTL,
    is_published: bool = True,
    items: Sequence[FlashItemSpec] = (),
) -> FlashSession:
    """A session with its items (each item's stock starts full)."""
    check_session(title=title, starts_at=starts_at, ends_at=ends_at, payment_ttl=payment_ttl)
    with transaction.atomic():
        session = FlashSession.objects.create(
            title=title.strip(),
            starts_at=starts_at,
            ends_at=ends_at,
            payment_ttl=payment_ttl,
            is_published=is_published,
        )
        for spec in items:
            _create_item(session, spec)
    return session


def flash_session_update(
    *,
    session_id: int,
    title: str | None = None,
    starts_at: datetime | None = None,
    ends_at: datetime | None = None,
    payment_ttl: int | None = None,
    is_published: bool | None = None,
) -> FlashSession:
    """Change a session's fields (``None``: unchanged): its start only while it is scheduled
    (409 ``flash_session_started``); its end at any time, as long as it stays after the start."""
    with transaction.atomic():
        session = _session(session_id)
        now = timezone.now()
        if starts_at is not None and starts_at != session.starts_at:
            if session_status(session, now) != SCHEDULED:
                raise _started(session)
            session.starts_at = starts_at
        for name, value in (
            ("title", title),
            ("ends_at", ends_at),
            ("payment_ttl", payment_ttl),
            ("is_published", is_published),
        ):
            if value is not None:
                setattr(session, name, value)
        check_session(
            title=session.title,
            starts_at=session.starts_at,
            ends_at=session.ends_at,
            payment_ttl=session.payment_ttl,
        )
        session.save(update_fields=["title", "starts_at", "ends_at", "payment_ttl", "is_published"])
    return session


def _session(session_id: int) -> FlashSession:
    session = FlashSession.objects.filter(pk=session_id).first()
    if session is None:
        raise NotFound("Flash sale not found.", code=FlashErrorCode.FLASH_SESSION_NOT_FOUND)
    return session


def _item(item_id: int) -> FlashItem:
    item = FlashItem.objects.select_related("session", "sku").filter(pk=item_id).first()
    if item is None:
        raise NotFound("Flash sale item not found.", code=FlashErrorCode.FLASH_ITEM_NOT_FOUND)
    return item


def flash_item_add(*, session_id: int, spec: FlashItemSpec) -> FlashItem:
    """Add an item to a scheduled session (409 ``flash_session_started`` once it started)."""
    with transaction.atomic():
        session = _session(session_id)
        if session_status(session, timezone.now()) != SCHEDULED:
            raise _started(session)
        return _create_item(session, spec)


def flash_item_update(
    *,
    item_id: int,
    flash_price: int | None = None,
    total_stock: int | None = None,
    per_customer_limit: int | None = None,
    sort_order: int | None = None,
) -> FlashItem:
    """Change an item (``None``: unchanged). Its price only while the session is scheduled.
    ``total_stock`` moves ``remaining`` by the same amount with one conditional update, so a
    reservation made meanwhile is never overwritten and stock never drops below what buyers hold
    (409 ``stock_would_go_negative``). A lower cap takes nothing back from buyers above it."""
    item = _item(item_id)
    price = item.flash_price if flash_price is None else flash_price
    stock = item.total_stock if total_stock is None else total_stock
    cap = item.per_customer_limit if per_customer_limit is None else per_customer_limit
    if price != item.flash_price and session_status(item.session, timezone.now()) != SCHEDULED:
        raise _started(item.session)
    check_item(sku=item.sku, flash_price=price, total_stock=stock, per_customer_limit=cap)
    changes: dict[str, Any] = {"flash_price": price, "per_customer_limit": cap}
    if sort_order is not None:
        changes["sort_order"] = sort_order
    updated = FlashItem.objects.filter(pk=item_id)
    if stock != item.total_stock:
        delta = stock - F("total_stock")
        changes.update(total_stock=stock, remaining=F("remaining") + delta)
        updated = updated.filter(remaining__gte=F("total_stock") - stock)
    if not updated.update(**changes):
        raise Conflict(
            "Buyers hold more units than that would leave.",
            code=CatalogErrorCode.STOCK_WOULD_GO_NEGATIVE,
            details={"item_id": item_id, "held": item.total_stock - item.remaining},
        )
    _forget_short([item_id])
    item.refresh_from_db()
    return item


def flash_item_remove(*, item_id: int) -> None:
    """Remove an item from a scheduled session that nobody has ordered."""
    item = _item(item_id)
    if session_status(item.session, timezone.now()) != SCHEDULED:
        raise _started(item.session)
    if StockReservation.objects.filter(flash_item=item).exists():
        raise _started(item.session)
    item.delete()


# --- buying -------------------------------------------------------------------------------------
def _buyable_item(item_id: int, quantity: int, now: datetime) -> FlashItem:
    """The item, read once without a transaction, if it can be bought now: 404
    ``flash_item_not_found``, 409 ``flash_not_started`` / ``flash_ended`` / ``out_of_stock``
    (remembered) / ``purchase_limit_exceeded`` (more than the cap in one order)."""
    item = (
        FlashItem.objects.select_related("session", "sku")
        .filter(pk=item_id, session__is_published=True)
        .first()
    )
    if item is None:
        raise NotFound("Flash sale item not found.", code=FlashErrorCode.FLASH_ITEM_NOT_FOUND)
    session = item.session
    status = session_status(session, now)
    if status == SCHEDULED:
        raise Conflict(
            "This flash sale has not started yet.",
            code=FlashErrorCode.FLASH_NOT_STARTED,
            details={
                "session_id": session.pk,
                "starts_at": session.starts_at.isoformat(),
                "starts_in": seconds_until(session.starts_at, now),
            },
        )
    if status != LIVE:
        raise Conflict(
            "This flash sale has ended.",
            code=FlashErrorCode.FLASH_ENDED,
            details={"session_id": session.pk, "ended_at": session.ends_at.isoformat()},
        )
    if item.remaining < quantity:
        _remember_short(item.pk, item.remaining)
        raise flash_out_of_stock(item_id=item.pk, available=item.remaining)
    if quantity > item.per_customer_limit:
        raise _over_cap(item, already=None, quantity=quantity)
    return item


def _over_cap(item: FlashItem, *, already: int | None, quantity: int) -> Conflict:
    details: dict[str, Any] = {
        "item_id": item.pk,
        "limit": item.per_customer_limit,
        "requested": quantity,
    }
    if already is not None:
        details["already_bought"] = already
    return Conflict(
        "This exceeds the per-customer limit of this flash sale item.",
        code=OrderErrorCode.PURCHASE_LIMIT_EXCEEDED,
        details=details,
    )


# One round trip: take the units from the item if enough are left, add them to the buyer's
# quota if that stays within the cap, and record the reservation only if both happened. ``q``
# reads ``s`` and ``r`` reads ``q``, so the item row is locked before the quota row.
_RESERVE_SQL = """
WITH s AS (
    UPDATE shop_flashitem SET remaining = remaining - %(quantity)s
    WHERE id = %(item_id)s AND remaining >= %(quantity)s
    RETURNING remaining
), q AS (
    INSERT INTO shop_flashquota (item_id, customer_id, units)
    SELECT %(item_id)s, %(customer_id)s, %(quantity)s FROM s
    ON CONFLICT (item_id, customer_id)
    DO UPDATE SET units = shop_flashquota.units + EXCLUDED.units
    WHERE shop_flashquota.units + EXCLUDED.units <= %(cap)s
    RETURNING units
), r AS (
    INSERT INTO shop_stockreservation
        (sku_id, flash_item_id, order_id, quantity, status, expires_at, created_at)
    SELECT %(sku_id)s, %(item_id)s, %(order_id)s, %(quantity)s, %(status)s, %(expires_at)s,
        %(now)s
    FROM q
)
SELECT (SELECT remaining FROM s), (SELECT units FROM q)
"""


def _reserve(
    *, order: Order, item: FlashItem, customer: Customer, quantity: int, expires_at: datetime
) -> int:
    """Inside the order's transaction, last: hold ``quantity`` units of ``item`` for ``order``;
    returns what remains. Raises (rolling the order back) ``out_of_stock`` or
    ``purchase_limit_exceeded``."""
    with connection.cursor() as cursor:
        cursor.execute(
            _RESERVE_SQL,
            {
                "item_id": item.pk,
                "sku_id": item.sku_id,
                "customer_id": customer.pk,
                "order_id": order.pk,
                "quantity": quantity,
                "cap": item.per_customer_limit,
                "status": StockReservation.Status.ACTIVE.value,
                "expires_at": expires_at,
                "now": timezone.now(),
            },
        )
        remaining, units = cursor.fetchone()
        if remaining is None:
            cursor.execute("SELECT remaining FROM shop_flashitem WHERE id = %s", [item.pk])
            available = cursor.fetchone()[0]
            _remember_short(item.pk, available)
            raise flash_out_of_stock(item_id=item.pk, available=available)
        if units is None:
            cursor.execute(
                "SELECT units FROM shop_flashquota WHERE item_id = %s AND customer_id = %s",
                [item.pk, customer.pk],
            )
            row = cursor.fetchone()
            raise _over_cap(item, already=row[0] if row else 0, quantity=quantity)
    return remaining


def flash_order_create(
    *,
    customer: Customer,
    item_id: int,
    quantity: int,
    delivery_mode: str,
    community_id: int | None = None,
    pickup_point_id: int | None = None,
    address_id: int | None = None,
    note: str = "",
) -> Order:
    """An unpaid flash sale order of ``quantity`` units of one item at its flash price, holding
    them until the session's payment deadline.

    404 ``flash_item_not_found`` (unknown or unpublished); 409 ``flash_not_started`` (with
    ``starts_in``), ``flash_ended``, ``out_of_stock`` (``item_id``, ``available``),
    ``purchase_limit_exceeded`` (the item's cap, ``item_id``/``limit``/``already_bought``; or the
    product's ``purchase_limit``, ``product_id``/...); otherwise the errors of ``order_create``
    (delivery details, product not on sale, ...).
    """
    if not 1 <= quantity <= orders.MAX_QUANTITY:
        raise InvalidInput(
            f"Quantities are between 1 and {orders.MAX_QUANTITY}.",
            code=OrderErrorCode.INVALID_QUANTITY,
            details={"item_id": item_id, "quantity": quantity},
        )
    _refuse_known_short(item_id, quantity)
    item = _buyable_item(item_id, quantity, timezone.now())

    def reserve(order: Order, lines: list[tuple[Sku, int]], deadline: datetime) -> None:
        remaining = _reserve(
            order=order, item=item, customer=customer, quantity=quantity, expires_at=deadline
        )
        if remaining == 0:
            topic_push_on_commit(
                flash_topic(item.session_id),
                {"type": "flash_sold_out", "session_id": item.session_id, "item_id": item.pk},
            )

    return orders.order_create(
        customer=customer,
        lines=[(item.sku_id, quantity)],
        delivery_mode=delivery_mode,
        community_id=community_id,
        pickup_point_id=pickup_point_id,
        address_id=address_id,
        note=note,
        source=Order.Source.FLASH_SALE,
        source_ref=item.session_id,
        # the SKU's price may have dropped below the flash price since: never charge more
        unit_prices={item.sku_id: min(item.flash_price, item.sku.price)},
        payment_ttl=item.session.payment_ttl,
        reserve=reserve,
    )


# --- the session topic --------------------------------------------------------------------------
def _push(session: FlashSession, kind: str, **fields: Any) -> None:
    topic_push_now(flash_topic(session.pk), {"type": kind, "session_id": session.pk, **fields})


def _stock_push(session: FlashSession) -> bool:
    items = list(
        FlashItem.objects.filter(session=session).order_by("id").values_list("id", "remaining")
    )
    key = f"flash:{session.pk}:stock"
    if cache.get(key) == items:
        return False
    cache.set(key, items, timeout=int(ANNOUNCE_WINDOW.total_seconds()))
    _push(
        session,
        "flash_stock",
        items=[{"item_id": item_id, "remaining": remaining} for item_id, remaining in items],
    )
    return True


def flash_sessions_tick(*, now: datetime | None = None) -> int:
    """Periodic (every ``FLASH_TICK_SECONDS``): the countdown, start, end and stock pushes of
    published sessions around their times. Safe to run concurrently and repeatedly: each push is
    claimed once in the shared cache (a lost claim at worst repeats a message, which carries a
    new ``seq`` and the same facts). Returns the number of messages pushed."""
    now = now or timezone.now()
    sessions = FlashSession.objects.filter(
        is_published=True,
        starts_at__lte=now + COUNTDOWN_WINDOW,
        ends_at__gt=now - ANNOUNCE_WINDOW,
    ).order_by("starts_at", "id")
    pushed = 0
    for session in sessions:
        status = session_status(session, now)
        base = f"flash:{session.pk}"
        if status == SCHEDULED:
            if cache.add(f"{base}:countdown", 1, timeout=COUNTDOWN_EVERY_SECONDS - 1):
                _push(
                    session,
                    "flash_countdown",
                    starts_at=session.starts_at.isoformat(),
                    starts_in=seconds_until(session.starts_at, now),
                    server_time=now.isoformat(),
                )
                pushed += 1
        elif status == LIVE:
            if cache.add(f"{base}:started", 1, timeout=86_400):
                _push(
                    session,
                    "flash_started",
                    starts_at=session.starts_at.isoformat(),
                    ends_at=session.ends_at.isoformat(),
                    server_time=now.isoformat(),
                )
                pushed += 1
            pushed += _stock_push(session)
        elif cache.add(f"{base}:ended", 1, timeout=86_400):
            _push(session, "flash_ended", ends_at=session.ends_at.isoformat())
            pushed += 1
    return pushed
