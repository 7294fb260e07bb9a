"""Admin for customers, addresses, communities, memberships and pickup points. Writes that have
rules (the default address, a community's leader, coordinates, joining and leaving a community)
go through the services."""

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.widgets import ForeignKeyRawIdWidget
from django.core.exceptions import PermissionDenied
from django.db import models
from django.db.models import Count
from django.http import HttpResponseRedirect
from django.urls import reverse
from django.utils.html import format_html

from core.errors import ApplicationError
from shop.admin.pages import form_page, run_each
from shop.models import Address, Community, CommunityMembership, Customer, PickupPoint
from shop.services import addresses as address_services
from shop.services.communities import (
    check_coordinates,
    community_join,
    community_leave,
    community_set_leader,
)


@admin.register(Customer)
class CustomerAdmin(admin.ModelAdmin):
    list_display = ("id", "nickname", "phone", "openid", "user", "created_at")
    search_fields = ("nickname", "phone", "openid", "unionid", "user__username")
    readonly_fields = ("openid", "unionid", "user", "created_at")
    date_hierarchy = "created_at"
    list_select_related = ("user",)
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}


@admin.register(Address)
class AddressAdmin(admin.ModelAdmin):
    list_display = ("id", "customer", "recipient_name", "phone", "city", "detail", "is_default")
    list_filter = ("is_default", "province", "city")
    search_fields = ("recipient_name", "phone", "detail", "customer__nickname", "customer__openid")
    list_select_related = ("customer",)
    raw_id_fields = ("customer",)
    readonly_fields = ("is_default", "created_at")
    actions = ["make_default"]

    def get_readonly_fields(self, request, obj=None):
        return (*self.readonly_fields, "customer") if obj is not None else self.readonly_fields

    def save_model(self, request, obj, form, change):
        fields = {name: getattr(obj, name) for name in address_services.ADDRESS_FIELDS}
        if change:
            saved = address_services.address_update(
                customer=obj.customer, address_id=obj.pk, **fields
            )
        else:
            saved = address_services.address_create(customer=obj.customer, **fields)
        obj.pk, obj.is_default = saved.pk, saved.is_default

    def delete_model(self, request, obj):
        address_services.address_delete(customer=obj.customer, address_id=obj.pk)

    def delete_queryset(self, request, queryset):
        for address in queryset.select_related("customer"):
            address_services.address_delete(customer=address.customer, address_id=address.pk)

    @admin.action(description="Make the selected address its customer's default")
    def make_default(self, request, queryset):
        for address in queryset.select_related("customer"):
            address_services.address_set_default(customer=address.customer, address_id=address.pk)
        self.message_user(request, "Default addresses updated.", messages.SUCCESS)


class PickupPointForm(forms.ModelForm):
    class Meta:
        model = PickupPoint
        fields = [
            "community",
            "name",
            "address",
            "opening_hours",
            "latitude",
            "longitude",
            "contact_phone",
            "is_active",
        ]

    def clean(self):
        cleaned = super().clean()
        try:
            check_coordinates(latitude=cleaned.get("latitude"), longitude=cleaned.get("longitude"))
        except ApplicationError as exc:
            raise forms.ValidationError(exc.message) from exc
        return cleaned


class PickupPointInline(admin.StackedInline):
    model = PickupPoint
    form = PickupPointForm
    extra = 0
    fields = (
        ("name", "is_active"),
        "address",
        ("opening_hours", "contact_phone"),
        ("latitude", "longitude"),
    )


