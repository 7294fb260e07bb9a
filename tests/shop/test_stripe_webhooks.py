"""POST /api/v1/webhooks/stripe: signature, de-duplication, and events in any order."""

import itertools
import json
import time
from datetime import timedelta

import pytest
import time_machine
from django.test import Client

from core.models import Notification
from shop.models import (
    Order,
    OrderEvent,
    Payment,
    ReconciliationDiscrepancy,
    Refund,
    WebhookEvent,
)
from shop.services.orders import orders_expire_due
from shop.services.payments import payment_start
from tests.shop.factories_payments import payable_order
from tests.shop.stripe_fakes import (
    WEBHOOK_SECRET,
    FakeStripe,
    charge_refunded_obj,
    event,
    intent_obj,
    post_event,
    refund_obj,
    sign,
    use_fake_stripe,
)


@pytest.fixture
def fake_stripe(settings, monkeypatch) -> FakeStripe:
    return use_fake_stripe(settings, monkeypatch)


@pytest.fixture
def webhook() -> Client:
    # Stripe sends no CSRF token: the endpoint must not need one.
    return Client(enforce_csrf_checks=True)


@pytest.fixture
def pending_payment(customer, fake_stripe) -> Payment:
    order = payable_order(customer)
    return payment_start(order_id=order.id, customer=customer)


def deliver(webhook, payload, capture, signature="sign"):
    with capture(execute=True):
        return post_event(webhook, payload, signature)


# --- signature -------------------------------------------------------------------------------
def assert_refused(response):
    assert response.status_code == 400, response.content
    assert response.json()["error"]["code"] == "invalid_signature"
    assert not WebhookEvent.objects.exists()
    assert Payment.objects.get().status == Payment.Status.PENDING


def test_missing_signature_is_refused(webhook, pending_payment):
    payload = event("evt_1", "payment_intent.succeeded", intent_obj(pending_payment))

    assert_refused(post_event(webhook, payload, signature=None))


def test_signature_with_another_secret_is_refused(webhook, pending_payment):
    payload = event("evt_1", "payment_intent.succeeded", intent_obj(pending_payment))

    assert_refused(post_event(webhook, payload, sign(payload, secret="whsec_other")))


def test_tampered_payload_is_refused(webhook, pending_payment):
    payload = event("evt_1", "payment_intent.succeeded", intent_obj(pending_payment))
    signature = sign(payload)
    tampered = payload.replace(b'"amount": 3980', b'"amount": 1')

    assert_refused(post_event(webhook, tampered, signature))


@pytest.mark.parametrize("garbage", ["", "nonsense", "t=abc,v1=00", "t=123", "v1=deadbeef"])
def test_malformed_signature_header_is_refused(webhook, pending_payment, garbage):
    payload = event("evt_1", "payment_intent.succeeded", intent_obj(pending_payment))

    assert_refused(post_event(webhook, payload, garbage or None))


def test_stale_timestamp_is_refused(webhook, pending_payment):
    payload = event("evt_1", "payment_intent.succeeded", intent_obj(pending_payment))

    assert_refused(post_event(webhook, payload, sign(payload, timestamp=int(time.time()) - 360)))


def test_timestamp_far_in_the_future_is_refused(webhook, pending_payment):
    payload = event("evt_1", "payment_intent.succeeded", intent_obj(pending_payment))

    assert_refused(post_event(webhook, payload, sign(payload, timestamp=int(time.time()) + 360)))


def test_small_clock_skew_is_accepted(webhook, pending_payment, django_capture_on_commit_callbacks):
    payload = event("evt_1", "payment_intent.succeeded", intent_obj(pending_payment))
    now = int(time.time())

    ahead = deliver(
        webhook, payload, django_capture_on_commit_callbacks, sign(payload, timestamp=now + 60)
    )
    behind = deliver(
        webhook, payload, django_capture_on_commit_callbacks, sign(payload, timestamp=now - 240)
    )

    assert (ahead.status_code, behind.status_code) == (200, 200)


def test_signature_is_checked_with_a_frozen_clock(
    webhook, pending_payment, django_capture_on_commit_callbacks
):
    payload = event("evt_1", "payment_intent.succeeded", intent_obj(pending_payment))
    signed_at = int(time.time())
    signature = sign(payload, timestamp=signed_at)

    with time_machine.travel(signed_at + 301, tick=False):
        late = post_event(webhook, payload, signature)
    with time_machine.travel(signed_at - 301, tick=False):
        early = post_event(webhook, payload, signature)

    assert (late.status_code, early.status_code) == (400, 400)
    assert not WebhookEvent.objects.exists()


