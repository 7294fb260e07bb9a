"""The order timeline in the admin: read-only, shown on each order."""

from django.contrib import admin

from core.admin_money import yuan_display
from shop.models import OrderEvent


class OrderEventInline(admin.TabularInline):
    model = OrderEvent
    verbose_name_plural = "timeline"
    extra = 0
    can_delete = False
    ordering = ["created_at", "id"]
    fields = readonly_fields = [
        "created_at",
        "kind",
        "actor_kind",
        "actor",
        "from_status",
        "to_status",
        "reason",
        "amount_yuan",
        "payment",
        "refund",
    ]
    amount_yuan = yuan_display("amount")

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
