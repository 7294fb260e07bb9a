"""Checkout for flows (INTERFACES.md): what a flash sale, group-buy, bargain or chain sign-up
passes to ``order_create`` that no API schema exposes (source, source_ref, campaign unit prices,
payment TTL, held fulfilment, its own stock reservation), and how a held order behaves."""

import re
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.test import override_settings

from core.errors import ApplicationError
from core.models import Notification, OutboxEvent
from shop import events
from shop.models import Order, OrderEvent, Sku, StockReservation
from shop.services.orders import (
    order_cancel,
    order_fulfil,
    order_mark_paid,
    order_release_hold,
)
from tests.factories import SkuFactory, StaffFactory
from tests.shop.factories_orders import (
    QuickCustomerFactory,
    SucceededPaymentFactory,
    place,
    quick_pickup_point,
    stock_of,
)

pytestmark = pytest.mark.django_db

T = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


def lines_of(order: Order) -> list[tuple]:
    return list(
        order.lines.order_by("sku_id").values_list(
            "sku_id", "list_unit_price", "unit_price", "quantity", "discount", "line_total"
        )
    )


def test_a_flow_sets_source_campaign_price_and_payment_ttl():
    a = SkuFactory(price=1990, stock=10)
    b = SkuFactory(price=500, stock=10)
    with time_machine.travel(T, tick=False):
        order = place(
            lines=[(a, 2), (b, 1)],
            source=Order.Source.GROUP_BUY,
            source_ref=77,
            unit_prices={a.pk: 990},
            payment_ttl=300,
        )
    order.refresh_from_db()
    assert (order.source, order.source_ref, order.fulfilment_held) == ("group_buy", 77, False)
    assert (order.subtotal, order.discount, order.shipping_fee, order.total) == (2480, 0, 0, 2480)
    assert order.payment_deadline == T + timedelta(seconds=300)
    assert lines_of(order) == [(a.pk, 1990, 990, 2, 0, 1980), (b.pk, 500, 500, 1, 0, 500)]
    assert list(StockReservation.objects.filter(order=order).values_list("expires_at", flat=True))
    assert set(
        StockReservation.objects.filter(order=order).values_list("expires_at", flat=True)
    ) == {T + timedelta(seconds=300)}


def test_a_normal_order_is_normal_at_list_prices():
    sku = SkuFactory(price=1990, stock=10)
    order = place(lines=[(sku, 1)])
    order.refresh_from_db()
    assert (order.source, order.source_ref) == ("normal", None)
    assert lines_of(order) == [(sku.pk, 1990, 1990, 1, 0, 1990)]


@pytest.mark.parametrize("price", [0, -1, 1991, 10.5, True, "990"])
def test_a_campaign_price_outside_1_fen_to_the_list_price_is_a_programming_error(price):
    sku = SkuFactory(price=1990, stock=10)
    with pytest.raises(ValueError):
        place(lines=[(sku, 1)], unit_prices={sku.pk: price})
    assert Order.objects.count() == 0


def test_campaign_prices_for_skus_not_ordered_and_unknown_sources_are_programming_errors():
    sku, other = SkuFactory(price=1990, stock=10), SkuFactory(price=1990, stock=10)
    with pytest.raises(ValueError):
        place(lines=[(sku, 1)], unit_prices={other.pk: 990})
    with pytest.raises(ValueError):
        place(lines=[(sku, 1)], source="pyramid")
    assert Order.objects.count() == 0


def test_a_flow_reservation_replaces_the_sku_stock_and_runs_in_the_order_transaction():
    sku = SkuFactory(price=1990, stock=0)  # no normal stock: the flow has its own
    seen = []

    def reserve(order, lines, deadline):
        seen.append((order.pk, [(s.pk, q) for s, q in lines], deadline))

    with time_machine.travel(T, tick=False):
        order = place(lines=[(sku, 2)], reserve=reserve, payment_ttl=60)
    assert seen == [(order.pk, [(sku.pk, 2)], T + timedelta(seconds=60))]
    assert stock_of(sku) == 0
    assert StockReservation.objects.filter(order=order).count() == 0

    def refuse(order, lines, deadline):
        raise ApplicationError("sold out", code="out_of_stock", status=409)

    with pytest.raises(ApplicationError):
        place(lines=[(sku, 1)], reserve=refuse)
    assert Order.objects.count() == 1  # the refused order rolled back with its lines


def test_a_held_order_gets_no_pickup_code_and_cannot_be_fulfilled_until_released():
    order = place(hold_fulfilment=True)
    payment = SucceededPaymentFactory(order=order)
    assert order_mark_paid(order_id=order.pk, payment_id=payment.pk) is True
    order.refresh_from_db()
    assert (order.status, order.fulfilment_held, order.pickup_code) == ("paid", True, None)
    staff = StaffFactory()
    with pytest.raises(ApplicationError) as excinfo:
        order_fulfil(order_id=order.pk, actor=staff)
    assert (excinfo.value.status, excinfo.value.code, excinfo.value.message) == (
        409,
        "fulfilment_held",
        "This order waits for its campaign (e.g. its group to fill) before it can be handed over.",
    )
    order.refresh_from_db()
    assert order.status == "paid"

    released = order_release_hold(order_id=order.pk)
    assert released.fulfilment_held is False
    assert re.fullmatch(r"\d{8}", released.pickup_code)
    assert list(
        OrderEvent.objects.filter(order=order, kind="released").values_list(
            "from_status", "to_status", "actor_kind"
        )
    ) == [("paid", "paid", "system")]
    assert list(
        Notification.objects.filter(user=order.customer.user, kind="order_released").values_list(
            "title", "body", "data", "dedupe_key"
        )
    ) == [
        (
            "Your order is confirmed",
            f"Order {order.number} will now be prepared for you.",
            {"order_id": order.pk, "pickup_code": released.pickup_code},
            f"order:{order.pk}:released",
        )
    ]
    # releasing again changes nothing
    again = order_release_hold(order_id=order.pk)
    assert again.pickup_code == released.pickup_code
    assert OrderEvent.objects.filter(order=order, kind="released").count() == 1
    assert order_fulfil(order_id=order.pk, actor=staff).status == "fulfilled"


