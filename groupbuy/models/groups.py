"""Group-buy (拼团) campaigns, their groups and the seats in them (services:
groupbuy/services/groups.py, which also describes the state machines). Money is integer fen."""

import secrets

from django.db import models
from django.db.models import F, Q

BPS_FULL = 10_000


def new_share_token() -> str:
    """The token a group's share link carries (22 URL-safe characters, 128 random bits)."""
    return secrets.token_urlsafe(16)


class GroupCampaign(models.Model):
    """An operator's offer: buy ``product`` at a group price once ``group_size`` buyers have
    paid in one group before it expires."""

    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        ACTIVE = "active", "Active"
        ENDED = "ended", "Ended"

    class JoinMode(models.TextChoices):
        SHARE_TOKEN = "share_token", "Only through the group's share link"
        COMMUNITY = "community", "Also any open group of the buyer's community"

    title = models.CharField(max_length=200)
    product = models.ForeignKey(
        "shop.Product", on_delete=models.PROTECT, related_name="group_campaigns"
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.DRAFT)
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    group_size = models.PositiveIntegerField(help_text="Buyers a group needs (at least 2)")
    group_ttl_seconds = models.PositiveIntegerField(
        default=86_400, help_text="How long a group stays open after it is opened"
    )
    seat_payment_ttl_seconds = models.PositiveIntegerField(
        default=900,
        help_text="How long a seat is held while its payment is pending (never past the group's "
        "expiry)",
    )
    max_open_groups_per_customer = models.PositiveIntegerField(
        default=1, help_text="Groups of this campaign a customer may lead that are open at once"
    )
    max_quantity_per_order = models.PositiveIntegerField(default=1)
    join_mode = models.CharField(
        max_length=16, choices=JoinMode.choices, default=JoinMode.SHARE_TOKEN
    )
    auto_complete = models.BooleanField(
        default=False, help_text="Complete an expired group that is filled enough (disclosed)"
    )
    auto_complete_min_fill_bps = models.PositiveIntegerField(
        default=BPS_FULL,
        help_text="Auto-complete only when paid seats * 10000 >= size * this",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(ends_at__gt=F("starts_at")), name="group_campaign_ends_after_start"
            ),
            models.CheckConstraint(
                condition=Q(group_size__gte=2), name="group_campaign_size_at_least_two"
            ),
            models.CheckConstraint(
                condition=Q(group_ttl_seconds__gte=1) & Q(seat_payment_ttl_seconds__gte=1),
                name="group_campaign_ttls_positive",
            ),
            models.CheckConstraint(
                condition=Q(max_open_groups_per_customer__gte=1) & Q(max_quantity_per_order__gte=1),
                name="group_campaign_limits_positive",
            ),
            models.CheckConstraint(
                condition=Q(auto_complete_min_fill_bps__lte=BPS_FULL),
                name="group_campaign_min_fill_is_bps",
            ),
        ]

    def __str__(self) -> str:
        return self.title


class GroupCampaignSku(models.Model):
    """A SKU offered in a campaign, at its group price (and the leader's, if lower)."""

    campaign = models.ForeignKey(GroupCampaign, on_delete=models.CASCADE, related_name="skus")
    sku = models.ForeignKey("shop.Sku", on_delete=models.PROTECT, related_name="+")
    group_price = models.BigIntegerField(help_text="Fen; at most the SKU's price")
    leader_price = models.BigIntegerField(
        null=True, blank=True, help_text="Fen; the leader's price, at most the group price"
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["campaign", "sku"], name="group_campaign_sku_unique"),
            models.CheckConstraint(
                condition=Q(group_price__gte=1), name="group_campaign_sku_price_positive"
            ),
            models.CheckConstraint(
                condition=Q(leader_price__isnull=True)
                | (Q(leader_price__gte=1) & Q(leader_price__lte=F("group_price"))),
                name="group_campaign_sku_leader_price_within_group_price",
            ),
        ]

    def __str__(self) -> str:
        return f"campaign {self.campaign_id}: SKU {self.sku_id} at {self.group_price}"


