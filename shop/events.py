"""What the shop announces to other apps, and the one place that fans it out.

Other apps react to orders without ``shop`` importing them: in their ``AppConfig.ready`` they call
``subscribe("order_paid", handler)``. Services call ``fire(name, **payload)`` inside their
transaction; once it commits, every subscriber is called through the Celery task
``shop.tasks.dispatch_event`` (one task per subscriber, so a slow or failing subscriber neither
delays the request nor stops the others, and can be retried on its own). A rolled-back
transaction announces nothing. There are no ``post_save`` signals.

Payloads are plain JSON values (ids, amounts in fen, ISO datetimes). Delivery is at least once:
handlers must be idempotent (key their writes on ``order_id`` / ``refund_id``).

Events and payloads:

- ``order_paid``: order_id, customer_id, community_id, total, paid_at
- ``order_fulfilled``: order_id, customer_id, community_id, delivery_mode, fulfilled_at
- ``order_completed``: order_id, customer_id, community_id, total, refunded_amount, completed_at
- ``order_cancelled``: order_id, customer_id, community_id, reason, cancelled_at
- ``order_refunded``: order_id, refund_id, customer_id, community_id, amount (this refund),
  order_refunded_amount (all refunds so far), order_total, order_status, fully_refunded,
  lines: [{order_line_id, sku_id, quantity, amount}] (what this refund took from each line)
"""

import logging
from collections.abc import Callable
from typing import Any

from django.db import transaction

logger = logging.getLogger(__name__)

ORDER_PAID = "order_paid"
ORDER_FULFILLED = "order_fulfilled"
ORDER_COMPLETED = "order_completed"
ORDER_CANCELLED = "order_cancelled"
ORDER_REFUNDED = "order_refunded"
EVENTS = frozenset({ORDER_PAID, ORDER_FULFILLED, ORDER_COMPLETED, ORDER_CANCELLED, ORDER_REFUNDED})

Handler = Callable[..., Any]
_subscribers: dict[str, dict[str, Handler]] = {name: {} for name in EVENTS}


def handler_name(handler: Handler) -> str:
    return f"{handler.__module__}.{handler.__qualname__}"


def subscribe(event_name: str, handler: Handler) -> None:
    """Call ``handler(**payload)`` after every committed ``event_name``. Subscribing the same
    handler twice keeps one subscription (``ready()`` may run more than once in tests)."""
    if event_name not in EVENTS:
        raise ValueError(f"unknown shop event {event_name!r}")
    _subscribers[event_name][handler_name(handler)] = handler


def unsubscribe(event_name: str, handler: Handler) -> None:
    _subscribers[event_name].pop(handler_name(handler), None)


def subscribers(event_name: str) -> dict[str, Handler]:
    return dict(_subscribers[event_name])


def fire(event_name: str, **payload: Any) -> None:
    """Announce ``event_name`` once the current transaction commits."""
    if event_name not in EVENTS:
        raise ValueError(f"unknown shop event {event_name!r}")
    transaction.on_commit(lambda: _fan_out(event_name, payload), robust=True)


def _fan_out(event_name: str, payload: dict[str, Any]) -> None:
    from shop.tasks import dispatch_event

    for name in list(_subscribers[event_name]):
        try:
            dispatch_event.delay(event_name, name, payload)
        except Exception:  # one subscriber (or the broker) failing must not starve the others
            logger.exception("dispatching %s to %s failed", event_name, name)


def dispatch(event_name: str, handler: str, payload: dict[str, Any]) -> bool:
    """Run one subscriber (called by the ``dispatch_event`` task). Only subscribed handlers run,
    looked up by name: a task naming anything else does nothing."""
    target = _subscribers.get(event_name, {}).get(handler)
    if target is None:
        logger.warning("no subscriber %s for %s; dropped", handler, event_name)
        return False
    target(**payload)
    return True