def test_no_webhook_secret_configured_refuses_everything(webhook, pending_payment, settings):
    settings.STRIPE_WEBHOOK_SECRET = ""
    payload = event("evt_1", "payment_intent.succeeded", intent_obj(pending_payment))

    assert_refused(post_event(webhook, payload, sign(payload, secret="")))


def test_signed_garbage_is_400_invalid_payload(webhook, pending_payment):
    for payload in (b"not json", b"[]", json.dumps({"id": "evt_x"}).encode()):
        response = post_event(webhook, payload)

        assert response.status_code == 400
        assert response.json()["error"]["code"] == "invalid_payload"
    assert not WebhookEvent.objects.exists()


# --- storing and de-duplicating --------------------------------------------------------------
def test_payment_intent_succeeded_pays_the_order(
    webhook, pending_payment, customer, django_capture_on_commit_callbacks
):
    payload = event("evt_ok", "payment_intent.succeeded", intent_obj(pending_payment))

    response = deliver(webhook, payload, django_capture_on_commit_callbacks)

    assert response.status_code == 200
    assert response.json() == {"received": True, "duplicate": False}
    pending_payment.refresh_from_db()
    assert pending_payment.status == Payment.Status.SUCCEEDED
    order = Order.objects.get()
    assert order.status == Order.Status.PAID and order.paid_payment_id == pending_payment.id
    stored = WebhookEvent.objects.get()
    assert (stored.provider, stored.event_id, stored.event_type) == (
        "stripe",
        "evt_ok",
        "payment_intent.succeeded",
    )
    assert stored.payload == json.loads(payload)
    assert stored.processed_at is not None


def test_a_redelivered_event_is_a_no_op(
    webhook, pending_payment, customer, django_capture_on_commit_callbacks
):
    payload = event("evt_ok", "payment_intent.succeeded", intent_obj(pending_payment))
    deliver(webhook, payload, django_capture_on_commit_callbacks)

    again = deliver(webhook, payload, django_capture_on_commit_callbacks)

    assert again.status_code == 200
    assert again.json() == {"received": True, "duplicate": True}
    assert WebhookEvent.objects.count() == 1
    assert Notification.objects.filter(user=customer.user, kind="order_paid").count() == 1


def test_unknown_event_types_are_stored_and_acknowledged(
    webhook, db, fake_stripe, django_capture_on_commit_callbacks
):
    payload = event("evt_cust", "customer.created", {"id": "cus_1", "object": "customer"})

    response = deliver(webhook, payload, django_capture_on_commit_callbacks)

    assert response.status_code == 200
    stored = WebhookEvent.objects.get()
    assert stored.event_type == "customer.created"
    assert stored.processed_at is not None


def test_success_of_an_unknown_payment_intent_is_stored_once_and_deduplicated(
    webhook, pending_payment, staff, django_capture_on_commit_callbacks
):
    obj = intent_obj(pending_payment, intent_id="pi_not_ours")
    obj["metadata"] = {}
    payload = event("evt_x", "payment_intent.succeeded", obj)

    first = deliver(webhook, payload, django_capture_on_commit_callbacks)
    again = deliver(webhook, payload, django_capture_on_commit_callbacks)

    assert first.json() == {"received": True, "duplicate": False}
    assert again.json() == {"received": True, "duplicate": True}
    stored = WebhookEvent.objects.get()
    assert (stored.event_id, stored.processed_at is not None) == ("evt_x", True)
    pending_payment.refresh_from_db()
    assert pending_payment.status == Payment.Status.PENDING
    # money we cannot match is left to the operators, once
    discrepancy = ReconciliationDiscrepancy.objects.get()
    assert (discrepancy.kind, discrepancy.provider_ref, discrepancy.amount) == (
        "unknown_payment",
        "pi_not_ours",
        pending_payment.amount,
    )
    assert Notification.objects.filter(user=staff, kind="reconciliation_discrepancy").count() == 1


