"""Stock reservations: reserve on order creation, commit on payment, release on cancel/expiry.

``Sku.stock`` is what can still be reserved. Reserving decrements it with a conditional update
(``... SET stock = stock - n WHERE id = .. AND stock >= n``), so concurrent buyers can never
oversell and stock never goes negative (a CHECK constraint backs this up). SKUs are always
decremented in id order, so two multi-SKU orders cannot deadlock.

Round trips are the cost that matters on a hot SKU (PITFALLS.md): each SKU is reserved with ONE
statement that decrements the stock and inserts the reservation row
(``WITH s AS (UPDATE ... RETURNING id) INSERT ... SELECT ... FROM s``); a single-SKU reservation
outside a transaction is therefore one round trip.

A SKU found short (by the plain read in ``order_create`` or by a failed conditional update) is
remembered in this process for ``SHORT_MEMO_SECONDS`` with the stock that was seen; during that
time a request for more than that is refused without touching the database or any cache (a
sold-out flash sale is mostly refusals). Releasing or restoring stock forgets the memo in the
process that did it, at once and after commit; other processes see a returned unit at the latest
when their memo expires. The memo never lets a request through: the conditional update stays the
guard.
"""

import logging
import time
from collections import defaultdict
from datetime import datetime
from typing import Any

from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from core.errors import Conflict
from shop import locks
from shop.error_codes import CatalogErrorCode
from shop.models import FlashItem, Order, Sku, StockReservation

logger = logging.getLogger(__name__)

SHORT_MEMO_SECONDS = 1  # 0 disables the memo

# sku id -> (units seen, monotonic expiry). Process-local on purpose: refusing a sold-out SKU must
# cost less than any round trip (a shared cache is one), and a stale entry only delays a released
# unit by at most SHORT_MEMO_SECONDS in the other processes. Dict operations are atomic under the
# GIL, so threads share it safely.
_short_memo: dict[int, tuple[int, float]] = {}


def stock_refuse_known_short(*, quantities: dict[int, int]) -> None:
    """Raise ``out_of_stock`` at once for a SKU recently seen with less stock than asked for."""
    if not SHORT_MEMO_SECONDS:
        return
    now = time.monotonic()
    for sku_id, quantity in sorted(quantities.items()):
        seen = _short_memo.get(sku_id)
        if seen is None:
            continue
        available, expires = seen
        if expires <= now:
            _short_memo.pop(sku_id, None)
        elif quantity > available:
            raise out_of_stock(sku_id=sku_id, available=available)


def stock_remember_short(*, sku_id: int, available: int) -> None:
    if SHORT_MEMO_SECONDS:
        _short_memo[sku_id] = (max(available, 0), time.monotonic() + SHORT_MEMO_SECONDS)


def stock_forget_short(*, sku_ids: list[int]) -> None:
    """Stock of these SKUs went up: drop what the memo says about them, now and again after
    commit (a read between the two could have remembered the old stock)."""

    def forget() -> None:
        for sku_id in sku_ids:
            _short_memo.pop(sku_id, None)

    forget()
    transaction.on_commit(forget)


def stock_memo_clear() -> None:
    _short_memo.clear()


def out_of_stock(*, sku_id: int, available: int) -> Conflict:
    return Conflict(
        "Not enough stock for this item.",
        code=CatalogErrorCode.OUT_OF_STOCK,
        details={"sku_id": sku_id, "available": max(available, 0)},
    )


def _merged(lines: list[tuple[Sku, int]]) -> list[tuple[int, int]]:
    """``(sku_id, quantity)`` with duplicates added, in sku id order (the global lock order)."""
    quantities: dict[int, int] = defaultdict(int)
    for sku, quantity in lines:
        if quantity <= 0:
            raise ValueError("reserved quantities must be positive")
        quantities[sku.pk] += quantity
    return sorted(quantities.items())


