from datetime import datetime
from typing import Any, Literal

from django.utils import timezone
from ninja import Field, Schema
from pydantic import model_validator

from core.schemas import BodyIn, DateTimeIn, Fen, Id, StrictBool, StrictInt, trimmed
from shop.schemas.orders import DeliveryMode, OrderLineIn
from shop.selectors.coupons import coupon_state

CouponKind = Literal["fixed", "percent", "threshold", "free_shipping"]
CouponScope = Literal["all", "categories", "products", "skus"]
CouponChannel = Literal["claimable", "issued", "new_customer", "fan_drop", "compensation", "code"]
TemplateStatus = Literal["draft", "active", "paused", "ended"]
CouponState = Literal["available", "locked", "used", "expired"]
Segment = Literal["community", "bought_product", "new_customers", "customers"]
IssuanceStatus = Literal["pending", "running", "done", "failed"]
MAX_FEN = 10**12  # ten billion yuan: far above any coupon, far below the column's range
MAX_COUNT = 2_147_483_647  # PositiveIntegerField
MAX_CHECKOUT_COUPONS = 5
Name = trimmed(min_length=1, max_length=100)


class TierSchema(BodyIn):
    threshold: Fen = Field(..., ge=1, le=MAX_FEN, description="Spend at least this (fen)...")
    off: Fen = Field(..., ge=1, le=MAX_FEN, description="...to take this off (fen).")


class CouponTermsOut(Schema):
    """What a coupon does and where it applies."""

    id: int
    name: str
    description: str
    kind: CouponKind
    amount: int = Field(..., description="Fixed: fen off.")
    percent_bps: int = Field(..., description="Percent: share off in basis points.")
    max_discount: int | None = Field(None, description="Percent: the most it takes off, fen.")
    tiers: list[TierSchema]
    min_spend: int = Field(..., description="The eligible goods must reach this, fen.")
    scope: CouponScope
    slot: Literal["platform", "exclusive", "shipping"] = Field(
        ..., description="At most one coupon per slot (and per kind) on an order."
    )
    stackable: bool = Field(..., description="False: stands alone on an order.")
    community_ids: list[int] = Field(..., description="Empty: every community.")

    @staticmethod
    def resolve_community_ids(obj) -> list[int]:
        return sorted(c.pk for c in obj.communities.all())


class CentreCouponOut(CouponTermsOut):
    channel: Literal["claimable", "fan_drop"]
    claim_starts_at: datetime | None
    claim_ends_at: datetime | None
    valid_from: datetime | None
    valid_until: datetime | None
    valid_days: int | None = Field(None, description="Valid this many days after claiming.")
    total_quantity: int | None = Field(None, description="Null: unlimited.")
    remaining: int | None = Field(None, description="Left to claim; null: unlimited.")
    per_customer_limit: int
    held: int = Field(..., description="How many of these I hold (any state).")
    can_claim: bool
    refusal: str | None = Field(
        None, description="Why not now: not_started, ended, sold_out, limit_reached."
    )


class MyCouponOut(Schema):
    id: int
    state: CouponState
    source: str
    terms: CouponTermsOut
    code: str | None = Field(None, description="The code it was redeemed with.")
    valid_from: datetime
    valid_until: datetime
    order_id: int | None = Field(None, description="The order holding or having used it.")
    discount: int = Field(..., description="What it saved on that order, fen.")
    claimed_at: datetime
    used_at: datetime | None

    @staticmethod
    def resolve_state(obj) -> str:
        return coupon_state(obj, timezone.now())

    @staticmethod
    def resolve_terms(obj) -> Any:
        return obj.template

    @staticmethod
    def resolve_code(obj) -> str | None:
        return obj.code.code if obj.code_id else None


