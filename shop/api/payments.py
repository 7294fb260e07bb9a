from django.http import HttpRequest
from ninja import Router

from core.error_codes import CoreErrorCode
from core.http import bearer_auth, errors, examples, idempotent
from shop.api import examples as response_examples
from shop.error_codes import CustomerErrorCode, PaymentErrorCode
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
    description=(
        "Open a payment for my unpaid order with the provider, or return the one already open "
        "(safe to call again). Answers the Stripe client secret, or in the sandbox the confirm "
        "URL. Shopper (bearer token of a customer; `not_a_customer` otherwise). Idempotent with "
        "`Idempotency-Key`. An order that is not awaiting payment: 409 `order_not_payable`; the "
        "provider refusing or unreachable: 502 `payment_provider_error` (`details.retryable`)."
    ),
)
@examples(response=response_examples.PAYMENT_STARTED)
@errors(
    CustomerErrorCode.NOT_A_CUSTOMER,
    CoreErrorCode.NOT_FOUND,
    PaymentErrorCode.ORDER_NOT_PAYABLE,
    PaymentErrorCode.PAYMENT_PROVIDER_ERROR,
)
@idempotent(atomic=False)  # calls the provider between transactions; payment_start is idempotent
def order_pay(request: HttpRequest, order_id: int):
    payment = services.payment_start(order_id=order_id, customer=_customer(request))
    return PaymentOut.from_orm(payment)


@router.get(
    "/orders/{order_id}/payments",
    response=list[PaymentOut],
    auth=bearer_auth,
    summary="Payment attempts of one of my orders, newest first",
    description=(
        "The payment attempts of my order, newest first. Shopper (bearer token of a customer; "
        "`not_a_customer` otherwise)."
    ),
)
@errors(CustomerErrorCode.NOT_A_CUSTOMER, CoreErrorCode.NOT_FOUND)
def order_payments(request: HttpRequest, order_id: int):
    return selectors.payments_for_order(order_id=order_id, customer=_customer(request))


@router.get(
    "/payments/{payment_id}",
    response=PaymentOut,
    auth=bearer_auth,
    summary="One of my payments (poll its status after confirming with the provider)",
    description=(
        "One of my payments: poll `status` after confirming with the provider. Shopper (bearer "
        "token of a customer; `not_a_customer` otherwise)."
    ),
)
@errors(CustomerErrorCode.NOT_A_CUSTOMER, CoreErrorCode.NOT_FOUND)
def payment_detail(request: HttpRequest, payment_id: int):
    return selectors.payment_get_for_customer(payment_id=payment_id, customer=_customer(request))


@router.post(
    "/payments/{payment_id}/confirm",
    response=PaymentOut,
    auth=bearer_auth,
    summary="Sandbox only: settle a payment as the provider would (succeed, or fail on request)",
    description=(
        "Sandbox only: settle my payment as the provider would, `succeed` (default) or `fail`. "
        "Shopper (bearer token of a customer; `not_a_customer` otherwise). A Stripe payment: 409 "
        "`not_sandbox`; already succeeded: 409 `payment_already_succeeded`."
    ),
)
@examples(request={"outcome": "succeed"})
@errors(
    CustomerErrorCode.NOT_A_CUSTOMER,
    CoreErrorCode.NOT_FOUND,
    PaymentErrorCode.NOT_SANDBOX,
    PaymentErrorCode.PAYMENT_ALREADY_SUCCEEDED,
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
    description=(
        "Stripe's event delivery, authenticated by the `Stripe-Signature` header, not a token. "
        "Each event is stored once by its id: a redelivery answers `duplicate: true` and changes "
        "nothing. A bad signature is 400 `invalid_signature`; a body that is not an event 400 "
        "`invalid_payload`."
    ),
)
@errors(
    PaymentErrorCode.INVALID_SIGNATURE,
    PaymentErrorCode.INVALID_PAYLOAD,
    CoreErrorCode.PAYLOAD_TOO_LARGE,
)
def stripe_webhook(request: HttpRequest):
    stored = services.stripe_webhook_handle(
        payload=request.body, signature=request.headers.get("Stripe-Signature", "")
    )
    return {"received": True, "duplicate": stored is None}
