"""Group-buy's HTTP shapes (groupbuy/api/groups.py). Inputs are strict ``BodyIn`` bodies;
outputs read the models or the selectors' views (groupbuy/selectors/groups.py). Money is
integer fen."""

from datetime import datetime
from typing import Literal

from django.utils import timezone
from ninja import Field, Schema

from core.schemas import BodyIn, Id, Quantity
from groupbuy.models import GroupCampaignSku, GroupSeat
from groupbuy.selectors import groups as selectors
from shop.schemas.orders import DeliveryMode, OrderOut

JoinMode = Literal["share_token", "community"]
CampaignStatus = Literal["active", "ended"]
GroupStatus = Literal["open", "succeeded", "failed"]
LiveSeatStatus = Literal["held", "paid"]


# --- campaigns ------------------------------------------------------------------------------------
class ProductBriefOut(Schema):
    id: int
    title: str


class CampaignSkuOut(Schema):
    sku_id: int
    sku_code: str
    list_price: int = Field(..., description="The SKU's own price, fen.")
    group_price: int = Field(
        ..., description="What a member pays per unit, fen (never above `list_price`)."
    )
    leader_price: int | None = Field(
        ...,
        description="What the group's opener pays per unit, fen; null: the group price.",
    )

    @staticmethod
    def resolve_sku_code(obj: GroupCampaignSku) -> str:
        return obj.sku.code

    @staticmethod
    def resolve_list_price(obj: GroupCampaignSku) -> int:
        return obj.sku.price

    @staticmethod
    def resolve_group_price(obj: GroupCampaignSku) -> int:
        return min(obj.group_price, obj.sku.price)  # as the checkout charges it

    @staticmethod
    def resolve_leader_price(obj: GroupCampaignSku) -> int | None:
        return None if obj.leader_price is None else min(obj.leader_price, obj.sku.price)


class CampaignOut(Schema):
    id: int
    title: str
    status: CampaignStatus
    product: ProductBriefOut
    starts_at: datetime
    ends_at: datetime = Field(..., description="No new group after this; open ones run on.")
    group_size: int = Field(..., description="Paid buyers a group needs to succeed.")
    group_ttl_seconds: int = Field(..., description="How long a group stays open once opened.")
    max_quantity_per_order: int = Field(..., description="Units one seat's order may have.")
    join_mode: JoinMode = Field(
        ...,
        description="`share_token`: groups are joined through their share link only; "
        "`community`: also by id, from the group's own community.",
    )
    auto_complete: bool = Field(
        ...,
        description="An expired group with enough paid seats completes anyway, the missing "
        "seats waived (disclosed on the group).",
    )
    auto_complete_min_fill_bps: int = Field(
        ..., description="Auto-complete needs paid seats * 10000 >= size * this."
    )
    skus: list[CampaignSkuOut]

    @staticmethod
    def resolve_skus(obj: object) -> list[GroupCampaignSku]:
        return list(obj.skus.all())  # type: ignore[attr-defined]


class GroupBriefOut(Schema):
    id: int
    seats_left: int
    expires_at: datetime
    leader_nickname: str


class CampaignDetailOut(CampaignOut):
    open_groups: list[GroupBriefOut] = Field(
        ...,
        description=f"Up to {selectors.OPEN_GROUPS_LIMIT} groups of the viewer's community "
        "(`community_id`) to join by id, soonest expiring first: only in join mode `community`.",
    )


# --- groups ---------------------------------------------------------------------------------------
class MemberOut(Schema):
    nickname: str
    avatar_url: str
    is_leader: bool
    paid: bool = Field(..., description="false: the seat is held while its order awaits payment.")


class GroupDetailOut(Schema):
    id: int
    campaign_id: int
    status: GroupStatus
    size: int
    paid_seats: int
    held_seats: int = Field(..., description="Seats held by orders awaiting payment.")
    seats_left: int = Field(..., description="Seats free to take now (0 once closed).")
    expires_at: datetime
    seconds_left: int = Field(..., description="Until `expires_at` while open, else 0.")
    succeeded_at: datetime | None
    failed_at: datetime | None
    auto_completed: bool
    waived_seats: int = Field(..., description="Seats auto-complete waived (no buyer).")
    disclosure: str | None = Field(
        ..., description="When auto-completed: how many seats were real and how many waived."
    )
    members: list[MemberOut] = Field(..., description="Held and paid seats, in seat order.")
    is_member: bool = Field(..., description="Whether I hold a seat (held or paid) in it.")
    share_token: str | None = Field(
        ..., description="For the share link (`/groups/by-token/...`); members only, else null."
    )
    topic: str = Field(..., description="The WebSocket topic of this group: `group:<id>`.")
    seq: int = Field(
        ..., description="The topic's last message this snapshot includes (0: none yet)."
    )


class FlowDeliveryIn(BodyIn):
    """How a flow's order is delivered (a group seat's, a bargain's purchase)."""

    delivery_mode: DeliveryMode
    community_id: Id | None = Field(None, description="Default: the pickup point's community.")
    pickup_point_id: Id | None = Field(None, description="Required for pickup.")
    address_id: Id | None = Field(
        None,
        description="One of your addresses: required for courier, optional for leader delivery.",
    )


class GroupOrderIn(FlowDeliveryIn):
    sku_id: Id = Field(..., description="One of the campaign's SKUs.")
    quantity: Quantity = Field(
        1, ge=1, le=999, description="At most the campaign's `max_quantity_per_order`."
    )


class GroupOrderOut(Schema):
    group: GroupDetailOut
    order: OrderOut = Field(..., description="My seat's order, to pay before its deadline.")


class MyGroupOut(Schema):
    id: int = Field(..., description="The group.")
    campaign_id: int
    campaign_title: str
    status: GroupStatus
    size: int
    seats_left: int
    expires_at: datetime
    leader_nickname: str
    seat_status: LiveSeatStatus = Field(..., description="My seat: `held` until its order is paid.")
    is_leader: bool = Field(..., description="Whether my seat leads the group.")
    order_id: int = Field(..., description="My seat's order.")

    @staticmethod
    def resolve_id(obj: GroupSeat) -> int:
        return obj.group_id

    @staticmethod
    def resolve_campaign_id(obj: GroupSeat) -> int:
        return obj.group.campaign_id

    @staticmethod
    def resolve_campaign_title(obj: GroupSeat) -> str:
        return obj.group.campaign.title

    @staticmethod
    def resolve_status(obj: GroupSeat) -> str:
        return obj.group.status

    @staticmethod
    def resolve_size(obj: GroupSeat) -> int:
        return obj.group.size

    @staticmethod
    def resolve_seats_left(obj: GroupSeat) -> int:
        return selectors.group_seats_left(obj.group, timezone.now())

    @staticmethod
    def resolve_expires_at(obj: GroupSeat) -> datetime:
        return obj.group.expires_at

    @staticmethod
    def resolve_leader_nickname(obj: GroupSeat) -> str:
        return obj.group.leader.nickname

    @staticmethod
    def resolve_seat_status(obj: GroupSeat) -> str:
        return obj.status
