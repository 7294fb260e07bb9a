"""Stripe through the official SDK: one PaymentIntent per Payment, one Stripe Refund per Refund.

Idempotency keys are derived from our ids (``payment-{id}``, ``refund-{id}``), so a retried call
returns the object Stripe created the first time instead of a second one. ``http_client`` is the
SDK's injectable transport; tests replace it with canned responses so nothing reaches the network.
"""

from typing import Any

import stripe
from django.conf import settings

from shop.models import Payment, Refund
from shop.payments.base import PaymentProviderError, ProviderPayment, ProviderRefund

# The SDK transport used by every client built here; None means the SDK's default HTTP client.
http_client: stripe.HTTPClient | None = None

_RETRYABLE = (stripe.APIConnectionError, stripe.RateLimitError, stripe.APIError)


def stripe_client() -> stripe.StripeClient:
    return stripe.StripeClient(settings.STRIPE_SECRET_KEY, http_client=http_client)


def _provider_error(exc: stripe.StripeError) -> PaymentProviderError:
    return PaymentProviderError(
        exc.user_message or str(exc) or exc.__class__.__name__,
        retryable=isinstance(exc, _RETRYABLE),
        code=exc.code or "",
    )


def _refund_result(obj: dict[str, Any]) -> ProviderRefund:
    status = obj.get("status")
    if status == "succeeded":
        return ProviderRefund(provider_ref=obj["id"], status="succeeded")
    if status in ("failed", "canceled"):
        reason = obj.get("failure_reason") or status
        return ProviderRefund(
            provider_ref=obj["id"], status="failed", failure_message=f"Stripe: {reason}"
        )
    return ProviderRefund(provider_ref=obj["id"], status="pending")


class StripeProvider:
    name = Payment.Provider.STRIPE

    def __init__(self, client: stripe.StripeClient | None = None) -> None:
        self.client = client or stripe_client()

    def create_payment(self, payment: Payment) -> ProviderPayment:
        order = payment.order
        try:
            intent = self.client.v1.payment_intents.create(
                params={
                    "amount": payment.amount,
                    "currency": payment.currency.lower(),
                    "payment_method_types": list(settings.STRIPE_PAYMENT_METHOD_TYPES),
                    "metadata": {
                        "order_id": str(order.id),
                        "payment_id": str(payment.id),
                        "order_number": order.number,
                    },
                },
                options={"idempotency_key": f"payment-{payment.id}"},
            )
        except stripe.StripeError as exc:
            raise _provider_error(exc) from exc
        return ProviderPayment(provider_ref=intent.id, client_secret=intent.client_secret or "")

    def refund(self, refund: Refund, payment: Payment) -> ProviderRefund:
        try:
            obj = self.client.v1.refunds.create(
                params={
                    "payment_intent": payment.provider_ref,
                    "amount": refund.amount,
                    "metadata": {"refund_id": str(refund.id), "order_id": str(refund.order_id)},
                },
                options={"idempotency_key": f"refund-{refund.id}"},
            )
        except stripe.StripeError as exc:
            raise _provider_error(exc) from exc
        return _refund_result(obj.to_dict())
