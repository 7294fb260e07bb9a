"""The shop's events: recorded through the outbox with the change, delivered after commit, and
each payload a contract (every key, its exact value and JSON type)."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.conf import settings
from django.db import transaction
from kombu.exceptions import OperationalError

from core import outbox
from core import tasks as core_tasks
from core.models import OutboxDelivery, OutboxEvent
from shop import events
from shop.models import CustomerCoupon, OrderLine
from shop.services.orders import (
    order_cancel,
    order_complete,
    order_fulfil,
    order_mark_paid,
    orders_expire_due,
)
from shop.services.refunds import refund_issue, refund_mark_succeeded
from tests.factories import SkuFactory, StaffFactory
from tests.shop.factories_coupons import CouponCodeFactory, coupon_for
from tests.shop.factories_orders import (
    QuickCustomerFactory,
    SucceededPaymentFactory,
    fulfilled,
    paid,
    place,
)

pytestmark = pytest.mark.django_db

T = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
T_ISO = "2030-01-01T12:00:00+00:00"

received: list[tuple[str, dict]] = []


def on_paid(**payload):
    received.append(("order_paid", payload))


def on_fulfilled(**payload):
    received.append(("order_fulfilled", payload))


def on_completed(**payload):
    received.append(("order_completed", payload))


def on_cancelled(**payload):
    received.append(("order_cancelled", payload))


def on_refunded(**payload):
    received.append(("order_refunded", payload))


def broken(**payload):
    raise RuntimeError("subscriber bug")


@pytest.fixture
def subscribed():
    received.clear()
    pairs = [
        (events.ORDER_PAID, broken),
        (events.ORDER_PAID, on_paid),
        (events.ORDER_FULFILLED, on_fulfilled),
        (events.ORDER_COMPLETED, on_completed),
        (events.ORDER_CANCELLED, on_cancelled),
        (events.ORDER_REFUNDED, on_refunded),
    ]
    for name, handler in pairs:
        outbox.subscribe(name, handler)
    yield received
    for name, handler in pairs:
        outbox.unsubscribe(name, handler)


def typed(value):
    """``value`` with the JSON type of every leaf made explicit: ``1 == True == 1.0`` in Python,
    but a payload's ids and amounts must be ``int``, its flags ``bool``."""
    if isinstance(value, dict):
        return {key: typed(item) for key, item in value.items()}
    if isinstance(value, list):
        return [typed(item) for item in value]
    return (type(value).__name__, value)


def stored(name):
    """The payload of the one recorded ``name`` event, as stored (and so as delivered)."""
    [payload] = OutboxEvent.objects.filter(name=name).values_list("payload", flat=True)
    return payload


def delivered(name):
    [payload] = [payload for event, payload in received if event == name]
    return payload


def assert_contract(name, expected):
    assert typed(stored(name)) == typed(expected)
    assert typed(delivered(name)) == typed(expected)


# --- the lifecycle --------------------------------------------------------------------------------
def test_order_lifecycle_is_announced_after_commit_once_each(
    subscribed, django_capture_on_commit_callbacks
):
    # given
    order = place(mode="courier")
    payment = SucceededPaymentFactory(order=order)
    # when
    with django_capture_on_commit_callbacks(execute=True):
        order_mark_paid(order_id=order.pk, payment_id=payment.pk)
        order_mark_paid(order_id=order.pk, payment_id=payment.pk)  # replay: no second event
        order_fulfil(order_id=order.pk, actor=StaffFactory())
        order_complete(order_id=order.pk)
    # then: each subscriber once; the broken one does not stop the others and waits for a retry
    assert [name for name, _ in subscribed] == ["order_paid", "order_fulfilled", "order_completed"]
    shop_events = OutboxEvent.objects.filter(name__in=events.EVENTS).order_by("pk")
    assert list(shop_events.values_list("name", flat=True)) == [
        "order_paid",
        "order_fulfilled",
        "order_completed",
    ]
    failing = OutboxDelivery.objects.get(subscriber=outbox.handler_name(broken))
    assert (failing.status, failing.attempts, failing.last_error) == (
        OutboxDelivery.Status.PENDING,
        1,
        "RuntimeError: subscriber bug",
    )
    assert set(OutboxDelivery.objects.exclude(pk=failing.pk).values_list("status", "attempts")) == {
        (OutboxDelivery.Status.DONE, 1)
    }


def test_nothing_is_announced_before_commit_or_after_rollback(
    subscribed, django_capture_on_commit_callbacks
):
    order = place()
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        order_cancel(order_id=order.pk)
    assert subscribed == []  # not before commit
    for callback in callbacks:  # the commit
        callback()
    assert [name for name, _ in subscribed] == ["order_cancelled"]
    subscribed.clear()

    other = place()
    with (
        django_capture_on_commit_callbacks(execute=True),
        pytest.raises(RuntimeError),
        transaction.atomic(),
    ):
        order_cancel(order_id=other.pk)
        raise RuntimeError("rolled back")
    assert subscribed == []
    assert OutboxEvent.objects.count() == 1  # the first cancellation only


