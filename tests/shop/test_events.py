import pytest
from django.db import transaction

from shop import events
from shop.services.orders import order_cancel, order_complete, order_fulfil
from shop.tasks import dispatch_event
from tests.factories import StaffFactory
from tests.shop.factories_orders import SucceededPaymentFactory, paid, place

pytestmark = pytest.mark.django_db

received: list[tuple[str, dict]] = []


def on_paid(**payload):
    received.append(("order_paid", payload))


def on_fulfilled(**payload):
    received.append(("order_fulfilled", payload))


def on_completed(**payload):
    received.append(("order_completed", payload))


def on_cancelled(**payload):
    received.append(("order_cancelled", payload))


def broken(**payload):
    raise RuntimeError("subscriber bug")


@pytest.fixture
def subscribed():
    received.clear()
    pairs = [
        (events.ORDER_PAID, broken),  # first, so the others must survive it
        (events.ORDER_PAID, on_paid),
        (events.ORDER_FULFILLED, on_fulfilled),
        (events.ORDER_COMPLETED, on_completed),
        (events.ORDER_CANCELLED, on_cancelled),
    ]
    for name, handler in pairs:
        events.subscribe(name, handler)
    yield received
    for name, handler in pairs:
        events.unsubscribe(name, handler)


def test_order_lifecycle_is_announced_after_commit_once_each(
    subscribed, django_capture_on_commit_callbacks
):
    # given
    order = place(mode="courier")
    payment = SucceededPaymentFactory(order=order)
    from shop.services.orders import order_mark_paid

    # when
    with django_capture_on_commit_callbacks(execute=True):
        order_mark_paid(order_id=order.pk, payment_id=payment.pk)
        order_mark_paid(order_id=order.pk, payment_id=payment.pk)  # replay: no second event
        order_fulfil(order_id=order.pk, actor=StaffFactory())
        order_complete(order_id=order.pk)
    # then
    assert [name for name, _ in subscribed] == ["order_paid", "order_fulfilled", "order_completed"]
    paid_payload = subscribed[0][1]
    assert paid_payload["order_id"] == order.pk
    assert paid_payload["customer_id"] == order.customer_id
    assert paid_payload["total"] == order.total
    assert isinstance(paid_payload["paid_at"], str)  # JSON-ready for the Celery task
    assert subscribed[1][1]["delivery_mode"] == "courier"


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


def test_cancellation_event_names_the_reason(subscribed, django_capture_on_commit_callbacks):
    order = place()
    with django_capture_on_commit_callbacks(execute=True):
        order_cancel(order_id=order.pk, reason="staff")
    [(name, payload)] = subscribed
    assert (name, payload["reason"], payload["order_id"]) == ("order_cancelled", "staff", order.pk)


def test_dispatch_runs_only_subscribed_handlers(subscribed):
    assert dispatch_event.delay("order_paid", events.handler_name(on_paid), {"order_id": 1}).get()
    assert subscribed == [("order_paid", {"order_id": 1})]
    assert not dispatch_event.delay("order_paid", "os.system", {"command": "true"}).get()


def test_unknown_events_are_refused():
    with pytest.raises(ValueError):
        events.subscribe("order_teleported", on_paid)
    with pytest.raises(ValueError):
        events.fire("order_teleported", order_id=1)


def test_paid_factory_fires_through_the_same_path(subscribed, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        order = paid()
    assert [(name, payload["order_id"]) for name, payload in subscribed] == [
        ("order_paid", order.pk)
    ]
