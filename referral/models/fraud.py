from django.conf import settings
from django.db import models
from django.db.models import Q


class FraudFlag(models.Model):
    """A signal for operators: flagged, never silently paid. Open flags of a distributor or an
    attribution hold their commissions (incentives reads them; ``fraud_flag_changed`` announces
    every change). ``dedupe_key`` makes each signal once: e.g. ``self_referral:<attribution>``,
    ``click_spam:<distributor>:<ip hash>:<window start>``."""

    class Kind(models.TextChoices):
        SELF_REFERRAL = "self_referral", "Another account shares the distributor's device/IP/phone"
        CLICK_SPAM = "click_spam", "Too many clicks from one device or IP"
        DEVICE_CLUSTER = "device_cluster", "Several accounts on one device"
        HIGH_REFUND_RATE = "high_refund_rate", "High refund rate"
        REFERRAL_CYCLE = "referral_cycle", "Orders flow back up or around the tree"

    class Status(models.TextChoices):
        OPEN = "open", "Open: commissions held"
        CLEARED = "cleared", "Cleared by an operator"
        CONFIRMED = "confirmed", "Confirmed: commissions voided"

    kind = models.CharField(max_length=16, choices=Kind.choices)
    status = models.CharField(
        max_length=10, choices=Status.choices, default=Status.OPEN, db_index=True
    )
    distributor = models.ForeignKey(
        "referral.Distributor", on_delete=models.PROTECT, related_name="fraud_flags"
    )
    attribution = models.ForeignKey(
        "referral.Attribution",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="fraud_flags",
    )
    dedupe_key = models.CharField(max_length=200, unique=True)
    details = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    reviewed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    reviewed_at = models.DateTimeField(null=True, blank=True)
    review_note = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(
                fields=["distributor"], condition=Q(status="open"), name="fraudflag_open_by_d"
            )
        ]

    def __str__(self) -> str:
        return f"{self.kind} on {self.distributor_id} ({self.status})"
