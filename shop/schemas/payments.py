from datetime import datetime
from typing import Literal

from ninja import Field, Schema

from core.schemas import BodyIn
from shop.models import Payment


class PaymentOut(Schema):
    """One payment attempt for an order. Amounts are fen.

    Stripe: pass ``client_secret`` to Stripe's client SDK to confirm the PaymentIntent.
    Sandbox: POST to ``confirm_url`` (optionally ``{"outcome": "fail"}``) to settle it.
    """

    id: int
    order_id: int
    provider: str
    status: str = Field(..., description="pending | succeeded | failed | canceled")
    amount: int
    currency: str
    client_secret: str | None = Field(
        ..., description="Only while the payment is pending; confirm with the provider's SDK"
    )
    confirm_url: str | None = Field(
        ..., description="Sandbox only, while pending: POST here to confirm (or fail) the payment"
    )
    failure_message: str
    refunded_amount: int
    created_at: datetime
    succeeded_at: datetime | None

    @staticmethod
    def resolve_client_secret(obj: Payment) -> str | None:
        if obj.status != Payment.Status.PENDING or not obj.client_secret:
            return None
        return obj.client_secret

    @staticmethod
    def resolve_confirm_url(obj: Payment) -> str | None:
        if obj.provider != Payment.Provider.SANDBOX or obj.status != Payment.Status.PENDING:
            return None
        return f"/api/v1/payments/{obj.id}/confirm"


class SandboxConfirmIn(BodyIn):
    outcome: Literal["succeed", "fail"] = Field(
        "succeed", description="`fail` simulates a declined payment"
    )


class WebhookAckOut(Schema):
    received: bool = True
    duplicate: bool = Field(False, description="This event id was already processed; nothing done")