class PreviewIn(BodyIn):
    lines: list[OrderLineIn] = Field(..., min_length=1, max_length=50)
    delivery_mode: DeliveryMode
    community_id: Id | None = None
    pickup_point_id: Id | None = None
    address_id: Id | None = None
    coupon_ids: list[Id] | None = Field(
        None,
        max_length=MAX_CHECKOUT_COUPONS,
        description="Price exactly these of my coupons; leave out for the best combination.",
    )
    coupon_code: str = Field("", max_length=64)


class PreviewLineOut(Schema):
    sku_id: int
    product_id: int
    product_title: str
    quantity: int
    list_unit_price: int
    unit_price: int
    discount: int = Field(..., description="Coupons allocated to this line, fen.")
    paid_amount: int = Field(..., description="What this line pays, fen.")
    in_stock: bool


class AppliedOut(Schema):
    coupon_id: int | None = Field(None, description="One of my coupons, or null for the code.")
    coupon_code: str | None = None
    kind: CouponKind
    discount: int = Field(..., description="Off the goods, fen.")
    shipping_waived: int


class PricedOut(Schema):
    list_subtotal: int
    subtotal: int
    discount: int = Field(..., description="Coupons off the goods, fen.")
    shipping_fee: int = Field(..., description="Charged, after any waiver, fen.")
    total: int
    saved: int = Field(..., description="What the coupons save in all (goods and shipping).")
    coupon_ids: list[int] = Field(..., description="My coupons applied.")
    coupon_code: str | None = Field(None, description="The code applied, if any.")
    applied: list[AppliedOut]
    lines: list[PreviewLineOut]


class CouponChoiceOut(Schema):
    coupon: MyCouponOut
    applicable: bool
    saves: int = Field(..., description="What this coupon alone would save on this cart, fen.")
    reason: str | None = Field(
        None,
        description=(
            "Why not: scope, community, min_spend, not_yet_valid, no_shipping_fee (free "
            "shipping on an order without a fee)."
        ),
    )


class PreviewOut(Schema):
    priced: PricedOut = Field(
        ..., description="With the coupons asked for, or with the best combination."
    )
    best: PricedOut = Field(..., description="With the combination of coupons that saves most.")
    coupons: list[CouponChoiceOut]


# --- staff -------------------------------------------------------------------------------------
class TemplateCreateIn(BodyIn):
    name: Name
    description: str = Field("", max_length=500)
    kind: CouponKind
    amount: Fen = Field(0, ge=0, le=MAX_FEN, description="Fixed: fen off.")
    percent_bps: StrictInt = Field(0, ge=0, le=10_000, description="Percent: 1000 = 10 % off.")
    max_discount: Fen | None = Field(None, ge=1, le=MAX_FEN, description="Percent: cap, fen.")
    tiers: list[TierSchema] = Field(default_factory=list, max_length=10)
    min_spend: Fen = Field(0, ge=0, le=MAX_FEN)
    scope: CouponScope = "all"
    category_ids: list[Id] = Field(default_factory=list, max_length=200)
    product_ids: list[Id] = Field(default_factory=list, max_length=500)
    sku_ids: list[Id] = Field(default_factory=list, max_length=500)
    community_ids: list[Id] = Field(default_factory=list, max_length=200)
    valid_from: DateTimeIn | None = None
    valid_until: DateTimeIn | None = None
    valid_days: StrictInt | None = Field(None, ge=1, le=3650)
    channel: CouponChannel
    claim_starts_at: DateTimeIn | None = None
    claim_ends_at: DateTimeIn | None = None
    total_quantity: StrictInt | None = Field(None, ge=1, le=MAX_COUNT)
    per_customer_limit: StrictInt = Field(1, ge=1, le=1000)
    stackable: StrictBool = True
    is_exclusive: StrictBool = False
    activate: StrictBool = Field(False, description="Create it active (else draft).")


