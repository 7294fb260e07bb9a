"""Every row lock core takes, in one place (the shop's are in ``shop/locks.py``, which documents
the project's lock order; core's rows are locked alone, never together with shop rows).

Every ``select_for_update`` in ``core`` is written here (``tests/shop/test_locks.py`` fails on
one anywhere else). Call inside ``transaction.atomic()``.
"""

from datetime import datetime
from typing import TypeVar

from django.db.models import Model, QuerySet

from core.models import Announcement, IdempotencyRecord, OutboxDelivery, RefreshToken

M = TypeVar("M", bound=Model)


def lock_refresh_token(*, token_hash: str) -> RefreshToken | None:
    """The refresh token with its session, both rows locked: a rotation and a revocation of the
    same session queue behind each other."""
    return (
        RefreshToken.objects.select_for_update()
        .select_related("session")
        .filter(token_hash=token_hash)
        .first()
    )


def lock_due_announcement(*, pk: int, now: datetime) -> Announcement | None:
    """The announcement if it is due and not sent yet, unless another worker holds it (then
    ``None``: that worker sends it)."""
    return (
        Announcement.objects.select_for_update(skip_locked=True)
        .filter(pk=pk, sent_at__isnull=True, send_at__lte=now)
        .first()
    )


def lock_idempotency_record_nowait(pk: int) -> IdempotencyRecord | None:
    """The claim row; raises ``DatabaseError`` at once (no wait) if another request holds it."""
    return IdempotencyRecord.objects.select_for_update(nowait=True).filter(pk=pk).first()


def lock_outbox_delivery(pk: int, *, status: str) -> OutboxDelivery | None:
    """The delivery if it is in ``status``."""
    return OutboxDelivery.objects.select_for_update().filter(pk=pk, status=status).first()


def lock_skip_locked(rows: QuerySet[M]) -> QuerySet[M]:
    """For sweeps: ``rows`` locked when evaluated (their own rows, not joined ones), skipping
    rows another worker holds. Slice the result into batches."""
    return rows.select_for_update(of=("self",), skip_locked=True)
