"""Celery tasks of core: thin, take ids, idempotent."""

from celery import shared_task

from core import outbox, services


@shared_task
def announcements_send_due() -> int:
    return services.announcements_send_due()


@shared_task
def idempotency_purge_expired() -> int:
    return services.idempotency_purge_expired()


@shared_task
def outbox_dispatch(event_id: int | None = None) -> int:
    """Kicked after an event commits: deliver it to its subscribers now; without an id (the
    trailing kick of a burst), deliver every undispatched event."""
    if event_id is None:
        return outbox.outbox_sweep()
    return outbox.event_dispatch(event_id=event_id)


@shared_task
def outbox_sweep() -> int:
    """Periodic: deliver whatever is undelivered and due (lost kicks, retries)."""
    return outbox.outbox_sweep()


@shared_task
def outbox_prune() -> int:
    """Periodic: delete delivered outbox rows past ``OUTBOX_RETENTION``."""
    return outbox.outbox_prune()
