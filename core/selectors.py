from typing import Any

from django.db.models import QuerySet

from core.models import Announcement, Notification, User


def notifications_after(*, user: User, after: int, limit: int) -> dict[str, Any]:
    items = list(Notification.objects.filter(user=user, id__gt=after).order_by("id")[: limit + 1])
    has_more = len(items) > limit
    items = items[:limit]
    return {
        "items": items,
        "cursor": items[-1].id if items else after,
        "has_more": has_more,
        "unread_count": Notification.objects.filter(user=user, read_at__isnull=True).count(),
    }


def announcements() -> QuerySet[Announcement]:
    return Announcement.objects.order_by("-send_at", "-id")
