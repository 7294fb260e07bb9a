from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin

from core import outbox, services
from core.models import (
    Announcement,
    AuthSession,
    Notification,
    OutboxDelivery,
    OutboxEvent,
    User,
)

admin.site.site_header = "Group-buy operations"


@admin.register(User)
class OperatorUserAdmin(UserAdmin):
    list_display = ("username", "email", "is_staff", "is_active", "date_joined")


@admin.register(Notification)
class NotificationAdmin(admin.ModelAdmin):
    list_display = ("id", "user", "kind", "title", "created_at", "read_at")
    list_filter = ("kind",)
    search_fields = ("title", "user__username")
    readonly_fields = [f.name for f in Notification._meta.fields]

    def has_add_permission(self, request):
        return False


@admin.register(AuthSession)
class AuthSessionAdmin(admin.ModelAdmin):
    list_display = ("id", "user", "created_at", "expires_at", "revoked_at", "revoked_reason")
    list_filter = ("revoked_reason",)
    search_fields = ("user__username",)
    readonly_fields = [f.name for f in AuthSession._meta.fields]

    def has_add_permission(self, request):
        return False


@admin.register(Announcement)
class AnnouncementAdmin(admin.ModelAdmin):
    list_display = (
        "title",
        "audience",
        "is_advertisement",
        "send_at",
        "sent_at",
        "recipients_count",
    )
    list_filter = ("audience", "is_advertisement")
    search_fields = ("title",)
    readonly_fields = ("sent_at", "recipients_count", "created_by", "created_at")
    actions = ["send_now"]

    def save_model(self, request, obj, form, change):
        if not change:
            obj.created_by = request.user
        super().save_model(request, obj, form, change)

    @admin.action(description="Send selected announcements now (if due)")
    def send_now(self, request, queryset):
        sent = sum(services.announcement_send(announcement_id=a.pk) for a in queryset)
        self.message_user(request, f"Delivered {sent} notifications.", messages.SUCCESS)


class OutboxDeliveryInline(admin.TabularInline):
    model = OutboxDelivery
    fields = ("subscriber", "status", "attempts", "next_attempt_at", "last_error", "delivered_at")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(OutboxEvent)
class OutboxEventAdmin(admin.ModelAdmin):
    list_display = ("id", "name", "created_at", "pending_subscribers")
    list_filter = ("name",)
    search_fields = ("=id",)
    readonly_fields = ("name", "payload", "pending_subscribers", "created_at")
    inlines = [OutboxDeliveryInline]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(OutboxDelivery)
class OutboxDeliveryAdmin(admin.ModelAdmin):
    """Operators watch failing and dead deliveries here and send dead ones again."""

    list_display = (
        "id",
        "event_name",
        "event",
        "subscriber",
        "status",
        "attempts",
        "next_attempt_at",
        "short_error",
        "delivered_at",
    )
    list_filter = ("status", "event__name", "subscriber")
    search_fields = ("subscriber", "=event__id")
    list_select_related = ("event",)
    readonly_fields = [f.name for f in OutboxDelivery._meta.fields]
    actions = ["retry"]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="event", ordering="event__name")
    def event_name(self, obj):
        return obj.event.name

    @admin.display(description="last error")
    def short_error(self, obj):
        return obj.last_error[:120]

    @admin.action(description="Retry selected dead deliveries", permissions=["change"])
    def retry(self, request, queryset):
        retried = sum(
            outbox.delivery_retry(delivery_id=pk) for pk in queryset.values_list("pk", flat=True)
        )
        self.message_user(request, f"Retrying {retried} dead deliveries.", messages.SUCCESS)
