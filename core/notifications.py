"""Notifications: stored, then pushed after commit."""

from typing import Any

from django.db import IntegrityError, transaction

from core.models import Notification
from core.realtime import user_group
from core.side_effects import push_on_commit


def notification_payload(notification: Notification) -> dict[str, Any]:
    return {
        "id": notification.id,
        "kind": notification.kind,
        "title": notification.title,
        "body": notification.body,
        "data": notification.data,
        "created_at": notification.created_at.isoformat(),
        "read_at": notification.read_at.isoformat() if notification.read_at else None,
    }


def notify(
    *,
    user_id: int,
    kind: str,
    title: str,
    body: str = "",
    data: dict[str, Any] | None = None,
    dedupe_key: str | None = None,
) -> Notification | None:
    """Store a notification for ``user_id`` and push it to their sockets after commit.

    With ``dedupe_key``, a second call for the same user and key stores nothing and returns None
    (so a task that runs twice notifies once).
    """
    try:
        with transaction.atomic():
            notification = Notification.objects.create(
                user_id=user_id,
                kind=kind,
                title=title,
                body=body,
                data=data or {},
                dedupe_key=dedupe_key,
            )
    except IntegrityError:
        if dedupe_key is None:
            raise
        return None
    push_on_commit(
        user_group(user_id),
        {"type": "notification", "notification": notification_payload(notification)},
    )
    return notification
