from datetime import datetime
from typing import Any, Literal

from ninja import Field, Schema

from core.schemas import BodyIn, Id, Quantity
from shop.models import FlashItem
from shop.schemas.orders import DeliveryMode

FlashStatus = Literal["scheduled", "live", "ended"]


class FlashItemOut(Schema):
    id: int
    sku_id: int
    product_id: int
    product_title: str
    sku_attributes: dict[str, Any]
    image: str | None = Field(None, description="The product's first image.")
    flash_price: int = Field(..., description="Charged per unit in this flash sale, fen.")
    list_price: int = Field(..., description="The SKU's normal price, fen.")
    total_stock: int
    remaining: int = Field(..., description="Flash units left (separate from the SKU's stock).")
    sold_out: bool
    per_customer_limit: int = Field(..., description="Units one customer may hold in all.")

    @staticmethod
    def resolve_product_id(obj: FlashItem) -> int:
        return obj.sku.product_id

    @staticmethod
    def resolve_product_title(obj: FlashItem) -> str:
        return obj.sku.product.title

    @staticmethod
    def resolve_sku_attributes(obj: FlashItem) -> dict[str, Any]:
        return obj.sku.attributes

    @staticmethod
    def resolve_image(obj: FlashItem) -> str | None:
        images = obj.sku.product.images
        return images[0] if images else None

    @staticmethod
    def resolve_list_price(obj: FlashItem) -> int:
        return obj.sku.price

    @staticmethod
    def resolve_sold_out(obj: FlashItem) -> bool:
        return obj.remaining <= 0


class FlashSessionOut(Schema):
    id: int
    title: str
    status: FlashStatus = Field(..., description="From the times: scheduled, live, ended.")
    starts_at: datetime
    ends_at: datetime
    starts_in: int = Field(..., description="Seconds until the start (0 once started).")
    ends_in: int = Field(..., description="Seconds until the end (0 once ended).")
    server_time: datetime = Field(..., description="When this answer was made.")
    payment_ttl: int = Field(..., description="Seconds to pay a flash order before it expires.")
    topic: str = Field(..., description="The WebSocket topic of this session.")
    items: list[FlashItemOut]

    @staticmethod
    def resolve_topic(obj: Any) -> str:
        return f"flash:{obj.id}"

    @staticmethod
    def resolve_items(obj: Any) -> list[FlashItem]:
        return list(obj.items.all())


class FlashSessionDetailOut(FlashSessionOut):
    seq: int = Field(
        ...,
        description="The `seq` of the last topic message this snapshot includes: follow "
        "messages with a higher one, refetch on a gap.",
    )


class FlashOrderIn(BodyIn):
    item_id: Id
    quantity: Quantity = Field(1, ge=1, le=999)
    delivery_mode: DeliveryMode
    community_id: Id | None = Field(None, description="Default: the pickup point's community.")
    pickup_point_id: Id | None = Field(None, description="Required for pickup.")
    address_id: Id | None = Field(
        None,
        description="One of your addresses: required for courier, optional for leader delivery.",
    )
    note: str = Field("", max_length=500)
