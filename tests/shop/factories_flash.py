"""Flash sale sessions and items for the flash tests, made through the service."""

from datetime import timedelta

from django.utils import timezone

from shop.models import FlashItem, FlashQuota, Order, Sku
from shop.services.flash import FlashItemSpec, flash_order_create, flash_session_create
from tests.factories import ProductFactory, SkuFactory
from tests.shop.factories_orders import QuickCustomerFactory, quick_pickup_point


def flash_item(
    *,
    stock: int = 10,
    cap: int = 1,
    price: int = 1990,
    flash_price: int = 990,
    starts_in: timedelta = timedelta(minutes=-1),
    lasts: timedelta = timedelta(hours=1),
    purchase_limit: int | None = None,
    payment_ttl: int = 300,
) -> FlashItem:
    """An item of a new session starting ``starts_in`` from now (live by default)."""
    sku = SkuFactory(price=price, stock=50, product=ProductFactory(purchase_limit=purchase_limit))
    start = timezone.now() + starts_in
    session = flash_session_create(
        title="Ten o'clock flash sale",
        starts_at=start,
        ends_at=start + lasts,
        payment_ttl=payment_ttl,
        items=[
            FlashItemSpec(
                sku_id=sku.pk, flash_price=flash_price, total_stock=stock, per_customer_limit=cap
            )
        ],
    )
    return session.items.get()


def buy(item: FlashItem, customer=None, quantity: int = 1, point=None) -> Order:
    return flash_order_create(
        customer=customer or QuickCustomerFactory(),
        item_id=item.pk,
        quantity=quantity,
        delivery_mode="pickup",
        pickup_point_id=(point or quick_pickup_point()).pk,
    )


def remaining_of(item: FlashItem) -> int:
    return FlashItem.objects.values_list("remaining", flat=True).get(pk=item.pk)


def quota_of(item: FlashItem, customer) -> int:
    return (
        FlashQuota.objects.filter(item=item, customer=customer)
        .values_list("units", flat=True)
        .first()
        or 0
    )


def sku_stock(item: FlashItem) -> int:
    return Sku.objects.values_list("stock", flat=True).get(pk=item.sku_id)