def test_payment_found_by_metadata_when_its_intent_id_was_not_recorded(
    webhook, pending_payment, django_capture_on_commit_callbacks
):
    intent_id = pending_payment.provider_ref
    Payment.objects.filter(pk=pending_payment.pk).update(provider_ref=None, client_secret="")

    deliver(
        webhook,
        event(
            "evt_ok", "payment_intent.succeeded", intent_obj(pending_payment, intent_id=intent_id)
        ),
        django_capture_on_commit_callbacks,
    )

    pending_payment.refresh_from_db()
    assert pending_payment.status == Payment.Status.SUCCEEDED
    assert pending_payment.provider_ref == intent_id


def test_amount_mismatch_is_not_applied(
    webhook, pending_payment, django_capture_on_commit_callbacks
):
    obj = intent_obj(pending_payment)
    obj["amount"] = obj["amount_received"] = 1

    deliver(
        webhook,
        event("evt_odd", "payment_intent.succeeded", obj),
        django_capture_on_commit_callbacks,
    )

    pending_payment.refresh_from_db()
    assert pending_payment.status == Payment.Status.PENDING
    assert WebhookEvent.objects.get().processed_at is None


def test_payment_failed_marks_the_payment_and_tells_the_customer(
    webhook, pending_payment, customer, django_capture_on_commit_callbacks
):
    obj = intent_obj(
        pending_payment, status="requires_payment_method", error="Your card was declined."
    )

    deliver(
        webhook,
        event("evt_fail", "payment_intent.payment_failed", obj),
        django_capture_on_commit_callbacks,
    )

    pending_payment.refresh_from_db()
    assert pending_payment.status == Payment.Status.FAILED
    assert pending_payment.failure_message == "Your card was declined."
    assert (
        Notification.objects.get(user=customer.user, kind="payment_failed").title
        == "Payment failed"
    )
    assert Order.objects.get().status == Order.Status.PENDING_PAYMENT


def test_success_after_a_failed_attempt_on_the_same_intent_pays(
    webhook, pending_payment, django_capture_on_commit_callbacks
):
    failed = intent_obj(pending_payment, status="requires_payment_method", error="Declined")
    deliver(
        webhook,
        event("evt_fail", "payment_intent.payment_failed", failed),
        django_capture_on_commit_callbacks,
    )

    deliver(
        webhook,
        event("evt_ok", "payment_intent.succeeded", intent_obj(pending_payment)),
        django_capture_on_commit_callbacks,
    )

    pending_payment.refresh_from_db()
    assert pending_payment.status == Payment.Status.SUCCEEDED
    assert Order.objects.get().status == Order.Status.PAID


def test_a_late_failure_report_does_not_undo_a_success(
    webhook, pending_payment, customer, django_capture_on_commit_callbacks
):
    deliver(
        webhook,
        event("evt_ok", "payment_intent.succeeded", intent_obj(pending_payment)),
        django_capture_on_commit_callbacks,
    )

    failed = intent_obj(pending_payment, status="requires_payment_method", error="Declined")
    deliver(
        webhook,
        event("evt_fail", "payment_intent.payment_failed", failed),
        django_capture_on_commit_callbacks,
    )

    pending_payment.refresh_from_db()
    assert pending_payment.status == Payment.Status.SUCCEEDED
    assert not Notification.objects.filter(user=customer.user, kind="payment_failed").exists()


def test_refund_event_found_by_metadata_before_its_id_was_recorded(
    webhook, pending_payment, staff, django_capture_on_commit_callbacks
):
    from shop.services.refunds import refund_issue

    deliver(
        webhook,
        event("evt_ok", "payment_intent.succeeded", intent_obj(pending_payment)),
        django_capture_on_commit_callbacks,
    )
    # Approved, but the provider call's answer was never recorded (the worker died).
    refund = refund_issue(order_id=pending_payment.order_id, staff=staff)

    obj = refund_obj("re_live_1", pending_payment.provider_ref, refund.amount, refund_id=refund.id)
    deliver(webhook, event("evt_re", "refund.updated", obj), django_capture_on_commit_callbacks)

    refund.refresh_from_db()
    assert (refund.status, refund.provider_ref) == (Refund.Status.SUCCEEDED, "re_live_1")
    assert Order.objects.get().status == Order.Status.REFUNDED


