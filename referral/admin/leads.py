"""Admin for leads and their status history: read-only (a lead's status moves through the leads
API). A lead's name and phone are personal data: only staff with ``referral.view_lead`` see
them."""

from django.contrib import admin

from referral.admin.readonly import ReadOnlyAdmin, ReadOnlyInline
from referral.models import Lead, LeadEvent


class LeadEventInline(ReadOnlyInline):
    model = LeadEvent
    fields = ["created_at", "from_status", "to_status", "actor", "note"]


@admin.register(Lead)
class LeadAdmin(ReadOnlyAdmin):
    list_display = ["id", "name", "distributor", "status", "customer", "order", "created_at"]
    list_filter = ["status"]
    search_fields = ["name", "phone", "distributor__display_name"]
    list_select_related = ["distributor", "customer", "order"]
    date_hierarchy = "created_at"
    inlines = [LeadEventInline]


@admin.register(LeadEvent)
class LeadEventAdmin(ReadOnlyAdmin):
    list_display = ["id", "lead", "from_status", "to_status", "actor", "created_at"]
    list_filter = ["to_status"]
    list_select_related = ["lead", "actor"]
