from django.conf import settings
from django.db import models


class Payment(models.Model):
    """One attempt to collect an order's total through a provider."""

    class Provider(models.TextChoices):
        SANDBOX = "sandbox", "Sandbox"
        STRIPE = "stripe", "Stripe"

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        CANCELED = "canceled", "Canceled"

    order = models.ForeignKey("shop.Order", on_delete=models.PROTECT, related_name="payments")
    provider = models.CharField(max_length=16, choices=Provider.choices)
    provider_ref = models.CharField(max_length=255, null=True, blank=True, unique=True)
    client_secret = models.CharField(max_length=255, blank=True)
    amount = models.BigIntegerField()
    currency = models.CharField(max_length=3, default=settings.CURRENCY)
    status = models.CharField(
        max_length=16, choices=Status.choices, default=Status.PENDING, db_index=True
    )
    failure_message = models.CharField(
        max_length=500, blank=True, help_text="Shown to the customer: a stable, human text"
    )
    provider_detail = models.TextField(
        blank=True, help_text="What the provider said (operators only; never shown to customers)"
    )
    refunded_amount = models.BigIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    succeeded_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(refunded_amount__gte=0)
                & models.Q(refunded_amount__lte=models.F("amount")),
                name="payment_refund_within_amount",
            )
        ]

    def __str__(self) -> str:
        return f"{self.provider} payment {self.pk} ({self.status})"


class Refund(models.Model):
    class Status(models.TextChoices):
        REQUESTED = "requested", "Requested by customer"
        APPROVED = "approved", "Approved, sending to provider"
        SUCCEEDED = "succeeded", "Refunded"
        REJECTED = "rejected", "Rejected"
        FAILED = "failed", "Provider failed"

    class Reason(models.TextChoices):
        CUSTOMER_REQUEST = "customer_request", "Customer request"
        STAFF = "staff", "Issued by staff"
        LATE_PAYMENT = "late_payment", "Payment arrived after the order was cancelled"
        GROUP_FAILED = "group_failed", "Group-buy did not succeed"
        ENTRY_CANCELLED = "entry_cancelled", "Chain sign-up entry cancelled by the member"
        OUT_OF_STOCK = "out_of_stock", "Out of stock"

    order = models.ForeignKey("shop.Order", on_delete=models.PROTECT, related_name="refunds")
    payment = models.ForeignKey(
        Payment, null=True, blank=True, on_delete=models.PROTECT, related_name="refunds"
    )
    amount = models.BigIntegerField()
    status = models.CharField(
        max_length=16, choices=Status.choices, default=Status.REQUESTED, db_index=True
    )
    reason = models.CharField(max_length=24, choices=Reason.choices)
    note = models.CharField(max_length=500, blank=True)
    restock = models.BooleanField(default=False, help_text="Return the refunded units to stock")
    restocked_quantity = models.PositiveIntegerField(
        default=0, help_text="Units put back on sale when the refund succeeded"
    )
    provider_ref = models.CharField(max_length=255, null=True, blank=True, unique=True)
    failure_message = models.CharField(max_length=500, blank=True)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    succeeded_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=models.Q(amount__gt=0), name="refund_amount_positive")
        ]

    def __str__(self) -> str:
        return f"refund {self.pk} of order {self.order_id} ({self.status})"


class RefundLine(models.Model):
    """How a refund's amount falls on the order's lines (allocated exactly)."""

    refund = models.ForeignKey(Refund, on_delete=models.CASCADE, related_name="lines")
    order_line = models.ForeignKey(
        "shop.OrderLine", on_delete=models.PROTECT, related_name="refund_lines"
    )
    quantity = models.PositiveIntegerField(default=0)
    amount = models.BigIntegerField()

    def __str__(self) -> str:
        return f"{self.quantity} x line {self.order_line_id}: {self.amount}"


class WebhookEvent(models.Model):
    """Every provider event, stored once by its id: a redelivery is a no-op."""

    provider = models.CharField(max_length=16)
    event_id = models.CharField(max_length=255)
    event_type = models.CharField(max_length=100)
    payload = models.JSONField()
    received_at = models.DateTimeField(auto_now_add=True)
    processed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["provider", "event_id"], name="webhook_event_unique")
        ]

    def __str__(self) -> str:
        return f"{self.provider} {self.event_type} {self.event_id}"
