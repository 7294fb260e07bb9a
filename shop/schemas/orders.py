from datetime import datetime
from typing import Any, Literal

from ninja import Field, Schema

from core.schemas import BodyIn, DateTimeIn, Fen, Id, Quantity, StrictBool

OrderStatus = Literal[
    "pending_payment",
    "paid",
    "fulfilled",
    "completed",
    "cancelled",
    "partially_refunded",
    "refunded",
]
DeliveryMode = Literal["pickup", "courier", "leader_delivery"]
OrderSource = Literal["normal", "flash_sale", "group_buy", "bargain", "chain_signup", "live"]
RefundStatus = Literal["requested", "approved", "succeeded", "rejected", "failed"]


class OrderLineIn(BodyIn):
    sku_id: Id
    quantity: Quantity = Field(..., ge=1, le=999)


class OrderCreateIn(BodyIn):
    lines: list[OrderLineIn] = Field(
        ..., min_length=1, max_length=50, description="The same SKU twice is merged into one line."
    )
    delivery_mode: DeliveryMode
    community_id: Id | None = Field(None, description="Default: the pickup point's community.")
    pickup_point_id: Id | None = Field(None, description="Required for pickup.")
    address_id: Id | None = Field(
        None,
        description="One of your addresses: required for courier, optional for leader delivery.",
    )
    coupon_ids: list[Id] = Field(
        default_factory=list, max_length=5, description="Up to 5 of my coupons to apply."
    )
    coupon_code: str = Field("", max_length=64)
    note: str = Field("", max_length=500)


class OrderLineOut(Schema):
    id: int
    sku_id: int
    product_title: str
    sku_code: str
    sku_attributes: dict[str, Any]
    list_unit_price: int = Field(..., description="The SKU's price when ordered, fen.")
    unit_price: int = Field(
        ..., description="Charged per unit before coupons: the campaign price where one applies."
    )
    quantity: int
    discount: int = Field(..., description="This line's share of the coupons, fen.")
    line_total: int = Field(..., description="Paid for this line after coupons, fen.")
    refunded_quantity: int
    refunded_amount: int


class OrderCouponOut(Schema):
    id: int = Field(..., description="The customer's coupon (`GET /coupons/mine`).")
    template_id: int
    name: str = Field(..., description="The coupon's name, as shown in the coupon centre.")
    kind: Literal["fixed", "percent", "threshold", "free_shipping"]
    status: Literal["locked", "used"] = Field(
        ..., description="`locked` while the order awaits payment, `used` once it is paid."
    )
    discount: int = Field(..., description="What it took off this order (goods or shipping), fen.")

    @staticmethod
    def resolve_name(obj) -> str:
        return obj.template.name

    @staticmethod
    def resolve_kind(obj) -> str:
        return obj.template.kind


class PickupPointBriefOut(Schema):
    id: int
    name: str
    address: str
    opening_hours: str


class OrderOut(Schema):
    id: int
    number: str
    status: OrderStatus
    source: OrderSource = Field(..., description="Where the order came from.")
    source_ref: int | None = Field(
        None, description="The campaign object (flash session, group, bargain, post) id."
    )
    fulfilment_held: bool = Field(
        ..., description="Paid orders wait for their campaign (e.g. a group to fill)."
    )
    delivery_mode: DeliveryMode
    community_id: int | None
    pickup_point: PickupPointBriefOut | None
    pickup_code: str | None = Field(None, description="Shown at the pickup point; set once paid.")
    shipping_address: dict[str, Any] | None
    currency: str
    subtotal: int = Field(..., description="Lines at their unit prices, fen.")
    discount: int = Field(..., description="Coupons off the goods, fen.")
    shipping_fee: int
    total: int = Field(..., description="subtotal - discount + shipping_fee, fen.")
    refunded_amount: int
    coupon_code: str
    note: str
    cancel_reason: str
    created_at: datetime
    payment_deadline: datetime
    paid_at: datetime | None
    fulfilled_at: datetime | None
    completed_at: datetime | None
    cancelled_at: datetime | None
    auto_complete_at: datetime | None
    lines: list[OrderLineOut]
    coupons: list[OrderCouponOut] = Field(
        ...,
        description=(
            "The coupons this order holds (locked until paid, then used). A cancelled or expired "
            "order gives them back and a fully refunded one returns those still valid: they are "
            "then no longer listed here (`discount` keeps what they took off)."
        ),
    )


class StaffOrderOut(OrderOut):
    customer_id: int
    paid_payment_id: int | None


class StaffOrderFilter(Schema):
    status: OrderStatus | None = None
    delivery_mode: DeliveryMode | None = None
    community_id: int | None = None
    customer_id: int | None = None
    number: str | None = Field(None, max_length=32)
    created_from: DateTimeIn | None = None
    created_to: DateTimeIn | None = None


class PickupVerifyIn(BodyIn):
    code: str = Field(..., min_length=1, max_length=16)


class RefundLineIn(BodyIn):
    order_line_id: Id
    quantity: Quantity = Field(..., ge=1, le=999)


class RefundRequestIn(BodyIn):
    lines: list[RefundLineIn] | None = Field(
        None, min_length=1, max_length=50, description="Refund these units (or give `amount`)."
    )
    amount: Fen | None = Field(
        None, ge=1, description="Refund this many fen, spread over the lines (or give `lines`)."
    )
    note: str = Field("", max_length=500)


class RefundIssueIn(RefundRequestIn):
    restock: StrictBool | None = Field(
        None, description="Put refunded units back on sale; default: when not yet fulfilled."
    )


class RefundRejectIn(BodyIn):
    note: str = Field("", max_length=500)


class RefundLineOut(Schema):
    order_line_id: int
    quantity: int
    amount: int


class RefundOut(Schema):
    id: int
    order_id: int
    payment_id: int | None
    amount: int
    status: RefundStatus
    reason: str
    note: str
    restock: bool
    restocked_quantity: int = Field(
        ..., description="Units put back on sale (when the refund succeeded; 0 for an amount)"
    )
    failure_message: str
    created_at: datetime
    decided_at: datetime | None
    succeeded_at: datetime | None
    lines: list[RefundLineOut]
