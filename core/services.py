"""Core use cases: staff login, notifications read state, announcements."""

from datetime import timedelta

from django.conf import settings
from django.contrib.auth import authenticate
from django.db import transaction
from django.utils import timezone

from core.error_codes import AuthErrorCode, NotificationErrorCode
from core.errors import InvalidInput, NotAuthenticated
from core.locks import lock_due_announcement
from core.models import Announcement, IdempotencyRecord, Notification, User
from core.notifications import notify
from core.tokens import TokenPair, session_start


def staff_login(*, username: str, password: str, user_agent: str = "") -> TokenPair:
    user = authenticate(username=username, password=password)
    if user is None or not user.is_staff:
        raise NotAuthenticated(
            "Wrong username or password.", code=AuthErrorCode.INVALID_CREDENTIALS
        )
    return session_start(user=user, user_agent=user_agent)


def notifications_mark_read(
    *, user: User, ids: list[int] | None = None, up_to: int | None = None
) -> int:
    if ids is None and up_to is None:
        raise InvalidInput("Give `ids` or `up_to`.", code=NotificationErrorCode.NOTHING_TO_MARK)
    qs = Notification.objects.filter(user=user, read_at__isnull=True)
    if ids is not None:
        qs = qs.filter(id__in=ids)
    if up_to is not None:
        qs = qs.filter(id__lte=up_to)
    return qs.update(read_at=timezone.now())


def announcement_create(
    *,
    title: str,
    body: str,
    send_at=None,
    audience: str = Announcement.Audience.ALL_USERS,
    is_advertisement: bool = False,
    created_by: User | None = None,
) -> Announcement:
    return Announcement.objects.create(
        title=title,
        body=body,
        audience=audience,
        is_advertisement=is_advertisement,
        send_at=send_at or timezone.now(),
        created_by=created_by,
    )


AD_LABEL = "[Ad] "


def announcement_send(*, announcement_id: int) -> int:
    """Deliver one due announcement to its audience. Safe to run twice: the row is locked and
    marked sent in the same transaction, and each notification carries a dedupe key."""
    with transaction.atomic():
        announcement = lock_due_announcement(pk=announcement_id, now=timezone.now())
        if announcement is None:
            return 0
        recipients = User.objects.filter(is_active=True)
        if announcement.audience == Announcement.Audience.STAFF:
            recipients = recipients.filter(is_staff=True)
        title = (AD_LABEL if announcement.is_advertisement else "") + announcement.title
        count = 0
        for user_id in recipients.values_list("id", flat=True).iterator():
            created = notify(
                user_id=user_id,
                kind="announcement",
                title=title,
                body=announcement.body,
                data={
                    "announcement_id": announcement.id,
                    "is_advertisement": announcement.is_advertisement,
                },
                dedupe_key=f"announcement:{announcement.id}",
            )
            count += created is not None
        announcement.sent_at = timezone.now()
        announcement.recipients_count = count
        announcement.save(update_fields=["sent_at", "recipients_count"])
        return count


def announcements_send_due() -> int:
    due = Announcement.objects.filter(sent_at__isnull=True, send_at__lte=timezone.now()).order_by(
        "send_at"
    )
    return sum(
        announcement_send(announcement_id=pk) for pk in due.values_list("id", flat=True)[:50]
    )


def idempotency_purge_expired() -> int:
    """Forget idempotency keys older than their TTL (never less than 24 h)."""
    cutoff = timezone.now() - max(settings.IDEMPOTENCY_KEY_TTL, timedelta(hours=24))
    deleted, _ = IdempotencyRecord.objects.filter(created_at__lt=cutoff).delete()
    return deleted
