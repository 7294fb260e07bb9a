from django.conf import settings
from django.db import models
from django.db.models import Q


class Lead(models.Model):
    """Someone who left their details on a distributor's lead form (KOS), with consent:
    ``new -> contacted -> converted | lost`` (``new`` may go straight to either end)."""

    class Status(models.TextChoices):
        NEW = "new", "New"
        CONTACTED = "contacted", "Contacted"
        CONVERTED = "converted", "Converted to an order"
        LOST = "lost", "Lost"

    distributor = models.ForeignKey(
        "referral.Distributor", on_delete=models.PROTECT, related_name="leads"
    )
    link = models.ForeignKey(
        "referral.ShareLink", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    name = models.CharField(max_length=64)
    phone = models.CharField(max_length=32)
    interest = models.CharField(max_length=500, blank=True)
    consent = models.BooleanField()
    consent_text = models.CharField(max_length=500, help_text="What they agreed to")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.NEW)
    customer = models.ForeignKey(
        "shop.Customer", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    order = models.ForeignKey(
        "shop.Order", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    ip_hash = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.CheckConstraint(condition=Q(consent=True), name="lead_has_consent"),
            models.CheckConstraint(
                condition=~Q(status="converted") | Q(order__isnull=False),
                name="lead_converted_has_order",
            ),
        ]
        indexes = [models.Index(fields=["distributor", "phone"], name="lead_by_phone")]

    def __str__(self) -> str:
        return f"{self.name} ({self.status})"


class LeadEvent(models.Model):
    lead = models.ForeignKey(Lead, on_delete=models.CASCADE, related_name="events")
    from_status = models.CharField(max_length=10, blank=True)
    to_status = models.CharField(max_length=10)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    note = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.lead_id}: {self.from_status} -> {self.to_status}"