@admin.register(Community)
class CommunityAdmin(admin.ModelAdmin):
    list_display = ("id", "name", "leader", "members_count", "pickup_points_count", "is_active")
    list_filter = ("is_active",)
    search_fields = ("name", "leader__nickname", "leader__openid")
    list_select_related = ("leader",)
    raw_id_fields = ("leader",)
    readonly_fields = ("members", "created_at")
    inlines = [PickupPointInline]

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .annotate(
                members_count=Count("memberships", distinct=True),
                pickup_points_count=Count("pickup_points", distinct=True),
            )
        )

    @admin.display(description="Members", ordering="members_count")
    def members_count(self, obj: Community) -> int:
        return obj.members_count

    @admin.display(description="Pickup points", ordering="pickup_points_count")
    def pickup_points_count(self, obj: Community) -> int:
        return obj.pickup_points_count

    @admin.display(description="Members")
    def members(self, obj: Community) -> str:
        # A link rather than an inline: a community can have thousands of members, and members
        # join and leave through the services on the memberships page.
        if obj.pk is None:
            return "-"
        url = reverse("admin:shop_communitymembership_changelist")
        return format_html(
            '<a href="{}?community__id__exact={}">{} member(s)</a>',
            url,
            obj.pk,
            obj.memberships.count(),
        )

    def save_model(self, request, obj, form, change):
        # The leader is appointed through the service (it also makes them a member and
        # notifies them); everything else is saved as usual.
        leader_id = obj.leader_id
        if change:
            obj.leader_id = form.initial.get("leader")
        else:
            obj.leader_id = None
        super().save_model(request, obj, form, change)
        if obj.leader_id != leader_id:
            community_set_leader(community_id=obj.pk, customer_id=leader_id)
            obj.leader_id = leader_id


class MembershipJoinForm(forms.Form):
    def __init__(self, *args, admin_site: admin.AdminSite, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        for name, queryset in (
            ("community", Community.objects.all()),
            ("customer", Customer.objects.all()),
        ):
            relation = CommunityMembership._meta.get_field(name).remote_field
            self.fields[name] = forms.ModelChoiceField(
                queryset, widget=ForeignKeyRawIdWidget(relation, admin_site)
            )


@admin.register(CommunityMembership)
class CommunityMembershipAdmin(admin.ModelAdmin):
    """Members join and leave through ``community_join`` / ``community_leave`` (the leader cannot
    leave, an inactive community takes no one); rows are never edited or deleted directly."""

    list_display = ("id", "community", "customer", "joined_at")
    list_filter = (("community", admin.RelatedOnlyFieldListFilter),)
    search_fields = ("community__name", "customer__nickname", "customer__openid")
    list_select_related = ("community", "customer")
    readonly_fields = ("community", "customer", "joined_at")
    actions = ["remove_members"]

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def has_leave_permission(self, request) -> bool:
        return request.user.has_perm("shop.delete_communitymembership")

    def add_view(self, request, form_url="", extra_context=None):
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = MembershipJoinForm(
            request.POST if request.method == "POST" else None, admin_site=self.admin_site
        )
        if form.is_valid():
            community, customer = form.cleaned_data["community"], form.cleaned_data["customer"]
            try:
                _, created = community_join(community_id=community.pk, customer=customer)
            except ApplicationError as exc:
                form.add_error(None, f"{exc.message} ({exc.code})")
            else:
                if created:
                    self.message_user(request, f"{customer} joined {community}.", messages.SUCCESS)
                else:
                    self.message_user(
                        request, f"{customer} is already a member of {community}.", messages.INFO
                    )
                return HttpResponseRedirect(reverse("admin:shop_communitymembership_changelist"))
        return form_page(
            request, self, title="Add a member to a community", form=form, submit="Join"
        )

    @admin.action(description="Remove from their community (leave)", permissions=["leave"])
    def remove_members(self, request, queryset):
        run_each(
            self,
            request,
            queryset.select_related("community", "customer"),
            lambda membership: community_leave(
                community_id=membership.community_id, customer=membership.customer
            ),
            "Removed",
        )


@admin.register(PickupPoint)
class PickupPointAdmin(admin.ModelAdmin):
    form = PickupPointForm
    list_display = ("id", "name", "community", "address", "opening_hours", "is_active")
    list_filter = ("is_active", ("community", admin.RelatedOnlyFieldListFilter))
    search_fields = ("name", "address", "community__name")
    list_select_related = ("community",)
    raw_id_fields = ("community",)
