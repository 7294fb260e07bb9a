"""Attribution's HTTP shapes (referral/api/attribution.py). The input is a strict ``BodyIn``;
outputs read the models and the selectors' annotations (referral/selectors/attribution.py).
Money is integer fen. A distributor's view carries no buyer data."""

from datetime import datetime
from typing import Literal

from ninja import Field, Schema

from core.schemas import BodyIn, DateTimeIn, StrictBool, StrictInt, trimmed
from referral.models import AttributionLevel
from referral.services.rules_admin import BINDING_DAYS, CLICK_WINDOW_DAYS, NOTE_MAX

RuleModel = Literal["first_touch", "binding", "last_touch"]
SelfPurchase = Literal["self", "none"]
Touch = Literal["click", "code", "binding", "self", "none"]
Note = trimmed(max_length=NOTE_MAX)


class ReferralMyAttributionOut(Schema):
    """One order attributed to me, at one paid level."""

    attribution_id: int
    level: int = Field(..., description="1: attributed to me; 2: to my direct downline.")
    paid_at: datetime
    source: str = Field(..., description="The order's source (normal, flash_sale, group_buy...).")
    goods_amount: int = Field(..., description="What the order's lines paid, fen.")
    refunded_amount: int = Field(..., description="Refunded so far, fen (at most goods_amount).")
    touch: Touch
    link_id: int | None = Field(..., description="My link (or code's link) that justified it.")
    rule_version: int
    held: bool = Field(
        ..., description="An open fraud flag holds it (on this order or its level-1 distributor)."
    )

    @staticmethod
    def resolve_paid_at(obj: AttributionLevel) -> datetime:
        return obj.attribution.paid_at

    @staticmethod
    def resolve_source(obj: AttributionLevel) -> str:
        return obj.attribution.source

    @staticmethod
    def resolve_goods_amount(obj: AttributionLevel) -> int:
        return obj.attribution.goods_amount

    @staticmethod
    def resolve_refunded_amount(obj: AttributionLevel) -> int:
        return obj.attribution.refunded_amount

    @staticmethod
    def resolve_touch(obj: AttributionLevel) -> str:
        return obj.attribution.touch

    @staticmethod
    def resolve_link_id(obj: AttributionLevel) -> int | None:
        return obj.attribution.link_id

    @staticmethod
    def resolve_rule_version(obj: AttributionLevel) -> int:
        return obj.attribution.rule_version


class ReferralAttributionLevelOut(Schema):
    level: int
    distributor_id: int


class ReferralAttributionRefundOut(Schema):
    refund_id: int
    amount: int
    refunded_at: datetime


class ReferralStaffAttributionOut(Schema):
    id: int
    order_id: int
    customer_id: int
    distributor_id: int | None = Field(..., description="Level 1; null when nobody.")
    rule_version: int
    touch: Touch
    reason: str = Field(..., description="Why this distributor, or why nobody: a stable code.")
    click_id: int | None
    link_id: int | None
    exclusive_code_id: int | None
    self_purchase: bool
    levels: list[ReferralAttributionLevelOut] = Field(..., description="At most two.")
    ancestry: list[int] = Field(
        ..., description="The distributor's upline chain when attributed, nearest first."
    )
    source: str
    goods_amount: int
    refunded_amount: int
    refunds: list[ReferralAttributionRefundOut]
    held: bool
    paid_at: datetime
    attributed_at: datetime

    @staticmethod
    def resolve_levels(obj) -> list[AttributionLevel]:
        return list(obj.levels.all())

    @staticmethod
    def resolve_refunds(obj) -> list:
        return list(obj.refunds.all())


class ReferralAttributionFilter(Schema):
    order_id: int | None = Field(None, ge=1, le=2**63 - 1)
    distributor_id: int | None = Field(
        None, ge=1, le=2**63 - 1, description="Attributed to, or paying at a level, this one."
    )


class ReferralAttributionRuleOut(Schema):
    id: int
    version: int
    model: RuleModel
    binding_days: int
    click_window_days: int
    code_overrides_link: bool
    self_purchase: SelfPurchase
    effective_from: datetime
    note: str
    created_by_id: int | None
    created_at: datetime
    is_current: bool = Field(..., description="The version in force now.")


class ReferralAttributionRuleIn(BodyIn):
    model: RuleModel = Field(
        ...,
        description="`last_touch`: the newest click within `click_window_days`; `binding`: "
        "bound `binding_days` after the bound distributor's last click (others cannot steal "
        "the customer meanwhile); `first_touch`: the first distributor, for good.",
    )
    binding_days: StrictInt = Field(..., ge=BINDING_DAYS[0], le=BINDING_DAYS[1])
    click_window_days: StrictInt = Field(..., ge=CLICK_WINDOW_DAYS[0], le=CLICK_WINDOW_DAYS[1])
    code_overrides_link: StrictBool = Field(
        ..., description="An exclusive code at checkout wins over any link or binding."
    )
    self_purchase: SelfPurchase = Field(
        ...,
        description="A distributor's own order: `self` counts for them, `none` for nobody.",
    )
    effective_from: DateTimeIn | None = Field(
        None, description="Default: now. Not in the past, not before the latest version's."
    )
    note: Note = Field("", description="Why this version (kept with it).")