def test_broker_down_when_the_order_is_paid_then_the_sweep_announces_it(
    subscribed, monkeypatch, django_capture_on_commit_callbacks
):
    # given: the broker refuses every message
    def broker_down(*args, **kwargs):
        raise OperationalError("Error 111 connecting to redis:6379. Connection refused.")

    monkeypatch.setattr(core_tasks.outbox_dispatch, "delay", broker_down)
    # when: the payment lands
    with django_capture_on_commit_callbacks(execute=True):
        order = paid()
    # then: the order is paid (the broker is not on its path), the event waits in the outbox
    assert order.status == "paid"
    assert subscribed == []
    # when: the sweep runs
    outbox.outbox_sweep()
    # then
    assert [(name, payload["order_id"]) for name, payload in subscribed] == [
        ("order_paid", order.pk)
    ]


def test_events_are_stored_only_when_someone_subscribes():
    assert not outbox.subscribers(events.ORDER_FULFILLED)  # nobody listens to it (yet)
    assert outbox.subscribers(events.ORDER_PAID)  # groupbuy does
    order = paid()
    order_fulfil(order_id=order.pk, actor=StaffFactory())
    assert list(OutboxEvent.objects.values_list("name", flat=True)) == [events.ORDER_PAID]


def test_the_shop_subscribe_helpers_are_the_outbox_registry(subscribed):
    assert events.subscribe is outbox.subscribe
    assert outbox.subscribers(events.ORDER_PAID)[outbox.handler_name(on_paid)] is on_paid


# --- payload contracts ----------------------------------------------------------------------------
def test_order_paid_payload(subscribed, django_capture_on_commit_callbacks):
    # given: 2 x 1990 + 1 x 500 with a coupon of 100 fen spread over the lines
    customer = QuickCustomerFactory(phone="13800000001")
    coupon = coupon_for(customer, amount=100)
    a, b = SkuFactory(price=1990, stock=10), SkuFactory(price=500, stock=10)
    device = uuid.UUID("3f1c2a9e-8b7d-4c6e-9f0a-1b2c3d4e5f60")
    order = place(
        customer,
        lines=[(a, 2), (b, 1)],
        coupon_ids=[coupon.pk],
        device_id=device,
        ip_hash="ab" * 32,
    )
    payment = SucceededPaymentFactory(order=order)
    line_a, line_b = OrderLine.objects.filter(order=order).order_by("pk")
    # when
    with time_machine.travel(T, tick=False), django_capture_on_commit_callbacks(execute=True):
        order_mark_paid(order_id=order.pk, payment_id=payment.pk)
    # then
    order.refresh_from_db()
    assert order.community_id is not None
    assert_contract(
        "order_paid",
        {
            "order_id": order.pk,
            "customer_id": order.customer_id,
            "community_id": order.community_id,
            "source": "normal",
            "source_ref": None,
            "total": 4380,
            "discount": 100,
            "shipping_fee": 0,
            "fulfilment_held": False,
            "paid_at": T_ISO,
            "lines": [
                {
                    "line_id": line_a.pk,
                    "sku_id": a.pk,
                    "product_id": a.product_id,
                    "quantity": 2,
                    "list_unit_price": 1990,
                    "unit_price": 1990,
                    "paid_amount": 3891,  # 3980 - 89 (largest remainder of the 100)
                },
                {
                    "line_id": line_b.pk,
                    "sku_id": b.pk,
                    "product_id": b.product_id,
                    "quantity": 1,
                    "list_unit_price": 500,
                    "unit_price": 500,
                    "paid_amount": 489,
                },
            ],
            "codes": [],
            "device_id": str(device),
            "ip_hash": "ab" * 32,
            "phone": "13800000001",
        },
    )


def test_order_paid_names_the_code_of_a_coupon_spent_later_by_its_id(subscribed):
    # given: a code redeemed at a checkout that was cancelled (the coupon stays with the shopper)
    customer = QuickCustomerFactory()
    code = CouponCodeFactory(code="KOC-LI-10")
    first = place(customer, coupon_code="koc-li-10")
    order_cancel(order_id=first.pk, customer=customer)
    coupon = CustomerCoupon.objects.get(customer=customer, code=code)
    assert coupon.status == CustomerCoupon.Status.AVAILABLE
    # when: the next order spends that coupon by its id, without typing the code
    second = place(customer, coupon_ids=[coupon.pk])
    order_mark_paid(order_id=second.pk, payment_id=SucceededPaymentFactory(order=second).pk)
    # then: the code still reaches the subscribers (an exclusive code attributes the order)
    assert stored("order_paid")["codes"] == ["KOC-LI-10"]


def test_order_paid_names_a_typed_code_once(subscribed):
    customer = QuickCustomerFactory()
    CouponCodeFactory(code="KOC-WU-5")
    order = place(customer, coupon_code="koc-wu-5")

    order_mark_paid(order_id=order.pk, payment_id=SucceededPaymentFactory(order=order).pk)

    assert stored("order_paid")["codes"] == ["koc-wu-5"]


