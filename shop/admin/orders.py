"""Admin for orders and refunds: read-mostly; every action calls the same service as the API.
Money is shown in yuan; the "issue refund" action takes an amount in yuan."""

from django import forms
from django.contrib import admin, messages

from core.admin_money import YuanField, format_yuan, yuan_display, yuan_names
from core.errors import ApplicationError
from shop.admin.pages import form_page, run_each
from shop.admin.timeline import OrderEventInline
from shop.models import Order, OrderLine, Refund, RefundLine
from shop.services.orders import order_cancel, order_fulfil
from shop.services.refunds import refund_approve, refund_issue, refund_reject

ORDER_FIELDS = [f.name for f in Order._meta.fields]
REFUND_FIELDS = [f.name for f in Refund._meta.fields]
ORDER_MONEY = ("subtotal", "discount", "total", "refunded_amount")
REFUND_MONEY = ("amount",)


class OrderLineInline(admin.TabularInline):
    model = OrderLine
    extra = 0
    can_delete = False
    fields = readonly_fields = [
        "sku",
        "product_title",
        "sku_code",
        "unit_price_yuan",
        "quantity",
        "line_total_yuan",
        "refunded_quantity",
        "refunded_amount_yuan",
    ]
    unit_price_yuan = yuan_display("unit_price")
    line_total_yuan = yuan_display("line_total")
    refunded_amount_yuan = yuan_display("refunded_amount")

    def has_add_permission(self, request, obj=None) -> bool:
        return False


class IssueRefundForm(forms.Form):
    amount = YuanField(
        label="Amount (yuan)",
        help_text="Spread over the order's lines by what each has left; no stock goes back.",
    )
    note = forms.CharField(
        required=False, max_length=500, widget=forms.Textarea(attrs={"rows": 2, "cols": 60})
    )

    def clean_amount(self) -> int:
        amount = self.cleaned_data["amount"]
        if amount < 1:
            raise forms.ValidationError("Refund at least ¥0.01.")
        return amount


@admin.register(Order)
class OrderAdmin(admin.ModelAdmin):
    list_display = [
        "number",
        "customer",
        "status",
        "delivery_mode",
        "community",
        "total_yuan",
        "refunded_amount_yuan",
        "created_at",
    ]
    list_filter = ["status", "delivery_mode", "community"]
    search_fields = ["number", "customer__nickname", "customer__openid", "customer__phone"]
    list_select_related = ["customer", "community"]
    date_hierarchy = "created_at"
    readonly_fields = yuan_names([f for f in ORDER_FIELDS if f not in ("note",)], ORDER_MONEY)
    exclude = ORDER_MONEY  # shown in yuan through the read-only fields above
    inlines = [OrderLineInline, OrderEventInline]
    actions = ["fulfil", "cancel", "issue_refund"]
    subtotal_yuan = yuan_display("subtotal")
    discount_yuan = yuan_display("discount")
    total_yuan = yuan_display("total")
    refunded_amount_yuan = yuan_display("refunded_amount")

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    @admin.action(description="Fulfil (handed over / pickup verified)", permissions=["change"])
    def fulfil(self, request, queryset):
        run_each(
            self,
            request,
            queryset,
            lambda order: order_fulfil(order_id=order.pk, actor=request.user),
            "Fulfilled",
        )

    @admin.action(description="Cancel unpaid orders", permissions=["change"])
    def cancel(self, request, queryset):
        run_each(
            self,
            request,
            queryset,
            lambda order: order_cancel(order_id=order.pk, reason="staff", actor=request.user),
            "Cancelled",
        )

    def has_refund_permission(self, request) -> bool:
        return request.user.has_perm("shop.add_refund")  # as the staff refund API

    @admin.action(description="Issue a refund (amount in yuan)", permissions=["refund"])
    def issue_refund(self, request, queryset):
        """Asks for the amount, then calls ``refund_issue`` as ``POST /staff/orders/{id}/refunds``
        does; what the service refuses is reported as a message."""
        orders = list(queryset.order_by("pk")[:2])
        if len(orders) != 1:
            self.message_user(request, "Issue a refund for one order at a time.", messages.ERROR)
            return None
        (order,) = orders
        form = IssueRefundForm(request.POST if "apply" in request.POST else None)
        if not form.is_valid():
            return form_page(
                request,
                self,
                title=f"Refund order {order}",
                form=form,
                submit="Issue refund",
                intro=[
                    f"Order {order} ({order.status}): paid {format_yuan(order.total)}, refunded "
                    f"{format_yuan(order.refunded_amount)}, refundable "
                    f"{format_yuan(order.total - order.refunded_amount)}."
                ],
                action="issue_refund",
                objects=[order],
            )
        try:
            refund = refund_issue(
                order_id=order.pk,
                staff=request.user,
                amount=form.cleaned_data["amount"],
                note=form.cleaned_data["note"],
            )
        except ApplicationError as exc:
            self.message_user(request, f"{order}: {exc.message} ({exc.code})", messages.ERROR)
        else:
            self.message_user(
                request,
                f"Refund of {format_yuan(refund.amount)} issued for order {order}.",
                messages.SUCCESS,
            )
        return None


class RefundLineInline(admin.TabularInline):
    model = RefundLine
    extra = 0
    can_delete = False
    fields = readonly_fields = ["order_line", "quantity", "amount_yuan"]
    amount_yuan = yuan_display("amount")

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Refund)
class RefundAdmin(admin.ModelAdmin):
    list_display = ["id", "order", "amount_yuan", "status", "reason", "restock", "created_at"]
    list_filter = ["status", "reason"]
    search_fields = ["order__number", "provider_ref"]
    list_select_related = ["order"]
    readonly_fields = yuan_names(REFUND_FIELDS, REFUND_MONEY)
    exclude = REFUND_MONEY
    inlines = [RefundLineInline]
    actions = ["approve", "reject"]
    amount_yuan = yuan_display("amount")

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    @admin.action(description="Approve (send the money back)", permissions=["change"])
    def approve(self, request, queryset):
        run_each(
            self,
            request,
            queryset,
            lambda refund: refund_approve(refund_id=refund.pk, staff=request.user),
            "Approved",
        )

    @admin.action(description="Reject", permissions=["change"])
    def reject(self, request, queryset):
        run_each(
            self,
            request,
            queryset,
            lambda refund: refund_reject(refund_id=refund.pk, staff=request.user),
            "Rejected",
        )
