"""Celery tasks of the shop: thin, take ids, safe to run twice (the services they call lock the
rows they change and re-check state)."""

from celery import shared_task


@shared_task
def orders_expire_due() -> int:
    """Periodic: cancel unpaid orders past their payment deadline and release their stock."""
    from shop.services.orders import orders_expire_due as expire

    return expire()


@shared_task
def orders_complete_due() -> int:
    """Periodic: complete fulfilled orders whose after-sale window has passed."""
    from shop.services.orders import orders_complete_due as complete

    return complete()


@shared_task
def refund_send(refund_id: int) -> None:
    """Send an approved refund to the payment provider (owned by the payments area)."""
    from shop.services.payments import refund_send as send

    send(refund_id=refund_id)


@shared_task
def refunds_resend_stuck() -> int:
    """Periodic: resend approved refunds that never reached the provider (payments area)."""
    from shop.services.payments import refunds_resend_stuck as resend

    return resend()


@shared_task
def coupon_issuance_run(issuance_id: int) -> int:
    """Issue a coupon template to a segment in batches (resumable: a rerun continues after the
    last committed batch; nobody gets a coupon twice). Returns the coupons issued so far."""
    from shop.services.coupons import coupon_issuance_fail
    from shop.services.coupons import coupon_issuance_run as run

    try:
        return run(issuance_id=issuance_id).issued
    except Exception as exc:
        coupon_issuance_fail(issuance_id=issuance_id, error=repr(exc))
        raise


@shared_task
def coupon_issuances_resume_stuck() -> int:
    """Periodic: start again coupon issuances left pending or running by a lost message."""
    from shop.services.coupons import coupon_issuances_resume_stuck as resume

    return resume()


@shared_task
def flash_sessions_tick() -> int:
    """Periodic: flash sale countdown, start, end and stock pushes (shop/services/flash.py)."""
    from shop.services.flash import flash_sessions_tick as tick

    return tick()
