"""Every row lock the shop takes, in one place (Saleor's ``checkout/lock_objects.py``).

The lock order, across the project: a transaction that needs several of these rows takes them
top to bottom, never bottom to top, so two transactions may wait for each other but never
deadlock::

    groupbuy rows (campaign -> group -> seat, or bargain, or post)
    -> payment or refund     settling a payment or a refund locks it, then its order
                             (payment -> order, refund -> order)
    -> order
    -> coupon issuance       one batch of an issuance at a time
    -> customer              purchase limits, the default address, per-customer coupon limits
    -> coupon template       an issuance batch's share of a limited batch (claims and
                             checkouts change ``issued_count`` / a code's ``redemptions`` with
                             conditional updates, which lock the row the same way, here)
    -> stock reservations    (sku_id, pk order), then the SKU and flash stock rows they
    -> SKU and flash stock   touch, in pk order: the hot stock row is locked last
    -> wallet accounts       (pk order)

Rows of one table are locked in pk order. Community, pickup point, product and reconciliation
discrepancy rows are locked alone (one edit at a time), never together with the rows above.

INTERFACES.md summarises the order as "SKU -> order -> payment / refund". That holds for a
checkout, which locks stock and then writes a new order no other transaction can see; for rows
that already exist the services lock a payment or a refund before its order (settling a
payment marks its order paid; a succeeded refund updates its order), as written above.

Every ``select_for_update`` in ``shop`` is written here (``tests/shop/test_locks.py`` fails on one
anywhere else). Helpers lock the model's own rows only (``of=("self",)``) when they join related
rows for reading, return the locked row (``None`` when it does not exist, except where said)
and must be called inside ``transaction.atomic()``. After taking a lock, re-read and re-check
state: the work may have been done by the transaction that held it.
"""

from collections.abc import Iterable

from django.db.models import QuerySet

from shop.models import (
    Community,
    CouponIssuance,
    CouponTemplate,
    Customer,
    Order,
    Payment,
    PickupPoint,
    Product,
    ReconciliationDiscrepancy,
    Refund,
    Sku,
    StockReservation,
)


def lock_customer(pk: int) -> bool:
    """Serialise a customer's own writes (purchase limits, the default address). True if the
    customer exists."""
    return Customer.objects.select_for_update().filter(pk=pk).values_list("pk").first() is not None


def lock_customers(pks: Iterable[int]) -> list[int]:
    """Several customers (an issuance batch), locked in pk order; the ids that exist."""
    return list(
        Customer.objects.filter(pk__in=set(pks))
        .order_by("pk")
        .select_for_update()
        .values_list("pk", flat=True)
    )


def lock_coupon_template(pk: int) -> CouponTemplate | None:
    return CouponTemplate.objects.select_for_update(of=("self",)).filter(pk=pk).first()


def lock_coupon_issuance(pk: int) -> CouponIssuance | None:
    return (
        CouponIssuance.objects.select_for_update(of=("self",))
        .select_related("template")
        .filter(pk=pk)
        .first()
    )


def lock_skus(pks: Iterable[int]) -> list[Sku]:
    """The SKUs, locked in pk order (missing ones are left out)."""
    return list(Sku.objects.filter(pk__in=set(pks)).order_by("pk").select_for_update(of=("self",)))


def lock_active_reservations(*, order_id: int) -> list[tuple[int, int, int, int | None]]:
    """``(id, sku_id, quantity, flash_item_id)`` of the order's active stock reservations,
    locked in ``(sku_id, id)`` order."""
    return list(
        StockReservation.objects.select_for_update()
        .filter(order_id=order_id, status=StockReservation.Status.ACTIVE)
        .order_by("sku_id", "id")
        .values_list("id", "sku_id", "quantity", "flash_item_id")
    )


def lock_order(pk: int, *, customer: Customer | None = None) -> Order | None:
    """The order (with its customer, read but not locked); ``None`` if it does not exist or,
    with ``customer``, is not theirs."""
    qs = Order.objects.select_for_update(of=("self",)).select_related("customer")
    if customer is not None:
        qs = qs.filter(customer=customer)
    return qs.filter(pk=pk).first()


def lock_orders_skip_locked(orders: QuerySet[Order]) -> QuerySet[Order]:
    """For sweeps: ``orders`` locked when evaluated, skipping rows another worker holds (slice
    the result into batches)."""
    return orders.select_for_update(of=("self",), skip_locked=True)


def lock_payment(pk: int) -> Payment:
    """Payments are locked by ids read from our own rows, so a missing one is a bug: raises
    ``Payment.DoesNotExist``."""
    return Payment.objects.select_for_update(of=("self",)).get(pk=pk)


def lock_refund(pk: int) -> Refund | None:
    return Refund.objects.select_for_update(of=("self",)).filter(pk=pk).first()


def lock_community(pk: int) -> Community | None:
    return Community.objects.select_for_update(of=("self",)).filter(pk=pk).first()


def lock_pickup_point(pk: int) -> PickupPoint | None:
    return PickupPoint.objects.select_for_update(of=("self",)).filter(pk=pk).first()


def lock_product(pk: int) -> Product | None:
    return Product.objects.select_for_update(of=("self",)).filter(pk=pk).first()


def lock_discrepancy(pk: int) -> ReconciliationDiscrepancy | None:
    return ReconciliationDiscrepancy.objects.select_for_update(of=("self",)).filter(pk=pk).first()
