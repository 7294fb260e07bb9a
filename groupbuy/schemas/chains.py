"""Chain sign-up's and the community feed's HTTP shapes (groupbuy/api/chains.py). Inputs are strict
``BodyIn`` bodies; outputs read the models or the selectors' views (groupbuy/selectors/chains.py).
Money is integer fen."""

from datetime import datetime
from typing import Literal

from ninja import Field, Schema

from core.schemas import BodyIn, DateTimeIn, Fen, Id, Quantity, StrictInt
from groupbuy.models import ChainPost, CommunityAnnouncement
from groupbuy.selectors import chains as selectors
from groupbuy.services import chains as services
from groupbuy.services import community as community_services
from shop.schemas.orders import OrderOut

PostStatus = Literal["open", "closed", "cancelled"]
EntryStatus = Literal["live", "dropped"]
AnnouncementStatus = Literal["published", "hidden"]


# --- inputs ---------------------------------------------------------------------------------------
class PostItemIn(BodyIn):
    sku_id: Id = Field(..., description="An active SKU of a product on sale.")
    price: Fen = Field(..., ge=1, description="The community price per unit, fen (≤ the SKU's).")
    max_units: StrictInt | None = Field(
        None, ge=1, description="Units all entries together may take; null: no cap."
    )


class PostCreateIn(BodyIn):
    title: str = Field(..., min_length=1, max_length=services.TITLE_MAX)
    body: str = Field("", max_length=services.BODY_MAX)
    pickup_point_id: Id = Field(..., description="One of the community's active pickup points.")
    deadline: DateTimeIn = Field(
        ..., description="Sign-up closes then: 1 minute to 30 days from now."
    )
    max_entries: StrictInt | None = Field(
        None, ge=1, description="Members on the list at once; null: no cap."
    )
    items: list[PostItemIn] = Field(
        ..., min_length=1, max_length=services.MAX_ITEMS, description="No SKU twice."
    )


class EntryLineIn(BodyIn):
    sku_id: Id = Field(..., description="One of the post's items.")
    quantity: Quantity = Field(..., ge=1, le=services.MAX_QUANTITY)


class EntryCreateIn(BodyIn):
    items: list[EntryLineIn] = Field(
        ..., min_length=1, max_length=services.MAX_LINES, description="No SKU twice."
    )


class CommunityAnnouncementIn(BodyIn):
    body: str = Field(
        ..., min_length=1, max_length=community_services.BODY_MAX, description="Plain text."
    )


class CommunityAnnouncementHideIn(BodyIn):
    reason: str = Field(
        ..., min_length=1, max_length=community_services.REASON_MAX, description="Kept on record."
    )


# --- posts ----------------------------------------------------------------------------------------
class PostPickupPointOut(Schema):
    id: int
    name: str
    address: str


class PostOut(Schema):
    id: int
    community_id: int
    title: str
    status: PostStatus
    author_nickname: str | None = Field(..., description="The leader; null: posted by staff.")
    deadline: datetime
    pickup_point: PostPickupPointOut
    items_count: int
    live_entries: int
    max_entries: int | None
    entries_left: int | None = Field(..., description="Places left now; null: no cap.")
    created_at: datetime
    closed_at: datetime | None
    arrived_at: datetime | None = Field(
        ..., description="When the leader said the delivery is at the pickup point."
    )

    @staticmethod
    def resolve_author_nickname(obj: ChainPost) -> str | None:
        return obj.author.nickname if obj.author else None

    @staticmethod
    def resolve_entries_left(obj: ChainPost) -> int | None:
        return selectors.entries_left(obj)


class PostItemOut(Schema):
    sku_id: int
    sku_code: str
    title: str = Field(..., description="The product's title.")
    attributes: dict
    list_price: int = Field(..., description="The SKU's own price, fen.")
    price: int = Field(..., description="What a member pays per unit, fen (≤ `list_price`).")
    max_units: int | None
    units_taken: int = Field(..., description="Units on live entries (paid or awaiting payment).")
    units_left: int | None = Field(..., description="Units still free; null: no cap.")


class EntryItemOut(Schema):
    sku_id: int
    title: str
    quantity: int


class EntryOut(Schema):
    seq: int = Field(..., description="The entry's number on the list (never reused).")
    nickname: str
    avatar_url: str
    items: list[EntryItemOut]
    paid: bool = Field(..., description="false: its order awaits payment.")


