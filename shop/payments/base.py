"""The payment provider interface: what the payment services need from Stripe or the sandbox.

A provider never touches the database: the services record the attempt, commit, call the
provider, then record the result (so no provider call ever runs under a row lock).
"""

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol

if TYPE_CHECKING:
    from shop.models import Payment, Refund

RefundStatus = Literal["succeeded", "pending", "failed"]


@dataclass(frozen=True)
class ProviderPayment:
    provider_ref: str
    client_secret: str


@dataclass(frozen=True)
class ProviderRefund:
    provider_ref: str | None
    status: RefundStatus
    failure_message: str = ""


class PaymentProviderError(Exception):
    """The provider refused or could not be reached.

    ``retryable`` is True when the same call (same idempotency key) may succeed later
    (network error, rate limit, provider outage); False when the request itself was refused.
    """

    def __init__(self, message: str, *, retryable: bool = False, code: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        self.code = code


class PaymentProvider(Protocol):
    name: str

    def create_payment(self, payment: "Payment") -> ProviderPayment:
        """Open a payment for ``payment.amount``; safe to call twice for the same payment."""
        ...

    def refund(self, refund: "Refund", payment: "Payment") -> ProviderRefund:
        """Return ``refund.amount`` of ``payment``; safe to call twice for the same refund."""
        ...
