"""Flash stock's side of an order's life that the order services need (so that
shop.services.orders, which the flash checkout calls, does not import shop.services.flash):
the process-local short-stock memo of flash items and ``flash_release``, which gives a cancelled
or expired order's units back to the buyer's quota."""

import logging
import time

from django.db import transaction
from django.db.models import F, Sum

from core.errors import Conflict
from shop.error_codes import CatalogErrorCode
from shop.models import FlashQuota, Order, StockReservation

logger = logging.getLogger("shop.services.flash")

SHORT_MEMO_SECONDS = 1  # 0 disables the memo

# flash item id -> (units seen, monotonic expiry); process-local like shop.services.stock's memo
# (see there): refusing a sold-out item must cost less than any round trip.
_short_memo: dict[int, tuple[int, float]] = {}


# --- the short-stock memo -------------------------------------------------------------------------
def flash_out_of_stock(*, item_id: int, available: int) -> Conflict:
    return Conflict(
        "This flash sale item is sold out.",
        code=CatalogErrorCode.OUT_OF_STOCK,
        details={"item_id": item_id, "available": max(available, 0)},
    )


def _refuse_known_short(item_id: int, quantity: int) -> None:
    seen = _short_memo.get(item_id)
    if seen is None:
        return
    available, expires = seen
    if expires <= time.monotonic():
        _short_memo.pop(item_id, None)
    elif quantity > available:
        raise flash_out_of_stock(item_id=item_id, available=available)


def _remember_short(item_id: int, available: int) -> None:
    if SHORT_MEMO_SECONDS:
        _short_memo[item_id] = (max(available, 0), time.monotonic() + SHORT_MEMO_SECONDS)


def _forget_short(item_ids: list[int]) -> None:
    """Units came back to these items: forget the memo now and again after commit."""

    def forget() -> None:
        for item_id in item_ids:
            _short_memo.pop(item_id, None)

    forget()
    transaction.on_commit(forget)


def flash_memo_clear() -> None:
    _short_memo.clear()


def flash_release(*, order: Order) -> None:
    """The order was cancelled or expired: give its flash units back to the customer's quota
    (its flash stock comes back through ``stock_release``, like SKU stock, just before this, in
    the same transaction under the order's lock, so this runs once per order)."""
    released = (
        StockReservation.objects.filter(
            order=order, flash_item__isnull=False, status=StockReservation.Status.RELEASED
        )
        .values_list("flash_item_id")
        .annotate(units=Sum("quantity"))
        .order_by("flash_item_id")
    )
    item_ids = []
    for item_id, units in released:
        item_ids.append(item_id)
        given_back = FlashQuota.objects.filter(
            item_id=item_id, customer_id=order.customer_id, units__gte=units
        ).update(units=F("units") - units)
        if not given_back:
            logger.error("flash quota of item %s short on releasing order %s", item_id, order.pk)
    if item_ids:
        _forget_short(item_ids)
