"""Payments: start a payment, settle it (sandbox confirm, Stripe webhook), refund through the
provider.

Provider calls never run under a row lock: the attempt is recorded and committed first, the
provider is called with an idempotency key derived from our id, then the result is recorded.
Whatever reports a payment's success (sandbox confirm, admin action, Stripe webhook) goes through
``payment_succeeded``, so every path produces the same internal events.
"""

import json
import logging
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any, Literal

import stripe
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from core.errors import ApplicationError, Conflict, NotFound
from core.notifications import notify
from core.side_effects import enqueue_on_commit
from shop import locks, tasks
from shop.error_codes import PaymentErrorCode
from shop.models import (
    Customer,
    Order,
    OrderEvent,
    Payment,
    ReconciliationDiscrepancy,
    Refund,
    WebhookEvent,
)
from shop.payments import PaymentProviderError, get_provider
from shop.selectors.payments import payment_applied_for_order
from shop.services import orders, refunds
from shop.services.reconciliation import discrepancy_record
from shop.services.timeline import order_event_record

logger = logging.getLogger(__name__)

STRIPE = "stripe"
WEBHOOK_TOLERANCE_SECONDS = 300
# What a customer reads when a payment fails: stable texts of ours, keyed by the provider's
# decline code. What the provider said goes to ``Payment.provider_detail`` (operators) and logs.
DECLINE_MESSAGES = {
    "card_declined": "Your card was declined.",
    "generic_decline": "Your card was declined.",
    "insufficient_funds": "Your card has insufficient funds.",
    "expired_card": "Your card has expired.",
    "incorrect_cvc": "Your card's security code is incorrect.",
    "processing_error": "The payment could not be processed; please try again.",
    "authentication_required": "Your bank asked for an authentication that was not completed.",
    "sandbox_declined": "Declined by the sandbox.",
}
DECLINED = "The payment was declined."
PROVIDER_UNREACHABLE = "The payment service could not be reached; please try again."
PROVIDER_REFUSED = "The payment service could not open this payment."
# What a customer reads on a refund; the provider's own words go to logs and the timeline.
REFUND_RETRYING = "The payment service could not be reached; the refund will be sent again."
REFUND_REFUSED = "The payment service refused this refund; our staff will follow up."
REFUND_EVENT_TYPES = (
    "charge.refunded",
    "charge.refund.updated",
    "refund.created",
    "refund.updated",
    "refund.failed",
)


# --- Starting and settling payments ----------------------------------------------------------
def _lock_payment(payment_id: int) -> Payment:
    return locks.lock_payment(payment_id)


def payment_start(*, order_id: int, customer: Customer) -> Payment:
    """Open a payment for the customer's payable order with the configured provider.

    A pending payment of the same provider for the order is returned again (one PaymentIntent
    per order attempt, not one per click). Provider refusal: the payment is marked failed and
    ``payment_provider_error`` (502) is raised.
    """
    provider = get_provider()
    with transaction.atomic():
        # Concurrent starts for one order queue here, so they cannot open two payments.
        locks.lock_order(order_id)
        order = orders.order_get_payable(order_id=order_id, customer=customer)
        if order.total <= 0:
            raise Conflict(
                "This order has nothing to pay.", code=PaymentErrorCode.ORDER_NOT_PAYABLE
            )
        payment = (
            Payment.objects.filter(
                order=order, provider=provider.name, status=Payment.Status.PENDING
            )
            .order_by("id")
            .first()
        )
        if payment is not None and payment.provider_ref:
            return payment
        if payment is None:
            payment = Payment.objects.create(
                order=order, provider=provider.name, amount=order.total, currency=settings.CURRENCY
            )
            order_event_record(
                order=order,
                kind=OrderEvent.Kind.PAYMENT_STARTED,
                from_status=order.status,
                actor=customer.user,
                reason=provider.name,
                payment=payment,
                amount=payment.amount,
            )

    try:
        result = provider.create_payment(payment)
    except PaymentProviderError as exc:
        return _payment_start_failed(payment_id=payment.id, error=exc)

    with transaction.atomic():
        payment = _lock_payment(payment.id)
        if not payment.provider_ref:
            payment.provider_ref = result.provider_ref
            payment.client_secret = result.client_secret
            payment.save(update_fields=["provider_ref", "client_secret"])
    return payment


