from django.conf import settings
from django.db import models


class OrderEvent(models.Model):
    """One row of an order's timeline: a transition, a payment, a refund step or a pickup.

    Written by the service that does the thing, inside the same transaction, so the timeline
    never shows what did not happen. ``from_status``/``to_status`` are the order's status before
    and after (equal when only a payment or refund moved); ``actor`` is who acted (none for the
    system: sweeps, provider webhooks)."""

    class Kind(models.TextChoices):
        PLACED = "placed", "Order placed"
        PAYMENT_STARTED = "payment_started", "Payment started"
        PAYMENT_FAILED = "payment_failed", "Payment failed"
        PAID = "paid", "Paid"
        PAYMENT_UNAPPLIED = "payment_unapplied", "Payment not applied (refunded)"
        CANCELLED = "cancelled", "Cancelled"
        FULFILLED = "fulfilled", "Fulfilled"
        PICKUP_VERIFIED = "pickup_verified", "Pickup code redeemed"
        COMPLETED = "completed", "Completed"
        REFUND_REQUESTED = "refund_requested", "Refund requested"
        REFUND_APPROVED = "refund_approved", "Refund approved"
        REFUND_REJECTED = "refund_rejected", "Refund rejected"
        REFUND_SUCCEEDED = "refund_succeeded", "Refund succeeded"
        REFUND_FAILED = "refund_failed", "Refund failed"
        DISCREPANCY = "discrepancy", "Reconciliation discrepancy"
        RELEASED = "released", "Released by its campaign (held until then)"

    class ActorKind(models.TextChoices):
        CUSTOMER = "customer", "Customer"
        LEADER = "leader", "Community leader"
        STAFF = "staff", "Staff"
        SYSTEM = "system", "System"

    order = models.ForeignKey("shop.Order", on_delete=models.CASCADE, related_name="events")
    kind = models.CharField(max_length=24, choices=Kind.choices)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_kind = models.CharField(max_length=16, choices=ActorKind.choices)
    from_status = models.CharField(max_length=24, blank=True)
    to_status = models.CharField(max_length=24)
    reason = models.CharField(max_length=64, blank=True)
    payment = models.ForeignKey(
        "shop.Payment", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    refund = models.ForeignKey(
        "shop.Refund", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    amount = models.BigIntegerField(null=True, blank=True, help_text="Money moved, fen")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"order {self.order_id}: {self.kind} ({self.from_status} -> {self.to_status})"
