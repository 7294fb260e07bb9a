"""Side effects after commit, through one helper (Zulip's ``send_event_on_commit``).

Celery tasks and Channels ``group_send`` calls are queued with ``transaction.on_commit`` so a
rolled-back transaction never announces anything. A failed push is logged, never raised: the
stored notification is the truth and clients catch up from it.
"""

import logging
import threading
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import connection, transaction

from core.realtime import topic_group, topic_next_seq

logger = logging.getLogger(__name__)


def enqueue_on_commit(task: Any, *args: Any, **kwargs: Any) -> None:
    """``task.delay(*args, **kwargs)`` once the current transaction commits."""
    transaction.on_commit(lambda: task.delay(*args, **kwargs))


def push_now(group: str, message: dict[str, Any], handler: str = "push.message") -> bool:
    """Send to every socket in ``group``; ``handler`` names the consumer method that receives it
    (``push.message`` forwards ``message`` to the client as is)."""
    layer = get_channel_layer()
    if layer is None:
        return False
    try:
        async_to_sync(layer.group_send)(group, {"type": handler, "payload": message})
    except Exception:
        logger.exception("realtime push to %s failed", group)
        return False
    return True


def push_on_commit(group: str, message: dict[str, Any], handler: str = "push.message") -> None:
    """Send ``message`` to every socket in ``group`` once the current transaction commits."""
    transaction.on_commit(lambda: push_now(group, message, handler))


def topic_push_now(topic: str, message: dict[str, Any]) -> bool:
    """Send ``message`` to a topic's sockets with the topic's next ``seq`` (core/realtime.py).
    A seq is taken even if the send fails: clients then see the gap and refetch the snapshot."""
    try:
        seq = topic_next_seq(topic)
    except Exception:
        logger.exception("realtime seq for %s failed", topic)
        return False
    return push_now(topic_group(topic), {**message, "topic": topic, "seq": seq})


def topic_push_on_commit(topic: str, message: dict[str, Any]) -> None:
    """``topic_push_now`` once the current transaction commits."""
    transaction.on_commit(lambda: topic_push_now(topic, message))


class TopicCoalescer:
    """Pushes to a busy topic, coalesced: the first item in a quiet topic is pushed at once (the
    leading edge), items arriving within ``window`` seconds after a push wait and go out together
    in one message when the window ends (the trailing edge), which opens another window. So a
    topic gets at most one message per window per process however fast items come, and an item
    waits at most one window. Each message is ``{"type": kind, "items": [...]}`` with the topic's
    ``seq`` (one per message: a client that sees a gap refetches the snapshot).

    Per process (no shared state): with several web processes a topic gets at most one message
    per window from each. Items waiting when a process dies are not pushed; the snapshot still
    has them (the socket is the fast path, not the only one). ``window <= 0`` pushes every item
    at once, alone in its message."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiting: dict[str, list[dict[str, Any]]] = {}
        self._open: set[str] = set()  # topics inside a window (a trailing push is scheduled)

    def add(self, topic: str, kind: str, item: dict[str, Any], window: float) -> None:
        if window <= 0:
            topic_push_now(topic, {"type": kind, "items": [item]})
            return
        with self._lock:
            if topic in self._open:
                self._waiting.setdefault(topic, []).append(item)
                return
            self._open.add(topic)
        try:
            topic_push_now(topic, {"type": kind, "items": [item]})
        finally:
            self._schedule(topic, kind, window)

    def _schedule(self, topic: str, kind: str, window: float) -> None:
        timer = threading.Timer(window, self._trailing, args=(topic, kind, window))
        timer.daemon = True
        timer.start()

    def _trailing(self, topic: str, kind: str, window: float) -> None:
        with self._lock:
            items = self._waiting.pop(topic, [])
            if not items:
                self._open.discard(topic)  # quiet for a whole window: the next item goes at once
                return
        try:
            topic_push_now(topic, {"type": kind, "items": items})
        finally:
            connection.close()  # this timer thread's own database connection (the seq)
            self._schedule(topic, kind, window)


coalescer = TopicCoalescer()


def topic_push_coalesced_on_commit(
    topic: str, kind: str, item: dict[str, Any], window: float
) -> None:
    """Once the current transaction commits, push ``item`` to ``topic`` through the process's
    coalescer (``TopicCoalescer``): alone at once if the topic is quiet, else with the others
    of its window."""
    transaction.on_commit(lambda: coalescer.add(topic, kind, item, window))
