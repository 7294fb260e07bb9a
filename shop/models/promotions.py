"""Promotions: coupon templates, customers' coupons, redeemable codes, issuance batches, and flash
sale sessions with their own stock.

Amounts are fen, rates basis points. Counters that several buyers race for (``issued_count`` of a
limited template, ``redemptions`` of a shared code, ``remaining`` of a flash item, a customer's
``FlashQuota``) are changed only by conditional ``UPDATE``s in the services, with check
constraints here as the last line of defence.
"""

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.db.models.functions import Upper


class CouponTemplate(models.Model):
    """What a coupon does, where it applies, how long it lasts and how it reaches customers."""

    class Kind(models.TextChoices):
        FIXED = "fixed", "Fixed amount off"
        PERCENT = "percent", "Percentage off (with a cap)"
        THRESHOLD = "threshold", "Spend X, get Y off (tiered)"
        FREE_SHIPPING = "free_shipping", "Free shipping"

    class Scope(models.TextChoices):
        ALL = "all", "Everything"
        CATEGORIES = "categories", "Products of some categories"
        PRODUCTS = "products", "Some products"
        SKUS = "skus", "Some SKUs"

    class Channel(models.TextChoices):
        CLAIMABLE = "claimable", "Claimable in the coupon centre"
        ISSUED = "issued", "Issued by operators to a segment"
        NEW_CUSTOMER = "new_customer", "New-customer gift on first login"
        FAN_DROP = "fan_drop", "Fan-welfare drop at a set time"
        COMPENSATION = "compensation", "Compensation issued by staff"
        CODE = "code", "Redeemed with a code at checkout"

    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        ACTIVE = "active", "Active"
        PAUSED = "paused", "Paused"
        ENDED = "ended", "Ended"

    name = models.CharField(max_length=100)
    description = models.CharField(max_length=500, blank=True)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    amount = models.BigIntegerField(default=0, help_text="Fixed: fen off")
    percent_bps = models.PositiveIntegerField(
        default=0, help_text="Percent: share off in basis points (1000 = 10 % off)"
    )
    max_discount = models.BigIntegerField(
        null=True, blank=True, help_text="Percent: the most it takes off, fen"
    )
    tiers = models.JSONField(
        default=list,
        blank=True,
        help_text='Threshold: [{"threshold": 10000, "off": 1000}, ...] in fen, best tier applies',
    )
    min_spend = models.BigIntegerField(
        default=0, help_text="Eligible goods must reach this (fen) for the coupon to apply"
    )
    scope = models.CharField(max_length=16, choices=Scope.choices, default=Scope.ALL)
    categories = models.ManyToManyField("shop.Category", blank=True, related_name="+")
    products = models.ManyToManyField("shop.Product", blank=True, related_name="+")
    skus = models.ManyToManyField("shop.Sku", blank=True, related_name="+")
    communities = models.ManyToManyField(
        "shop.Community", blank=True, related_name="+", help_text="Empty: every community"
    )
    valid_from = models.DateTimeField(null=True, blank=True)
    valid_until = models.DateTimeField(null=True, blank=True)
    valid_days = models.PositiveIntegerField(
        null=True, blank=True, help_text="Valid this many days after claim (instead of a window)"
    )
    channel = models.CharField(max_length=16, choices=Channel.choices)
    claim_starts_at = models.DateTimeField(
        null=True, blank=True, help_text="Claimable / fan drop: from when it can be claimed"
    )
    claim_ends_at = models.DateTimeField(null=True, blank=True)
    total_quantity = models.PositiveIntegerField(
        null=True, blank=True, help_text="Coupons that may exist in all; empty: unlimited"
    )
    issued_count = models.PositiveIntegerField(default=0)
    per_customer_limit = models.PositiveIntegerField(default=1)
    stackable = models.BooleanField(
        default=True, help_text="May be combined with a coupon of another slot"
    )
    is_exclusive = models.BooleanField(
        default=False, help_text="An exclusive (distributor) code's coupon: the exclusive slot"
    )
    status = models.CharField(
        max_length=8, choices=Status.choices, default=Status.DRAFT, db_index=True
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(total_quantity__isnull=True) | Q(issued_count__lte=F("total_quantity")),
                name="coupontemplate_issued_within_total",
            ),
            models.CheckConstraint(
                condition=Q(amount__gte=0) & Q(min_spend__gte=0) & Q(percent_bps__lte=10_000),
                name="coupontemplate_amounts_valid",
            ),
            models.CheckConstraint(
                condition=Q(per_customer_limit__gte=1), name="coupontemplate_per_customer_positive"
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def slot(self) -> str:
        """Stacking slot: at most one coupon per slot on an order."""
        if self.kind == self.Kind.FREE_SHIPPING:
            return "shipping"
        return "exclusive" if self.is_exclusive else "platform"


class CouponCode(models.Model):
    """A code typed at checkout that grants a coupon of ``template``: single-use (one redemption
    in all) or shared (up to ``max_redemptions``, once per customer)."""

    class Kind(models.TextChoices):
        SINGLE_USE = "single_use", "Single use"
        SHARED = "shared", "Shared, with a limit"

    code = models.CharField(max_length=32)
    template = models.ForeignKey(CouponTemplate, on_delete=models.PROTECT, related_name="codes")
    kind = models.CharField(max_length=12, choices=Kind.choices)
    max_redemptions = models.PositiveIntegerField(null=True, blank=True)
    redemptions = models.PositiveIntegerField(default=0)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(Upper("code"), name="couponcode_code_unique_ci"),
            models.CheckConstraint(
                condition=Q(max_redemptions__isnull=True)
                | Q(redemptions__lte=F("max_redemptions")),
                name="couponcode_redemptions_within_max",
            ),
        ]

    def __str__(self) -> str:
        return self.code