def _payment_start_failed(*, payment_id: int, error: PaymentProviderError) -> Payment:
    with transaction.atomic():
        payment = _lock_payment(payment_id)
        if payment.provider_ref:
            # A concurrent start for the same payment got through: use its result.
            return payment
        if payment.status == Payment.Status.PENDING:
            payment.status = Payment.Status.FAILED
            payment.failure_message = PROVIDER_UNREACHABLE if error.retryable else PROVIDER_REFUSED
            payment.provider_detail = f"{error.code or 'error'}: {error.message}"[:4000]
            payment.save(update_fields=["status", "failure_message", "provider_detail"])
            _payment_timeline(payment, OrderEvent.Kind.PAYMENT_FAILED, reason="provider_error")
    logger.warning("payment %s: provider refused to open it: %s", payment_id, error.message)
    raise ApplicationError(
        "The payment provider could not open this payment; please try again.",
        code=PaymentErrorCode.PAYMENT_PROVIDER_ERROR,
        status=502,
        details={"payment_id": payment_id, "retryable": error.retryable},
    )


def _payment_timeline(payment: Payment, kind: str, *, reason: str = "") -> None:
    order = Order.objects.only("status").get(pk=payment.order_id)
    order_event_record(
        order=order,
        kind=kind,
        from_status=order.status,
        reason=reason,
        payment=payment,
        amount=payment.amount,
    )


def payment_succeeded(*, payment_id: int) -> Payment:
    """The provider collected the money. Idempotent.

    pending/failed/canceled → succeeded, then the order is marked paid. If the order no longer
    takes it (cancelled or expired, or already paid by another payment), the payment is refunded
    in full: an approved refund is recorded and sent to the provider after commit.
    """
    with transaction.atomic():
        payment = _lock_payment(payment_id)
        if payment.status == Payment.Status.SUCCEEDED:
            return payment
        payment.status = Payment.Status.SUCCEEDED
        payment.succeeded_at = timezone.now()
        payment.failure_message = ""
        payment.save(update_fields=["status", "succeeded_at", "failure_message"])
        if not orders.order_mark_paid(order_id=payment.order_id, payment_id=payment.id):
            _payment_timeline(payment, OrderEvent.Kind.PAYMENT_UNAPPLIED)
            refund = refunds.refund_for_unapplied_payment(
                payment_id=payment.id, reason=Refund.Reason.LATE_PAYMENT
            )
            logger.info(
                "payment %s not applied to order %s: refund %s",
                payment.id,
                payment.order_id,
                refund.id,
            )
            if refund.status == Refund.Status.APPROVED:
                _refund_send_on_commit(refund.id)
    return payment


def payment_failed(*, payment_id: int, decline_code: str = "", detail: str = "") -> Payment:
    """The provider declined the payment. Only a pending payment changes (a late decline never
    undoes a success); the customer is told once. The customer reads our stable text for
    ``decline_code``; the provider's own ``detail`` is kept for operators only."""
    with transaction.atomic():
        payment = _lock_payment(payment_id)
        if payment.status != Payment.Status.PENDING:
            return payment
        payment.status = Payment.Status.FAILED
        payment.failure_message = DECLINE_MESSAGES.get(decline_code, DECLINED)
        payment.provider_detail = f"{decline_code or 'declined'}: {detail}"[:4000]
        payment.save(update_fields=["status", "failure_message", "provider_detail"])
        _payment_timeline(payment, OrderEvent.Kind.PAYMENT_FAILED, reason=decline_code)
        order = Order.objects.select_related("customer").get(pk=payment.order_id)
        notify(
            user_id=order.customer.user_id,
            kind="payment_failed",
            title="Payment failed",
            body=f"The payment for order {order.number} did not go through: "
            f"{payment.failure_message}",
            data={"order_id": order.id, "payment_id": payment.id},
            dedupe_key=f"payment_failed:{payment.id}",
        )
    return payment


def payment_confirm_sandbox(
    *,
    payment_id: int,
    customer: Customer | None = None,
    outcome: Literal["succeed", "fail"] = "succeed",
) -> Payment:
    """Settle a sandbox payment as the provider would (customer call or admin action)."""
    payment = Payment.objects.select_related("order").filter(pk=payment_id).first()
    if payment is None or (customer is not None and payment.order.customer_id != customer.id):
        raise NotFound("No such payment.")
    if payment.provider != Payment.Provider.SANDBOX or settings.PAYMENT_PROVIDER != "sandbox":
        raise Conflict(
            "Only sandbox payments can be confirmed this way.", code=PaymentErrorCode.NOT_SANDBOX
        )
    if outcome == "fail":
        if payment.status == Payment.Status.SUCCEEDED:
            raise Conflict(
                "This payment has already succeeded.",
                code=PaymentErrorCode.PAYMENT_ALREADY_SUCCEEDED,
            )
        return payment_failed(
            payment_id=payment.id, decline_code="sandbox_declined", detail="outcome=fail"
        )
    return payment_succeeded(payment_id=payment.id)


