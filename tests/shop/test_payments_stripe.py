"""Paying and refunding through Stripe's SDK, with its HTTP client replaced by canned answers."""

from datetime import timedelta

import pytest
import time_machine
from django.test import Client

from core.models import Notification
from shop import events
from shop.models import Order, OrderEvent, Payment, Refund
from shop.services.orders import order_cancel, orders_expire_due
from shop.services.payments import (
    payment_start,
    payment_succeeded,
    refund_send,
    refunds_resend_stuck,
)
from shop.services.refunds import refund_issue
from tests.shop.factories_payments import payable_order
from tests.shop.stripe_fakes import (
    FakeStripe,
    event,
    intent_obj,
    post_event,
    refund_obj,
    use_fake_stripe,
)


@pytest.fixture
def fake_stripe(settings, monkeypatch) -> FakeStripe:
    return use_fake_stripe(settings, monkeypatch)


@pytest.fixture
def paid_events():
    seen: list[dict] = []

    def record_order_paid(**payload):
        seen.append(payload)

    events.subscribe(events.ORDER_PAID, record_order_paid)
    yield seen
    events.unsubscribe(events.ORDER_PAID, record_order_paid)


@pytest.fixture
def webhook() -> Client:
    return Client(enforce_csrf_checks=True)


def pay(client, order, **kw):
    return client.post(f"/api/v1/orders/{order.id}/pay", **kw)


def deliver(webhook, payload, capture):
    with capture(execute=True):
        response = post_event(webhook, payload)
    assert response.status_code == 200, response.content
    return response


def succeeded_event(payment, event_id="evt_pi_ok"):
    return event(event_id, "payment_intent.succeeded", intent_obj(payment))


# --- opening a PaymentIntent ------------------------------------------------------------------
def test_pay_creates_a_payment_intent_and_returns_its_client_secret(shopper, customer, fake_stripe):
    order = payable_order(customer)

    response = pay(shopper, order)

    assert response.status_code == 200, response.json()
    payment = Payment.objects.get()
    [call] = fake_stripe.calls
    assert (call.method, call.path) == ("POST", "/v1/payment_intents")
    assert call.idempotency_key == f"payment-{payment.id}"
    assert call.headers["Authorization"] == "Bearer sk_test_fake"
    assert call.form == {
        "amount": "3980",
        "currency": "cny",
        "payment_method_types[0]": "card",
        "payment_method_types[1]": "wechat_pay",
        "payment_method_types[2]": "alipay",
        "metadata[order_id]": str(order.id),
        "metadata[payment_id]": str(payment.id),
        "metadata[order_number]": order.number,
    }
    body = response.json()
    assert body["provider"] == "stripe"
    assert body["status"] == "pending"
    assert body["client_secret"] == f"pi_test_{payment.id}_secret_abc"
    assert body["confirm_url"] is None
    assert payment.provider_ref == f"pi_test_{payment.id}"


def test_pay_again_reuses_the_pending_payment_intent(shopper, customer, fake_stripe):
    order = payable_order(customer)
    first = pay(shopper, order).json()

    second = pay(shopper, order).json()

    assert second["id"] == first["id"]
    assert second["client_secret"] == first["client_secret"]
    assert len(fake_stripe.calls) == 1


def test_a_payment_recorded_without_its_intent_is_resumed_with_the_same_key(
    shopper, customer, fake_stripe
):
    # A crash between "record the attempt" and "record the result" leaves this row behind.
    order = payable_order(customer)
    stranded = Payment.objects.create(order=order, provider="stripe", amount=order.total)

    response = pay(shopper, order)

    assert response.json()["id"] == stranded.id
    assert fake_stripe.calls[0].idempotency_key == f"payment-{stranded.id}"
    stranded.refresh_from_db()
    assert stranded.provider_ref == f"pi_test_{stranded.id}"


def test_provider_refusal_is_502_and_marks_the_payment_failed(shopper, customer, fake_stripe):
    order = payable_order(customer)
    fake_stripe.fail_next(400, "invalid_request_error", "Invalid currency")

    response = pay(shopper, order)

    assert response.status_code == 502
    error = response.json()["error"]
    assert error["code"] == "payment_provider_error"
    assert error["details"]["retryable"] is False
    payment = Payment.objects.get()
    assert payment.status == Payment.Status.FAILED
    assert payment.provider_ref is None and payment.client_secret == ""
    # the customer reads our stable text; what Stripe said is for operators only
    assert payment.failure_message == "The payment service could not open this payment."
    assert "Invalid currency" in payment.provider_detail
    assert "Invalid currency" not in response.content.decode()
    order.refresh_from_db()
    assert order.status == Order.Status.PENDING_PAYMENT
    assert not Notification.objects.filter(kind="payment_failed").exists()


def test_network_failure_is_502_and_a_retry_opens_a_new_payment(shopper, customer, fake_stripe):
    order = payable_order(customer)
    fake_stripe.fail_next_connection()
    failed = pay(shopper, order, headers={"Idempotency-Key": "k1"})

    retry = pay(shopper, order, headers={"Idempotency-Key": "k1"})

    assert failed.status_code == 502
    assert failed.json()["error"]["details"]["retryable"] is True
    assert retry.status_code == 200
    new_id = retry.json()["id"]
    assert [p.status for p in Payment.objects.order_by("id")] == ["failed", "pending"]
    assert fake_stripe.calls[-1].idempotency_key == f"payment-{new_id}"


