"""Shop models, one module per area. Import from ``shop.models``."""

from shop.models.catalog import Category, Product, Sku
from shop.models.customers import Address, Community, CommunityMembership, Customer, PickupPoint
from shop.models.orders import Order, OrderLine, StockReservation
from shop.models.payments import Payment, Refund, RefundLine, WebhookEvent
from shop.models.promotions import (
    CouponCode,
    CouponIssuance,
    CouponTemplate,
    CustomerCoupon,
    FlashItem,
    FlashQuota,
    FlashSession,
)
from shop.models.reconciliation import ReconciliationDiscrepancy
from shop.models.timeline import OrderEvent

__all__ = [
    "Address",
    "Category",
    "Community",
    "CommunityMembership",
    "CouponCode",
    "CouponIssuance",
    "CouponTemplate",
    "Customer",
    "CustomerCoupon",
    "FlashItem",
    "FlashQuota",
    "FlashSession",
    "Order",
    "OrderEvent",
    "OrderLine",
    "Payment",
    "PickupPoint",
    "Product",
    "ReconciliationDiscrepancy",
    "Refund",
    "RefundLine",
    "Sku",
    "StockReservation",
    "WebhookEvent",
]
