"""Paying orders with the sandbox provider (the embedded default), through the HTTP API."""

from datetime import timedelta

import pytest
import time_machine
from django.test import Client
from django.utils import timezone

from core.models import Notification
from shop import events
from shop.models import Order, Payment, Refund, StockReservation
from shop.services.orders import order_cancel, orders_expire_due
from shop.services.payments import payment_start, payment_succeeded
from tests.conftest import run_in_threads
from tests.factories import CustomerFactory
from tests.shop.factories_payments import payable_order, sku_stock


@pytest.fixture(autouse=True)
def sandbox_identity(settings):
    settings.PAYMENT_PROVIDER = "sandbox"


@pytest.fixture
def paid_events():
    """Every committed ``order_paid`` payload, in order."""
    seen: list[dict] = []

    def record_order_paid(**payload):
        seen.append(payload)

    events.subscribe(events.ORDER_PAID, record_order_paid)
    yield seen
    events.unsubscribe(events.ORDER_PAID, record_order_paid)


def admin_client(user) -> Client:
    # tests.factories.UserFactory never saves the password it sets; log in as the stored user.
    user.refresh_from_db()
    client = Client()
    client.force_login(user)
    return client


def pay(client, order, **kw):
    return client.post(f"/api/v1/orders/{order.id}/pay", **kw)


def confirm(client, payment_id, outcome=None):
    return client.post(
        f"/api/v1/payments/{payment_id}/confirm", json={"outcome": outcome} if outcome else {}
    )


# --- starting a payment ----------------------------------------------------------------------
def test_pay_returns_a_pending_sandbox_payment_with_a_confirm_url(shopper, customer):
    order = payable_order(customer)

    response = pay(shopper, order)

    assert response.status_code == 200, response.json()
    body = response.json()
    payment = Payment.objects.get()
    assert body["id"] == payment.id
    assert body["order_id"] == order.id
    assert body["provider"] == "sandbox"
    assert body["status"] == "pending"
    assert body["amount"] == order.total == 3980
    assert body["currency"] == "CNY"
    assert body["client_secret"] == payment.client_secret
    assert body["client_secret"].startswith(f"sandbox_pay_{payment.id}_secret_")
    assert body["confirm_url"] == f"/api/v1/payments/{payment.id}/confirm"
    assert payment.provider_ref == f"sandbox_pay_{payment.id}"


def test_paying_again_returns_the_same_pending_payment(shopper, customer):
    order = payable_order(customer)
    first = pay(shopper, order).json()

    second = pay(shopper, order).json()

    assert second["id"] == first["id"]
    assert second["client_secret"] == first["client_secret"]
    assert Payment.objects.count() == 1


def test_pay_honours_idempotency_key(shopper, customer):
    order = payable_order(customer)
    headers = {"Idempotency-Key": "pay-once-123"}
    first = pay(shopper, order, headers=headers)

    replay = pay(shopper, order, headers=headers)

    assert replay.status_code == 200
    assert replay["Idempotent-Replayed"] == "true"
    assert replay.json() == first.json()
    assert Payment.objects.count() == 1


def test_pay_for_someone_elses_order_is_404(shopper):
    order = payable_order(CustomerFactory())

    response = pay(shopper, order)

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    assert not Payment.objects.exists()


def test_pay_for_a_missing_order_is_404(shopper):
    response = shopper.post("/api/v1/orders/999999/pay")

    assert response.status_code == 404


@pytest.mark.parametrize(
    "change",
    [
        {"status": Order.Status.CANCELLED},
        {"status": Order.Status.PAID},
        {"payment_deadline": timezone.now() - timedelta(seconds=1)},
    ],
    ids=["cancelled", "paid", "deadline-passed"],
)
def test_pay_for_an_order_that_is_not_payable_is_409(shopper, customer, change):
    order = payable_order(customer, **change)

    response = pay(shopper, order)

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "order_not_payable"
    assert not Payment.objects.exists()


def test_pay_needs_a_customer_account(operator):
    order = payable_order()

    response = pay(operator, order)

    assert response.status_code == 403
    assert response.json()["error"]["code"] == "not_a_customer"


def test_pay_needs_authentication(anon, db):
    order = payable_order()

    assert pay(anon, order).status_code == 401


# --- confirming ------------------------------------------------------------------------------
def test_confirm_pays_the_order(shopper, customer, paid_events, django_capture_on_commit_callbacks):
    order = payable_order(customer)
    payment_id = pay(shopper, order).json()["id"]

    with django_capture_on_commit_callbacks(execute=True):
        response = confirm(shopper, payment_id)

    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["status"] == "succeeded"
    assert body["client_secret"] is None and body["confirm_url"] is None
    assert body["succeeded_at"] is not None
    order.refresh_from_db()
    assert order.status == Order.Status.PAID
    assert order.paid_payment_id == payment_id
    assert StockReservation.objects.get(order=order).status == StockReservation.Status.COMMITTED
    assert [e["order_id"] for e in paid_events] == [order.id]
    assert Notification.objects.filter(user=customer.user, title="Payment received").count() == 1
    assert not Refund.objects.exists()


