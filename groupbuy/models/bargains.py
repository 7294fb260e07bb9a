"""Bargain (砍价) campaigns, bargains and the helps that cut them (services:
groupbuy/services/bargains.py, which describes the state machine). Money is integer fen."""

from django.db import models
from django.db.models import F, Q


class BargainCampaign(models.Model):
    """An operator's offer: one SKU that friends cut from ``start_price`` down to ``floor_price``
    in exactly ``helps_needed`` helps (the initiator's own first cut comes before them)."""

    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        ACTIVE = "active", "Active"
        ENDED = "ended", "Ended"

    title = models.CharField(max_length=200)
    product = models.ForeignKey(
        "shop.Product", on_delete=models.PROTECT, related_name="bargain_campaigns"
    )
    sku = models.ForeignKey("shop.Sku", on_delete=models.PROTECT, related_name="+")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.DRAFT)
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    start_price = models.BigIntegerField(help_text="Fen; at most the SKU's price")
    floor_price = models.BigIntegerField(help_text="Fen; the lowest price, at least 1")
    helps_needed = models.PositiveIntegerField(help_text="Helps that reach the floor (at least 2)")
    first_cut_min_bps = models.PositiveIntegerField(
        default=1000, help_text="The initiator's first cut: at least this share of the way"
    )
    first_cut_max_bps = models.PositiveIntegerField(
        default=3000, help_text="The initiator's first cut: at most this share of the way"
    )
    bargain_ttl_seconds = models.PositiveIntegerField(
        default=86_400, help_text="How long a bargain runs after it is started"
    )
    buy_at_any_price = models.BooleanField(
        default=False,
        help_text="The initiator may buy at the current price any time (else only at the floor)",
    )
    payment_ttl_seconds = models.PositiveIntegerField(
        default=3_600,
        help_text="After the floor is reached, how long the initiator has to pay",
    )
    max_bargains_per_customer = models.PositiveIntegerField(
        default=1, help_text="Bargains of this campaign one customer may start"
    )
    helps_per_helper_per_day = models.PositiveIntegerField(
        default=3, help_text="Bargains of this campaign one customer may help per day (K)"
    )
    helps_per_device_per_day = models.PositiveIntegerField(
        default=5, help_text="Helps from one device (X-Device-Id) per day in this campaign"
    )
    helpers_must_be_new = models.BooleanField(
        default=False, help_text="Only customers who have never paid an order may help"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(ends_at__gt=F("starts_at")), name="bargain_campaign_ends_after_start"
            ),
            models.CheckConstraint(
                condition=Q(helps_needed__gte=2), name="bargain_campaign_helps_at_least_two"
            ),
            models.CheckConstraint(
                condition=Q(floor_price__gte=1)
                & Q(start_price__gte=F("floor_price") + F("helps_needed") + 1),
                name="bargain_campaign_prices_leave_a_fen_per_cut",
            ),
            models.CheckConstraint(
                condition=Q(first_cut_min_bps__gte=1)
                & Q(first_cut_min_bps__lte=F("first_cut_max_bps"))
                & Q(first_cut_max_bps__lt=10_000),
                name="bargain_campaign_first_cut_bounds",
            ),
            models.CheckConstraint(
                condition=Q(bargain_ttl_seconds__gte=1)
                & Q(payment_ttl_seconds__gte=1)
                & Q(max_bargains_per_customer__gte=1)
                & Q(helps_per_helper_per_day__gte=1)
                & Q(helps_per_device_per_day__gte=1),
                name="bargain_campaign_limits_positive",
            ),
        ]

    def __str__(self) -> str:
        return self.title