def test_order_fulfilled_payload(subscribed, django_capture_on_commit_callbacks):
    order = paid(mode="courier")
    with time_machine.travel(T, tick=False), django_capture_on_commit_callbacks(execute=True):
        order_fulfil(order_id=order.pk, actor=StaffFactory())
    assert_contract(
        "order_fulfilled",
        {
            "order_id": order.pk,
            "customer_id": order.customer_id,
            "community_id": None,
            "delivery_mode": "courier",
            "fulfilled_at": T_ISO,
        },
    )


def test_order_completed_payload_after_a_partial_refund(
    subscribed, django_capture_on_commit_callbacks
):
    order = fulfilled(lines=[(SkuFactory(price=1990, stock=10), 2)])
    refund = refund_issue(order_id=order.pk, staff=StaffFactory(), amount=500)
    refund_mark_succeeded(refund_id=refund.pk)
    with time_machine.travel(T, tick=False), django_capture_on_commit_callbacks(execute=True):
        order_complete(order_id=order.pk)
    assert_contract(
        "order_completed",
        {
            "order_id": order.pk,
            "customer_id": order.customer_id,
            "community_id": order.community_id,
            "total": 3980,
            "refunded_amount": 500,
            "completed_at": T_ISO,
        },
    )


def test_order_cancelled_payload(subscribed, django_capture_on_commit_callbacks):
    order = place()
    with time_machine.travel(T, tick=False), django_capture_on_commit_callbacks(execute=True):
        order_cancel(order_id=order.pk, customer=order.customer)
    assert_contract(
        "order_cancelled",
        {
            "order_id": order.pk,
            "customer_id": order.customer_id,
            "community_id": order.community_id,
            "source": "normal",
            "source_ref": None,
            "reason": "customer",
            "cancelled_at": T_ISO,
        },
    )


def test_an_expired_order_is_announced_as_cancelled_for_expiry(
    subscribed, django_capture_on_commit_callbacks
):
    order = place()
    later = T + settings.STOCK_RESERVATION_TTL + timedelta(days=365 * 10)
    with time_machine.travel(later, tick=False), django_capture_on_commit_callbacks(execute=True):
        assert orders_expire_due() == 1
    assert_contract(
        "order_cancelled",
        {
            "order_id": order.pk,
            "customer_id": order.customer_id,
            "community_id": order.community_id,
            "source": "normal",
            "source_ref": None,
            "reason": "expired",
            "cancelled_at": later.isoformat(),
        },
    )


def test_order_refunded_payload(subscribed, django_capture_on_commit_callbacks):
    # given: a paid order of 2 x 1990 + 1 x 500; staff refund one unit of the first line
    a, b = SkuFactory(price=1990, stock=10), SkuFactory(price=500, stock=10)
    order = paid(lines=[(a, 2), (b, 1)])
    line_a = OrderLine.objects.filter(order=order).order_by("pk").first()
    refund = refund_issue(
        order_id=order.pk, staff=StaffFactory(), lines=[{"order_line_id": line_a.pk, "quantity": 1}]
    )
    # when
    with time_machine.travel(T, tick=False), django_capture_on_commit_callbacks(execute=True):
        refund_mark_succeeded(refund_id=refund.pk)
    # then
    assert_contract(
        "order_refunded",
        {
            "order_id": order.pk,
            "refund_id": refund.pk,
            "customer_id": order.customer_id,
            "community_id": order.community_id,
            "amount": 1990,
            "order_refunded_amount": 1990,
            "order_total": 4480,
            "order_status": "partially_refunded",
            "fully_refunded": False,
            "refunded_at": T_ISO,
            "lines": [{"line_id": line_a.pk, "sku_id": a.pk, "quantity": 1, "amount": 1990}],
        },
    )


def test_order_refunded_payload_of_a_full_refund_by_amount(
    subscribed, django_capture_on_commit_callbacks
):
    a, b = SkuFactory(price=1990, stock=10), SkuFactory(price=500, stock=10)
    order = paid(lines=[(a, 2), (b, 1)])
    line_a, line_b = OrderLine.objects.filter(order=order).order_by("pk")
    refund = refund_issue(order_id=order.pk, staff=StaffFactory(), amount=4480)
    with time_machine.travel(T, tick=False), django_capture_on_commit_callbacks(execute=True):
        refund_mark_succeeded(refund_id=refund.pk)
    payload = stored("order_refunded")
    assert typed(
        {k: payload[k] for k in ("amount", "order_status", "fully_refunded", "lines")}
    ) == typed(
        {
            "amount": 4480,
            "order_status": "refunded",
            "fully_refunded": True,
            "lines": [
                {"line_id": line_a.pk, "sku_id": a.pk, "quantity": 0, "amount": 3980},
                {"line_id": line_b.pk, "sku_id": b.pk, "quantity": 0, "amount": 500},
            ],
        }
    )