class TemplateOut(CouponTermsOut):
    channel: CouponChannel
    status: TemplateStatus
    category_ids: list[int]
    product_ids: list[int]
    sku_ids: list[int]
    valid_from: datetime | None
    valid_until: datetime | None
    valid_days: int | None
    claim_starts_at: datetime | None
    claim_ends_at: datetime | None
    total_quantity: int | None
    issued_count: int
    per_customer_limit: int
    is_exclusive: bool
    created_at: datetime

    @staticmethod
    def resolve_category_ids(obj) -> list[int]:
        return sorted(c.pk for c in obj.categories.all())

    @staticmethod
    def resolve_product_ids(obj) -> list[int]:
        return sorted(p.pk for p in obj.products.all())

    @staticmethod
    def resolve_sku_ids(obj) -> list[int]:
        return sorted(s.pk for s in obj.skus.all())


class TemplateStatusIn(BodyIn):
    status: Literal["active", "paused", "ended"]


class TemplateFilter(Schema):
    status: TemplateStatus | None = None
    channel: CouponChannel | None = None


class IssuanceCreateIn(BodyIn):
    segment: Segment
    community_id: Id | None = Field(None, description="Segment community.")
    product_id: Id | None = Field(None, description="Segment bought_product.")
    customer_ids: list[Id] | None = Field(
        None, min_length=1, max_length=1000, description="Segment customers (compensation)."
    )
    reason: str = Field("", max_length=200)


class IssuanceOut(Schema):
    id: int
    template_id: int
    segment: Segment
    params: dict[str, Any]
    reason: str
    status: IssuanceStatus
    total: int = Field(..., description="Customers in the segment when it was created.")
    issued: int
    skipped: int = Field(..., description="At their per-customer limit, or the batch ran out.")
    last_error: str
    created_at: datetime
    finished_at: datetime | None


class CompensateIn(BodyIn):
    template_id: Id
    reason: str = Field("", max_length=200)


class StaffCouponOut(Schema):
    id: int
    customer_id: int
    template_id: int
    status: str
    source: str
    valid_from: datetime
    valid_until: datetime
    claimed_at: datetime


class TemplateStatsOut(Schema):
    template_id: int
    total_quantity: int | None
    issued_count: int = Field(..., description="Counted against total_quantity.")
    issued: int = Field(..., description="Coupons customers hold or held, any state.")
    available: int
    expired: int
    locked: int
    used: int
    revoked: int
    returned: int = Field(..., description="Given back by a full refund at least once.")
    discount_given: int = Field(..., description="What used coupons saved, fen.")
    orders: int = Field(..., description="Orders paid with one of these coupons.")
    gmv: int = Field(..., description="Their totals, fen (before refunds).")
    refunded: int = Field(..., description="Refunded on those orders, fen.")


CodeKind = Literal["single_use", "shared"]


class CodesCreateIn(BodyIn):
    kind: CodeKind = Field(
        ...,
        description="`single_use`: redeemed once in all; `shared`: once per customer, up to "
        "`max_redemptions`.",
    )
    code: str = Field(
        "",
        pattern=r"^([A-Za-z0-9_-]{4,32})?$",
        description="A code of your choosing (4-32 letters, digits, `-`, `_`; unique whatever "
        "the case), or leave it out to have `count` codes generated.",
    )
    count: StrictInt = Field(
        1, ge=1, le=1000, description="How many codes to generate (without `code`)."
    )
    max_redemptions: StrictInt | None = Field(
        None, ge=1, le=10_000_000, description="Shared codes: redemptions in all (none: no limit)."
    )

    @model_validator(mode="after")
    def _consistent(self) -> "CodesCreateIn":
        if self.code and self.count != 1:
            raise ValueError("A chosen code is one code: send `code` or `count`, not both.")
        if self.kind == "single_use" and self.max_redemptions is not None:
            raise ValueError("A single-use code is redeemed once: `max_redemptions` is for shared.")
        return self


class CouponCodeOut(Schema):
    id: int
    template_id: int
    code: str
    kind: CodeKind
    max_redemptions: int | None
    redemptions: int
    is_active: bool
    created_at: datetime
