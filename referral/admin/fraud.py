"""Admin for fraud flags: a read-only list for operators (reviews go through the staff fraud API,
which announces every change)."""

from django.contrib import admin

from referral.admin.readonly import ReadOnlyAdmin
from referral.models import FraudFlag


@admin.register(FraudFlag)
class FraudFlagAdmin(ReadOnlyAdmin):
    list_display = [
        "id",
        "kind",
        "status",
        "distributor",
        "attribution",
        "created_at",
        "reviewed_by",
        "reviewed_at",
    ]
    list_filter = ["status", "kind"]
    search_fields = ["dedupe_key", "distributor__display_name", "review_note"]
    list_select_related = ["distributor", "reviewed_by"]
    date_hierarchy = "created_at"