# --- success through the webhook: the same internal events as the sandbox --------------------
def test_stripe_and_sandbox_payments_produce_the_same_internal_events(
    shopper,
    customer,
    settings,
    monkeypatch,
    paid_events,
    webhook,
    django_capture_on_commit_callbacks,
):
    sandbox_order = payable_order(customer)
    settings.PAYMENT_PROVIDER = "sandbox"
    sandbox_payment = pay(shopper, sandbox_order).json()["id"]
    with django_capture_on_commit_callbacks(execute=True):
        shopper.post(f"/api/v1/payments/{sandbox_payment}/confirm")

    use_fake_stripe(settings, monkeypatch)
    stripe_order = payable_order(customer)
    pay(shopper, stripe_order)
    deliver(
        webhook,
        succeeded_event(Payment.objects.get(order=stripe_order)),
        django_capture_on_commit_callbacks,
    )

    assert [e["order_id"] for e in paid_events] == [sandbox_order.id, stripe_order.id]
    assert paid_events[0].keys() == paid_events[1].keys()
    for order in (sandbox_order, stripe_order):
        order.refresh_from_db()
        assert order.status == Order.Status.PAID
        assert (
            Notification.objects.filter(
                kind="order_paid", title="Payment received", data__order_id=order.id
            ).count()
            == 1
        )


# --- late and double payments are refunded through the Refund API -----------------------------
def test_late_payment_is_refunded_through_stripe(
    shopper, customer, fake_stripe, webhook, django_capture_on_commit_callbacks
):
    order = payable_order(customer)
    pay(shopper, order)
    payment = Payment.objects.get()
    with (
        time_machine.travel(order.payment_deadline + timedelta(seconds=1)),
        django_capture_on_commit_callbacks(execute=True),
    ):
        orders_expire_due()

    deliver(webhook, succeeded_event(payment), django_capture_on_commit_callbacks)

    refund = Refund.objects.get()
    assert (refund.reason, refund.payment_id, refund.amount) == (
        Refund.Reason.LATE_PAYMENT,
        payment.id,
        order.total,
    )
    [call] = fake_stripe.calls_to("/v1/refunds")
    assert call.idempotency_key == f"refund-{refund.id}"
    assert call.form == {
        "payment_intent": payment.provider_ref,
        "amount": str(order.total),
        "metadata[refund_id]": str(refund.id),
        "metadata[order_id]": str(order.id),
    }
    # Stripe answered "pending": the refund waits for its webhook.
    assert refund.status == Refund.Status.APPROVED
    assert refund.provider_ref == f"re_test_{refund.id}"

    deliver(
        webhook,
        event(
            "evt_re_ok",
            "refund.updated",
            refund_obj(refund.provider_ref, payment.provider_ref, order.total, refund_id=refund.id),
        ),
        django_capture_on_commit_callbacks,
    )

    refund.refresh_from_db()
    assert refund.status == Refund.Status.SUCCEEDED
    payment.refresh_from_db()
    assert payment.status == Payment.Status.SUCCEEDED
    assert payment.refunded_amount == order.total
    order.refresh_from_db()
    assert order.status == Order.Status.CANCELLED
    assert Notification.objects.filter(user=customer.user, title="Refund sent").count() == 1


def test_late_payment_refund_that_stripe_settles_at_once(
    shopper, customer, settings, monkeypatch, webhook, django_capture_on_commit_callbacks
):
    fake = use_fake_stripe(settings, monkeypatch, refund_status="succeeded")
    order = payable_order(customer)
    pay(shopper, order)
    order_cancel(order_id=order.id, customer=customer)

    deliver(webhook, succeeded_event(Payment.objects.get()), django_capture_on_commit_callbacks)

    refund = Refund.objects.get()
    assert refund.status == Refund.Status.SUCCEEDED
    assert len(fake.calls_to("/v1/refunds")) == 1


def test_second_stripe_payment_for_a_paid_order_is_refunded(
    shopper, customer, fake_stripe, webhook, django_capture_on_commit_callbacks
):
    order = payable_order(customer)
    first = payment_start(order_id=order.id, customer=customer)
    Payment.objects.filter(pk=first.pk).update(status=Payment.Status.FAILED)
    second = payment_start(order_id=order.id, customer=customer)
    deliver(webhook, succeeded_event(second, "evt_2"), django_capture_on_commit_callbacks)

    # The first PaymentIntent is completed after all.
    deliver(webhook, succeeded_event(first, "evt_1"), django_capture_on_commit_callbacks)

    order.refresh_from_db()
    assert order.status == Order.Status.PAID and order.paid_payment_id == second.id
    refund = Refund.objects.get()
    assert (refund.payment_id, refund.reason, refund.amount) == (
        first.id,
        Refund.Reason.LATE_PAYMENT,
        first.amount,
    )
    [call] = fake_stripe.calls_to("/v1/refunds")
    assert call.form["payment_intent"] == first.provider_ref


