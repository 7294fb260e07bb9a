"""Exclusive codes' HTTP shapes (referral/api/codes.py). Inputs are strict ``BodyIn`` bodies;
outputs read ``ExclusiveCode`` rows with their shop code and template. Money is integer fen."""

from datetime import datetime
from typing import Literal

from django.utils import timezone
from ninja import Field, Schema

from core.schemas import BodyIn, DateTimeIn, Fen, Id, StrictInt
from referral.services.codes import exclusive_code_usable
from shop.schemas.coupons import MAX_COUNT, MAX_FEN

ExclusiveCodeKind = Literal["fixed", "percent"]


class ExclusiveCodeIssueIn(BodyIn):
    distributor_id: Id = Field(..., description="An active distributor.")
    code: str = Field(
        "",
        pattern=r"^([A-Za-z0-9_-]{4,32})?$",
        description="The code's text (4-32 letters, digits, `-`, `_`; unique whatever the case), "
        "or leave it out to have one generated (12 characters, no look-alikes).",
    )
    kind: ExclusiveCodeKind = Field(
        ..., description="`fixed`: `amount` off; `percent`: `percent_bps` off, capped."
    )
    amount: Fen = Field(0, ge=0, le=MAX_FEN, description="Fixed: fen off (at least 1).")
    percent_bps: StrictInt = Field(
        0, ge=0, le=10_000, description="Percent: share off in basis points (1000 = 10 % off)."
    )
    max_discount: Fen | None = Field(
        None, ge=1, le=MAX_FEN, description="Percent: the most it takes off, fen; null: no cap."
    )
    min_spend: Fen = Field(0, ge=0, le=MAX_FEN, description="Goods must reach this, fen.")
    valid_from: DateTimeIn | None = Field(None, description="Redeemable from then (null: at once).")
    valid_until: DateTimeIn | None = Field(
        None, description="Redeemable and valid until then (in the future); or give valid_days."
    )
    valid_days: StrictInt | None = Field(
        None, ge=1, le=3650, description="Each redeemed coupon lasts this many days."
    )
    total_limit: StrictInt | None = Field(
        None, ge=1, le=MAX_COUNT, description="Redemptions in all; null: unlimited."
    )
    per_customer_limit: StrictInt = Field(
        1, ge=1, le=1, description="A shared code is redeemed once per customer."
    )
    name: str = Field("", max_length=100, description="Default: `Exclusive: <distributor>`.")


class ReferralCodeTermsOut(Schema):
    """What an exclusive code takes off, on what, and when (its shop template)."""

    template_id: int
    name: str
    kind: ExclusiveCodeKind
    amount: int = Field(..., description="Fixed: fen off.")
    percent_bps: int = Field(..., description="Percent: share off in basis points.")
    max_discount: int | None = Field(None, description="Percent: the most it takes off, fen.")
    min_spend: int = Field(..., description="The goods must reach this, fen.")
    valid_from: datetime | None
    valid_until: datetime | None
    valid_days: int | None = Field(None, description="A redeemed coupon lasts this many days.")
    total_limit: int | None = Field(None, description="Redemptions in all; null: unlimited.")
    per_customer_limit: int
    status: Literal["draft", "active", "paused", "ended"]


def _terms(obj) -> ReferralCodeTermsOut:
    template = obj.coupon_code.template
    return ReferralCodeTermsOut(
        template_id=template.pk,
        name=template.name,
        kind=template.kind,
        amount=template.amount,
        percent_bps=template.percent_bps,
        max_discount=template.max_discount,
        min_spend=template.min_spend,
        valid_from=template.valid_from,
        valid_until=template.valid_until,
        valid_days=template.valid_days,
        total_limit=template.total_quantity,
        per_customer_limit=template.per_customer_limit,
        status=template.status,
    )


class ReferralMyCodeOut(Schema):
    """One of my exclusive codes, to share."""

    id: int
    code: str = Field(..., description="What a customer types at checkout.")
    terms: ReferralCodeTermsOut
    redemptions: int = Field(..., description="Customers who redeemed it.")
    active: bool = Field(..., description="False once an operator deactivated it.")
    usable: bool = Field(..., description="A new customer could redeem it now.")
    created_at: datetime

    @staticmethod
    def resolve_code(obj) -> str:
        return obj.coupon_code.code

    @staticmethod
    def resolve_terms(obj) -> ReferralCodeTermsOut:
        return _terms(obj)

    @staticmethod
    def resolve_redemptions(obj) -> int:
        return obj.coupon_code.redemptions

    @staticmethod
    def resolve_active(obj) -> bool:
        return obj.coupon_code.is_active

    @staticmethod
    def resolve_usable(obj) -> bool:
        return exclusive_code_usable(obj, timezone.now())


class ReferralExclusiveCodeOut(ReferralMyCodeOut):
    """An exclusive code as operators see it."""

    distributor_id: int
    distributor_name: str
    coupon_code_id: int
    link_id: int = Field(..., description="The code's hidden share link (its checkouts' clicks).")
    link_short_code: str
    created_by_id: int | None

    @staticmethod
    def resolve_distributor_name(obj) -> str:
        return obj.distributor.display_name

    @staticmethod
    def resolve_link_short_code(obj) -> str:
        return obj.link.short_code
