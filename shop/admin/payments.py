"""Admin for payments and provider events: read-only, actions call the payment services."""

from django.contrib import admin, messages

from core.errors import ApplicationError
from shop.models import Payment, WebhookEvent
from shop.services.payments import payment_confirm_sandbox


@admin.register(Payment)
class PaymentAdmin(admin.ModelAdmin):
    list_display = ("id", "order", "provider", "status", "amount", "refunded_amount", "created_at")
    list_filter = ("provider", "status")
    search_fields = ("order__number", "provider_ref")
    list_select_related = ("order",)
    readonly_fields = [f.name for f in Payment._meta.fields if f.name != "client_secret"]
    exclude = ("client_secret",)
    actions = ["confirm_sandbox_payment"]

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


@admin.register(WebhookEvent)
class WebhookEventAdmin(admin.ModelAdmin):
    list_display = ("event_id", "provider", "event_type", "received_at", "processed_at")
    list_filter = ("provider", "event_type")
    search_fields = ("event_id", "event_type")
    readonly_fields = [f.name for f in WebhookEvent._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
