"""Group-buy's reactions to the shop's events (outbox subscribers, registered in
``GroupbuyConfig.ready``). Each is called as ``handler(**payload)`` at least once, after the
shop's commit, and dispatches on the order's source to its flow (group-buy, bargain, chain
sign-up), ignoring orders of other sources; the services they call are idempotent.
Their names (``module.qualname``) are stored on outbox deliveries: do not rename them."""

from typing import Any

from core import outbox
from groupbuy.services import bargains, chains
from groupbuy.services.groups import seat_mark_paid, seat_release
from shop import events
from shop.models import Order


def on_order_paid(*, order_id: int, source: str, source_ref: int | None, **_: Any) -> None:
    if source == Order.Source.GROUP_BUY:
        seat_mark_paid(order_id=order_id, group_id=source_ref)
    elif source == Order.Source.BARGAIN:
        bargains.bargain_order_paid(order_id=order_id, bargain_id=source_ref)
    elif source == Order.Source.CHAIN_SIGNUP:
        chains.entry_order_paid(order_id=order_id, post_id=source_ref)


def on_order_cancelled(*, order_id: int, source: str, source_ref: int | None, **_: Any) -> None:
    """Cancelled by the customer or staff, or expired unpaid (reason ``expired``)."""
    if source == Order.Source.GROUP_BUY:
        seat_release(order_id=order_id, group_id=source_ref)
    elif source == Order.Source.BARGAIN:
        bargains.bargain_order_cancelled(order_id=order_id, bargain_id=source_ref)
    elif source == Order.Source.CHAIN_SIGNUP:
        chains.entry_order_cancelled(order_id=order_id, post_id=source_ref)


def register() -> None:
    outbox.subscribe(events.ORDER_PAID, on_order_paid)
    outbox.subscribe(events.ORDER_CANCELLED, on_order_cancelled)