class Bargain(models.Model):
    """One customer's bargain: its cut plan is drawn at start from ``seed`` (groupbuy/cuts.py)
    and stored in ``cuts`` (the helps' cuts, in order); help ``n`` takes ``cuts[n - 1]`` under
    the bargain's row lock, so exactly ``helps_needed`` helps reach ``floor_price``."""

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        FLOOR_REACHED = "floor_reached", "Floor reached"
        PURCHASED = "purchased", "Purchased"
        EXPIRED = "expired", "Expired"

    LIVE = (Status.ACTIVE, Status.FLOOR_REACHED)

    campaign = models.ForeignKey(BargainCampaign, on_delete=models.PROTECT, related_name="bargains")
    initiator = models.ForeignKey("shop.Customer", on_delete=models.PROTECT, related_name="+")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    seed = models.BigIntegerField(help_text="Seed of the cut plan (auditable, reproducible)")
    start_price = models.BigIntegerField()
    floor_price = models.BigIntegerField()
    helps_needed = models.PositiveIntegerField()
    first_cut = models.BigIntegerField()
    cuts = models.JSONField(help_text="The helps' cuts in order (fen), drawn from the seed")
    helps_done = models.PositiveIntegerField(default=0)
    current_price = models.BigIntegerField()
    expires_at = models.DateTimeField()
    floor_reached_at = models.DateTimeField(null=True, blank=True)
    order = models.OneToOneField(
        "shop.Order",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="The purchase order (pending or paid)",
    )
    purchased_at = models.DateTimeField(null=True, blank=True)
    expired_at = models.DateTimeField(null=True, blank=True)
    expiry_warned_at = models.DateTimeField(
        null=True, blank=True, help_text="When the initiator was told it expires soon"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(current_price__gte=F("floor_price"))
                & Q(current_price__lte=F("start_price")),
                name="bargain_price_within_floor_and_start",
            ),
            models.CheckConstraint(
                condition=Q(helps_done__lte=F("helps_needed")),
                name="bargain_helps_within_needed",
            ),
            models.CheckConstraint(
                condition=~Q(status="floor_reached")
                | (Q(current_price=F("floor_price")) & Q(floor_reached_at__isnull=False)),
                name="bargain_floor_reached_is_at_floor",
            ),
            models.CheckConstraint(
                condition=~Q(status="purchased")
                | (Q(order__isnull=False) & Q(purchased_at__isnull=False)),
                name="bargain_purchased_has_order",
            ),
            models.CheckConstraint(
                condition=~Q(status="expired") | Q(expired_at__isnull=False),
                name="bargain_expired_has_time",
            ),
        ]
        indexes = [
            models.Index(fields=["initiator", "campaign"], name="bargain_by_initiator"),
            models.Index(
                fields=["expires_at"],
                condition=Q(status__in=["active", "floor_reached"]),
                name="bargain_live_by_expiry",
            ),
        ]

    def __str__(self) -> str:
        return f"bargain {self.pk} of campaign {self.campaign_id} ({self.status})"


class BargainHelp(models.Model):
    """One friend's cut. ``seq`` is the help's place (1..helps_needed); the device and a hash of
    the client IP are kept so that helper farming shows in the data."""

    bargain = models.ForeignKey(Bargain, on_delete=models.PROTECT, related_name="helps")
    helper = models.ForeignKey("shop.Customer", on_delete=models.PROTECT, related_name="+")
    seq = models.PositiveIntegerField()
    cut = models.BigIntegerField()
    price_after = models.BigIntegerField()
    device_id = models.UUIDField(null=True, blank=True, db_index=True)
    ip_hash = models.CharField(max_length=64, blank=True, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["bargain", "helper"], name="bargain_help_once"),
            models.UniqueConstraint(fields=["bargain", "seq"], name="bargain_help_seq_unique"),
            models.CheckConstraint(condition=Q(cut__gte=1), name="bargain_help_cut_positive"),
            models.CheckConstraint(condition=Q(seq__gte=1), name="bargain_help_seq_positive"),
        ]
        indexes = [models.Index(fields=["helper", "created_at"], name="bargain_help_by_helper")]

    def __str__(self) -> str:
        return f"help {self.seq} on bargain {self.bargain_id} by customer {self.helper_id}"
