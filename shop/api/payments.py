from django.http import HttpRequest
from ninja import Router

from core.http import bearer_auth, idempotent
from shop.models import Customer
from shop.schemas.payments import PaymentOut, SandboxConfirmIn, WebhookAckOut
from shop.selectors import payments as selectors
from shop.selectors.customers import customer_of
from shop.services import payments as services

router = Router(tags=["payments"])


def _customer(request: HttpRequest) -> Customer:
    return customer_of(request.auth)


@router.post(
    "/orders/{order_id}/pay",
    response=PaymentOut,
    auth=bearer_auth,
    summary="Start (or resume) paying an order; returns the client secret or sandbox confirm URL",
)
@idempotent
def order_pay(request: HttpRequest, order_id: int):
    payment = services.payment_start(order_id=order_id, customer=_customer(request))
    return PaymentOut.from_orm(payment)


@router.get(
    "/orders/{order_id}/payments",
    response=list[PaymentOut],
    auth=bearer_auth,
    summary="Payment attempts of one of my orders, newest first",
)
def order_payments(request: HttpRequest, order_id: int):
    return selectors.payments_for_order(order_id=order_id, customer=_customer(request))


@router.get(
    "/payments/{payment_id}",
    response=PaymentOut,
    auth=bearer_auth,
    summary="One of my payments (poll its status after confirming with the provider)",
)
def payment_detail(request: HttpRequest, payment_id: int):
    return selectors.payment_get_for_customer(payment_id=payment_id, customer=_customer(request))


@router.post(
    "/payments/{payment_id}/confirm",
    response=PaymentOut,
    auth=bearer_auth,
    summary="Sandbox only: settle a payment as the provider would (succeed, or fail on request)",
)
def payment_confirm(request: HttpRequest, payment_id: int, payload: SandboxConfirmIn | None = None):
    payment = services.payment_confirm_sandbox(
        payment_id=payment_id,
        customer=_customer(request),
        outcome=payload.outcome if payload else "succeed",
    )
    return payment


@router.post(
    "/webhooks/stripe",
    response=WebhookAckOut,
    auth=None,
    summary="Stripe event delivery (signed with the Stripe-Signature header)",
)
def stripe_webhook(request: HttpRequest):
    stored = services.stripe_webhook_handle(
        payload=request.body, signature=request.headers.get("Stripe-Signature", "")
    )
    return {"received": True, "duplicate": stored is None}
