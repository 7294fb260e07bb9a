"""Reads of orders and refunds: customers see their own, staff see all."""

from datetime import datetime

from django.db.models import Prefetch, QuerySet

from core.errors import NotFound
from shop.error_codes import RefundErrorCode
from shop.models import Customer, CustomerCoupon, Order, OrderLine, Refund, RefundLine


def _with_lines(qs: QuerySet[Order]) -> QuerySet[Order]:
    return qs.select_related("pickup_point").prefetch_related(
        Prefetch("lines", queryset=OrderLine.objects.order_by("pk")),
        Prefetch(
            "coupons",
            queryset=CustomerCoupon.objects.filter(
                status__in=(CustomerCoupon.Status.LOCKED, CustomerCoupon.Status.USED)
            )
            .select_related("template")
            .order_by("pk"),
        ),
    )


def orders_of_customer(*, customer: Customer, status: str | None = None) -> QuerySet[Order]:
    qs = Order.objects.filter(customer=customer)
    if status:
        qs = qs.filter(status=status)
    return _with_lines(qs.order_by("-created_at", "-id"))


def order_of_customer(*, order_id: int, customer: Customer) -> Order:
    """The customer's order; another customer's order is 404 like a missing one."""
    order = _with_lines(Order.objects.filter(pk=order_id, customer=customer)).first()
    if order is None:
        raise NotFound("Order not found.")
    return order


def orders_for_staff(
    *,
    status: str | None = None,
    delivery_mode: str | None = None,
    community_id: int | None = None,
    customer_id: int | None = None,
    number: str | None = None,
    created_from: datetime | None = None,
    created_to: datetime | None = None,
) -> QuerySet[Order]:
    qs = Order.objects.all()
    if status:
        qs = qs.filter(status=status)
    if delivery_mode:
        qs = qs.filter(delivery_mode=delivery_mode)
    if community_id is not None:
        qs = qs.filter(community_id=community_id)
    if customer_id is not None:
        qs = qs.filter(customer_id=customer_id)
    if number:
        qs = qs.filter(number=number)
    if created_from is not None:
        qs = qs.filter(created_at__gte=created_from)
    if created_to is not None:
        qs = qs.filter(created_at__lt=created_to)
    return _with_lines(qs.order_by("-created_at", "-id"))


def order_for_staff(*, order_id: int) -> Order:
    order = _with_lines(Order.objects.filter(pk=order_id)).first()
    if order is None:
        raise NotFound("Order not found.")
    return order


def _refunds(qs: QuerySet[Refund]) -> QuerySet[Refund]:
    return qs.prefetch_related(
        Prefetch("lines", queryset=RefundLine.objects.order_by("pk"))
    ).order_by("-created_at", "-id")


def refunds_of_order(*, order: Order) -> QuerySet[Refund]:
    return _refunds(Refund.objects.filter(order=order))


def refunds_for_staff(
    *, status: str | None = None, order_id: int | None = None
) -> QuerySet[Refund]:
    qs = Refund.objects.all()
    if status:
        qs = qs.filter(status=status)
    if order_id is not None:
        qs = qs.filter(order_id=order_id)
    return _refunds(qs)


def refund_for_staff(*, refund_id: int) -> Refund:
    refund = _refunds(Refund.objects.filter(pk=refund_id)).first()
    if refund is None:
        raise NotFound("Refund not found.", code=RefundErrorCode.REFUND_NOT_FOUND)
    return refund