class MyEntryBriefOut(Schema):
    seq: int
    order_id: int
    paid: bool


class PostDetailOut(Schema):
    id: int
    community_id: int
    title: str
    body: str
    status: PostStatus
    author_nickname: str | None = Field(..., description="The leader; null: posted by staff.")
    deadline: datetime
    seconds_left: int = Field(..., description="Until the deadline while open, else 0.")
    created_at: datetime
    closed_at: datetime | None
    arrived_at: datetime | None
    pickup_point: PostPickupPointOut
    items: list[PostItemOut]
    entries: list[EntryOut] = Field(..., description="Live entries, by `seq`.")
    live_entries: int
    max_entries: int | None
    entries_left: int | None = Field(..., description="Places left now; null: no cap.")
    my_entry: MyEntryBriefOut | None = Field(..., description="My live entry, if any.")
    topic: str = Field(..., description="The WebSocket topic of this post: `post:<id>`.")
    seq: int = Field(
        ..., description="The topic's last message this snapshot includes (0: none yet)."
    )


class MyEntryOut(Schema):
    post_id: int
    seq: int
    status: EntryStatus
    order_id: int
    paid: bool
    items: list[EntryItemOut]
    created_at: datetime
    paid_at: datetime | None
    dropped_at: datetime | None
    drop_reason: str = Field(
        ..., description="Why it left the list: `entry_cancelled`, `expired`, `post_closed`, ..."
    )


class EntryPlacedOut(Schema):
    entry: MyEntryOut
    order: OrderOut = Field(..., description="My entry's order, to pay before its deadline.")


# --- the pickup sheet -----------------------------------------------------------------------------
class SheetLineOut(Schema):
    sku_id: int
    sku_code: str
    title: str
    quantity: int = Field(..., description="Units to hand over (less any refunded).")
    amount: int = Field(..., description="Paid for them, fen (less any refunded).")


class SheetMemberOut(Schema):
    seq: int
    nickname: str
    phone: str
    pickup_code: str | None
    order_id: int
    items: list[SheetLineOut]
    total: int = Field(..., description="Fen.")


class SheetSkuOut(Schema):
    sku_id: int
    sku_code: str
    title: str
    units: int
    amount: int = Field(..., description="Fen.")


class PickupSheetOut(Schema):
    post_id: int
    title: str
    status: PostStatus
    closed_at: datetime | None
    arrived_at: datetime | None
    pickup_point: PostPickupPointOut
    members: list[SheetMemberOut] = Field(..., description="Paid entries, by `seq`.")
    skus: list[SheetSkuOut] = Field(..., description="Each item of the post, in post order.")
    total_units: int
    total_amount: int = Field(..., description="Fen.")


# --- announcements and the feed -------------------------------------------------------------------
class CommunityAnnouncementOut(Schema):
    id: int
    community_id: int
    body: str
    author_nickname: str
    author_avatar_url: str
    created_at: datetime

    @staticmethod
    def resolve_author_nickname(obj: CommunityAnnouncement) -> str:
        return obj.author.nickname

    @staticmethod
    def resolve_author_avatar_url(obj: CommunityAnnouncement) -> str:
        return obj.author.avatar_url


class StaffCommunityAnnouncementOut(CommunityAnnouncementOut):
    status: AnnouncementStatus
    hidden_at: datetime | None
    hidden_reason: str
    hidden_by_id: int | None


class FeedGroupOut(Schema):
    id: int = Field(..., description="The group (join it with `POST /groups/{id}/join`).")
    campaign_id: int
    campaign_title: str
    size: int
    seats_left: int
    expires_at: datetime
    leader_nickname: str


class CommunityFeedOut(Schema):
    community_id: int
    topic: str = Field(..., description="The community's WebSocket topic: `community:<id>`.")
    seq: int = Field(
        ..., description="The topic's last message this snapshot includes (0: none yet)."
    )
    announcements: list[CommunityAnnouncementOut] = Field(
        ..., description="The latest, newest first."
    )
    posts: list[PostOut] = Field(..., description="Open sign-up posts, closing soonest first.")
    groups: list[FeedGroupOut] = Field(
        ..., description="Open groups of the community with a seat free, expiring soonest first."
    )
