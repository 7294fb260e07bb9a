"""Orders as the payments tests need them (made directly, independent of order_create)."""

from datetime import timedelta

import factory
from django.utils import timezone
from factory.django import DjangoModelFactory

from shop.models import Order, OrderLine, Payment, Sku, StockReservation
from tests.factories import CustomerFactory, SkuFactory


class OrderFactory(DjangoModelFactory):
    class Meta:
        model = Order

    number = factory.Sequence(lambda n: f"PAYT{n:08d}")
    customer = factory.SubFactory(CustomerFactory)
    status = Order.Status.PENDING_PAYMENT
    delivery_mode = Order.DeliveryMode.COURIER
    shipping_address = {"recipient_name": "Li Lei", "city": "Hangzhou", "detail": "1 Wensan Road"}
    subtotal = 3980
    total = 3980
    payment_deadline = factory.LazyFunction(lambda: timezone.now() + timedelta(minutes=30))


class OrderLineFactory(DjangoModelFactory):
    class Meta:
        model = OrderLine

    order = factory.SubFactory(OrderFactory)
    sku = factory.SubFactory(SkuFactory)
    product_title = factory.LazyAttribute(lambda o: o.sku.product.title)
    sku_code = factory.LazyAttribute(lambda o: o.sku.code)
    list_unit_price = factory.LazyAttribute(lambda o: o.unit_price)
    unit_price = 1990
    quantity = 2
    line_total = factory.LazyAttribute(lambda o: o.unit_price * o.quantity)


class PaymentFactory(DjangoModelFactory):
    class Meta:
        model = Payment

    order = factory.SubFactory(OrderFactory)
    provider = Payment.Provider.SANDBOX
    amount = factory.LazyAttribute(lambda p: p.order.total)
    provider_ref = factory.Sequence(lambda n: f"sandbox_pay_f{n}")


def payable_order(customer=None, *, unit_price: int = 1990, quantity: int = 2, **kwargs) -> Order:
    """A pending-payment order with one line whose units are reserved (as order_create leaves
    it): stock already taken from the SKU, an active reservation until the deadline."""
    total = unit_price * quantity
    order = OrderFactory(
        **({"customer": customer} if customer is not None else {}),
        subtotal=total,
        total=total,
        **kwargs,
    )
    sku = SkuFactory(price=unit_price, stock=100 - quantity)
    OrderLineFactory(order=order, sku=sku, unit_price=unit_price, quantity=quantity)
    StockReservation.objects.create(
        sku=sku, order=order, quantity=quantity, expires_at=order.payment_deadline
    )
    return order


def sku_stock(order: Order) -> int:
    return Sku.objects.get(pk=order.lines.get().sku_id).stock
