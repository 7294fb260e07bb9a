from django.conf import settings
from django.db import models
from django.db.models import Q


class Order(models.Model):
    class Status(models.TextChoices):
        PENDING_PAYMENT = "pending_payment", "Pending payment"
        PAID = "paid", "Paid"
        FULFILLED = "fulfilled", "Fulfilled"
        COMPLETED = "completed", "Completed"
        CANCELLED = "cancelled", "Cancelled"
        PARTIALLY_REFUNDED = "partially_refunded", "Partially refunded"
        REFUNDED = "refunded", "Refunded"

    class DeliveryMode(models.TextChoices):
        PICKUP = "pickup", "Pickup at a pickup point"
        COURIER = "courier", "Courier to an address"
        LEADER_DELIVERY = "leader_delivery", "Delivered by the community leader"

    class Source(models.TextChoices):
        NORMAL = "normal", "Normal"
        FLASH_SALE = "flash_sale", "Flash sale"
        GROUP_BUY = "group_buy", "Group-buy"
        BARGAIN = "bargain", "Bargain"
        CHAIN_SIGNUP = "chain_signup", "Chain sign-up"
        LIVE = "live", "Live session"

    number = models.CharField(max_length=32, unique=True)
    source = models.CharField(
        max_length=16, choices=Source.choices, default=Source.NORMAL, db_index=True
    )
    source_ref = models.BigIntegerField(
        null=True, blank=True, help_text="The campaign object (flash session, group, ...) id"
    )
    fulfilment_held = models.BooleanField(
        default=False,
        help_text="Paid but held by its flow (e.g. a group not yet full): no pickup code, "
        "no fulfilment until released",
    )
    customer = models.ForeignKey("shop.Customer", on_delete=models.PROTECT, related_name="orders")
    community = models.ForeignKey(
        "shop.Community", null=True, blank=True, on_delete=models.PROTECT, related_name="orders"
    )
    status = models.CharField(
        max_length=24, choices=Status.choices, default=Status.PENDING_PAYMENT, db_index=True
    )
    delivery_mode = models.CharField(max_length=24, choices=DeliveryMode.choices)
    pickup_point = models.ForeignKey(
        "shop.PickupPoint", null=True, blank=True, on_delete=models.PROTECT, related_name="orders"
    )
    pickup_code = models.CharField(max_length=16, null=True, blank=True, unique=True)
    shipping_address = models.JSONField(null=True, blank=True, help_text="Snapshot of the address")
    currency = models.CharField(max_length=3, default=settings.CURRENCY)
    subtotal = models.BigIntegerField(help_text="Sum of line totals, fen")
    discount = models.BigIntegerField(default=0, help_text="Coupon discount on goods, fen")
    shipping_fee = models.BigIntegerField(default=0, help_text="Shipping charged, fen")
    total = models.BigIntegerField(help_text="Amount to pay: subtotal - discount + shipping, fen")
    refunded_amount = models.BigIntegerField(default=0)
    paid_payment = models.ForeignKey(
        "shop.Payment",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="The payment that paid this order (others for it are refunded as unapplied)",
    )
    coupon_code = models.CharField(max_length=64, blank=True)
    device_id = models.UUIDField(
        null=True, blank=True, help_text="The checkout's X-Device-Id (a signal, never trusted)"
    )
    ip_hash = models.CharField(
        max_length=64, blank=True, help_text="Keyed hash of the checkout's client IP"
    )
    note = models.CharField(max_length=500, blank=True)
    cancel_reason = models.CharField(max_length=32, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    payment_deadline = models.DateTimeField(db_index=True)
    paid_at = models.DateTimeField(null=True, blank=True)
    fulfilled_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)
    auto_complete_at = models.DateTimeField(null=True, blank=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=Q(total__gte=0), name="order_total_non_negative"),
            models.CheckConstraint(
                condition=Q(refunded_amount__gte=0) & Q(refunded_amount__lte=models.F("total")),
                name="order_refund_within_total",
            ),
            models.CheckConstraint(
                condition=Q(discount__gte=0)
                & Q(shipping_fee__gte=0)
                & Q(total=models.F("subtotal") - models.F("discount") + models.F("shipping_fee")),
                name="order_total_is_priced",
            ),
        ]

    def __str__(self) -> str:
        return self.number


class OrderLine(models.Model):
    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="lines")
    sku = models.ForeignKey("shop.Sku", on_delete=models.PROTECT, related_name="order_lines")
    product_title = models.CharField(max_length=200)
    sku_code = models.CharField(max_length=64)
    sku_attributes = models.JSONField(default=dict, blank=True)
    list_unit_price = models.BigIntegerField(help_text="The SKU's price when ordered, fen")
    unit_price = models.BigIntegerField(
        help_text="Charged per unit before coupons: the campaign price, else the list price"
    )
    quantity = models.PositiveIntegerField()
    discount = models.BigIntegerField(default=0, help_text="Coupon discount allocated here, fen")
    line_total = models.BigIntegerField(
        help_text="Paid for this line: unit_price x quantity - discount, fen"
    )
    refunded_quantity = models.PositiveIntegerField(default=0)
    refunded_amount = models.BigIntegerField(default=0)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(quantity__gte=1), name="orderline_quantity_positive"
            ),
            models.CheckConstraint(
                condition=Q(refunded_quantity__lte=models.F("quantity")),
                name="orderline_refund_qty_bounded",
            ),
            models.CheckConstraint(
                condition=Q(refunded_amount__lte=models.F("line_total")),
                name="orderline_refund_amount_bounded",
            ),
            models.CheckConstraint(
                condition=Q(discount__gte=0)
                & Q(line_total__gte=0)
                & Q(
                    line_total=models.F("unit_price") * models.F("quantity") - models.F("discount")
                ),
                name="orderline_total_is_priced",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.quantity} x {self.sku_code}"


class StockReservation(models.Model):
    """Units of a SKU held for an unpaid order until ``expires_at``."""

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        COMMITTED = "committed", "Committed (paid)"
        RELEASED = "released", "Released"

    sku = models.ForeignKey("shop.Sku", on_delete=models.PROTECT, related_name="reservations")
    flash_item = models.ForeignKey(
        "shop.FlashItem",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="reservations",
        help_text="Held from this flash item's stock (released back to it), not the SKU's",
    )
    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="reservations")
    quantity = models.PositiveIntegerField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    expires_at = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [
            models.Index(
                fields=["expires_at"],
                condition=Q(status="active"),
                name="reservation_active_expiry",
            )
        ]

    def __str__(self) -> str:
        return f"{self.quantity} x sku {self.sku_id} for order {self.order_id} ({self.status})"
