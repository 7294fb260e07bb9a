from django.db.models import QuerySet

from core.errors import NotFound
from shop.models import Customer, Order, Payment


def payment_get_for_customer(*, payment_id: int, customer: Customer) -> Payment:
    """The customer's own payment; anyone else's is 404 (not 403: ids are not disclosed)."""
    payment = Payment.objects.filter(pk=payment_id, order__customer=customer).first()
    if payment is None:
        raise NotFound("No such payment.")
    return payment


def payments_for_order(*, order_id: int, customer: Customer) -> QuerySet[Payment]:
    if not Order.objects.filter(pk=order_id, customer=customer).exists():
        raise NotFound("No such order.")
    return Payment.objects.filter(order_id=order_id).order_by("-created_at", "-id")


def payment_applied_for_order(*, order_id: int) -> Payment | None:
    """The payment the order was paid with (others for it are refunded as unapplied)."""
    return Payment.objects.filter(
        pk=Order.objects.filter(pk=order_id).values("paid_payment_id")[:1]
    ).first()
