from django.conf import settings
from django.db import models
from django.db.models import Q


class ReconciliationDiscrepancy(models.Model):
    """The provider reported something our books cannot take as they are: recorded for an
    operator (listed in the admin, operators notified) instead of failing the webhook forever."""

    class Kind(models.TextChoices):
        REFUND_SUCCEEDED_AFTER_REPLACEMENT = (
            "refund_succeeded_after_replacement",
            "A refund marked failed and replaced by another succeeded after all",
        )
        REFUND_EXCEEDS_PAID = (
            "refund_exceeds_paid",
            "A refund succeeded that is more than what is left to refund",
        )
        UNKNOWN_PAYMENT = "unknown_payment", "A payment succeeded that matches none of ours"

    kind = models.CharField(max_length=40, choices=Kind.choices)
    order = models.ForeignKey(
        "shop.Order", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    payment = models.ForeignKey(
        "shop.Payment", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    refund = models.ForeignKey(
        "shop.Refund", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    amount = models.BigIntegerField(help_text="Money the provider reports, fen")
    provider_ref = models.CharField(max_length=255, blank=True)
    details = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    resolution_note = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "reconciliation discrepancies"
        constraints = [
            # A redelivered report records nothing new.
            models.UniqueConstraint(
                fields=["kind", "refund"],
                condition=Q(refund__isnull=False),
                name="discrepancy_once_per_refund",
            ),
            models.UniqueConstraint(
                fields=["kind", "provider_ref"],
                condition=Q(refund__isnull=True) & ~Q(provider_ref=""),
                name="discrepancy_once_per_provider_ref",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} ({self.amount} fen)"
