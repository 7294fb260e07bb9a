"""Orders for the orders tests, made through the services (payment simulated with a Payment row,
independent of the payments area's code)."""

import factory
from django.utils import timezone
from factory.django import DjangoModelFactory

from core.models import User
from shop.models import Order, Payment, Sku
from shop.services.orders import order_create, order_fulfil, order_mark_paid
from tests.factories import (
    AddressFactory,
    CommunityFactory,
    CustomerFactory,
    PickupPointFactory,
    SkuFactory,
    StaffFactory,
)


class QuickUserFactory(DjangoModelFactory):
    """A user with an unusable password: no password hashing (which costs ~0.3 s a user here)."""

    class Meta:
        model = User

    username = factory.Sequence(lambda n: f"buyer{n}")
    password = "!"


class QuickCustomerFactory(CustomerFactory):
    user = factory.SubFactory(QuickUserFactory)


def quick_pickup_point(**kwargs):
    return PickupPointFactory(community__leader=QuickCustomerFactory(), **kwargs)


class SucceededPaymentFactory(DjangoModelFactory):
    class Meta:
        model = Payment

    provider = Payment.Provider.SANDBOX
    status = Payment.Status.SUCCEEDED
    amount = factory.LazyAttribute(lambda p: p.order.total)
    provider_ref = factory.Sequence(lambda n: f"sandbox_ord_{n}")
    succeeded_at = factory.LazyFunction(timezone.now)


def place(
    customer=None,
    lines: list[tuple[Sku, int]] | None = None,
    *,
    mode: str = Order.DeliveryMode.PICKUP,
    pickup_point=None,
    **kwargs,
) -> Order:
    """An unpaid order placed through ``order_create`` (pickup by default)."""
    customer = customer or QuickCustomerFactory()
    lines = lines or [(SkuFactory(price=1990, stock=100), 2)]
    if mode == Order.DeliveryMode.PICKUP and "pickup_point_id" not in kwargs:
        kwargs["pickup_point_id"] = (pickup_point or quick_pickup_point()).pk
    if mode == Order.DeliveryMode.COURIER and "address_id" not in kwargs:
        kwargs["address_id"] = AddressFactory(customer=customer).pk
    if mode == Order.DeliveryMode.LEADER_DELIVERY and "community_id" not in kwargs:
        kwargs["community_id"] = CommunityFactory(leader=QuickCustomerFactory()).pk
    return order_create(
        customer=customer,
        lines=[(sku.pk, quantity) for sku, quantity in lines],
        delivery_mode=mode,
        **kwargs,
    )


def pay(order: Order) -> Payment:
    """Simulate the provider: a succeeded sandbox Payment, then ``order_mark_paid``."""
    payment = SucceededPaymentFactory(order=order)
    assert order_mark_paid(order_id=order.pk, payment_id=payment.pk) is True
    order.refresh_from_db()
    return payment


def paid(customer=None, lines=None, **kwargs) -> Order:
    order = place(customer, lines, **kwargs)
    pay(order)
    return order


def fulfilled(customer=None, lines=None, **kwargs) -> Order:
    order = paid(customer, lines, **kwargs)
    order_fulfil(order_id=order.pk, actor=StaffFactory())
    order.refresh_from_db()
    return order


def stock_of(sku: Sku) -> int:
    return Sku.objects.values_list("stock", flat=True).get(pk=sku.pk)
