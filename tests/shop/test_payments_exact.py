"""Exact outcomes of the payment services (shop/services/payments.py): which refunds the resend
sweep picks, what ``refund_send`` records for each provider answer, what a failed or refused
payment keeps, and every error's code, message and details. Written to kill the mutants
`make mutate` left alive there."""

import json
import time
from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from core.errors import ApplicationError
from core.models import Notification
from shop.models import Order, OrderEvent, Payment, Refund, WebhookEvent
from shop.services.orders import order_cancel
from shop.services.payments import (
    payment_confirm_sandbox,
    payment_failed,
    payment_start,
    payment_succeeded,
    refund_send,
    refunds_resend_stuck,
    stripe_webhook_handle,
)
from shop.services.refunds import refund_issue, refund_request
from tests.factories import StaffFactory
from tests.shop.factories_orders import paid
from tests.shop.factories_payments import PaymentFactory, payable_order
from tests.shop.stripe_fakes import FakeStripe, event, intent_obj, sign, use_fake_stripe

pytestmark = pytest.mark.django_db

T = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


def error_of(excinfo) -> tuple:
    error = excinfo.value
    return (type(error).__name__, error.status, error.code, error.message, error.details)


@pytest.fixture
def fake_stripe(settings, monkeypatch) -> FakeStripe:
    return use_fake_stripe(settings, monkeypatch)


def approved_refund(*, decided_at, created_at, status=Refund.Status.APPROVED, provider_ref=None):
    """An approved sandbox refund of a paid order, its send lost, with the given timestamps."""
    order = paid(mode="courier")
    refund = refund_issue(order_id=order.pk, staff=StaffFactory(), amount=100)
    Refund.objects.filter(pk=refund.pk).update(
        decided_at=decided_at, created_at=created_at, status=status, provider_ref=provider_ref
    )
    return refund


def status_of(refund) -> str:
    return Refund.objects.values_list("status", flat=True).get(pk=refund.pk)


def logged(caplog) -> list[tuple[str, str]]:
    """What this module logged for operators: (level, message)."""
    return [
        (r.levelname, r.getMessage()) for r in caplog.records if r.name == "shop.services.payments"
    ]


# --- the resend sweep ---------------------------------------------------------------------------
def test_the_sweep_resends_approved_refunds_decided_before_the_cutoff():
    old = T - timedelta(minutes=11)
    recent = T - timedelta(minutes=9)
    due = approved_refund(decided_at=old, created_at=old)
    at_cutoff = approved_refund(decided_at=T - timedelta(minutes=10), created_at=old)
    too_recent = approved_refund(decided_at=recent, created_at=old)
    with time_machine.travel(T, tick=False):
        assert refunds_resend_stuck() == 2
    assert (status_of(due), status_of(at_cutoff), status_of(too_recent)) == (
        "succeeded",
        "succeeded",
        "approved",
    )
    assert Refund.objects.get(pk=due.pk).provider_ref == f"sandbox_re_{due.pk}"


def test_the_sweep_uses_created_at_only_for_refunds_never_decided():
    old = T - timedelta(minutes=11)
    recent = T - timedelta(minutes=9)
    undecided_old = approved_refund(decided_at=None, created_at=old)
    undecided_recent = approved_refund(decided_at=None, created_at=recent)
    with time_machine.travel(T, tick=False):
        assert refunds_resend_stuck() == 1
    assert (status_of(undecided_old), status_of(undecided_recent)) == ("succeeded", "approved")


def test_the_sweep_leaves_refunds_not_approved_or_already_sent():
    old = T - timedelta(hours=1)
    requested = approved_refund(decided_at=old, created_at=old, status=Refund.Status.REQUESTED)
    failed = approved_refund(decided_at=old, created_at=old, status=Refund.Status.FAILED)
    sent = approved_refund(decided_at=old, created_at=old, provider_ref="sandbox_re_sent")
    with time_machine.travel(T, tick=False):
        assert refunds_resend_stuck() == 0
    assert (status_of(requested), status_of(failed), status_of(sent)) == (
        "requested",
        "failed",
        "approved",
    )


