"""Admin for payments and provider events: read-only, actions call the payment services."""

from django.contrib import admin, messages

from core.admin_money import yuan_display, yuan_names
from core.errors import ApplicationError
from shop.models import Payment, WebhookEvent
from shop.services.payments import payment_confirm_sandbox, webhook_event_reprocess

PAYMENT_MONEY = ("amount", "refunded_amount")


@admin.register(Payment)
class PaymentAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "order",
        "provider",
        "status",
        "amount_yuan",
        "refunded_amount_yuan",
        "created_at",
    )
    list_filter = ("provider", "status")
    search_fields = ("order__number", "provider_ref")
    list_select_related = ("order",)
    readonly_fields = yuan_names(
        [f.name for f in Payment._meta.fields if f.name != "client_secret"], PAYMENT_MONEY
    )
    exclude = ("client_secret", *PAYMENT_MONEY)
    actions = ["confirm_sandbox_payment"]
    amount_yuan = yuan_display("amount")
    refunded_amount_yuan = yuan_display("refunded_amount")

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.action(
        description="Confirm sandbox payment (as if the provider reported success)",
        permissions=["change"],
    )
    def confirm_sandbox_payment(self, request, queryset):
        confirmed = 0
        for payment in queryset:
            try:
                payment_confirm_sandbox(payment_id=payment.pk)
            except ApplicationError as exc:
                self.message_user(request, f"Payment {payment.pk}: {exc.message}", messages.ERROR)
            else:
                confirmed += 1
        if confirmed:
            self.message_user(request, f"Confirmed {confirmed} payment(s).", messages.SUCCESS)


class ProcessedFilter(admin.SimpleListFilter):
    title = "processed"
    parameter_name = "processed"

    def lookups(self, request, model_admin):
        return [("no", "Not processed"), ("yes", "Processed")]

    def queryset(self, request, queryset):
        if self.value() == "no":
            return queryset.filter(processed_at__isnull=True)
        if self.value() == "yes":
            return queryset.filter(processed_at__isnull=False)
        return queryset


@admin.register(WebhookEvent)
class WebhookEventAdmin(admin.ModelAdmin):
    list_display = ("event_id", "provider", "event_type", "received_at", "processed_at")
    list_filter = (ProcessedFilter, "provider", "event_type")
    search_fields = ("event_id", "event_type")
    readonly_fields = [f.name for f in WebhookEvent._meta.fields]
    actions = ["reprocess"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_reprocess_permission(self, request):
        return request.user.has_perm("shop.change_webhookevent")

    @admin.action(
        description="Reprocess (apply again; processed events are left alone)",
        permissions=["reprocess"],
    )
    def reprocess(self, request, queryset):
        events = list(queryset.order_by("pk"))
        processed, waiting = 0, []
        for event in events:
            try:
                done = webhook_event_reprocess(event=event)
            except ApplicationError as exc:
                self.message_user(request, f"{event}: {exc.message} ({exc.code})", messages.ERROR)
                continue
            if done:
                processed += 1
            else:
                waiting.append(str(event))
        summary = f"Processed: {processed} of {len(events)}."
        if waiting:
            summary += f" Still waiting: {', '.join(waiting)}."
        self.message_user(request, summary, messages.WARNING if waiting else messages.SUCCESS)