# --- Refunds through the provider ------------------------------------------------------------
def _refund_send_on_commit(refund_id: int) -> None:
    enqueue_on_commit(tasks.refund_send, refund_id)


def refund_send(*, refund_id: int) -> Refund:
    """Send an approved refund to the provider of the payment it returns. Idempotent: only an
    approved refund is sent, always with the idempotency key ``refund-{id}``.

    Provider says succeeded/failed → recorded now; pending → stays approved until the webhook
    reports it. A transient provider error leaves it approved (with the message) for a resend.
    """
    refund = Refund.objects.select_related("payment").filter(pk=refund_id).first()
    if refund is None:
        raise NotFound("No such refund.")
    if refund.status != Refund.Status.APPROVED:
        return refund
    payment = refund.payment or payment_applied_for_order(order_id=refund.order_id)
    if payment is None or payment.status != Payment.Status.SUCCEEDED or not payment.provider_ref:
        return refunds.refund_mark_failed(
            refund_id=refund.id, message="There is no collected payment to refund."
        )

    try:
        result = get_provider(payment.provider).refund(refund, payment)
    except PaymentProviderError as exc:
        if not exc.retryable:
            logger.warning("refund %s: refused by the provider: %s", refund.id, exc.message)
            return refunds.refund_mark_failed(
                refund_id=refund.id, message=REFUND_REFUSED, detail=exc.message
            )
        logger.warning("refund %s: provider unavailable, left approved: %s", refund.id, exc.message)
        Refund.objects.filter(pk=refund.id, status=Refund.Status.APPROVED).update(
            failure_message=REFUND_RETRYING
        )
        return Refund.objects.get(pk=refund.id)

    if result.provider_ref:
        Refund.objects.filter(pk=refund.id, provider_ref__isnull=True).update(
            provider_ref=result.provider_ref
        )
    if result.status == "succeeded":
        refund = refunds.refund_mark_succeeded(
            refund_id=refund.id, provider_ref=result.provider_ref
        )
    elif result.status == "failed":
        logger.warning("refund %s: failed at the provider: %s", refund.id, result.failure_message)
        refund = refunds.refund_mark_failed(
            refund_id=refund.id, message=REFUND_REFUSED, detail=result.failure_message
        )
    if payment.provider == STRIPE:
        _webhook_events_settle(payment)
    return Refund.objects.get(pk=refund.id)


def refunds_resend_stuck(*, older_than: timedelta = timedelta(minutes=10)) -> int:
    """Periodic: resend approved refunds that never reached the provider (a transient error or
    a lost task). Safe: the idempotency key makes a resend return the first result."""
    cutoff = timezone.now() - older_than
    due = Refund.objects.filter(
        Q(decided_at__lte=cutoff) | Q(decided_at__isnull=True, created_at__lte=cutoff),
        status=Refund.Status.APPROVED,
        provider_ref__isnull=True,
    ).values_list("pk", flat=True)
    sent = 0
    for refund_id in list(due):
        try:
            refund_send(refund_id=refund_id)
        except Exception:  # one broken refund must not stop the others; the next sweep retries
            logger.exception("resending refund %s failed", refund_id)
        else:
            sent += 1
    return sent


# --- Stripe webhooks -------------------------------------------------------------------------
def _invalid_signature(message: str) -> ApplicationError:
    return ApplicationError(message, code=PaymentErrorCode.INVALID_SIGNATURE, status=400)


def _stripe_verify_signature(payload: bytes, signature: str) -> None:
    """The SDK checks the HMAC and rejects stale timestamps; it accepts any timestamp in the
    future, so that is refused here too (PITFALLS.md)."""
    try:
        stripe.WebhookSignature.verify_header(
            payload, signature, settings.STRIPE_WEBHOOK_SECRET, tolerance=WEBHOOK_TOLERANCE_SECONDS
        )
    except (stripe.SignatureVerificationError, UnicodeDecodeError, ValueError):
        raise _invalid_signature(
            "The Stripe-Signature header does not match the payload."
        ) from None
    timestamps = [part[2:] for part in signature.split(",") if part.startswith("t=")]
    if len(timestamps) != 1 or not timestamps[0].isdigit():
        raise _invalid_signature("The Stripe-Signature header has no single timestamp.")
    if int(timestamps[0]) > time.time() + WEBHOOK_TOLERANCE_SECONDS:
        raise _invalid_signature("The Stripe-Signature timestamp is in the future.")