class CouponIssuance(models.Model):
    """An operator's issuance of a template to a segment, run as a background job."""

    class Segment(models.TextChoices):
        COMMUNITY = "community", "Members of a community"
        BOUGHT_PRODUCT = "bought_product", "Customers who bought a product"
        NEW_CUSTOMERS = "new_customers", "Customers with no paid order"
        CUSTOMERS = "customers", "Listed customers (compensation)"

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    template = models.ForeignKey(CouponTemplate, on_delete=models.PROTECT, related_name="issuances")
    segment = models.CharField(max_length=16, choices=Segment.choices)
    params = models.JSONField(default=dict, blank=True, help_text="e.g. {'community_id': 3}")
    reason = models.CharField(max_length=200, blank=True)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.PENDING)
    total = models.PositiveIntegerField(default=0, help_text="Customers in the segment")
    issued = models.PositiveIntegerField(default=0)
    skipped = models.PositiveIntegerField(
        default=0, help_text="Already at their limit, or the batch ran out"
    )
    cursor = models.BigIntegerField(
        default=0, help_text="The last customer id handled: a rerun resumes after it"
    )
    last_error = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"{self.template} to {self.segment} ({self.status})"


class CustomerCoupon(models.Model):
    """One coupon a customer holds: claimed → locked (by a pending order) → used; a lock is
    released when the order is cancelled or expires; a fully refunded order gives it back while
    still valid (a partial refund never does)."""

    class Status(models.TextChoices):
        AVAILABLE = "available", "Available"
        LOCKED = "locked", "Locked by a pending order"
        USED = "used", "Used"
        REVOKED = "revoked", "Revoked"

    class Source(models.TextChoices):
        CLAIM = "claim", "Claimed"
        ISSUE = "issue", "Issued to a segment"
        GIFT = "gift", "New-customer gift"
        DROP = "drop", "Fan-welfare drop"
        COMPENSATION = "compensation", "Compensation"
        CODE = "code", "Redeemed code"

    template = models.ForeignKey(CouponTemplate, on_delete=models.PROTECT, related_name="coupons")
    customer = models.ForeignKey("shop.Customer", on_delete=models.CASCADE, related_name="coupons")
    status = models.CharField(
        max_length=10, choices=Status.choices, default=Status.AVAILABLE, db_index=True
    )
    source = models.CharField(max_length=12, choices=Source.choices)
    code = models.ForeignKey(
        CouponCode, null=True, blank=True, on_delete=models.PROTECT, related_name="coupons"
    )
    issuance = models.ForeignKey(
        CouponIssuance, null=True, blank=True, on_delete=models.SET_NULL, related_name="coupons"
    )
    issued_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    valid_from = models.DateTimeField()
    valid_until = models.DateTimeField()
    order = models.ForeignKey(
        "shop.Order", null=True, blank=True, on_delete=models.SET_NULL, related_name="coupons"
    )
    discount = models.BigIntegerField(default=0, help_text="What it took off its order, fen")
    claimed_at = models.DateTimeField(auto_now_add=True)
    locked_at = models.DateTimeField(null=True, blank=True)
    used_at = models.DateTimeField(null=True, blank=True)
    returned_at = models.DateTimeField(
        null=True, blank=True, help_text="Last given back by a fully refunded order"
    )

    class Meta:
        ordering = ["valid_until", "id"]
        indexes = [models.Index(fields=["customer", "status"], name="customercoupon_by_status")]
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=["available", "revoked"]) | Q(order__isnull=False),
                name="customercoupon_locked_or_used_has_order",
            ),
            models.CheckConstraint(
                condition=Q(discount__gte=0), name="customercoupon_discount_non_negative"
            ),
            # A rerun of an issuance, or a code typed twice, never gives a customer a second one.
            models.UniqueConstraint(
                fields=["issuance", "customer"],
                condition=Q(issuance__isnull=False),
                name="customercoupon_once_per_issuance",
            ),
            models.UniqueConstraint(
                fields=["code", "customer"],
                condition=Q(code__isnull=False),
                name="customercoupon_code_once_per_customer",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.template} for customer {self.customer_id} ({self.status})"


