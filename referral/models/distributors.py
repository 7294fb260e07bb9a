from django.conf import settings
from django.db import models
from django.db.models import F, Q


class ReferralPolicy(models.Model):
    """The operator's onboarding and recruiting settings: one row (pk 1), changed through
    ``referral.services.distributors.policy_update`` (each change is a ``DistributorEvent``-like
    audit entry in ``history``). There is no fee field: becoming a distributor never costs
    anything."""

    class Onboarding(models.TextChoices):
        EVERYONE = "everyone", "Everyone who asks is a distributor"
        SPEND_THRESHOLD = "spend_threshold", "Automatically after cumulative paid spend"
        APPLICATION = "application", "Apply and be approved by an operator"
        APPOINTED = "appointed", "Appointed by an operator only"

    class Recruit(models.TextChoices):
        NONE = "none", "No upline from links"
        FIRST_CLICK = "first_click", "The distributor of the customer's first link"
        LAST_CLICK = "last_click", "The distributor of the customer's latest link"

    onboarding = models.CharField(
        max_length=16, choices=Onboarding.choices, default=Onboarding.APPLICATION
    )
    spend_threshold = models.BigIntegerField(
        default=0, help_text="spend_threshold mode: cumulative paid spend (fen) that qualifies"
    )
    recruit = models.CharField(max_length=12, choices=Recruit.choices, default=Recruit.LAST_CLICK)
    history = models.JSONField(
        default=list, blank=True, help_text="[{at, by, changes}] appended on every change"
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "referral policy"
        constraints = [
            models.CheckConstraint(
                condition=Q(spend_threshold__gte=0), name="referralpolicy_threshold_non_negative"
            ),
        ]

    def __str__(self) -> str:
        return f"onboarding {self.onboarding}, recruit {self.recruit}"


class Distributor(models.Model):
    """A customer who shares (KOC) or a salesperson (KOS). ``upline`` is who recruited them;
    ``depth`` their distance from the root of their tree (0: no upline)."""

    class Kind(models.TextChoices):
        KOC = "koc", "Key opinion consumer"
        KOS = "kos", "Key opinion sales (staff promoter)"

    class Status(models.TextChoices):
        APPLIED = "applied", "Applied, awaiting an operator"
        ACTIVE = "active", "Active"
        SUSPENDED = "suspended", "Suspended"
        REJECTED = "rejected", "Application rejected"

    class Onboarding(models.TextChoices):
        JOINED = "joined", "Joined (everyone mode)"
        SPEND = "spend", "Qualified by spend"
        APPLICATION = "application", "Applied and approved"
        APPOINTED = "appointed", "Appointed by an operator"

    customer = models.OneToOneField(
        "shop.Customer", on_delete=models.PROTECT, related_name="distributor"
    )
    display_name = models.CharField(max_length=64)
    kind = models.CharField(max_length=3, choices=Kind.choices, default=Kind.KOC)
    channels = models.JSONField(
        default=list, blank=True, help_text='Where they share, e.g. ["wechat_group", "moments"]'
    )
    status = models.CharField(
        max_length=10, choices=Status.choices, default=Status.APPLIED, db_index=True
    )
    onboarding = models.CharField(max_length=12, choices=Onboarding.choices)
    upline = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="downline"
    )
    depth = models.PositiveIntegerField(default=0)
    application_note = models.CharField(max_length=500, blank=True)
    decision_reason = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    joined_at = models.DateTimeField(
        null=True, blank=True, help_text="When they became active the first time"
    )

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(condition=~Q(upline=F("id")), name="distributor_not_own_upline"),
            models.CheckConstraint(
                condition=Q(upline__isnull=True, depth=0) | Q(upline__isnull=False, depth__gte=1),
                name="distributor_depth_matches_upline",
            ),
        ]

    def __str__(self) -> str:
        return self.display_name


class DistributorAncestry(models.Model):
    """Closure table of the referral tree: one row per (ancestor, descendant) pair, ``depth`` =
    how many levels apart (1: direct upline). A distributor has no row with itself."""

    ancestor = models.ForeignKey(Distributor, on_delete=models.CASCADE, related_name="+")
    descendant = models.ForeignKey(Distributor, on_delete=models.CASCADE, related_name="+")
    depth = models.PositiveIntegerField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["ancestor", "descendant"], name="ancestry_unique"),
            models.CheckConstraint(condition=Q(depth__gte=1), name="ancestry_depth_positive"),
            models.CheckConstraint(
                condition=~Q(ancestor=F("descendant")), name="ancestry_not_self"
            ),
        ]
        indexes = [
            models.Index(fields=["ancestor", "depth", "descendant"], name="ancestry_downline"),
            models.Index(fields=["descendant", "depth"], name="ancestry_upline"),
        ]

    def __str__(self) -> str:
        return f"{self.ancestor_id} -> {self.descendant_id} ({self.depth})"


class DistributorEvent(models.Model):
    """The audit trail of a distributor: every status change, appointment, re-parenting and
    profile change, with who did it and why."""

    class Kind(models.TextChoices):
        APPLIED = "applied", "Applied"
        JOINED = "joined", "Joined"
        QUALIFIED = "qualified", "Qualified by spend"
        APPOINTED = "appointed", "Appointed"
        APPROVED = "approved", "Approved"
        REJECTED = "rejected", "Rejected"
        SUSPENDED = "suspended", "Suspended"
        REINSTATED = "reinstated", "Reinstated"
        REPARENTED = "reparented", "Re-parented"
        PROFILE_UPDATED = "profile_updated", "Profile updated"

    distributor = models.ForeignKey(Distributor, on_delete=models.CASCADE, related_name="events")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    from_status = models.CharField(max_length=10, blank=True)
    to_status = models.CharField(max_length=10, blank=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    reason = models.CharField(max_length=500, blank=True)
    data = models.JSONField(default=dict, blank=True, help_text="e.g. old and new upline ids")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.distributor_id}: {self.kind}"
