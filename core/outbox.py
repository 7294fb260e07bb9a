"""Durable domain events: a transactional outbox.

Apps declare the events they publish and subscribe their handlers in ``AppConfig.ready()``::

    outbox.event_register("order_paid", publisher="shop")
    outbox.subscribe("order_paid", referral.handlers.attribute_order)

core imports no app: it knows events and handlers only through this registry.

Lifecycle of one event:

1. ``event_record(name, payload)`` inside the transaction of the state change writes one
   ``OutboxEvent`` row carrying the names of the event's subscribers (``pending_subscribers``).
   It writes nothing if the event has no subscribers, and nothing survives a rollback. Recording
   imports no task: after commit it *kicks* ``core.tasks.outbox_dispatch`` (a failed kick, e.g.
   the broker is down, is logged and left to the sweep; a burst's kicks are coalesced, see
   ``_KickWindow``).
2. The dispatcher (the kicked task, or the sweep) turns the pending names into one
   ``OutboxDelivery`` per subscriber and clears them, under a ``skip_locked`` row lock.
3. Each delivery runs in its own transaction: claim the row (``pending``, due, ``skip_locked``),
   call ``handler(**payload)`` in a savepoint, mark it ``done``. The handler's writes and ``done``
   commit together, so a delivery is recorded done exactly once. A handler that raises has its
   writes rolled back; the delivery keeps ``pending`` with ``attempts + 1``, ``last_error`` and
   ``next_attempt_at = now + retry_delay(attempts)`` (exponential from ``OUTBOX_RETRY_BASE``,
   capped at ``OUTBOX_RETRY_MAX``), and after ``OUTBOX_MAX_ATTEMPTS`` becomes ``dead``: visible
   in the admin, where an operator retries it (``delivery_retry``).
4. ``outbox_sweep`` (periodic) does steps 2 and 3 for everything undelivered and due;
   ``outbox_prune`` (periodic) deletes done deliveries, and events left with none, after
   ``OUTBOX_RETENTION``. Dead and pending rows are never pruned.

Contract for handlers: ``handler(**payload)``; idempotent (an event may arrive twice, e.g. the
same change announced again); keyed on the payload's ids. A handler runs inside the delivery's
transaction while the delivery row is locked: write rows, queue tasks and pushes with
``transaction.on_commit``, never call a remote service from it (record what to send instead).
"""

import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from functools import partial
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, OuterRef, QuerySet
from django.utils import timezone

from core.locks import lock_outbox_delivery, lock_skip_locked
from core.models import OutboxDelivery, OutboxEvent

logger = logging.getLogger(__name__)

Handler = Callable[..., Any]
Payload = Mapping[str, Any]
D = OutboxDelivery.Status

EXPAND_BATCH = 200
SWEEP_LIMIT = 1000
PRUNE_BATCH = 1000
ERROR_CHARS = 2000


@dataclass
class _Registered:
    publisher: str
    subscribers: dict[str, Handler] = field(default_factory=dict)


_events: dict[str, _Registered] = {}


# --- registry -------------------------------------------------------------------------------------
def event_register(name: str, *, publisher: str) -> None:
    """Declare that ``publisher`` (an app label) announces ``name``. Registering again from the
    same publisher is a no-op (``ready()`` may run twice); from another one is an error."""
    known = _events.get(name)
    if known is None:
        _events[name] = _Registered(publisher=publisher)
    elif known.publisher != publisher:
        raise ValueError(f"event {name!r} is already published by {known.publisher!r}")


def registered_events() -> dict[str, str]:
    """``{event name: publisher}``."""
    return {name: known.publisher for name, known in _events.items()}


def _known(name: str) -> _Registered:
    known = _events.get(name)
    if known is None:
        raise ValueError(f"unknown event {name!r}")
    return known


def handler_name(handler: Handler) -> str:
    return f"{handler.__module__}.{handler.__qualname__}"


def subscribe(event_name: str, handler: Handler) -> str:
    """Deliver every committed ``event_name`` to ``handler``; returns the name stored on the
    deliveries (``module.qualname``). Subscribing the same handler twice keeps one subscription."""
    name = handler_name(handler)
    _known(event_name).subscribers[name] = handler
    return name


def unsubscribe(event_name: str, handler: Handler) -> None:
    _known(event_name).subscribers.pop(handler_name(handler), None)


def subscribers(event_name: str) -> dict[str, Handler]:
    return dict(_known(event_name).subscribers)


