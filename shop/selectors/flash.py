"""Reads for flash sales: a session's status from its times, the public session list and one
session's snapshot (for the ``flash:<id>`` topic)."""

import math
from datetime import datetime, timedelta

from django.db.models import Prefetch, QuerySet

from core.errors import NotFound
from core.realtime import topic_last_seq
from shop.error_codes import FlashErrorCode
from shop.models import FlashItem, FlashSession

SCHEDULED = "scheduled"
LIVE = "live"
ENDED = "ended"
LIST_LIMIT = 50


def flash_topic(session_id: int) -> str:
    return f"flash:{session_id}"


def session_status(session: FlashSession, now: datetime) -> str:
    """``scheduled`` before ``starts_at``, ``live`` from it until ``ends_at``, then ``ended``."""
    if now < session.starts_at:
        return SCHEDULED
    return LIVE if now < session.ends_at else ENDED


def seconds_until(moment: datetime, now: datetime) -> int:
    """Whole seconds until ``moment``, rounded up (0 once it has passed): a countdown that shows
    0 only when the moment has come."""
    return max(0, math.ceil((moment - now) / timedelta(seconds=1)))


def _annotate(session: FlashSession, now: datetime) -> FlashSession:
    session.status = session_status(session, now)  # type: ignore[attr-defined]
    session.starts_in = seconds_until(session.starts_at, now)  # type: ignore[attr-defined]
    session.ends_in = seconds_until(session.ends_at, now)  # type: ignore[attr-defined]
    session.server_time = now  # type: ignore[attr-defined]
    return session


def _with_items(qs: QuerySet[FlashSession]) -> QuerySet[FlashSession]:
    return qs.prefetch_related(
        Prefetch(
            "items",
            queryset=FlashItem.objects.select_related("sku__product").order_by("sort_order", "id"),
        )
    )


def sessions_public(*, now: datetime) -> list[FlashSession]:
    """Published sessions that have not ended, soonest first, with their items."""
    sessions = _with_items(
        FlashSession.objects.filter(is_published=True, ends_at__gt=now).order_by("starts_at", "id")
    )[:LIST_LIMIT]
    return [_annotate(session, now) for session in sessions]


def session_public(*, session_id: int, now: datetime) -> FlashSession:
    """One published session (ended ones too) with its items and the ``seq`` of its topic the
    snapshot is current to (read first, so a push made meanwhile shows as not yet seen)."""
    seq = topic_last_seq(flash_topic(session_id))
    session = _with_items(FlashSession.objects.filter(pk=session_id, is_published=True)).first()
    if session is None:
        raise NotFound("Flash sale not found.", code=FlashErrorCode.FLASH_SESSION_NOT_FOUND)
    session.seq = seq  # type: ignore[attr-defined]
    return _annotate(session, now)