def test_an_unpaid_held_order_released_gets_its_code_when_paid():
    order = place(hold_fulfilment=True)
    order_release_hold(order_id=order.pk)
    order.refresh_from_db()
    assert (order.fulfilment_held, order.pickup_code) == (False, None)
    assert not Notification.objects.filter(kind="order_released").exists()
    payment = SucceededPaymentFactory(order=order)
    order_mark_paid(order_id=order.pk, payment_id=payment.pk)
    order.refresh_from_db()
    assert re.fullmatch(r"\d{8}", order.pickup_code)


def test_releasing_an_unknown_order_is_not_found():
    with pytest.raises(ApplicationError) as excinfo:
        order_release_hold(order_id=10**9)
    assert excinfo.value.status == 404


@override_settings(COURIER_SHIPPING_FEE=800)
def test_courier_orders_pay_the_shipping_fee_outside_the_lines():
    sku = SkuFactory(price=1990, stock=10)
    order = place(lines=[(sku, 1)], mode="courier")
    order.refresh_from_db()
    assert (order.subtotal, order.shipping_fee, order.total) == (1990, 800, 2790)
    assert lines_of(order) == [(sku.pk, 1990, 1990, 1, 0, 1990)]
    pickup = place(lines=[(sku, 1)])
    pickup.refresh_from_db()
    assert (pickup.shipping_fee, pickup.total) == (0, 1990)


def test_the_order_paid_and_cancelled_payloads_carry_the_source(subscribed):
    sku = SkuFactory(price=1990, stock=10)
    order = place(
        lines=[(sku, 2)],
        source=Order.Source.FLASH_SALE,
        source_ref=5,
        unit_prices={sku.pk: 990},
        hold_fulfilment=True,
    )
    payment = SucceededPaymentFactory(order=order)
    order_mark_paid(order_id=order.pk, payment_id=payment.pk)
    paid = OutboxEvent.objects.get(name=events.ORDER_PAID).payload
    line = order.lines.get()
    assert {k: paid[k] for k in ("source", "source_ref", "total", "discount")} == {
        "source": "flash_sale",
        "source_ref": 5,
        "total": 1980,
        "discount": 0,
    }
    assert (paid["shipping_fee"], paid["fulfilment_held"], paid["codes"]) == (0, True, [])
    assert paid["lines"] == [
        {
            "line_id": line.pk,
            "sku_id": sku.pk,
            "product_id": sku.product_id,
            "quantity": 2,
            "list_unit_price": 1990,
            "unit_price": 990,
            "paid_amount": 1980,
        }
    ]
    other = place(lines=[(sku, 1)], source=Order.Source.BARGAIN, source_ref=9)
    order_cancel(order_id=other.pk, customer=other.customer)
    cancelled = OutboxEvent.objects.get(name=events.ORDER_CANCELLED).payload
    assert (cancelled["source"], cancelled["source_ref"], cancelled["reason"]) == (
        "bargain",
        9,
        "customer",
    )


@pytest.fixture
def subscribed():
    """A no-op subscriber on the shop's events, so that they are recorded."""
    from core import outbox

    def record_only(**payload):
        return None

    names = (events.ORDER_PAID, events.ORDER_CANCELLED)
    for name in names:
        outbox.subscribe(name, record_only)
    yield
    for name in names:
        outbox.unsubscribe(name, record_only)


def test_a_customer_cannot_set_a_campaign_price_through_the_api(client_for):
    """The order API's body has no source, source_ref, unit_prices, payment_ttl or hold: a body
    carrying them is refused, each key named, and nothing is placed; without them the same
    order is placed at the list price."""
    customer = QuickCustomerFactory()
    sku = SkuFactory(price=1990, stock=10)
    point = quick_pickup_point()
    client = client_for(customer.user)
    body = {
        "lines": [{"sku_id": sku.pk, "quantity": 1}],
        "delivery_mode": "pickup",
        "pickup_point_id": point.pk,
    }
    flow_only = {
        "unit_prices": {str(sku.pk): 1},
        "source": "flash_sale",
        "source_ref": 1,
        "payment_ttl": 999999,
        "hold_fulfilment": True,
    }
    response = client.post("/api/v1/orders", json={**body, **flow_only})
    assert response.status_code == 422, response.content
    fields = response.json()["error"]["details"]["fields"]
    assert {(f["path"], f["type"]) for f in fields} == {
        (key, "extra_forbidden") for key in flow_only
    }
    assert not Order.objects.exists()
    assert Sku.objects.get(pk=sku.pk).stock == 10

    response = client.post("/api/v1/orders", json=body)
    assert response.status_code == 201, response.content
    order = Order.objects.get()
    assert (order.source, order.source_ref, order.fulfilment_held, order.total) == (
        "normal",
        None,
        False,
        1990,
    )
    assert lines_of(order) == [(sku.pk, 1990, 1990, 1, 0, 1990)]
