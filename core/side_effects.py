"""Side effects after commit, through one helper (Zulip's ``send_event_on_commit``).

Celery tasks and Channels ``group_send`` calls are queued with ``transaction.on_commit`` so a
rolled-back transaction never announces anything. A failed push is logged, never raised: the
stored notification is the truth and clients catch up from it.
"""

import json
import logging
import threading
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
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


# Redis scripts of the shared coalescer: each runs atomically, so an item is either in the batch
# a flush takes or finds the gate gone and leads the next window itself; none is stranded.
# KEYS[1] the gate, KEYS[2] the waiting items; ARGV[1] the gate's lifetime (ms), ARGV[2] an item,
# ARGV[3] how long waiting items are kept (ms) when nobody flushes them.
_ADD_SCRIPT = """
if redis.call('SET', KEYS[1], '1', 'NX', 'PX', ARGV[1]) then
  local waiting = redis.call('LRANGE', KEYS[2], 0, -1)
  redis.call('DEL', KEYS[2])
  table.insert(waiting, ARGV[2])
  return waiting
end
redis.call('RPUSH', KEYS[2], ARGV[2])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
return false
"""
_FLUSH_SCRIPT = """
local waiting = redis.call('LRANGE', KEYS[2], 0, -1)
redis.call('DEL', KEYS[2])
if #waiting > 0 then
  redis.call('SET', KEYS[1], '1', 'PX', ARGV[1])
else
  redis.call('DEL', KEYS[1])
end
return waiting
"""


KEEP_MS = 60_000


class SharedTopicCoalescer(TopicCoalescer):
    """``TopicCoalescer`` across every process sharing one Redis: at most one message per window
    per topic however many web processes take the writes. A gate key per topic marks an open
    window; the process whose item opened it pushes at once and flushes the window's items (from
    a Redis list) when it ends, opening the next window if there were any. Items are JSON. If
    that process dies mid-window, the gate expires after a few windows and the next item leads,
    taking the waiting ones with it (until then the snapshot has them)."""

    def __init__(self, url: str, prefix: str) -> None:
        super().__init__()
        import redis

        self._redis = redis.Redis.from_url(url)
        self._prefix = prefix
        self._add = self._redis.register_script(_ADD_SCRIPT)
        self._flush = self._redis.register_script(_FLUSH_SCRIPT)

    def _keys(self, topic: str) -> list[str]:
        return [f"{self._prefix}:coalesce:{topic}:gate", f"{self._prefix}:coalesce:{topic}:items"]

    @staticmethod
    def _life_ms(window: float) -> int:
        return max(int(window * 4000), 50)  # outlives a late timer; expires if its owner dies

    def add(self, topic: str, kind: str, item: dict[str, Any], window: float) -> None:
        if window <= 0:
            topic_push_now(topic, {"type": kind, "items": [item]})
            return
        try:
            life = self._life_ms(window)
            led = self._add(keys=self._keys(topic), args=[life, json.dumps(item), KEEP_MS])
        except Exception:
            logger.exception("coalescing a push to %s failed: pushing it alone", topic)
            topic_push_now(topic, {"type": kind, "items": [item]})
            return
        if led is None:
            return  # the window's owner pushes it when the window ends
        try:
            topic_push_now(topic, {"type": kind, "items": [json.loads(raw) for raw in led]})
        finally:
            self._schedule(topic, kind, window)

    def _trailing(self, topic: str, kind: str, window: float) -> None:
        try:
            waiting = self._flush(keys=self._keys(topic), args=[self._life_ms(window)])
        except Exception:
            logger.exception("flushing coalesced pushes to %s failed", topic)
            return  # the gate expires; the next item leads and takes the waiting ones
        if not waiting:
            return
        try:
            topic_push_now(topic, {"type": kind, "items": [json.loads(raw) for raw in waiting]})
        finally:
            connection.close()  # this timer thread's own database connection (the seq)
            self._schedule(topic, kind, window)


def _coalescer() -> TopicCoalescer:
    if settings.REDIS_URL:
        return SharedTopicCoalescer(settings.REDIS_URL, settings.KEY_PREFIX)
    return TopicCoalescer()  # one process (the in-memory default of one-off commands)


coalescer: TopicCoalescer = _coalescer()


def topic_push_coalesced_on_commit(
    topic: str, kind: str, item: dict[str, Any], window: float
) -> None:
    """Once the current transaction commits, push ``item`` to ``topic`` through the process's
    coalescer (``TopicCoalescer``): alone at once if the topic is quiet, else with the others
    of its window."""
    transaction.on_commit(lambda: coalescer.add(topic, kind, item, window))
