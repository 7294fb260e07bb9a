"""Reconciliation discrepancies: what a provider reported that our books cannot take as is.

A provider report must never fail (a webhook answered 500 is retried for days and blocks
nothing but itself): the service that meets such a report records a discrepancy here, in its own
transaction, tells the operators who can resolve it, and answers normally. Operators resolve it
by hand (e.g. recover a double refund) and mark it resolved.
"""

from typing import Any

from django.conf import settings
from django.contrib.auth.models import Permission
from django.db import IntegrityError, transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from core.errors import NotFound
from core.models import User
from core.money import format_minor
from core.notifications import notify
from shop import locks
from shop.error_codes import PaymentErrorCode
from shop.models import Order, OrderEvent, Payment, ReconciliationDiscrepancy, Refund
from shop.services.timeline import order_event_record

RESOLVE_PERMISSION = ("shop", "change_reconciliationdiscrepancy")


def discrepancy_operators() -> QuerySet[User]:
    """Active staff who may resolve discrepancies (superusers, or holding the permission
    directly or through a group)."""
    app_label, codename = RESOLVE_PERMISSION
    perm = Permission.objects.filter(content_type__app_label=app_label, codename=codename)
    return (
        User.objects.filter(is_active=True, is_staff=True)
        .filter(
            Q(is_superuser=True) | Q(user_permissions__in=perm) | Q(groups__permissions__in=perm)
        )
        .distinct()
        .order_by("pk")
    )


def _notify_operators(discrepancy: ReconciliationDiscrepancy) -> None:
    order = discrepancy.order
    where = f" on order {order.number}" if order is not None else ""
    for user_id in discrepancy_operators().values_list("pk", flat=True):
        notify(
            user_id=user_id,
            kind="reconciliation_discrepancy",
            title="Payment discrepancy to review",
            body=f"{discrepancy.get_kind_display()}{where}: "
            f"{format_minor(discrepancy.amount, order.currency if order else settings.CURRENCY)}.",
            data={
                "discrepancy_id": discrepancy.pk,
                "kind": discrepancy.kind,
                "order_id": discrepancy.order_id,
                "refund_id": discrepancy.refund_id,
                "amount": discrepancy.amount,
            },
            dedupe_key=f"discrepancy:{discrepancy.pk}",
        )


def discrepancy_record(
    *,
    kind: str,
    amount: int,
    order: Order | None = None,
    payment: Payment | None = None,
    refund: Refund | None = None,
    provider_ref: str = "",
    details: dict[str, Any] | None = None,
) -> ReconciliationDiscrepancy:
    """Record one discrepancy (once: a redelivered report returns the first record), note it on
    the order's timeline and notify the operators."""
    try:
        with transaction.atomic():
            discrepancy = ReconciliationDiscrepancy.objects.create(
                kind=kind,
                amount=amount,
                order=order,
                payment=payment,
                refund=refund,
                provider_ref=(provider_ref or "")[:255],
                details=details or {},
            )
    except IntegrityError:
        existing = ReconciliationDiscrepancy.objects.filter(kind=kind)
        if refund is not None:
            return existing.get(refund=refund)
        return existing.get(refund__isnull=True, provider_ref=provider_ref[:255])
    if order is not None:
        order_event_record(
            order=order,
            kind=OrderEvent.Kind.DISCREPANCY,
            from_status=order.status,
            reason=kind,
            payment=payment,
            refund=refund,
            amount=amount,
        )
    _notify_operators(discrepancy)
    return discrepancy


def discrepancy_resolve(
    *, discrepancy_id: int, staff: User, note: str = ""
) -> ReconciliationDiscrepancy:
    """Mark a discrepancy handled by ``staff``. Idempotent: the first resolution stays."""
    with transaction.atomic():
        discrepancy = locks.lock_discrepancy(discrepancy_id)
        if discrepancy is None:
            raise NotFound("No such discrepancy.", code=PaymentErrorCode.DISCREPANCY_NOT_FOUND)
        if discrepancy.resolved_at is None:
            discrepancy.resolved_at = timezone.now()
            discrepancy.resolved_by = staff
            discrepancy.resolution_note = note[:500]
            discrepancy.save(update_fields=["resolved_at", "resolved_by", "resolution_note"])
        return discrepancy