def test_the_sweep_takes_its_age_limit():
    refund = approved_refund(decided_at=T - timedelta(minutes=3), created_at=T)
    with time_machine.travel(T, tick=False):
        assert refunds_resend_stuck(older_than=timedelta(minutes=5)) == 0
        assert refunds_resend_stuck(older_than=timedelta(minutes=2)) == 1
    assert status_of(refund) == "succeeded"


def test_the_sweep_counts_only_refunds_it_could_send(fake_stripe, monkeypatch, caplog):
    old = T - timedelta(hours=1)
    first = approved_refund(decided_at=old, created_at=old)
    second = approved_refund(decided_at=old, created_at=old)
    sent: list[int] = []

    def flaky_send(*, refund_id):
        if refund_id == first.pk:
            raise RuntimeError("broken refund")
        sent.append(refund_id)

    monkeypatch.setattr("shop.services.payments.refund_send", flaky_send)
    with time_machine.travel(T, tick=False):
        assert refunds_resend_stuck() == 1
    assert sent == [second.pk]
    assert logged(caplog) == [("ERROR", f"resending refund {first.pk} failed")]
    assert caplog.records[-1].exc_info[1].args == ("broken refund",)


# --- refund_send --------------------------------------------------------------------------------
def test_sending_an_unknown_refund_is_not_found():
    with pytest.raises(ApplicationError) as excinfo:
        refund_send(refund_id=10**9)
    assert error_of(excinfo) == ("NotFound", 404, "not_found", "No such refund.", {})


def test_a_refund_not_approved_is_not_sent():
    order = paid(mode="courier")
    refund = refund_request(order_id=order.pk, customer=order.customer)
    assert refund_send(refund_id=refund.pk).status == "requested"
    refund.refresh_from_db()
    assert (refund.status, refund.provider_ref) == ("requested", None)


def test_a_refund_without_a_collected_payment_fails():
    order = paid(mode="courier")
    refund = refund_issue(order_id=order.pk, staff=StaffFactory(), amount=100)
    Payment.objects.filter(order=order).update(status=Payment.Status.CANCELED)
    result = refund_send(refund_id=refund.pk)
    assert (result.status, result.failure_message, result.provider_ref) == (
        "failed",
        "There is no collected payment to refund.",
        None,
    )


def test_a_refund_of_a_payment_without_provider_ref_fails():
    order = paid(mode="courier")
    refund = refund_issue(order_id=order.pk, staff=StaffFactory(), amount=100)
    Payment.objects.filter(order=order).update(provider_ref="")
    result = refund_send(refund_id=refund.pk)
    assert (result.status, result.failure_message) == (
        "failed",
        "There is no collected payment to refund.",
    )


def _stripe_paid_order(customer):
    order = payable_order(customer)
    payment = payment_start(order_id=order.pk, customer=customer)
    payment_succeeded(payment_id=payment.pk)
    return order, payment


def refund_failed_reasons(refund) -> list[str]:
    return list(
        OrderEvent.objects.filter(refund=refund, kind="refund_failed").values_list(
            "reason", flat=True
        )
    )


def test_a_refused_refund_fails_with_our_text_and_the_providers_for_operators(
    customer, fake_stripe, caplog
):
    order, _ = _stripe_paid_order(customer)
    refund = refund_issue(order_id=order.pk, staff=StaffFactory(), amount=100)
    fake_stripe.fail_next(400, "invalid_request_error", "Charge already refunded")
    result = refund_send(refund_id=refund.pk)
    assert (result.status, result.failure_message, result.provider_ref) == (
        "failed",
        "The payment service refused this refund; our staff will follow up.",
        None,
    )
    assert refund_failed_reasons(refund) == ["Charge already refunded"]
    assert logged(caplog) == [
        ("WARNING", f"refund {refund.pk}: refused by the provider: Charge already refunded")
    ]