# --- recording ------------------------------------------------------------------------------------
def event_record(name: str, payload: Payload | Callable[[], Payload]) -> OutboxEvent | None:
    """Write event ``name`` in the current transaction (required: the event must commit or roll
    back with the change it announces). ``payload`` is a JSON-ready mapping, or a function that
    builds one, called only when the event has subscribers. Returns the row, or None when nobody
    subscribes (nothing is written then)."""
    pending = sorted(_known(name).subscribers)
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("record an event inside the transaction of the change it announces")
    if not pending:
        return None
    data = dict(payload() if callable(payload) else payload)
    now = timezone.now()
    # One plain INSERT (this runs in every paying transaction): the same row the ORM would write.
    with transaction.get_connection().cursor() as cursor:
        cursor.execute(_INSERT_EVENT, [name, json.dumps(data), pending, now])
        (pk,) = cursor.fetchone()
    transaction.on_commit(partial(_kick, pk))
    return OutboxEvent(pk=pk, name=name, payload=data, pending_subscribers=pending, created_at=now)


_INSERT_EVENT = (
    "INSERT INTO core_outboxevent (name, payload, pending_subscribers, created_at) "
    "VALUES (%s, %s::jsonb, %s, %s) RETURNING id"
)


class _KickWindow:
    """Coalesces the kicks of one process: at most one immediate kick per ``OUTBOX_KICK_WINDOW``
    seconds; an event committed inside the window is covered by one *trailing* kick, due when the
    window ends, that drains every undispatched event (a burst of payments costs the paying
    threads two broker messages per window instead of one each). Each event has committed before
    its hook runs and the trailing kick runs after every hook that relied on it, so none is left
    to the sweep (unless a worker's clock runs ahead of ours; the sweep still delivers then).
    A window of 0, or Celery's eager mode, kicks every event on its own."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._free_at = 0.0  # monotonic time from which the next immediate kick may go
        self._trailing_at = 0.0  # when the scheduled trailing kick runs (0: none scheduled)

    def plan(self, now: float, window: float) -> float | None:
        """``None``: nothing to send (a trailing kick covers this event); ``0``: kick this event
        now; ``> 0``: schedule a trailing drain that many seconds from now."""
        with self._lock:
            if now >= self._free_at:
                self._free_at = now + window
                return 0.0
            if self._trailing_at > now:
                return None
            self._trailing_at = self._free_at
            return self._free_at - now


_kick_window = _KickWindow()
_clock = time.monotonic  # the kick window's clock (tests hold it)


def _kick(event_id: int) -> None:
    """After commit: ask a worker to deliver the event now. Losing this message loses nothing."""
    from core.tasks import outbox_dispatch

    window = settings.OUTBOX_KICK_WINDOW
    if window <= 0 or outbox_dispatch.app.conf.task_always_eager:
        countdown: float | None = 0.0
    else:
        countdown = _kick_window.plan(_clock(), window)
    try:
        if countdown == 0:
            outbox_dispatch.delay(event_id)
        elif countdown is not None:
            outbox_dispatch.apply_async(countdown=countdown)
    except Exception:
        logger.warning(
            "outbox: could not kick delivery of event %s; the sweep will deliver it",
            event_id,
            exc_info=True,
        )


# --- dispatch and delivery ------------------------------------------------------------------------
def _expand(events: QuerySet[OutboxEvent]) -> int:
    """Turn the pending subscriber names of (a batch of) ``events`` into delivery rows, skipping
    events another worker is expanding. Returns how many events were expanded."""
    now = timezone.now()
    with transaction.atomic():
        batch = list(
            lock_skip_locked(events.exclude(pending_subscribers=[])).only(
                "pk", "pending_subscribers"
            )[:EXPAND_BATCH]
        )
        if not batch:
            return 0
        OutboxDelivery.objects.bulk_create(
            OutboxDelivery(event_id=event.pk, subscriber=name, next_attempt_at=now, created_at=now)
            for event in batch
            for name in event.pending_subscribers
        )
        OutboxEvent.objects.filter(pk__in=[event.pk for event in batch]).update(
            pending_subscribers=[]
        )
    return len(batch)


def _due(now) -> QuerySet[OutboxDelivery]:
    return lock_skip_locked(
        OutboxDelivery.objects.select_related("event").filter(
            status=D.PENDING, next_attempt_at__lte=now
        )
    )


def retry_delay(attempts: int) -> timedelta:
    """How long to wait after the ``attempts``-th failure: base, 2 x base, 4 x base, ... capped."""
    return min(settings.OUTBOX_RETRY_BASE * 2 ** (attempts - 1), settings.OUTBOX_RETRY_MAX)


def _run(delivery: OutboxDelivery) -> bool:
    """Call the handler of a claimed (locked) delivery and record the outcome in the same
    transaction. True if it is now done."""
    event = delivery.event
    known = _events.get(event.name)
    handler = known.subscribers.get(delivery.subscriber) if known else None
    delivery.attempts += 1
    try:
        if handler is None:
            raise LookupError(f"{delivery.subscriber} is not subscribed to {event.name}")
        with transaction.atomic():
            handler(**event.payload)
    except Exception as exc:
        now = timezone.now()
        delivery.last_error = f"{type(exc).__name__}: {exc}"[:ERROR_CHARS]
        if delivery.attempts >= settings.OUTBOX_MAX_ATTEMPTS:
            delivery.status = D.DEAD
            logger.error("outbox: %s is dead after %s attempts", delivery, delivery.attempts)
        else:
            delivery.next_attempt_at = now + retry_delay(delivery.attempts)
            logger.warning("outbox: %s failed (attempt %s)", delivery, delivery.attempts)
        delivery.save(update_fields=["status", "attempts", "last_error", "next_attempt_at"])
        return False
    delivery.status = D.DONE
    delivery.delivered_at = timezone.now()
    delivery.save(update_fields=["status", "attempts", "delivered_at"])
    return True


def delivery_run(*, delivery_id: int) -> bool:
    """Run one delivery if it is pending, due and not being run by another worker. True if this
    call delivered it."""
    with transaction.atomic():
        delivery = _due(timezone.now()).filter(pk=delivery_id).first()
        return delivery is not None and _run(delivery)


def event_dispatch(*, event_id: int) -> int:
    """Deliver one event to its subscribers (the kicked task). Returns deliveries done."""
    _expand(OutboxEvent.objects.filter(pk=event_id))
    due = OutboxDelivery.objects.filter(
        event_id=event_id, status=D.PENDING, next_attempt_at__lte=timezone.now()
    ).order_by("pk")
    return sum(delivery_run(delivery_id=pk) for pk in due.values_list("pk", flat=True))


def outbox_sweep() -> int:
    """Periodic: expand every undispatched event, then run every due delivery, each in its own
    transaction (at most ``SWEEP_LIMIT`` per run). Concurrent sweeps share the work through
    ``skip_locked``. Returns deliveries done."""
    while _expand(OutboxEvent.objects.order_by("pk")) == EXPAND_BATCH:
        pass
    done = 0
    for _ in range(SWEEP_LIMIT):
        with transaction.atomic():
            delivery = _due(timezone.now()).order_by("next_attempt_at", "pk").first()
            if delivery is None:
                break
            done += _run(delivery)
    return done


# --- operators and housekeeping -------------------------------------------------------------------
def delivery_retry(*, delivery_id: int) -> bool:
    """An operator sends a dead delivery again: pending, due now, attempts from zero (its
    ``last_error`` stays until the next attempt), kicked after commit. False if it is not dead."""
    with transaction.atomic():
        delivery = lock_outbox_delivery(delivery_id, status=D.DEAD)
        if delivery is None:
            return False
        delivery.status = D.PENDING
        delivery.attempts = 0
        delivery.next_attempt_at = timezone.now()
        delivery.save(update_fields=["status", "attempts", "next_attempt_at"])
        transaction.on_commit(partial(_kick, delivery.event_id))
        return True


def outbox_prune() -> int:
    """Periodic: delete done deliveries delivered before ``now - OUTBOX_RETENTION``, then the
    events of that age left with no delivery and nothing pending. Returns rows deleted."""
    cutoff = timezone.now() - settings.OUTBOX_RETENTION
    deleted = 0
    old_done = OutboxDelivery.objects.filter(status=D.DONE, delivered_at__lt=cutoff)
    while ids := list(old_done.values_list("pk", flat=True)[:PRUNE_BATCH]):
        deleted += OutboxDelivery.objects.filter(pk__in=ids).delete()[0]
    empty = OutboxEvent.objects.filter(created_at__lt=cutoff, pending_subscribers=[]).exclude(
        Exists(OutboxDelivery.objects.filter(event_id=OuterRef("pk")))
    )
    while ids := list(empty.values_list("pk", flat=True)[:PRUNE_BATCH]):
        deleted += OutboxEvent.objects.filter(pk__in=ids).delete()[0]
    return deleted
