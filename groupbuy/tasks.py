"""Celery tasks of groupbuy: thin, safe to run twice (the services lock and re-check)."""

from celery import shared_task


@shared_task
def groups_expire_due() -> int:
    """Periodic: fail, or auto-complete, open groups past their expiry (refunding paid members
    of failed groups)."""
    from groupbuy.services.groups import groups_expire_due as expire

    return expire()