def test_an_unreachable_provider_leaves_the_refund_approved_for_a_resend(
    customer, fake_stripe, caplog
):
    order, _ = _stripe_paid_order(customer)
    refund = refund_issue(order_id=order.pk, staff=StaffFactory(), amount=100)
    # another approved refund, not sent yet: neither its message nor its ref may change
    bystander = refund_issue(order_id=paid(mode="courier").pk, staff=StaffFactory(), amount=100)
    fake_stripe.fail_next_connection()
    result = refund_send(refund_id=refund.pk)
    assert (result.status, result.provider_ref, result.failure_message) == (
        "approved",
        None,
        "The payment service could not be reached; the refund will be sent again.",
    )
    assert refund_failed_reasons(refund) == []
    assert logged(caplog) == [
        (
            "WARNING",
            f"refund {refund.pk}: provider unavailable, left approved: Network is down",
        )
    ]
    # the resend goes through with the same key
    result = refund_send(refund_id=refund.pk)
    assert (result.status, result.provider_ref) == ("approved", f"re_test_{refund.pk}")
    bystander.refresh_from_db()
    assert (bystander.status, bystander.provider_ref, bystander.failure_message) == (
        "approved",
        None,
        "",
    )
    keys = [c.idempotency_key for c in fake_stripe.calls_to("/v1/refunds")]
    assert keys == [f"refund-{refund.pk}", f"refund-{refund.pk}"]


@pytest.mark.parametrize(
    ("answer", "status", "message"),
    [
        ("succeeded", "succeeded", ""),
        ("failed", "failed", "The payment service refused this refund; our staff will follow up."),
    ],
)
def test_the_providers_answer_is_recorded(
    customer, settings, monkeypatch, caplog, answer, status, message
):
    fake = use_fake_stripe(settings, monkeypatch, refund_status=answer)
    order, _ = _stripe_paid_order(customer)
    refund = refund_issue(order_id=order.pk, staff=StaffFactory(), amount=100)
    result = refund_send(refund_id=refund.pk)
    assert (result.status, result.provider_ref, result.failure_message) == (
        status,
        f"re_test_{refund.pk}",
        message,
    )
    assert len(fake.calls_to("/v1/refunds")) == 1
    assert refund_failed_reasons(refund) == (["Stripe: failed"] if answer == "failed" else [])
    assert logged(caplog) == (
        [("WARNING", f"refund {refund.pk}: failed at the provider: Stripe: failed")]
        if answer == "failed"
        else []
    )


# --- starting a payment ---------------------------------------------------------------------------
def test_an_order_with_nothing_to_pay_is_refused(customer):
    order = payable_order(customer, unit_price=0)
    with pytest.raises(ApplicationError) as excinfo:
        payment_start(order_id=order.pk, customer=customer)
    assert error_of(excinfo) == (
        "Conflict",
        409,
        "order_not_payable",
        "This order has nothing to pay.",
        {},
    )
    assert Payment.objects.count() == 0


def test_starting_records_the_payment_and_its_timeline_row(customer):
    order = payable_order(customer)
    payment = payment_start(order_id=order.pk, customer=customer)
    assert (payment.provider, payment.status, payment.amount, payment.currency) == (
        "sandbox",
        "pending",
        3980,
        "CNY",
    )
    assert payment.provider_ref
    assert list(
        OrderEvent.objects.filter(order=order).values_list(
            "kind", "actor_id", "from_status", "to_status", "reason", "payment_id", "amount"
        )
    ) == [
        (
            "payment_started",
            customer.user_id,
            "pending_payment",
            "pending_payment",
            "sandbox",
            payment.pk,
            3980,
        )
    ]
    # a second start returns the same payment
    assert payment_start(order_id=order.pk, customer=customer).pk == payment.pk
    assert Payment.objects.count() == 1


