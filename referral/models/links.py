from django.db import models
from django.db.models import Q


class ShareLink(models.Model):
    """What a distributor shares: a target ``(target_kind, target_id)`` resolved through the link
    target registry (core/link_targets.py), UTM parameters, and a public ``short_code`` (the
    mini-program's ``scene``). ``clicks`` / ``filtered_clicks`` are counters flushed from the raw
    ``Click`` rows by a periodic job (``flushed_at``: the last flush that changed them)."""

    distributor = models.ForeignKey(
        "referral.Distributor", on_delete=models.PROTECT, related_name="links"
    )
    short_code = models.CharField(max_length=16, unique=True)
    target_kind = models.CharField(max_length=24)
    target_id = models.BigIntegerField(null=True, blank=True, help_text="None for the shop")
    title = models.CharField(max_length=200, blank=True, help_text="The target's title when made")
    utm_source = models.CharField(max_length=64, blank=True)
    utm_medium = models.CharField(max_length=64, blank=True)
    utm_campaign = models.CharField(max_length=64, blank=True)
    utm_content = models.CharField(max_length=64, blank=True)
    is_active = models.BooleanField(default=True)
    is_code_link = models.BooleanField(
        default=False, help_text="The hidden link an exclusive code's checkouts are touches of"
    )
    clicks = models.PositiveBigIntegerField(default=0, help_text="Counted clicks (flushed)")
    filtered_clicks = models.PositiveBigIntegerField(
        default=0, help_text="Duplicate and bot clicks (flushed)"
    )
    flushed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["distributor", "-id"], name="sharelink_by_distributor")]

    def __str__(self) -> str:
        return self.short_code


class Click(models.Model):
    """One visit through a link, as the frontend reported it (or an exclusive code typed at a
    checkout: ``kind`` code, on the code's hidden link). ``visitor_key`` is who visited for
    de-duplication: ``c:<customer id>``, else ``d:<device uuid>``, else ``h:<hash of IP + user
    agent>``. Only ``counted`` clicks count; ``duplicate`` and ``bot`` ones are kept, filtered.
    ``flushed``: already added to its link's counters."""

    class Status(models.TextChoices):
        COUNTED = "counted", "Counted"
        DUPLICATE = "duplicate", "Duplicate within the window"
        BOT = "bot", "Bot or link preview"

    class Kind(models.TextChoices):
        LINK = "link", "Opened a share link"
        CODE = "code", "Used an exclusive code at checkout"

    link = models.ForeignKey(ShareLink, on_delete=models.PROTECT, related_name="click_rows")
    distributor = models.ForeignKey(
        "referral.Distributor", on_delete=models.PROTECT, related_name="+"
    )
    kind = models.CharField(max_length=4, choices=Kind.choices, default=Kind.LINK)
    status = models.CharField(max_length=10, choices=Status.choices)
    occurred_at = models.DateTimeField()
    customer = models.ForeignKey(
        "shop.Customer", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    device_id = models.UUIDField(null=True, blank=True)
    ip_hash = models.CharField(max_length=64, blank=True)
    user_agent = models.CharField(max_length=400, blank=True)
    visitor_key = models.CharField(max_length=80)
    flushed = models.BooleanField(default=False)

    class Meta:
        ordering = ["-occurred_at", "-id"]
        indexes = [
            models.Index(fields=["customer", "occurred_at"], name="click_by_customer"),
            models.Index(
                fields=["device_id", "occurred_at"],
                condition=Q(customer__isnull=True),
                name="click_anonymous_by_device",
            ),
            models.Index(fields=["link", "occurred_at"], name="click_by_link"),
            models.Index(fields=["id"], condition=Q(flushed=False), name="click_unflushed"),
            models.Index(fields=["ip_hash", "occurred_at"], name="click_by_ip"),
            models.Index(fields=["occurred_at"], name="click_by_time"),  # the fraud scan's window
        ]

    def __str__(self) -> str:
        return f"{self.link_id} by {self.visitor_key} ({self.status})"


class ClickGate(models.Model):
    """The de-duplication gate: the last counted click of a visitor on a link. A click is
    counted when one conditional upsert moves ``counted_at`` (absent, or older than the window),
    so two concurrent clicks of one visitor count once."""

    link = models.ForeignKey(ShareLink, on_delete=models.CASCADE, related_name="+")
    visitor_key = models.CharField(max_length=80)
    counted_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["link", "visitor_key"], name="clickgate_unique")
        ]

    def __str__(self) -> str:
        return f"{self.link_id} by {self.visitor_key} at {self.counted_at}"


class TrackingOptOut(models.Model):
    """A customer who asked not to be tracked: their visits are never recorded."""

    customer = models.OneToOneField(
        "shop.Customer", on_delete=models.CASCADE, related_name="tracking_opt_out"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"customer {self.customer_id} opted out"


class ExclusiveCode(models.Model):
    """An operator-issued shop coupon code (shop.CouponCode, of an exclusive-slot template) tied
    to a distributor: typing it at checkout discounts the order and attributes it to them; each
    such checkout is recorded as a ``code`` click on ``link`` (a hidden link of the code)."""

    distributor = models.ForeignKey(
        "referral.Distributor", on_delete=models.PROTECT, related_name="exclusive_codes"
    )
    coupon_code = models.OneToOneField(
        "shop.CouponCode", on_delete=models.PROTECT, related_name="exclusive"
    )
    link = models.OneToOneField(ShareLink, on_delete=models.PROTECT, related_name="exclusive_code")
    created_by = models.ForeignKey(
        "core.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"{self.coupon_code_id} for {self.distributor_id}"