def _short(sku_id: int) -> Conflict:
    """The conditional update found too little stock: say how much there is, and remember it."""
    available = Sku.objects.filter(pk=sku_id).values_list("stock", flat=True).first() or 0
    stock_remember_short(sku_id=sku_id, available=available)
    return out_of_stock(sku_id=sku_id, available=available)


# One round trip: decrement if enough is left, and record the reservation only if it was.
_RESERVE_SQL = """
WITH s AS (
    UPDATE shop_sku SET stock = stock - %(quantity)s
    WHERE id = %(sku_id)s AND stock >= %(quantity)s
    RETURNING id
)
INSERT INTO shop_stockreservation (sku_id, order_id, quantity, status, expires_at, created_at)
SELECT s.id, %(order_id)s, %(quantity)s, %(status)s, %(expires_at)s, %(now)s FROM s
"""


def _reserve(order_id: int, items: list[tuple[int, int]], expires_at: datetime) -> None:
    params: dict[str, Any] = {
        "order_id": order_id,
        "status": StockReservation.Status.ACTIVE.value,
        "expires_at": expires_at,
        "now": timezone.now(),
    }
    with connection.cursor() as cursor:
        for sku_id, quantity in items:
            cursor.execute(_RESERVE_SQL, {**params, "sku_id": sku_id, "quantity": quantity})
            if cursor.rowcount != 1:
                raise _short(sku_id)


def stock_reserve(*, order: Order, lines: list[tuple[Sku, int]], expires_at: datetime) -> None:
    """Hold ``lines`` for ``order`` until ``expires_at``, all or nothing.

    Raises ``out_of_stock`` (409, details ``{"sku_id", "available"}``) for the first SKU (in id
    order) that cannot be served, having taken nothing.
    """
    items = _merged(lines)
    if not items:
        return
    if len(items) == 1:
        _reserve(order.pk, items, expires_at)  # one statement: atomic on its own
        return
    with transaction.atomic():  # a savepoint inside a caller's transaction: it may go on
        _reserve(order.pk, items, expires_at)


def stock_commit(*, order: Order) -> int:
    """The order was paid: its active reservations become permanent (stock stays decremented).
    Returns the number of reservations committed."""
    return StockReservation.objects.filter(
        order=order, status=StockReservation.Status.ACTIVE
    ).update(status=StockReservation.Status.COMMITTED)


def stock_release(*, order: Order) -> int:
    """Give back the stock of the order's active reservations (cancel, expiry). Idempotent:
    released or committed reservations are left alone. Returns the units put back."""
    with transaction.atomic(savepoint=False):
        held = locks.lock_active_reservations(order_id=order.pk)
        if not held:
            return 0
        StockReservation.objects.filter(pk__in=[row[0] for row in held]).update(
            status=StockReservation.Status.RELEASED
        )
        per_sku: dict[int, int] = defaultdict(int)
        per_flash_item: dict[int, int] = defaultdict(int)
        for _, sku_id, quantity, flash_item_id in held:
            if flash_item_id is None:
                per_sku[sku_id] += quantity
            else:  # held from a flash sale's own stock: back to it, not to the SKU
                per_flash_item[flash_item_id] += quantity
        for sku_id, quantity in sorted(per_sku.items()):
            Sku.objects.filter(pk=sku_id).update(stock=F("stock") + quantity)
        for item_id, quantity in sorted(per_flash_item.items()):
            FlashItem.objects.filter(pk=item_id).update(remaining=F("remaining") + quantity)
        if per_sku:
            stock_forget_short(sku_ids=sorted(per_sku))
        return sum(per_sku.values()) + sum(per_flash_item.values())


def stock_restore(*, sku_id: int, quantity: int) -> None:
    """Put refunded, undelivered units back on sale."""
    if quantity <= 0:
        raise ValueError("restored quantity must be positive")
    Sku.objects.filter(pk=sku_id).update(stock=F("stock") + quantity)
    stock_forget_short(sku_ids=[sku_id])
