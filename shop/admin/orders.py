"""Admin for orders and refunds: read-mostly; every action calls the same service as the API."""

from django.contrib import admin, messages

from core.errors import ApplicationError
from shop.models import Order, OrderLine, Refund, RefundLine
from shop.services.orders import order_cancel, order_fulfil
from shop.services.refunds import refund_approve, refund_reject

ORDER_FIELDS = [f.name for f in Order._meta.fields]
REFUND_FIELDS = [f.name for f in Refund._meta.fields]


def _run_each(modeladmin, request, queryset, action, label: str) -> None:
    done = 0
    for obj in queryset.order_by("pk"):
        try:
            action(obj)
            done += 1
        except ApplicationError as exc:
            modeladmin.message_user(request, f"{obj}: {exc.message} ({exc.code})", messages.ERROR)
    if done:
        modeladmin.message_user(request, f"{label}: {done}", messages.SUCCESS)


class OrderLineInline(admin.TabularInline):
    model = OrderLine
    extra = 0
    can_delete = False
    fields = readonly_fields = [
        "sku",
        "product_title",
        "sku_code",
        "unit_price",
        "quantity",
        "line_total",
        "refunded_quantity",
        "refunded_amount",
    ]

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Order)
class OrderAdmin(admin.ModelAdmin):
    list_display = [
        "number",
        "customer",
        "status",
        "delivery_mode",
        "community",
        "total",
        "refunded_amount",
        "created_at",
    ]
    list_filter = ["status", "delivery_mode", "community"]
    search_fields = ["number", "customer__nickname", "customer__openid", "customer__phone"]
    list_select_related = ["customer", "community"]
    date_hierarchy = "created_at"
    readonly_fields = [f for f in ORDER_FIELDS if f not in ("note",)]
    inlines = [OrderLineInline]
    actions = ["fulfil", "cancel"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    @admin.action(description="Fulfil (handed over / pickup verified)", permissions=["change"])
    def fulfil(self, request, queryset):
        _run_each(
            self,
            request,
            queryset,
            lambda order: order_fulfil(order_id=order.pk, actor=request.user),
            "Fulfilled",
        )

    @admin.action(description="Cancel unpaid orders", permissions=["change"])
    def cancel(self, request, queryset):
        _run_each(
            self,
            request,
            queryset,
            lambda order: order_cancel(order_id=order.pk, reason="staff"),
            "Cancelled",
        )


class RefundLineInline(admin.TabularInline):
    model = RefundLine
    extra = 0
    can_delete = False
    fields = readonly_fields = ["order_line", "quantity", "amount"]

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Refund)
class RefundAdmin(admin.ModelAdmin):
    list_display = ["id", "order", "amount", "status", "reason", "restock", "created_at"]
    list_filter = ["status", "reason"]
    search_fields = ["order__number", "provider_ref"]
    list_select_related = ["order"]
    readonly_fields = REFUND_FIELDS
    inlines = [RefundLineInline]
    actions = ["approve", "reject"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    @admin.action(description="Approve (send the money back)", permissions=["change"])
    def approve(self, request, queryset):
        _run_each(
            self,
            request,
            queryset,
            lambda refund: refund_approve(refund_id=refund.pk, staff=request.user),
            "Approved",
        )

    @admin.action(description="Reject", permissions=["change"])
    def reject(self, request, queryset):
        _run_each(
            self,
            request,
            queryset,
            lambda refund: refund_reject(refund_id=refund.pk, staff=request.user),
            "Rejected",
        )
