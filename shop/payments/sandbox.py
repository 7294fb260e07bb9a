"""The embedded default provider: no network, payments are confirmed by a second API call."""

import secrets

from shop.models import Payment, Refund
from shop.payments.base import ProviderPayment, ProviderRefund


class SandboxProvider:
    name = Payment.Provider.SANDBOX

    def create_payment(self, payment: Payment) -> ProviderPayment:
        return ProviderPayment(
            provider_ref=f"sandbox_pay_{payment.id}",
            client_secret=f"sandbox_pay_{payment.id}_secret_{secrets.token_urlsafe(12)}",
        )

    def refund(self, refund: Refund, payment: Payment) -> ProviderRefund:
        return ProviderRefund(provider_ref=f"sandbox_re_{refund.id}", status="succeeded")
