"""Celery tasks of groupbuy: thin, safe to run twice (the services lock and re-check)."""

from celery import shared_task


@shared_task
def groups_expire_due() -> int:
    """Periodic: fail, or auto-complete, open groups past their expiry (refunding paid members
    of failed groups)."""
    from groupbuy.services.groups import groups_expire_due as expire

    return expire()


@shared_task
def bargains_expire_due() -> int:
    """Periodic: expire bargains past their deadline and warn initiators of those expiring
    soon."""
    from groupbuy.services.bargains import bargains_expire_due as expire

    return expire()


@shared_task
def posts_close_due() -> int:
    """Periodic: close chain sign-up posts past their deadline."""
    from groupbuy.services.chains import posts_close_due as close

    return close()
