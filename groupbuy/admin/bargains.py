"""Admin for bargains: campaigns (prices in yuan, checked by the service's rules, ended by an
action), bargains read-only with their helps (the seed, and each help's device and IP hash for
farming review), and every help in one read-only list searchable by device and IP hash. Every
change of state goes through groupbuy.services.bargains; prices, counters and statuses of
bargains are never written from a form."""

from django import forms
from django.contrib import admin, messages

from core.admin_money import YuanField, yuan_display
from core.errors import ApplicationError
from groupbuy.models import Bargain, BargainCampaign, BargainHelp
from groupbuy.services import bargains as services


class BargainCampaignForm(forms.ModelForm):
    start_price = YuanField(label="Start price (yuan)")
    floor_price = YuanField(label="Floor price (yuan)")

    class Meta:
        model = BargainCampaign
        fields = [
            "title",
            "product",
            "sku",
            "status",
            "starts_at",
            "ends_at",
            "start_price",
            "floor_price",
            "helps_needed",
            "first_cut_min_bps",
            "first_cut_max_bps",
            "bargain_ttl_seconds",
            "buy_at_any_price",
            "payment_ttl_seconds",
            "max_bargains_per_customer",
            "helps_per_helper_per_day",
            "helps_per_device_per_day",
            "helpers_must_be_new",
        ]

    def clean(self):
        data = super().clean() or {}
        needed = (
            "product",
            "sku",
            "start_price",
            "floor_price",
            "helps_needed",
            "first_cut_min_bps",
            "first_cut_max_bps",
        )
        if any(data.get(name) is None for name in needed):
            return data  # the fields' own errors say what is missing
        try:
            services.check_bargain_campaign(
                product_id=data["product"].pk,
                sku=data["sku"],
                start_price=data["start_price"],
                floor_price=data["floor_price"],
                helps_needed=data["helps_needed"],
                first_cut_min_bps=data["first_cut_min_bps"],
                first_cut_max_bps=data["first_cut_max_bps"],
            )
        except ApplicationError as exc:
            raise forms.ValidationError(exc.message, code=str(exc.code)) from None
        return data


@admin.register(BargainCampaign)
class BargainCampaignAdmin(admin.ModelAdmin):
    form = BargainCampaignForm
    list_display = [
        "title",
        "product",
        "status",
        "starts_at",
        "ends_at",
        "start_price_yuan",
        "floor_price_yuan",
        "helps_needed",
    ]
    list_filter = ["status", "buy_at_any_price", "helpers_must_be_new"]
    search_fields = ["title", "product__title"]
    list_select_related = ["product"]
    actions = ["end_campaigns"]

    start_price_yuan = yuan_display("start_price")
    floor_price_yuan = yuan_display("floor_price")

    @admin.action(description="End the selected campaigns (started bargains run until they expire)")
    def end_campaigns(self, request, queryset):
        for campaign in queryset.order_by("pk"):
            services.bargain_campaign_end(campaign_id=campaign.pk)
        self.message_user(request, f"{queryset.count()} campaign(s) ended.", messages.SUCCESS)


class ReadOnlyAdmin(admin.ModelAdmin):
    """Viewable only: rows of this admin change through the services."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


HELP_FIELDS = (
    "seq",
    "helper",
    "cut_yuan",
    "price_after_yuan",
    "device_id",
    "ip_hash",
    "created_at",
)


class BargainHelpInline(admin.TabularInline):
    model = BargainHelp
    extra = 0
    can_delete = False
    fields = HELP_FIELDS
    readonly_fields = HELP_FIELDS
    ordering = ["seq"]

    cut_yuan = yuan_display("cut")
    price_after_yuan = yuan_display("price_after")

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Bargain)
class BargainAdmin(ReadOnlyAdmin):
    list_display = [
        "id",
        "campaign",
        "initiator",
        "status",
        "current_price_yuan",
        "helps_done",
        "helps_needed",
        "expires_at",
    ]
    list_filter = ["status", "campaign"]
    search_fields = ["initiator__nickname"]
    list_select_related = ["campaign", "initiator"]
    inlines = [BargainHelpInline]
    fields = (
        "campaign",
        "initiator",
        "status",
        "seed",
        "start_price_yuan",
        "floor_price_yuan",
        "first_cut_yuan",
        "cuts",
        "current_price_yuan",
        "helps_needed",
        "helps_done",
        "expires_at",
        "floor_reached_at",
        "order",
        "purchased_at",
        "expired_at",
        "expiry_warned_at",
        "created_at",
    )
    readonly_fields = fields

    start_price_yuan = yuan_display("start_price")
    floor_price_yuan = yuan_display("floor_price")
    first_cut_yuan = yuan_display("first_cut")
    current_price_yuan = yuan_display("current_price")


@admin.register(BargainHelp)
class BargainHelpAdmin(ReadOnlyAdmin):
    """Every help: search a device id or an IP hash (exact) to see what else came from it."""

    list_display = [
        "id",
        "bargain",
        "seq",
        "helper",
        "cut_yuan",
        "device_id",
        "ip_hash",
        "created_at",
    ]
    list_filter = ["bargain__campaign"]
    search_fields = ["device_id__iexact", "=ip_hash", "helper__nickname"]
    list_select_related = ["bargain", "helper"]
    date_hierarchy = "created_at"
    fields = ("bargain", *HELP_FIELDS)
    readonly_fields = fields

    cut_yuan = yuan_display("cut")
    price_after_yuan = yuan_display("price_after")
