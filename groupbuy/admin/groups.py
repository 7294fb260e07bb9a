"""Admin for group-buy: campaigns with their SKUs inline (prices in yuan), groups with their
seats (read-only). Every change of state goes through groupbuy.services.groups: ending a
campaign and force-failing a group (which refunds its paid members) are actions; seat counters
and statuses are never written from a form."""

from django import forms
from django.contrib import admin, messages

from core.admin_money import YuanField
from core.errors import ApplicationError
from groupbuy.models import Group, GroupCampaign, GroupCampaignSku, GroupSeat
from groupbuy.services import groups as services


class GroupCampaignSkuForm(forms.ModelForm):
    group_price = YuanField(label="Group price (yuan)")
    leader_price = YuanField(label="Leader price (yuan)", required=False)

    class Meta:
        model = GroupCampaignSku
        fields = ["sku", "group_price", "leader_price"]

    def __init__(self, *args, campaign_product_id: int | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.campaign_product_id = campaign_product_id

    def clean(self):
        data = super().clean() or {}
        if self.errors or data.get("DELETE") or data.get("sku") is None:
            return data
        product_id = self.campaign_product_id
        if product_id is None:  # the campaign form has its own errors
            return data
        try:
            services.check_campaign_sku(
                product_id=product_id,
                sku=data["sku"],
                group_price=data["group_price"],
                leader_price=data.get("leader_price"),
            )
        except ApplicationError as exc:
            raise forms.ValidationError(exc.message, code=str(exc.code)) from None
        return data


class GroupCampaignSkuFormSet(forms.BaseInlineFormSet):
    """Hands each SKU form the campaign's product (the campaign form's, also when the campaign
    is being created: the admin builds the formsets on the unsaved campaign)."""

    def get_form_kwargs(self, index):
        kwargs = super().get_form_kwargs(index)
        kwargs["campaign_product_id"] = self.instance.product_id if self.instance else None
        return kwargs


class GroupCampaignSkuInline(admin.TabularInline):
    model = GroupCampaignSku
    form = GroupCampaignSkuForm
    formset = GroupCampaignSkuFormSet
    extra = 1


@admin.register(GroupCampaign)
class GroupCampaignAdmin(admin.ModelAdmin):
    list_display = ["title", "product", "status", "starts_at", "ends_at", "group_size", "join_mode"]
    list_filter = ["status", "join_mode", "auto_complete"]
    search_fields = ["title", "product__title"]
    list_select_related = ["product"]
    inlines = [GroupCampaignSkuInline]
    actions = ["end_campaigns"]

    @admin.action(description="End the selected campaigns (open groups run until they expire)")
    def end_campaigns(self, request, queryset):
        for campaign in queryset.order_by("pk"):
            services.campaign_end(campaign_id=campaign.pk)
        self.message_user(request, f"{queryset.count()} campaign(s) ended.", messages.SUCCESS)


class GroupSeatInline(admin.TabularInline):
    model = GroupSeat
    extra = 0
    can_delete = False
    fields = ["customer", "order", "is_leader", "status", "created_at", "paid_at", "released_at"]
    readonly_fields = [
        "customer",
        "order",
        "is_leader",
        "status",
        "created_at",
        "paid_at",
        "released_at",
    ]

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Group)
class GroupAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "campaign",
        "status",
        "size",
        "paid_seats",
        "held_seats",
        "expires_at",
        "auto_completed",
        "waived_seats",
    ]
    list_filter = ["status", "auto_completed", "campaign"]
    search_fields = ["share_token", "leader__nickname"]
    list_select_related = ["campaign"]
    inlines = [GroupSeatInline]
    actions = ["force_fail"]
    readonly_fields = [
        "campaign",
        "leader",
        "community",
        "status",
        "size",
        "share_token",
        "held_seats",
        "paid_seats",
        "expires_at",
        "succeeded_at",
        "failed_at",
        "auto_completed",
        "waived_seats",
        "created_at",
    ]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.action(description="Fail the selected open groups now (refunds their paid members)")
    def force_fail(self, request, queryset):
        closed = sum(services.group_force_fail(group_id=g.pk) for g in queryset.order_by("pk"))
        self.message_user(
            request,
            f"{closed} group(s) closed; paid members are being refunded.",
            messages.SUCCESS,
        )
