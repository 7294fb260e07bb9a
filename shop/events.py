"""What the shop announces to other apps: its events and the payload of each (a contract).

Events are recorded through the transactional outbox (core/outbox.py): services call the
function named after the event (``events.order_paid(order)``) inside the transaction of the change,
which writes the event row in that transaction; delivery runs after commit and from the periodic
sweep, with retries. Other apps subscribe in their ``AppConfig.ready``:
``outbox.subscribe(events.ORDER_PAID, handler)``; a handler is called as ``handler(**payload)``, at
least once, and must be idempotent (key its writes on ``order_id`` / ``refund_id``). A rolled-back
transaction announces nothing; there are no ``post_save`` signals.

Payloads are JSON: ids and amounts in fen are ``int``, datetimes ISO 8601 strings (UTC). Every
key below is always present (``None`` where stated):

- ``order_paid``: order_id, customer_id, community_id (or None), source (``normal``,
  ``flash_sale``, ``group_buy``, ``bargain``, ``chain_signup``, ``live``), source_ref (the
  campaign object's id; None for normal orders), total, discount (coupons, off the goods),
  shipping_fee (belongs to no line), fulfilment_held (a flow holds the order, e.g. its group is
  not full yet), paid_at, lines [{line_id, sku_id, product_id, quantity, list_unit_price,
  unit_price, paid_amount}] (``unit_price`` is what was charged per unit before coupons, the
  campaign price where a flow set one; ``list_unit_price`` the catalogue price; ``paid_amount``
  the line's amount after its share of the coupons; the lines' ``paid_amount`` add up to
  ``total - shipping_fee``), codes (the coupon / exclusive code typed at checkout, then the codes
  of other coupons it used that were redeemed from a code earlier; [] if none),
  device_id (the checkout's ``X-Device-Id``, a UUID string, or None), ip_hash (keyed hash of the
  checkout's client IP, "" if unknown), phone (the customer's phone, "" if none)
- ``order_fulfilled``: order_id, customer_id, community_id, delivery_mode, fulfilled_at
- ``order_completed``: order_id, customer_id, community_id, total, refunded_amount, completed_at
- ``order_cancelled``: order_id, customer_id, community_id, source, source_ref, reason
  (``customer``, ``staff``, ``expired`` for an unpaid order past its deadline, ...), cancelled_at
- ``order_refunded``: order_id, refund_id, customer_id, community_id, amount (this refund),
  order_refunded_amount (all refunds so far), order_total, order_status (after this refund),
  fully_refunded, refunded_at, lines [{line_id, sku_id, quantity, amount}] (what this refund
  took from each line)
"""

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from django.db import connection

from core import outbox
from core.outbox import subscribe, unsubscribe  # noqa: F401  (shop's subscribers may use these)
from shop.models import CustomerCoupon, Order, Refund, RefundLine

PUBLISHER = "shop"
ORDER_PAID = "order_paid"
ORDER_FULFILLED = "order_fulfilled"
ORDER_COMPLETED = "order_completed"
ORDER_CANCELLED = "order_cancelled"
ORDER_REFUNDED = "order_refunded"
EVENTS = (ORDER_PAID, ORDER_FULFILLED, ORDER_COMPLETED, ORDER_CANCELLED, ORDER_REFUNDED)


# Orders have no source yet (campaign flows come later): every order is a normal one.
def register_events() -> None:
    """Called from ``ShopConfig.ready``."""
    for name in EVENTS:
        outbox.event_register(name, publisher=PUBLISHER)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _base(order: Order) -> dict[str, Any]:
    return {
        "order_id": order.pk,
        "customer_id": order.customer_id,
        "community_id": order.community_id,
    }


# --- payloads -------------------------------------------------------------------------------------
# Every payment builds this: one plain query (no queryset machinery) for the lines.
_PAID_LINES = """
SELECT l.id, l.sku_id, s.product_id, l.quantity, l.list_unit_price, l.unit_price, l.line_total
FROM shop_orderline l JOIN shop_sku s ON s.id = l.sku_id
WHERE l.order_id = %s ORDER BY l.id
"""


