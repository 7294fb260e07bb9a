"""Admin for attribution rule versions, attributions (with their paid levels), bindings and
attribution refunds: read-only (rule versions are made through the staff API; attributions are
written once by the ``order_paid`` subscriber and never edited). Money in yuan."""

from django.contrib import admin

from core.admin_money import yuan_display
from referral.admin.readonly import ReadOnlyAdmin, ReadOnlyInline
from referral.models import (
    Attribution,
    AttributionLevel,
    AttributionRefund,
    AttributionRule,
    Binding,
)


@admin.register(AttributionRule)
class AttributionRuleAdmin(ReadOnlyAdmin):
    list_display = [
        "version",
        "model",
        "binding_days",
        "click_window_days",
        "code_overrides_link",
        "self_purchase",
        "effective_from",
        "created_by",
    ]
    list_filter = ["model", "self_purchase", "code_overrides_link"]
    search_fields = ["note"]


class AttributionLevelInline(ReadOnlyInline):
    model = AttributionLevel
    fields = ["level", "distributor"]


class AttributionRefundInline(ReadOnlyInline):
    model = AttributionRefund
    fields = ["refund_id", "amount_yuan", "refunded_at"]
    amount_yuan = yuan_display("amount")

    def get_readonly_fields(self, request, obj=None):
        return self.fields


@admin.register(Attribution)
class AttributionAdmin(ReadOnlyAdmin):
    list_display = [
        "id",
        "order",
        "distributor",
        "touch",
        "rule_version",
        "reason",
        "self_purchase",
        "goods_amount_yuan",
        "refunded_amount_yuan",
        "paid_at",
    ]
    list_filter = ["touch", "rule_version", "self_purchase", "source"]
    search_fields = ["order__number", "distributor__display_name", "reason"]
    list_select_related = ["order", "distributor"]
    date_hierarchy = "paid_at"
    inlines = [AttributionLevelInline, AttributionRefundInline]
    money = ("goods_amount", "refunded_amount")
    goods_amount_yuan = yuan_display("goods_amount")
    refunded_amount_yuan = yuan_display("refunded_amount")


@admin.register(AttributionLevel)
class AttributionLevelAdmin(ReadOnlyAdmin):
    list_display = ["id", "attribution", "level", "distributor"]
    list_filter = ["level"]
    search_fields = ["distributor__display_name"]
    list_select_related = ["attribution", "distributor"]


@admin.register(Binding)
class BindingAdmin(ReadOnlyAdmin):
    list_display = ["customer", "distributor", "bound_at", "last_touch_at", "updated_at"]
    search_fields = ["customer__nickname", "distributor__display_name"]
    list_select_related = ["customer", "distributor"]
    date_hierarchy = "bound_at"


@admin.register(AttributionRefund)
class AttributionRefundAdmin(ReadOnlyAdmin):
    list_display = ["refund_id", "attribution", "amount_yuan", "refunded_at"]
    search_fields = ["refund_id"]
    list_select_related = ["attribution"]
    money = ("amount",)
    amount_yuan = yuan_display("amount")
