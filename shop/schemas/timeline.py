from datetime import datetime

from ninja import Field, Schema

from shop.models import OrderEvent
from shop.schemas.orders import StaffOrderOut


class OrderEventOut(Schema):
    """One row of an order's timeline."""

    id: int
    kind: str = Field(..., description="placed, paid, cancelled, pickup_verified, refund_... ")
    at: datetime
    actor_kind: str = Field(..., description="customer | leader | staff | system")
    actor_id: int | None
    actor_name: str | None = Field(..., description="The acting user's username")
    from_status: str = Field(..., description="The order's status before (empty when placed)")
    to_status: str = Field(..., description="The order's status after")
    reason: str
    payment_id: int | None
    refund_id: int | None
    amount: int | None = Field(..., description="Money moved, fen")

    @staticmethod
    def resolve_at(obj: OrderEvent) -> datetime:
        return obj.created_at

    @staticmethod
    def resolve_actor_name(obj: OrderEvent) -> str | None:
        return obj.actor.username if obj.actor_id else None


class StaffOrderDetailOut(StaffOrderOut):
    timeline: list[OrderEventOut] = Field(
        ..., description="Who did what, when, from which status: oldest first"
    )
