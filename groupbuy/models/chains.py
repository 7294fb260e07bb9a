"""Community chain sign-up (接龙) posts, their items and entries, and the announcements a
community leader posts to their community (services: groupbuy/services/chains.py and
groupbuy/services/community.py). Money is integer fen."""

from django.conf import settings
from django.db import models
from django.db.models import F, Q


class ChainPost(models.Model):
    """A community leader's (or an operator's) post: members add themselves with quantities of
    its items until ``deadline``; each entry is an order (source ``chain_signup``)."""

    class Status(models.TextChoices):
        OPEN = "open", "Open for sign-ups"
        CLOSED = "closed", "Closed (deadline passed)"
        CANCELLED = "cancelled", "Cancelled"

    community = models.ForeignKey("shop.Community", on_delete=models.PROTECT, related_name="+")
    pickup_point = models.ForeignKey("shop.PickupPoint", on_delete=models.PROTECT, related_name="+")
    author = models.ForeignKey(
        "shop.Customer",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="The community leader who posted it (empty: posted by an operator)",
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    title = models.CharField(max_length=200)
    body = models.TextField(blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.OPEN)
    deadline = models.DateTimeField()
    max_entries = models.PositiveIntegerField(
        null=True, blank=True, help_text="Live entries allowed at once (empty: no cap)"
    )
    live_entries = models.PositiveIntegerField(default=0)
    next_seq = models.PositiveIntegerField(default=1, help_text="The next entry's number")
    closed_at = models.DateTimeField(null=True, blank=True)
    arrived_at = models.DateTimeField(
        null=True, blank=True, help_text="When the leader marked the delivery arrived"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(max_entries__isnull=True)
                | (Q(max_entries__gte=1) & Q(live_entries__lte=F("max_entries"))),
                name="chain_post_entries_within_cap",
            ),
            models.CheckConstraint(
                condition=~Q(status="closed") | Q(closed_at__isnull=False),
                name="chain_post_closed_has_time",
            ),
        ]
        indexes = [
            models.Index(fields=["community", "status"], name="chain_post_by_community"),
            models.Index(
                fields=["deadline"], condition=Q(status="open"), name="chain_post_open_by_deadline"
            ),
        ]

    def __str__(self) -> str:
        return self.title


class ChainPostItem(models.Model):
    """A SKU on a post at its community price, with an optional cap on units signed up."""

    post = models.ForeignKey(ChainPost, on_delete=models.CASCADE, related_name="items")
    sku = models.ForeignKey("shop.Sku", on_delete=models.PROTECT, related_name="+")
    price = models.BigIntegerField(help_text="Fen; the community price, at most the SKU's price")
    max_units = models.PositiveIntegerField(
        null=True, blank=True, help_text="Units all live entries may take (empty: no cap)"
    )
    units_taken = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["post", "sku"], name="chain_post_item_unique"),
            models.CheckConstraint(
                condition=Q(price__gte=1), name="chain_post_item_price_positive"
            ),
            models.CheckConstraint(
                condition=Q(max_units__isnull=True)
                | (Q(max_units__gte=1) & Q(units_taken__lte=F("max_units"))),
                name="chain_post_item_units_within_cap",
            ),
        ]

    def __str__(self) -> str:
        return f"post {self.post_id}: SKU {self.sku_id} at {self.price}"


class ChainEntry(models.Model):
    """A member's line on a post, paid through its order. ``seq`` is the entry's number on the
    post (never reused); ``live`` while its order is pending or paid, ``dropped`` when the order
    expired unpaid or the member cancelled it (they may sign up again while the post is open)."""

    class Status(models.TextChoices):
        LIVE = "live", "On the list"
        DROPPED = "dropped", "Dropped"

    post = models.ForeignKey(ChainPost, on_delete=models.PROTECT, related_name="entries")
    customer = models.ForeignKey("shop.Customer", on_delete=models.PROTECT, related_name="+")
    order = models.OneToOneField("shop.Order", on_delete=models.PROTECT, related_name="+")
    seq = models.PositiveIntegerField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.LIVE)
    paid_at = models.DateTimeField(null=True, blank=True)
    dropped_at = models.DateTimeField(null=True, blank=True)
    drop_reason = models.CharField(max_length=32, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name_plural = "chain entries"
        constraints = [
            models.UniqueConstraint(fields=["post", "seq"], name="chain_entry_seq_unique"),
            models.UniqueConstraint(
                fields=["post", "customer"],
                condition=Q(status="live"),
                name="chain_entry_one_live_per_customer",
            ),
            models.CheckConstraint(
                condition=~Q(status="dropped") | Q(dropped_at__isnull=False),
                name="chain_entry_dropped_has_time",
            ),
        ]

    def __str__(self) -> str:
        return f"entry {self.seq} on post {self.post_id} ({self.status})"


class CommunityAnnouncement(models.Model):
    """A community leader's message to their community, pushed to its topic and stored; staff
    may hide it (moderation), which takes it off every feed."""

    class Status(models.TextChoices):
        PUBLISHED = "published", "Published"
        HIDDEN = "hidden", "Hidden by staff"

    community = models.ForeignKey("shop.Community", on_delete=models.PROTECT, related_name="+")
    author = models.ForeignKey("shop.Customer", on_delete=models.PROTECT, related_name="+")
    body = models.TextField(max_length=2000)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PUBLISHED)
    hidden_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
    )
    hidden_at = models.DateTimeField(null=True, blank=True)
    hidden_reason = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=~Q(status="hidden") | Q(hidden_at__isnull=False),
                name="community_announcement_hidden_has_time",
            ),
        ]
        indexes = [
            models.Index(fields=["community", "-created_at"], name="announcement_by_community"),
        ]

    def __str__(self) -> str:
        return f"announcement {self.pk} in community {self.community_id}"
