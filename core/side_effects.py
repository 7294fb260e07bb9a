"""Side effects after commit, through one helper (Zulip's ``send_event_on_commit``).

Celery tasks and Channels ``group_send`` calls are queued with ``transaction.on_commit`` so a
rolled-back transaction never announces anything. A failed push is logged, never raised: the
stored notification is the truth and clients catch up from it.
"""

import logging
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

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