def test_an_order_of_one_fen_is_payable(customer):
    order = payable_order(customer, unit_price=1, quantity=1)
    payment = payment_start(order_id=order.pk, customer=customer)
    assert (payment.status, payment.amount) == ("pending", 1)


def test_a_pending_payment_of_another_provider_is_not_reused(customer, fake_stripe):
    order = payable_order(customer)
    sandbox = PaymentFactory(order=order)  # opened before the shop switched to Stripe
    started = payment_start(order_id=order.pk, customer=customer)
    assert started.pk != sandbox.pk
    assert (started.provider, started.provider_ref) == ("stripe", f"pi_test_{started.pk}")
    assert Payment.objects.get(pk=sandbox.pk).status == "pending"


def test_a_pending_payment_without_intent_is_opened_again(customer, fake_stripe):
    order = payable_order(customer)
    payment = PaymentFactory(order=order, provider="stripe", provider_ref=None)
    started = payment_start(order_id=order.pk, customer=customer)
    assert (started.pk, started.provider_ref, started.client_secret) == (
        payment.pk,
        f"pi_test_{payment.pk}",
        f"pi_test_{payment.pk}_secret_abc",
    )
    assert Payment.objects.count() == 1
    assert OrderEvent.objects.filter(order=order, kind="payment_started").count() == 0


@pytest.mark.parametrize(
    ("fail", "retryable", "message", "detail"),
    [
        ("connection", True, "The payment service could not be reached; please try again.", ""),
        ("refused", False, "The payment service could not open this payment.", "card_declined"),
    ],
)
def test_a_provider_failure_marks_the_payment_failed(
    customer, fake_stripe, caplog, fail, retryable, message, detail
):
    order = payable_order(customer)
    if fail == "connection":
        fake_stripe.fail_next_connection()
    else:
        fake_stripe.fail_next(402, "card_error", "Declined")
    with pytest.raises(ApplicationError) as excinfo:
        payment_start(order_id=order.pk, customer=customer)
    payment = Payment.objects.get()
    assert error_of(excinfo) == (
        "ApplicationError",
        502,
        "payment_provider_error",
        "The payment provider could not open this payment; please try again.",
        {"payment_id": payment.pk, "retryable": retryable},
    )
    assert (payment.status, payment.failure_message, payment.provider_ref) == (
        "failed",
        message,
        None,
    )
    assert payment.provider_detail.startswith(f"{detail or 'error'}: ")
    assert list(
        OrderEvent.objects.filter(order=order, kind="payment_failed").values_list(
            "from_status", "to_status", "reason", "payment_id", "amount"
        )
    ) == [("pending_payment", "pending_payment", "provider_error", payment.pk, 3980)]
    said = "Network is down" if fail == "connection" else "Declined"
    assert payment.provider_detail == f"{detail or 'error'}: {said}"
    assert logged(caplog) == [
        ("WARNING", f"payment {payment.pk}: provider refused to open it: {said}")
    ]


def test_what_the_provider_said_is_kept_up_to_4000_characters(customer, fake_stripe):
    fake_stripe.fail_next(402, "card_error", "x" * 5000)
    with pytest.raises(ApplicationError):
        payment_start(order_id=payable_order(customer).pk, customer=customer)
    refused = Payment.objects.get()
    assert refused.provider_detail == "card_declined: " + "x" * 3985
    declined = payment_start(order_id=payable_order(customer).pk, customer=customer)
    payment_failed(payment_id=declined.pk, decline_code="card_declined", detail="y" * 5000)
    declined.refresh_from_db()
    assert declined.provider_detail == "card_declined: " + "y" * 3985