def test_confirm_accepts_an_empty_body(shopper, customer):
    order = payable_order(customer)
    payment_id = pay(shopper, order).json()["id"]

    response = shopper.client.generic(
        "POST",
        f"/api/v1/payments/{payment_id}/confirm",
        b"",
        headers={"Authorization": f"Bearer {shopper.token}"},
    )

    assert response.status_code == 200
    assert response.json()["status"] == "succeeded"


def test_confirm_twice_changes_nothing_more(
    shopper, customer, paid_events, django_capture_on_commit_callbacks
):
    order = payable_order(customer)
    payment_id = pay(shopper, order).json()["id"]
    with django_capture_on_commit_callbacks(execute=True):
        confirm(shopper, payment_id)

    with django_capture_on_commit_callbacks(execute=True):
        again = confirm(shopper, payment_id)

    assert again.status_code == 200
    assert again.json()["status"] == "succeeded"
    assert len(paid_events) == 1
    assert Notification.objects.filter(user=customer.user, title="Payment received").count() == 1


def test_confirm_with_outcome_fail_declines_and_tells_the_customer(shopper, customer):
    order = payable_order(customer)
    payment_id = pay(shopper, order).json()["id"]

    response = confirm(shopper, payment_id, "fail")

    assert response.status_code == 200
    assert response.json()["status"] == "failed"
    assert response.json()["failure_message"] == "Declined by the sandbox."
    order.refresh_from_db()
    assert order.status == Order.Status.PENDING_PAYMENT
    note = Notification.objects.get(user=customer.user, kind="payment_failed")
    assert note.title == "Payment failed"
    assert note.data == {"order_id": order.id, "payment_id": payment_id}


def test_after_a_failed_payment_paying_again_opens_a_new_one(shopper, customer):
    order = payable_order(customer)
    failed_id = pay(shopper, order).json()["id"]
    confirm(shopper, failed_id, "fail")

    retry = pay(shopper, order).json()

    assert retry["id"] != failed_id
    assert retry["status"] == "pending"
    assert confirm(shopper, retry["id"]).json()["status"] == "succeeded"


def test_failing_a_succeeded_payment_is_409(shopper, customer):
    order = payable_order(customer)
    payment_id = pay(shopper, order).json()["id"]
    confirm(shopper, payment_id)

    response = confirm(shopper, payment_id, "fail")

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "payment_already_succeeded"
    assert Payment.objects.get().status == Payment.Status.SUCCEEDED


def test_confirm_rejects_an_unknown_outcome(shopper, customer):
    order = payable_order(customer)
    payment_id = pay(shopper, order).json()["id"]

    response = confirm(shopper, payment_id, "maybe")

    assert response.status_code == 422
    assert Payment.objects.get().status == Payment.Status.PENDING


def test_confirm_someone_elses_payment_is_404(shopper, client_for):
    other = CustomerFactory()
    order = payable_order(other)
    payment_id = pay(client_for(other.user), order).json()["id"]

    response = confirm(shopper, payment_id)

    assert response.status_code == 404
    assert Payment.objects.get().status == Payment.Status.PENDING


def test_confirm_is_refused_when_the_sandbox_is_not_the_provider(shopper, customer, settings):
    order = payable_order(customer)
    payment_id = pay(shopper, order).json()["id"]
    settings.PAYMENT_PROVIDER = "stripe"

    response = confirm(shopper, payment_id)

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "not_sandbox"
    assert Payment.objects.get().status == Payment.Status.PENDING


def test_confirm_is_refused_for_a_stripe_payment(shopper, customer):
    order = payable_order(customer)
    payment = Payment.objects.create(
        order=order, provider="stripe", amount=order.total, provider_ref="pi_x"
    )

    response = confirm(shopper, payment.id)

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "not_sandbox"


# --- reading -----------------------------------------------------------------------------------
def test_customer_lists_the_payments_of_their_order(shopper, customer):
    order = payable_order(customer)
    first = pay(shopper, order).json()["id"]
    confirm(shopper, first, "fail")
    second = pay(shopper, order).json()["id"]

    listed = shopper.get(f"/api/v1/orders/{order.id}/payments")
    one = shopper.get(f"/api/v1/payments/{second}")

    assert listed.status_code == 200
    assert [p["id"] for p in listed.json()] == [second, first]
    assert one.json()["status"] == "pending"


def test_payments_of_someone_elses_order_are_404(shopper, client_for):
    other = CustomerFactory()
    order = payable_order(other)
    payment_id = pay(client_for(other.user), order).json()["id"]

    assert shopper.get(f"/api/v1/orders/{order.id}/payments").status_code == 404
    assert shopper.get(f"/api/v1/payments/{payment_id}").status_code == 404


