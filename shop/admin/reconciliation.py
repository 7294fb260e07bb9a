"""Reconciliation discrepancies: the operators' list of provider reports to settle by hand."""

from django.contrib import admin, messages

from core.admin_money import yuan_display, yuan_names
from shop.models import ReconciliationDiscrepancy
from shop.services.reconciliation import discrepancy_resolve


class ResolvedFilter(admin.SimpleListFilter):
    title = "resolved"
    parameter_name = "resolved"

    def lookups(self, request, model_admin):
        return [("no", "Open"), ("yes", "Resolved")]

    def queryset(self, request, queryset):
        if self.value() == "no":
            return queryset.filter(resolved_at__isnull=True)
        if self.value() == "yes":
            return queryset.filter(resolved_at__isnull=False)
        return queryset


@admin.register(ReconciliationDiscrepancy)
class ReconciliationDiscrepancyAdmin(admin.ModelAdmin):
    list_display = ["id", "kind", "order", "refund", "amount_yuan", "created_at", "resolved_at"]
    list_filter = [ResolvedFilter, "kind"]
    search_fields = ["order__number", "provider_ref"]
    list_select_related = ["order", "refund"]
    readonly_fields = yuan_names(
        [f.name for f in ReconciliationDiscrepancy._meta.fields if f.name != "resolution_note"],
        ("amount",),
    )
    exclude = ("amount",)
    amount_yuan = yuan_display("amount")
    actions = ["resolve"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    @admin.action(description="Mark resolved", permissions=["change"])
    def resolve(self, request, queryset):
        for discrepancy in queryset.order_by("pk"):
            discrepancy_resolve(discrepancy_id=discrepancy.pk, staff=request.user)
        self.message_user(request, f"Resolved: {queryset.count()}", messages.SUCCESS)
