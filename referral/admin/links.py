"""Admin for share links, clicks (with their de-duplication gates), tracking opt-outs and
exclusive codes: read-only lists for operators (links and codes are made through the referral
API and services)."""

from django.contrib import admin

from referral.admin.readonly import ReadOnlyAdmin
from referral.models import Click, ClickGate, ExclusiveCode, ShareLink, TrackingOptOut


@admin.register(ShareLink)
class ShareLinkAdmin(ReadOnlyAdmin):
    list_display = [
        "short_code",
        "distributor",
        "target_kind",
        "target_id",
        "utm_source",
        "utm_campaign",
        "clicks",
        "filtered_clicks",
        "is_active",
        "is_code_link",
        "created_at",
    ]
    list_filter = ["target_kind", "is_active", "is_code_link", "utm_source", "utm_medium"]
    search_fields = ["short_code", "title", "distributor__display_name", "utm_campaign"]
    list_select_related = ["distributor"]
    date_hierarchy = "created_at"


@admin.register(Click)
class ClickAdmin(ReadOnlyAdmin):
    list_display = [
        "id",
        "link",
        "distributor",
        "kind",
        "status",
        "occurred_at",
        "customer",
        "visitor_key",
        "flushed",
    ]
    list_filter = ["status", "kind", "flushed"]
    search_fields = ["link__short_code", "visitor_key", "distributor__display_name"]
    list_select_related = ["link", "distributor", "customer"]
    date_hierarchy = "occurred_at"


@admin.register(ClickGate)
class ClickGateAdmin(ReadOnlyAdmin):
    list_display = ["id", "link", "visitor_key", "counted_at"]
    search_fields = ["link__short_code", "visitor_key"]
    list_select_related = ["link"]


@admin.register(TrackingOptOut)
class TrackingOptOutAdmin(ReadOnlyAdmin):
    list_display = ["id", "customer", "created_at"]
    search_fields = ["customer__nickname", "customer__openid"]
    list_select_related = ["customer"]


@admin.register(ExclusiveCode)
class ExclusiveCodeAdmin(ReadOnlyAdmin):
    list_display = ["id", "coupon_code", "distributor", "link", "created_by", "created_at"]
    search_fields = ["coupon_code__code", "distributor__display_name"]
    list_select_related = ["coupon_code", "distributor", "link", "created_by"]