class FlashSession(models.Model):
    """A flash sale (秒杀) session: from ``starts_at`` to ``ends_at`` its items sell at their
    flash price from their own stock; unpaid orders release their units after ``payment_ttl``."""

    title = models.CharField(max_length=100)
    starts_at = models.DateTimeField(db_index=True)
    ends_at = models.DateTimeField()
    payment_ttl = models.PositiveIntegerField(default=300, help_text="Seconds to pay")
    is_published = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["starts_at", "id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(ends_at__gt=F("starts_at")), name="flashsession_ends_after_start"
            ),
            models.CheckConstraint(
                condition=Q(payment_ttl__gte=30), name="flashsession_payment_ttl_min"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.title} ({self.starts_at:%Y-%m-%d %H:%M})"


class FlashItem(models.Model):
    """A SKU in a flash session: its flash price and a stock counter separate from the SKU's."""

    session = models.ForeignKey(FlashSession, on_delete=models.CASCADE, related_name="items")
    sku = models.ForeignKey("shop.Sku", on_delete=models.PROTECT, related_name="flash_items")
    flash_price = models.BigIntegerField()
    total_stock = models.PositiveIntegerField()
    remaining = models.IntegerField()
    per_customer_limit = models.PositiveIntegerField(default=1)
    sort_order = models.IntegerField(default=0)

    class Meta:
        ordering = ["sort_order", "id"]
        constraints = [
            models.UniqueConstraint(fields=["session", "sku"], name="flashitem_sku_once"),
            models.CheckConstraint(
                condition=Q(remaining__gte=0) & Q(remaining__lte=F("total_stock")),
                name="flashitem_remaining_bounded",
            ),
            models.CheckConstraint(
                condition=Q(flash_price__gte=1), name="flashitem_price_positive"
            ),
            models.CheckConstraint(
                condition=Q(per_customer_limit__gte=1), name="flashitem_per_customer_positive"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.sku_id} at {self.flash_price} in {self.session_id}"


class FlashQuota(models.Model):
    """Units of a flash item a customer holds in unpaid or paid orders (the per-customer cap is
    enforced by a conditional upsert on this row; cancelled / expired orders give units back)."""

    item = models.ForeignKey(FlashItem, on_delete=models.CASCADE, related_name="quotas")
    customer = models.ForeignKey("shop.Customer", on_delete=models.CASCADE, related_name="+")
    units = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["item", "customer"], name="flashquota_once"),
        ]

    def __str__(self) -> str:
        return f"{self.units} of {self.item_id} for {self.customer_id}"
