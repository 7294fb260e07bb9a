"""Bargain's HTTP shapes (groupbuy/api/bargains.py). The one input is a strict ``BodyIn`` body;
outputs read the models or the selectors' views (groupbuy/selectors/bargains.py). Money is
integer fen."""

from datetime import datetime
from typing import Literal

from django.utils import timezone
from ninja import Field, Schema

from groupbuy.models import Bargain, BargainCampaign
from groupbuy.schemas.groups import FlowDeliveryIn, ProductBriefOut
from groupbuy.selectors.bargains import bargain_seconds_left
from shop.schemas.orders import OrderOut

CampaignStatus = Literal["active", "ended"]
BargainStatus = Literal["active", "floor_reached", "purchased", "expired"]


# --- campaigns ------------------------------------------------------------------------------------
class BargainSkuOut(Schema):
    sku_id: int
    sku_code: str
    list_price: int = Field(..., description="The SKU's own price, fen.")

    @staticmethod
    def resolve_sku_id(obj: BargainCampaign) -> int:
        return obj.sku_id

    @staticmethod
    def resolve_sku_code(obj: BargainCampaign) -> str:
        return obj.sku.code

    @staticmethod
    def resolve_list_price(obj: BargainCampaign) -> int:
        return obj.sku.price


class BargainCampaignOut(Schema):
    id: int
    title: str
    status: CampaignStatus
    product: ProductBriefOut
    sku: BargainSkuOut
    starts_at: datetime
    ends_at: datetime = Field(..., description="No new bargain after this; started ones run on.")
    start_price: int = Field(..., description="Where a bargain starts, fen (at most `list_price`).")
    floor_price: int = Field(..., description="The lowest price, reached at the last help, fen.")
    helps_needed: int = Field(..., description="Friends' helps that reach the floor.")
    bargain_ttl_seconds: int = Field(
        ..., description="How long a bargain runs once started (never past `ends_at`)."
    )
    payment_ttl_seconds: int = Field(
        ..., description="Once at the floor, how long the initiator has to buy and pay."
    )
    buy_at_any_price: bool = Field(
        ..., description="Whether the initiator may buy at the current price before the floor."
    )
    max_bargains_per_customer: int
    helps_per_helper_per_day: int = Field(
        ..., description="Bargains of this campaign one customer may help per day."
    )
    helpers_must_be_new: bool = Field(
        ..., description="Only customers who never had an order paid may help."
    )

    @staticmethod
    def resolve_sku(obj: BargainCampaign) -> BargainCampaign:
        return obj


# --- one bargain ----------------------------------------------------------------------------------
class BargainCampaignBriefOut(Schema):
    id: int
    title: str
    product_title: str
    sku_id: int


class BargainHelpOut(Schema):
    seq: int = Field(..., description="The help's place, 1 to `helps_needed`.")
    nickname: str
    avatar_url: str
    cut: int = Field(..., description="How much this help took off, fen.")
    price_after: int
    created_at: datetime


class BargainDetailOut(Schema):
    id: int
    campaign: BargainCampaignBriefOut
    status: BargainStatus
    start_price: int
    floor_price: int
    current_price: int = Field(..., description="The price now, fen: what buying it costs.")
    helps_needed: int
    helps_done: int
    helps_left: int
    first_cut: int = Field(..., description="The initiator's own cut when starting, fen.")
    expires_at: datetime = Field(
        ..., description="While active: the bargain's end; at the floor: the deadline to buy."
    )
    seconds_left: int = Field(..., description="Until `expires_at` while live, else 0.")
    floor_reached_at: datetime | None
    purchased_at: datetime | None
    buy_at_any_price: bool
    can_buy: bool = Field(
        ..., description="I started it and a purchase would be accepted now (by the bargain)."
    )
    is_initiator: bool
    has_helped: bool = Field(..., description="Whether I helped it.")
    helps: list[BargainHelpOut] = Field(..., description="Friends' helps, in order.")
    order_id: int | None = Field(
        ..., description="The purchase order (pending or paid): for the initiator only, else null."
    )
    seed: str | None = Field(
        ...,
        description="The cut plan's seed (digits) once the bargain is no longer active, to audit "
        "its cuts; null while active.",
    )
    topic: str = Field(..., description="The WebSocket topic of this bargain: `bargain:<id>`.")
    seq: int = Field(
        ..., description="The topic's last message this snapshot includes (0: none yet)."
    )


class BargainHelpResultOut(Schema):
    seq: int
    cut: int
    price_after: int


class BargainHelpedOut(Schema):
    help: BargainHelpResultOut
    bargain: BargainDetailOut


class BargainPurchaseIn(FlowDeliveryIn):
    """Where the bargain's item goes; the price is the bargain's."""


class BargainPurchasedOut(Schema):
    bargain: BargainDetailOut
    order: OrderOut = Field(..., description="The purchase order, to pay before its deadline.")


# --- my bargains ----------------------------------------------------------------------------------
class MyBargainOut(Schema):
    id: int
    campaign_id: int
    campaign_title: str
    status: BargainStatus
    start_price: int
    floor_price: int
    current_price: int
    helps_needed: int
    helps_done: int
    helps_left: int
    expires_at: datetime
    seconds_left: int
    order_id: int | None = Field(..., description="My purchase order (pending or paid), if any.")

    @staticmethod
    def resolve_campaign_title(obj: Bargain) -> str:
        return obj.campaign.title

    @staticmethod
    def resolve_helps_left(obj: Bargain) -> int:
        return obj.helps_needed - obj.helps_done

    @staticmethod
    def resolve_seconds_left(obj: Bargain) -> int:
        return bargain_seconds_left(obj, timezone.now())
