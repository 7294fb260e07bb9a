from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin

from core import services
from core.models import Announcement, AuthSession, Notification, User

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
