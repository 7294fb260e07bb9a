from datetime import datetime
from typing import Any

from ninja import Field, Schema


class TokenPairOut(Schema):
    access_token: str
    refresh_token: str
    token_type: str = "Bearer"
    access_expires_at: datetime
    refresh_expires_at: datetime


class RefreshIn(Schema):
    refresh_token: str = Field(..., min_length=1, max_length=200)


class StaffLoginIn(Schema):
    username: str = Field(..., min_length=1, max_length=150)
    password: str = Field(..., min_length=1, max_length=200)


class MeOut(Schema):
    id: int
    username: str
    is_staff: bool


class NotificationOut(Schema):
    id: int
    kind: str
    title: str
    body: str
    data: dict[str, Any]
    created_at: datetime
    read_at: datetime | None


class NotificationPageOut(Schema):
    items: list[NotificationOut]
    cursor: int = Field(..., description="The last id returned; pass it as `after` next time.")
    has_more: bool
    unread_count: int


class MarkReadIn(Schema):
    ids: list[int] | None = Field(None, max_length=500)
    up_to: int | None = Field(None, ge=0, description="Mark every notification with id <= up_to.")


class MarkedOut(Schema):
    marked: int


class AnnouncementIn(Schema):
    title: str = Field(..., min_length=1, max_length=200)
    body: str = Field("", max_length=5000)
    send_at: datetime | None = Field(None, description="Default: now (sent by the next sweep).")
    audience: str = Field("all", pattern="^(all|staff)$")
    is_advertisement: bool = False


class AnnouncementOut(Schema):
    id: int
    title: str
    body: str
    audience: str
    is_advertisement: bool
    send_at: datetime
    sent_at: datetime | None
    recipients_count: int
