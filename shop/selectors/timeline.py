"""Reads of order timelines."""

from django.db.models import QuerySet

from shop.models import OrderEvent


def order_timeline(*, order_id: int) -> QuerySet[OrderEvent]:
    """The order's timeline, oldest first."""
    return (
        OrderEvent.objects.filter(order_id=order_id)
        .select_related("actor")
        .order_by("created_at", "id")
    )
