"""Referral's reactions to the shop's events and its own (outbox subscribers, registered in
``ReferralConfig.ready``). Each is called as ``handler(**payload)`` at least once and calls an
idempotent service. Their names (``module.qualname``) are stored on outbox deliveries: do not
rename them."""

from typing import Any

from core import outbox
from shop import events as shop_events


def on_order_paid_attribute(**payload: Any) -> None:
    from referral.services.attribution import order_attribute

    order_attribute(order_paid=payload)


def on_order_paid_qualify(*, customer_id: int, **_: Any) -> None:
    """spend_threshold onboarding: a customer whose paid spend reaches the threshold becomes a
    distributor."""
    from referral.services.distributors import distributor_qualify_by_spend

    distributor_qualify_by_spend(customer_id=customer_id)


def on_order_refunded(**payload: Any) -> None:
    from referral.services.attribution import attribution_refund

    attribution_refund(order_refunded=payload)


def on_order_attributed_leads(**payload: Any) -> None:
    from referral.services.leads import leads_convert_on_attribution

    leads_convert_on_attribution(order_attributed=payload)


def register() -> None:
    from referral import events

    outbox.subscribe(shop_events.ORDER_PAID, on_order_paid_attribute)
    outbox.subscribe(shop_events.ORDER_PAID, on_order_paid_qualify)
    outbox.subscribe(shop_events.ORDER_REFUNDED, on_order_refunded)
    outbox.subscribe(events.ORDER_ATTRIBUTED, on_order_attributed_leads)