# --- late and double payments -----------------------------------------------------------------
def test_late_payment_for_an_expired_order_is_refunded(
    shopper, customer, paid_events, django_capture_on_commit_callbacks
):
    order = payable_order(customer)
    payment_id = pay(shopper, order).json()["id"]
    with (
        time_machine.travel(order.payment_deadline + timedelta(seconds=1)),
        django_capture_on_commit_callbacks(execute=True),
    ):
        assert orders_expire_due() == 1
    stock_after_expiry = sku_stock(order)

    with django_capture_on_commit_callbacks(execute=True):
        response = confirm(shopper, payment_id)

    assert response.status_code == 200
    assert response.json()["status"] == "succeeded"
    order.refresh_from_db()
    assert order.status == Order.Status.CANCELLED
    assert order.paid_payment_id is None
    refund = Refund.objects.get()
    assert refund.payment_id == payment_id
    assert refund.reason == Refund.Reason.LATE_PAYMENT
    assert refund.amount == order.total
    assert refund.status == Refund.Status.SUCCEEDED
    assert refund.provider_ref == f"sandbox_re_{refund.id}"
    assert Payment.objects.get().refunded_amount == order.total
    assert paid_events == []
    assert sku_stock(order) == stock_after_expiry


def test_late_payment_for_a_cancelled_order_is_refunded_once(
    shopper, customer, django_capture_on_commit_callbacks
):
    order = payable_order(customer)
    payment_id = pay(shopper, order).json()["id"]
    order_cancel(order_id=order.id, customer=customer)

    with django_capture_on_commit_callbacks(execute=True):
        confirm(shopper, payment_id)
    with django_capture_on_commit_callbacks(execute=True):
        payment_succeeded(payment_id=payment_id)

    refund = Refund.objects.get()
    assert refund.status == Refund.Status.SUCCEEDED
    assert refund.amount == order.total


def test_a_second_succeeded_payment_for_a_paid_order_is_refunded(
    shopper, customer, paid_events, django_capture_on_commit_callbacks
):
    order = payable_order(customer)
    first = pay(shopper, order).json()["id"]
    confirm(shopper, first, "fail")
    second = pay(shopper, order).json()["id"]
    with django_capture_on_commit_callbacks(execute=True):
        confirm(shopper, second)

    # The customer's first attempt goes through after all (e.g. a retried bank transfer).
    with django_capture_on_commit_callbacks(execute=True):
        response = confirm(shopper, first)

    assert response.json()["status"] == "succeeded"
    order.refresh_from_db()
    assert order.status == Order.Status.PAID
    assert order.paid_payment_id == second
    refund = Refund.objects.get()
    assert (refund.payment_id, refund.status, refund.amount) == (
        first,
        Refund.Status.SUCCEEDED,
        order.total,
    )
    assert len(paid_events) == 1


# --- admin -----------------------------------------------------------------------------------
def test_admin_action_confirms_a_sandbox_payment(
    staff, customer, paid_events, django_capture_on_commit_callbacks
):
    order = payable_order(customer)
    payment = payment_start(order_id=order.id, customer=customer)
    admin = admin_client(staff)

    with django_capture_on_commit_callbacks(execute=True):
        response = admin.post(
            "/admin/shop/payment/",
            {"action": "confirm_sandbox_payment", "_selected_action": [payment.id]},
        )

    assert response.status_code == 302
    payment.refresh_from_db()
    assert payment.status == Payment.Status.SUCCEEDED
    order.refresh_from_db()
    assert order.status == Order.Status.PAID
    assert [e["order_id"] for e in paid_events] == [order.id]


def test_admin_lists_payments(staff, customer):
    order = payable_order(customer)
    payment_start(order_id=order.id, customer=customer)
    admin = admin_client(staff)

    response = admin.get("/admin/shop/payment/", {"q": order.number})

    assert response.status_code == 200
    assert order.number in response.content.decode()


# --- races -----------------------------------------------------------------------------------
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_pay_requests_open_exactly_one_payment():
    customer = CustomerFactory()
    order = payable_order(customer)

    results = run_in_threads(8, lambda i: payment_start(order_id=order.id, customer=customer))

    assert all(isinstance(r, Payment) for r in results), results
    assert {r.id for r in results} == {Payment.objects.get().id}


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_confirmations_pay_the_order_once():
    customer = CustomerFactory()
    order = payable_order(customer)
    payment = payment_start(order_id=order.id, customer=customer)

    results = run_in_threads(8, lambda i: payment_succeeded(payment_id=payment.id))

    assert all(isinstance(r, Payment) for r in results), results
    order.refresh_from_db()
    assert order.status == Order.Status.PAID
    assert not Refund.objects.exists()
    assert Notification.objects.filter(user=customer.user, title="Payment received").count() == 1