# --- settling -----------------------------------------------------------------------------------
def test_a_decline_keeps_our_text_for_the_customer_and_the_providers_for_operators(customer):
    order = payable_order(customer)
    payment = payment_start(order_id=order.pk, customer=customer)
    result = payment_failed(
        payment_id=payment.pk, decline_code="insufficient_funds", detail="balance 0"
    )
    assert (result.status, result.failure_message, result.provider_detail) == (
        "failed",
        "Your card has insufficient funds.",
        "insufficient_funds: balance 0",
    )
    assert list(
        Notification.objects.filter(user=customer.user).values_list(
            "kind", "title", "body", "data", "dedupe_key"
        )
    ) == [
        (
            "payment_failed",
            "Payment failed",
            f"The payment for order {order.number} did not go through: "
            "Your card has insufficient funds.",
            {"order_id": order.pk, "payment_id": payment.pk},
            f"payment_failed:{payment.pk}",
        )
    ]
    assert list(
        OrderEvent.objects.filter(order=order, kind="payment_failed").values_list(
            "reason", "payment_id", "amount"
        )
    ) == [("insufficient_funds", payment.pk, 3980)]
    # a second decline changes nothing
    payment_failed(payment_id=payment.pk, decline_code="card_declined")
    payment.refresh_from_db()
    assert payment.failure_message == "Your card has insufficient funds."
    assert Notification.objects.filter(user=customer.user).count() == 1


def test_an_unknown_decline_code_reads_as_declined(customer):
    order = payable_order(customer)
    payment = payment_start(order_id=order.pk, customer=customer)
    result = payment_failed(payment_id=payment.pk)
    assert (result.failure_message, result.provider_detail) == (
        "The payment was declined.",
        "declined: ",
    )


def test_a_late_payment_is_refunded_in_full(customer, django_capture_on_commit_callbacks, caplog):
    order = payable_order(customer)
    payment = payment_start(order_id=order.pk, customer=customer)
    payment_failed(payment_id=payment.pk, decline_code="card_declined")
    order_cancel(order_id=order.pk, customer=customer)
    with time_machine.travel(T, tick=False), django_capture_on_commit_callbacks(execute=True):
        result = payment_succeeded(payment_id=payment.pk)
    assert (result.status, result.succeeded_at, result.failure_message) == ("succeeded", T, "")
    refund = Refund.objects.get()
    assert (refund.payment_id, refund.amount, refund.reason, refund.status) == (
        payment.pk,
        3980,
        "late_payment",
        "succeeded",
    )
    assert list(
        OrderEvent.objects.filter(order=order, kind="payment_unapplied").values_list(
            "from_status", "to_status", "reason", "payment_id", "amount"
        )
    ) == [("cancelled", "cancelled", "", payment.pk, 3980)]
    assert Order.objects.get(pk=order.pk).status == "cancelled"
    assert logged(caplog) == [
        ("INFO", f"payment {payment.pk} not applied to order {order.pk}: refund {refund.pk}")
    ]


def test_confirming_someone_elses_or_an_unknown_sandbox_payment_is_not_found(customer):
    order = payable_order()
    payment = PaymentFactory(order=order)
    for payment_id, who in [(payment.pk, customer), (10**9, None)]:
        with pytest.raises(ApplicationError) as excinfo:
            payment_confirm_sandbox(payment_id=payment_id, customer=who)
        assert error_of(excinfo) == ("NotFound", 404, "not_found", "No such payment.", {})


def test_only_sandbox_payments_are_confirmed_this_way(settings):
    payment = PaymentFactory(provider="stripe")
    with pytest.raises(ApplicationError) as excinfo:
        payment_confirm_sandbox(payment_id=payment.pk)
    expected = (
        "Conflict",
        409,
        "not_sandbox",
        "Only sandbox payments can be confirmed this way.",
        {},
    )
    assert error_of(excinfo) == expected
    settings.PAYMENT_PROVIDER = "stripe"
    sandbox = PaymentFactory()
    with pytest.raises(ApplicationError) as excinfo:
        payment_confirm_sandbox(payment_id=sandbox.pk)
    assert error_of(excinfo) == expected


