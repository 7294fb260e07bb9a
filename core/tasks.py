"""Celery tasks of core: thin, take ids, idempotent."""

from celery import shared_task

from core import services


@shared_task
def announcements_send_due() -> int:
    return services.announcements_send_due()


@shared_task
def idempotency_purge_expired() -> int:
    return services.idempotency_purge_expired()