def _parse_event(payload: bytes) -> dict[str, Any]:
    try:
        event = json.loads(payload)
    except ValueError:
        event = None
    valid = (
        isinstance(event, dict)
        and isinstance(event.get("id"), str)
        and isinstance(event.get("type"), str)
        and isinstance(event.get("data"), dict)
        and isinstance(event["data"].get("object"), dict)
    )
    if not valid:
        raise ApplicationError(
            "The event is not a Stripe event object.",
            code=PaymentErrorCode.INVALID_PAYLOAD,
            status=400,
        )
    return event


def stripe_webhook_handle(*, payload: bytes, signature: str) -> WebhookEvent | None:
    """Verify, store once (unique provider + event id), then apply a Stripe event.

    Returns the stored event, or None for a redelivery of an event already processed (a no-op).
    Events may arrive in any order and more than once: every handler checks current state, and a
    refund event that names a refund we do not know yet stays unprocessed until ``refund_send``
    learns that refund's id (then it is applied, see ``_webhook_events_settle``).
    """
    _stripe_verify_signature(payload, signature)
    event = _parse_event(payload)
    try:
        with transaction.atomic():
            stored = WebhookEvent.objects.create(
                provider=STRIPE,
                event_id=event["id"][:255],
                event_type=event["type"][:100],
                payload=event,
            )
    except IntegrityError:
        stored = WebhookEvent.objects.get(provider=STRIPE, event_id=event["id"][:255])
        if stored.processed_at is not None:
            return None
    _webhook_event_process(stored)
    stored.refresh_from_db(fields=["processed_at"])
    return stored


def _webhook_event_process(stored: WebhookEvent) -> None:
    handler = _STRIPE_HANDLERS.get(stored.event_type)
    done = handler(stored.payload["data"]["object"]) if handler else True
    if done:
        WebhookEvent.objects.filter(pk=stored.pk, processed_at__isnull=True).update(
            processed_at=timezone.now()
        )


def webhook_event_reprocess(*, event: WebhookEvent) -> bool:
    """An operator applies a stored event again (the admin's "reprocess"), e.g. one kept
    unprocessed because it named a payment we did not know yet, or one whose processing crashed.
    Idempotent: a processed event is left alone, and every handler re-checks current state.
    Returns whether the event is processed now."""
    event.refresh_from_db(fields=["processed_at"])
    if event.processed_at is None and event.provider == STRIPE:
        _webhook_event_process(event)
        event.refresh_from_db(fields=["processed_at"])
    return event.processed_at is not None


def _webhook_events_settle(payment: Payment) -> None:
    """Apply refund events that arrived before we knew the refund they name."""
    waiting = WebhookEvent.objects.filter(
        provider=STRIPE,
        processed_at__isnull=True,
        event_type__in=REFUND_EVENT_TYPES,
        payload__data__object__payment_intent=payment.provider_ref,
    ).order_by("id")
    for stored in waiting:
        _webhook_event_process(stored)


def _stripe_payment(intent_id: Any, metadata: Any = None) -> Payment | None:
    """Our Stripe payment for a PaymentIntent id, else by the ``payment_id`` we put in its
    metadata (covers a crash between creating the intent and recording its id)."""
    if isinstance(intent_id, str) and intent_id:
        payment = Payment.objects.filter(provider=STRIPE, provider_ref=intent_id).first()
        if payment is not None:
            return payment
    payment_id = str((metadata or {}).get("payment_id", ""))
    if not payment_id.isdigit():
        return None
    payment = Payment.objects.filter(provider=STRIPE, pk=int(payment_id)).first()
    if payment is None or (payment.provider_ref and payment.provider_ref != intent_id):
        return None
    if not payment.provider_ref and isinstance(intent_id, str) and intent_id:
        Payment.objects.filter(pk=payment.pk, provider_ref__isnull=True).update(
            provider_ref=intent_id
        )
        payment.refresh_from_db()
    return payment