def test_a_sandbox_failure_after_success_is_refused(customer):
    order = payable_order(customer)
    payment = payment_start(order_id=order.pk, customer=customer)
    failed = payment_confirm_sandbox(payment_id=payment.pk, customer=customer, outcome="fail")
    assert (failed.status, failed.failure_message, failed.provider_detail) == (
        "failed",
        "Declined by the sandbox.",
        "sandbox_declined: outcome=fail",
    )
    payment_confirm_sandbox(payment_id=payment.pk, customer=customer)
    with pytest.raises(ApplicationError) as excinfo:
        payment_confirm_sandbox(payment_id=payment.pk, customer=customer, outcome="fail")
    assert error_of(excinfo) == (
        "Conflict",
        409,
        "payment_already_succeeded",
        "This payment has already succeeded.",
        {},
    )
    assert Payment.objects.get(pk=payment.pk).status == "succeeded"


# --- Stripe webhooks ----------------------------------------------------------------------------
def _handle(payload: bytes, signature: str):
    with pytest.raises(ApplicationError) as excinfo:
        stripe_webhook_handle(payload=payload, signature=signature)
    return error_of(excinfo)


def _invalid(message: str) -> tuple:
    return ("ApplicationError", 400, "invalid_signature", message, {})


def test_each_signature_refusal_says_why(fake_stripe):
    payload = event("evt_sig", "payment_intent.succeeded", {"id": "pi_x"})
    now = int(time.time())
    with time_machine.travel(now, tick=False):
        assert _handle(payload, sign(payload, secret="whsec_other")) == _invalid(
            "The Stripe-Signature header does not match the payload."
        )
        twice = sign(payload, timestamp=now)
        assert _handle(payload, f"t={now}," + twice) == _invalid(
            "The Stripe-Signature header has no single timestamp."
        )
        assert _handle(payload, sign(payload, timestamp=now + 301)) == _invalid(
            "The Stripe-Signature timestamp is in the future."
        )
        # exactly the tolerance ahead is still accepted
        assert (
            stripe_webhook_handle(
                payload=payload, signature=sign(payload, timestamp=now + 300)
            ).event_id
            == "evt_sig"
        )
    assert WebhookEvent.objects.count() == 1


@pytest.mark.parametrize(
    "body",
    [
        b"[]",
        b"not json",
        json.dumps({"id": 1, "type": "t", "data": {"object": {}}}).encode(),
        json.dumps({"id": "evt", "type": 2, "data": {"object": {}}}).encode(),
        json.dumps({"id": "evt", "type": "t", "data": []}).encode(),
        json.dumps({"id": "evt", "type": "t", "data": {"object": "x"}}).encode(),
    ],
)
def test_a_signed_body_that_is_not_an_event_is_refused(fake_stripe, body):
    assert _handle(body, sign(body)) == (
        "ApplicationError",
        400,
        "invalid_payload",
        "The event is not a Stripe event object.",
        {},
    )
    assert WebhookEvent.objects.count() == 0


def test_a_stored_event_is_processed_once(customer, fake_stripe):
    order = payable_order(customer)
    payment = payment_start(order_id=order.pk, customer=customer)
    payload = event("evt_ok", "payment_intent.succeeded", intent_obj(payment))
    with time_machine.travel(T, tick=False):
        stored = stripe_webhook_handle(payload=payload, signature=sign(payload))
    assert (stored.provider, stored.event_id, stored.event_type, stored.processed_at) == (
        "stripe",
        "evt_ok",
        "payment_intent.succeeded",
        T,
    )
    assert stored.payload == json.loads(payload)
    assert stripe_webhook_handle(payload=payload, signature=sign(payload)) is None
    assert Payment.objects.get(pk=payment.pk).status == "succeeded"