def test_refund_failure_reported_by_stripe(
    webhook, pending_payment, staff, fake_stripe, django_capture_on_commit_callbacks
):
    from shop.services.refunds import refund_issue

    deliver(
        webhook,
        event("evt_ok", "payment_intent.succeeded", intent_obj(pending_payment)),
        django_capture_on_commit_callbacks,
    )
    with django_capture_on_commit_callbacks(execute=True):
        refund = refund_issue(order_id=pending_payment.order_id, staff=staff)
    refund.refresh_from_db()

    obj = refund_obj(
        refund.provider_ref,
        pending_payment.provider_ref,
        refund.amount,
        refund_id=refund.id,
        status="failed",
    )
    obj["failure_reason"] = "expired_or_canceled_card"
    deliver(webhook, event("evt_re_fail", "refund.failed", obj), django_capture_on_commit_callbacks)

    refund.refresh_from_db()
    assert refund.status == Refund.Status.FAILED
    assert refund.failure_message == (
        "The payment service refused this refund; our staff will follow up."
    )
    failed = OrderEvent.objects.get(refund=refund, kind=OrderEvent.Kind.REFUND_FAILED)
    assert failed.reason == "Stripe: expired_or_canceled_card"
    assert Order.objects.get().status == Order.Status.PAID


# --- any delivery order, each event delivered three times -----------------------------------
LATE_REFUND_REF = "re_test_late"


def late_payment_events(payment: Payment) -> list[bytes]:
    refund = refund_obj(LATE_REFUND_REF, payment.provider_ref, payment.amount)
    return [
        event("evt_pi_succeeded", "payment_intent.succeeded", intent_obj(payment)),
        event(
            "evt_charge_refunded",
            "charge.refunded",
            charge_refunded_obj(payment.provider_ref, payment.amount, [refund]),
        ),
        event("evt_refund_updated", "refund.updated", refund),
    ]


def late_payment_state(payment: Payment, order: Order) -> dict:
    payment.refresh_from_db()
    order.refresh_from_db()
    return {
        "payment": (payment.status, payment.refunded_amount),
        "order": (order.status, order.paid_payment_id, order.refunded_amount),
        "refunds": list(
            Refund.objects.values_list("payment_id", "reason", "status", "amount", "provider_ref")
        ),
        "events": WebhookEvent.objects.count(),
        "unprocessed": WebhookEvent.objects.filter(processed_at__isnull=True).count(),
        "notifications": sorted(
            Notification.objects.filter(user=order.customer.user).values_list("kind", flat=True)
        ),
    }


@pytest.mark.parametrize("order_of_events", list(itertools.permutations(range(3))))
def test_late_payment_events_in_any_order_settle_to_the_same_state(
    order_of_events, customer, settings, monkeypatch, webhook, django_capture_on_commit_callbacks
):
    # A payment for an order that expired: Stripe reports the success, and the refund we send
    # for it, in whatever order (and as often) it likes.
    fake = use_fake_stripe(settings, monkeypatch, refund_ids=[LATE_REFUND_REF])
    order = payable_order(customer)
    payment = payment_start(order_id=order.id, customer=customer)
    with (
        time_machine.travel(order.payment_deadline + timedelta(seconds=1)),
        django_capture_on_commit_callbacks(execute=True),
    ):
        orders_expire_due()
    payloads = late_payment_events(payment)
    expected = {
        "payment": (Payment.Status.SUCCEEDED, payment.amount),
        "order": (Order.Status.CANCELLED, None, 0),
        "refunds": [
            (
                payment.id,
                Refund.Reason.LATE_PAYMENT,
                Refund.Status.SUCCEEDED,
                payment.amount,
                LATE_REFUND_REF,
            ),
        ],
        "events": 3,
        "unprocessed": 0,
        "notifications": ["order_cancelled", "refund_succeeded"],
    }

    for index in order_of_events:
        assert (
            deliver(webhook, payloads[index], django_capture_on_commit_callbacks).status_code == 200
        )
    after_first_delivery = late_payment_state(payment, order)
    for index in list(order_of_events) * 2:
        assert (
            deliver(webhook, payloads[index], django_capture_on_commit_callbacks).status_code == 200
        )

    assert after_first_delivery == expected
    assert late_payment_state(payment, order) == expected
    refund_id = Refund.objects.get().id
    assert {c.idempotency_key for c in fake.calls_to("/v1/refunds")} == {f"refund-{refund_id}"}