class Group(models.Model):
    """One group of a campaign: ``size`` seats, each held while its order awaits payment, then
    paid. ``held_seats`` and ``paid_seats`` count the live seats (changed under the group's row
    lock, groupbuy/locks.py)."""

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    campaign = models.ForeignKey(GroupCampaign, on_delete=models.PROTECT, related_name="groups")
    leader = models.ForeignKey("shop.Customer", on_delete=models.PROTECT, related_name="+")
    community = models.ForeignKey(
        "shop.Community", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.OPEN)
    size = models.PositiveIntegerField(help_text="The campaign's group size when it was opened")
    share_token = models.CharField(max_length=32, unique=True, default=new_share_token)
    held_seats = models.PositiveIntegerField(default=0)
    paid_seats = models.PositiveIntegerField(default=0)
    expires_at = models.DateTimeField()
    succeeded_at = models.DateTimeField(null=True, blank=True)
    failed_at = models.DateTimeField(null=True, blank=True)
    auto_completed = models.BooleanField(default=False)
    waived_seats = models.PositiveIntegerField(
        default=0, help_text="Seats waived by auto-complete (never invented members)"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(size__gte=2), name="group_size_at_least_two"),
            models.CheckConstraint(
                condition=Q(held_seats__gte=0) & Q(paid_seats__gte=0) & Q(waived_seats__gte=0),
                name="group_seat_counts_non_negative",
            ),
            models.CheckConstraint(
                condition=Q(held_seats__lte=F("size") - F("paid_seats")),
                name="group_seats_within_size",
            ),
            models.CheckConstraint(
                condition=~Q(status="succeeded")
                | (
                    Q(succeeded_at__isnull=False)
                    & Q(held_seats=0)
                    & Q(paid_seats=F("size") - F("waived_seats"))
                ),
                name="group_succeeded_is_full",
            ),
            models.CheckConstraint(
                condition=~Q(status="failed") | Q(failed_at__isnull=False),
                name="group_failed_has_time",
            ),
            models.CheckConstraint(
                condition=Q(auto_completed=True) | Q(waived_seats=0),
                name="group_waives_only_when_auto_completed",
            ),
        ]
        indexes = [
            models.Index(
                fields=["leader", "campaign"],
                condition=Q(status="open"),
                name="group_open_by_leader",
            ),
        ]

    def __str__(self) -> str:
        return f"group {self.pk} of campaign {self.campaign_id} ({self.status})"


class GroupSeat(models.Model):
    """A buyer's place in a group, tied to the order that pays for it. ``held`` while the order
    awaits payment (until its deadline), then ``paid``; ``released`` when the order is cancelled
    or expires, which frees the seat. ``is_leader`` marks the group's current leader."""

    class Status(models.TextChoices):
        HELD = "held", "Held (payment pending)"
        PAID = "paid", "Paid"
        RELEASED = "released", "Released"

    LIVE = (Status.HELD, Status.PAID)

    group = models.ForeignKey(Group, on_delete=models.PROTECT, related_name="seats")
    customer = models.ForeignKey("shop.Customer", on_delete=models.PROTECT, related_name="+")
    order = models.OneToOneField("shop.Order", on_delete=models.PROTECT, related_name="+")
    is_leader = models.BooleanField(default=False)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.HELD)
    created_at = models.DateTimeField(auto_now_add=True)
    paid_at = models.DateTimeField(null=True, blank=True)
    released_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["group", "customer"],
                condition=Q(status__in=["held", "paid"]),
                name="group_seat_one_live_per_customer",
            ),
            models.UniqueConstraint(
                fields=["group"],
                condition=Q(is_leader=True, status__in=["held", "paid"]),
                name="group_seat_one_live_leader",
            ),
            models.CheckConstraint(
                condition=~Q(status="paid") | Q(paid_at__isnull=False),
                name="group_seat_paid_has_time",
            ),
            models.CheckConstraint(
                condition=~Q(status="released") | Q(released_at__isnull=False),
                name="group_seat_released_has_time",
            ),
        ]

    def __str__(self) -> str:
        return f"seat of customer {self.customer_id} in group {self.group_id} ({self.status})"