# --- staff refunds of a paid order ----------------------------------------------------------
def paid_stripe_order(customer, webhook, capture):
    order = payable_order(customer)
    payment = payment_start(order_id=order.id, customer=customer)
    deliver(webhook, succeeded_event(payment), capture)
    return order, payment


def test_staff_refund_goes_to_stripe_and_the_webhook_completes_it(
    customer, staff, fake_stripe, webhook, django_capture_on_commit_callbacks
):
    order, payment = paid_stripe_order(customer, webhook, django_capture_on_commit_callbacks)

    with django_capture_on_commit_callbacks(execute=True):
        refund = refund_issue(order_id=order.id, staff=staff, amount=1000)

    [call] = fake_stripe.calls_to("/v1/refunds")
    assert call.idempotency_key == f"refund-{refund.id}"
    assert call.form["amount"] == "1000"
    assert call.form["payment_intent"] == payment.provider_ref
    refund.refresh_from_db()
    assert refund.status == Refund.Status.APPROVED

    deliver(
        webhook,
        event(
            "evt_ref",
            "charge.refund.updated",
            refund_obj(refund.provider_ref, payment.provider_ref, 1000, refund_id=refund.id),
        ),
        django_capture_on_commit_callbacks,
    )

    refund.refresh_from_db()
    order.refresh_from_db()
    assert refund.status == Refund.Status.SUCCEEDED
    assert (order.status, order.refunded_amount) == (Order.Status.PARTIALLY_REFUNDED, 1000)


def test_refund_send_twice_sends_the_same_request(
    customer, staff, fake_stripe, webhook, django_capture_on_commit_callbacks
):
    order, _ = paid_stripe_order(customer, webhook, django_capture_on_commit_callbacks)
    with django_capture_on_commit_callbacks(execute=True):
        refund = refund_issue(order_id=order.id, staff=staff)

    refund_send(refund_id=refund.id)

    calls = fake_stripe.calls_to("/v1/refunds")
    assert len(calls) == 2
    assert calls[0].idempotency_key == calls[1].idempotency_key == f"refund-{refund.id}"
    assert calls[0].form == calls[1].form
    assert Refund.objects.get().provider_ref == f"re_test_{refund.id}"


def test_refund_refused_by_stripe_is_marked_failed(
    customer, staff, fake_stripe, webhook, django_capture_on_commit_callbacks
):
    order, _ = paid_stripe_order(customer, webhook, django_capture_on_commit_callbacks)
    fake_stripe.fail_next(400, "invalid_request_error", "Charge has already been refunded")

    with django_capture_on_commit_callbacks(execute=True):
        refund = refund_issue(order_id=order.id, staff=staff)

    refund.refresh_from_db()
    assert refund.status == Refund.Status.FAILED
    # the customer reads our text; the provider's words are for operators only (the timeline)
    assert (
        refund.failure_message
        == "The payment service refused this refund; our staff will follow up."
    )
    failed = OrderEvent.objects.get(order=order, kind=OrderEvent.Kind.REFUND_FAILED)
    assert "already been refunded" in failed.reason
    order.refresh_from_db()
    assert (order.status, order.refunded_amount) == (Order.Status.PAID, 0)


def test_refund_left_approved_when_stripe_is_unreachable_and_resent_later(
    customer, staff, fake_stripe, webhook, django_capture_on_commit_callbacks
):
    order, _ = paid_stripe_order(customer, webhook, django_capture_on_commit_callbacks)
    fake_stripe.refund_status = "succeeded"
    fake_stripe.fail_next_connection()
    with django_capture_on_commit_callbacks(execute=True):
        refund = refund_issue(order_id=order.id, staff=staff)
    refund.refresh_from_db()
    assert refund.status == Refund.Status.APPROVED
    assert refund.failure_message == (
        "The payment service could not be reached; the refund will be sent again."
    )

    assert refunds_resend_stuck() == 0  # too recent
    with (
        time_machine.travel(refund.decided_at + timedelta(minutes=11)),
        django_capture_on_commit_callbacks(execute=True),
    ):
        assert refunds_resend_stuck() == 1

    refund.refresh_from_db()
    order.refresh_from_db()
    assert refund.status == Refund.Status.SUCCEEDED
    assert order.status == Order.Status.REFUNDED
    keys = {c.idempotency_key for c in fake_stripe.calls_to("/v1/refunds")}
    assert keys == {f"refund-{refund.id}"}


def test_payment_succeeded_is_idempotent_for_stripe(
    customer, fake_stripe, django_capture_on_commit_callbacks
):
    order = payable_order(customer)
    payment = payment_start(order_id=order.id, customer=customer)
    order_cancel(order_id=order.id, customer=customer)

    with django_capture_on_commit_callbacks(execute=True):
        payment_succeeded(payment_id=payment.id)
        payment_succeeded(payment_id=payment.id)

    assert Refund.objects.count() == 1
    assert len(fake_stripe.calls_to("/v1/refunds")) == 1