def test_a_refund_event_alone_proves_the_payment_succeeded(
    customer, settings, monkeypatch, webhook, django_capture_on_commit_callbacks
):
    # payment_intent.succeeded is still being retried by Stripe; the refund event came first.
    use_fake_stripe(settings, monkeypatch, refund_ids=[LATE_REFUND_REF])
    order = payable_order(customer)
    payment = payment_start(order_id=order.id, customer=customer)
    with (
        time_machine.travel(order.payment_deadline + timedelta(seconds=1)),
        django_capture_on_commit_callbacks(execute=True),
    ):
        orders_expire_due()

    deliver(webhook, late_payment_events(payment)[2], django_capture_on_commit_callbacks)

    state = late_payment_state(payment, order)
    assert state["payment"] == (Payment.Status.SUCCEEDED, payment.amount)
    assert state["refunds"][0][2] == Refund.Status.SUCCEEDED
    assert state["unprocessed"] == 0


@pytest.mark.parametrize("order_of_events", list(itertools.permutations(range(2))))
def test_refund_events_of_a_staff_refund_in_any_order(
    order_of_events,
    webhook,
    pending_payment,
    staff,
    fake_stripe,
    django_capture_on_commit_callbacks,
):
    from shop.services.refunds import refund_issue

    deliver(
        webhook,
        event("evt_ok", "payment_intent.succeeded", intent_obj(pending_payment)),
        django_capture_on_commit_callbacks,
    )
    with django_capture_on_commit_callbacks(execute=True):
        refund = refund_issue(order_id=pending_payment.order_id, staff=staff, amount=1000)
    refund.refresh_from_db()
    obj = refund_obj(refund.provider_ref, pending_payment.provider_ref, 1000, refund_id=refund.id)
    payloads = [
        event(
            "evt_charge_refunded",
            "charge.refunded",
            charge_refunded_obj(pending_payment.provider_ref, pending_payment.amount, [obj]),
        ),
        event("evt_refund_updated", "refund.updated", obj),
    ]

    for index in list(order_of_events) * 3:
        deliver(webhook, payloads[index], django_capture_on_commit_callbacks)

    refund.refresh_from_db()
    order = Order.objects.get()
    assert refund.status == Refund.Status.SUCCEEDED
    assert (order.status, order.refunded_amount) == (Order.Status.PARTIALLY_REFUNDED, 1000)
    assert WebhookEvent.objects.filter(processed_at__isnull=False).count() == 3


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_redeliveries_apply_once(settings, monkeypatch):
    from tests.conftest import run_in_threads
    from tests.factories import CustomerFactory

    use_fake_stripe(settings, monkeypatch)
    customer = CustomerFactory()
    order = payable_order(customer)
    payment = payment_start(order_id=order.id, customer=customer)
    payload = event("evt_race", "payment_intent.succeeded", intent_obj(payment))
    signature = sign(payload, WEBHOOK_SECRET)

    results = run_in_threads(8, lambda i: post_event(Client(), payload, signature).status_code)

    assert results == [200] * 8
    assert WebhookEvent.objects.count() == 1
    order.refresh_from_db()
    assert order.status == Order.Status.PAID
    assert Notification.objects.filter(user=customer.user, kind="order_paid").count() == 1


def test_admin_finds_webhook_events_by_id_and_type(
    staff, webhook, pending_payment, django_capture_on_commit_callbacks
):
    deliver(
        webhook,
        event("evt_findme", "payment_intent.succeeded", intent_obj(pending_payment)),
        django_capture_on_commit_callbacks,
    )
    deliver(
        webhook,
        event("evt_other", "customer.created", {"id": "cus_1"}),
        django_capture_on_commit_callbacks,
    )
    staff.refresh_from_db()  # tests.factories never saves the password it sets
    admin = Client()
    admin.force_login(staff)

    by_id = admin.get("/admin/shop/webhookevent/", {"q": "evt_findme"}).content.decode()
    by_type = admin.get("/admin/shop/webhookevent/", {"q": "customer.created"}).content.decode()
    detail = admin.get(
        f"/admin/shop/webhookevent/{WebhookEvent.objects.get(event_id='evt_findme').pk}/change/"
    )

    assert "evt_findme" in by_id and "evt_other" not in by_id
    assert "evt_other" in by_type and "evt_findme" not in by_type
    assert detail.status_code == 200
    assert admin.get("/admin/shop/webhookevent/add/").status_code == 403
