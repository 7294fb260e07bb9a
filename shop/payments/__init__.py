"""Payment providers behind one interface; ``get_provider()`` picks the configured one."""

from django.conf import settings

from shop.payments.base import (
    PaymentProvider,
    PaymentProviderError,
    ProviderPayment,
    ProviderRefund,
)

__all__ = [
    "PaymentProvider",
    "PaymentProviderError",
    "ProviderPayment",
    "ProviderRefund",
    "get_provider",
]


def get_provider(name: str | None = None) -> PaymentProvider:
    """The provider called ``name`` (default: ``settings.PAYMENT_PROVIDER``)."""
    name = name or settings.PAYMENT_PROVIDER
    if name == "sandbox":
        from shop.payments.sandbox import SandboxProvider

        return SandboxProvider()
    if name == "stripe":
        from shop.payments.stripe import StripeProvider

        return StripeProvider()
    raise ValueError(f"Unknown payment provider {name!r}")