def _on_intent_succeeded(intent: dict[str, Any]) -> bool:
    payment = _stripe_payment(intent.get("id"), intent.get("metadata"))
    received = intent.get("amount_received") or intent.get("amount")
    if payment is None:
        # Not ours (no such intent id, no payment_id of ours in its metadata): nothing will ever
        # make it ours, so it is processed (a redelivery is a duplicate) and left to operators.
        logger.warning("stripe: succeeded PaymentIntent %s is not one of ours", intent.get("id"))
        intent_id = intent.get("id")
        discrepancy_record(
            kind=ReconciliationDiscrepancy.Kind.UNKNOWN_PAYMENT,
            amount=received if isinstance(received, int) else 0,
            provider_ref=intent_id if isinstance(intent_id, str) else "",
            details={
                "currency": str(intent.get("currency", "")),
                "metadata": intent.get("metadata"),
            },
        )
        return True
    if (
        received != payment.amount
        or str(intent.get("currency", "")).lower() != payment.currency.lower()
    ):
        logger.error(
            "stripe: PaymentIntent %s collected %s %s, payment %s expects %s %s; left for review",
            intent.get("id"),
            received,
            intent.get("currency"),
            payment.id,
            payment.amount,
            payment.currency,
        )
        return False
    payment_succeeded(payment_id=payment.id)
    return True


def _on_intent_failed(intent: dict[str, Any]) -> bool:
    payment = _stripe_payment(intent.get("id"), intent.get("metadata"))
    if payment is None:
        logger.warning("stripe: failed PaymentIntent %s is not one of ours", intent.get("id"))
        return True
    error = intent.get("last_payment_error") or {}
    decline_code = error.get("decline_code") or error.get("code") or ""
    payment_failed(
        payment_id=payment.id,
        decline_code=str(decline_code),
        detail=str(error.get("message") or ""),
    )
    return True


def _ensure_succeeded(payment: Payment) -> None:
    """A refund (or a refunded charge) proves the intent's money was collected: apply that first,
    so a refund event that overtakes the success event cannot leave the payment pending."""
    if payment.status != Payment.Status.SUCCEEDED:
        payment_succeeded(payment_id=payment.id)


def _on_charge_refunded(charge: dict[str, Any]) -> bool:
    payment = _stripe_payment(charge.get("payment_intent"), charge.get("metadata"))
    if payment is None:
        return False
    _ensure_succeeded(payment)
    listed = (charge.get("refunds") or {}).get("data") or []
    results = [_apply_stripe_refund(obj, payment) for obj in listed if isinstance(obj, dict)]
    return all(results)


def _on_refund(obj: dict[str, Any]) -> bool:
    payment = _stripe_payment(obj.get("payment_intent"))
    if payment is not None:
        _ensure_succeeded(payment)
    return _apply_stripe_refund(obj, payment)


def _our_refund(obj: dict[str, Any], payment: Payment | None) -> Refund | None:
    refund_ref = obj.get("id")
    refund = Refund.objects.filter(provider_ref=refund_ref).first() if refund_ref else None
    if refund is not None:
        return refund
    refund_id = str((obj.get("metadata") or {}).get("refund_id", ""))
    if not refund_id.isdigit():
        return None
    refund = Refund.objects.filter(pk=int(refund_id), provider_ref__isnull=True).first()
    if refund is None or payment is None or refund.order_id != payment.order_id:
        return None
    Refund.objects.filter(pk=refund.pk, provider_ref__isnull=True).update(provider_ref=refund_ref)
    return refund


def _apply_stripe_refund(obj: dict[str, Any], payment: Payment | None) -> bool:
    """Apply one Stripe Refund object; False while it names no refund of ours yet."""
    refund = _our_refund(obj, payment)
    if refund is None:
        return False
    status = obj.get("status")
    try:
        if status == "succeeded":
            refunds.refund_mark_succeeded(refund_id=refund.id, provider_ref=obj.get("id"))
        elif status in ("failed", "canceled"):
            reason = obj.get("failure_reason") or status
            refunds.refund_mark_failed(
                refund_id=refund.id, message=REFUND_REFUSED, detail=f"Stripe: {reason}"
            )
    except ApplicationError as exc:
        # Our refund is in a state this report cannot move (e.g. already failed): keep the event
        # for the record and for an operator; retrying would not change the answer.
        logger.warning(
            "stripe: refund %s status %s not applied: %s", refund.id, status, exc.message
        )
    return True


_STRIPE_HANDLERS: dict[str, Callable[[dict[str, Any]], bool]] = {
    "payment_intent.succeeded": _on_intent_succeeded,
    "payment_intent.payment_failed": _on_intent_failed,
    "charge.refunded": _on_charge_refunded,
    "charge.refund.updated": _on_refund,
    "refund.created": _on_refund,
    "refund.updated": _on_refund,
    "refund.failed": _on_refund,
}
