"""Referral's periodic jobs (declared in config/settings.py ``CELERY_BEAT_SCHEDULE``): thin,
idempotent wrappers around services."""

from celery import shared_task


@shared_task
def clicks_flush() -> int:
    from referral.services.clicks import clicks_flush as flush

    return flush()


@shared_task
def fraud_scan() -> int:
    from referral.services.fraud import fraud_scan as scan

    return scan()