def _paid_lines(order_id: int) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(_PAID_LINES, [order_id])
        return cursor.fetchall()


def _codes(order: Order) -> list[str]:
    """The code typed at checkout, and the codes of the coupons the order used that came from a
    code (a customer may spend a code's coupon later by its id, without typing the code)."""
    codes = [order.coupon_code] if order.coupon_code else []
    if order.discount:  # a code's coupon takes something off the goods
        typed = order.coupon_code.upper()
        codes += sorted(
            code
            for code in CustomerCoupon.objects.filter(order=order, code__isnull=False)
            .values_list("code__code", flat=True)
            .distinct()
            if code.upper() != typed
        )
    return codes


def order_paid_payload(order: Order) -> dict[str, Any]:
    return {
        **_base(order),
        "source": order.source,
        "source_ref": order.source_ref,
        "total": order.total,
        "discount": order.discount,
        "shipping_fee": order.shipping_fee,
        "fulfilment_held": order.fulfilment_held,
        "paid_at": _iso(order.paid_at),
        "lines": [
            {
                "line_id": line_id,
                "sku_id": sku_id,
                "product_id": product_id,
                "quantity": quantity,
                "list_unit_price": list_unit_price,
                "unit_price": unit_price,
                "paid_amount": line_total,
            }
            for (
                line_id,
                sku_id,
                product_id,
                quantity,
                list_unit_price,
                unit_price,
                line_total,
            ) in _paid_lines(order.pk)
        ],
        "codes": _codes(order),
        "device_id": str(order.device_id) if order.device_id else None,
        "ip_hash": order.ip_hash,
        "phone": order.customer.phone,
    }


def order_fulfilled_payload(order: Order) -> dict[str, Any]:
    return {
        **_base(order),
        "delivery_mode": order.delivery_mode,
        "fulfilled_at": _iso(order.fulfilled_at),
    }


def order_completed_payload(order: Order) -> dict[str, Any]:
    return {
        **_base(order),
        "total": order.total,
        "refunded_amount": order.refunded_amount,
        "completed_at": _iso(order.completed_at),
    }


def order_cancelled_payload(order: Order) -> dict[str, Any]:
    return {
        **_base(order),
        "source": order.source,
        "source_ref": order.source_ref,
        "reason": order.cancel_reason,
        "cancelled_at": _iso(order.cancelled_at),
    }


def order_refunded_payload(
    *, refund: Refund, order: Order, parts: Sequence[RefundLine]
) -> dict[str, Any]:
    return {
        **_base(order),
        "refund_id": refund.pk,
        "amount": refund.amount,
        "order_refunded_amount": order.refunded_amount,
        "order_total": order.total,
        "order_status": order.status,
        "fully_refunded": order.status == Order.Status.REFUNDED,
        "refunded_at": _iso(refund.succeeded_at),
        "lines": [
            {
                "line_id": part.order_line_id,
                "sku_id": part.order_line.sku_id,
                "quantity": part.quantity,
                "amount": part.amount,
            }
            for part in parts
        ],
    }


# --- recording (inside the service's transaction) -------------------------------------------------
def order_paid(order: Order) -> None:
    outbox.event_record(ORDER_PAID, lambda: order_paid_payload(order))


def order_fulfilled(order: Order) -> None:
    outbox.event_record(ORDER_FULFILLED, lambda: order_fulfilled_payload(order))


def order_completed(order: Order) -> None:
    outbox.event_record(ORDER_COMPLETED, lambda: order_completed_payload(order))


def order_cancelled(order: Order) -> None:
    outbox.event_record(ORDER_CANCELLED, lambda: order_cancelled_payload(order))


def order_refunded(*, refund: Refund, order: Order, parts: Sequence[RefundLine]) -> None:
    outbox.event_record(
        ORDER_REFUNDED, lambda: order_refunded_payload(refund=refund, order=order, parts=parts)
    )
