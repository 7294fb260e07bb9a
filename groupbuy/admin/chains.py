"""Admin for chain sign-up and community announcements. Every change of state goes through the
services: an operator publishes a post (as staff, with no author) through ``post_publish``, its
items typed in yuan and checked by ``check_post``; a published post, its items and entries are
read-only (counters, statuses and prices are never written from a form: entries are orders the
shop owns); hiding an announcement is an action calling ``announcement_hide`` (moderation)."""

from django import forms
from django.contrib import admin, messages
from django.utils import timezone

from core.admin_money import YuanField, yuan_display
from core.errors import ApplicationError
from groupbuy.models import ChainEntry, ChainPost, ChainPostItem, CommunityAnnouncement
from groupbuy.selectors.chains import units_left
from groupbuy.services import chains as services
from groupbuy.services import community as community_services

HIDE_PERM = "groupbuy.change_communityannouncement"
HIDDEN_IN_ADMIN = "Hidden by an operator in the admin."
ENTRY_FIELDS = ("seq", "customer", "order", "status", "paid_at", "dropped_at", "drop_reason")
ANNOUNCEMENT_FIELDS = (
    "community",
    "author",
    "body",
    "status",
    "created_at",
    "hidden_by",
    "hidden_at",
    "hidden_reason",
)


class ChainPostItemForm(forms.ModelForm):
    price = YuanField(label="Community price (yuan)")

    class Meta:
        model = ChainPostItem
        fields = ["sku", "price", "max_units"]


class ChainPostItemFormSet(forms.BaseInlineFormSet):
    """Checks the new post with its items by the service's rules (``check_post``); the admin
    builds the formsets on the unsaved post, with the post form's values."""

    def clean(self):
        super().clean()
        post = self.instance
        if any(self.errors) or post.pk is not None:
            return
        self.items = [
            (
                form.cleaned_data["sku"].pk,
                form.cleaned_data["price"],
                form.cleaned_data["max_units"],
            )
            for form in self.forms
            if form.cleaned_data and not form.cleaned_data.get("DELETE")
        ]
        if None in (post.community_id, post.pickup_point_id, post.deadline):
            return  # the post form has its own errors
        try:
            services.check_post(
                community=post.community,
                pickup_point_id=post.pickup_point_id,
                title=post.title,
                body=post.body,
                deadline=post.deadline,
                max_entries=post.max_entries,
                items=self.items,
                now=timezone.now(),
            )
        except ApplicationError as exc:
            raise forms.ValidationError(exc.message, code=str(exc.code)) from None


class ChainPostItemInline(admin.TabularInline):
    model = ChainPostItem
    form = ChainPostItemForm
    formset = ChainPostItemFormSet
    extra = 1
    can_delete = False
    price_yuan = yuan_display("price", "Community price")

    @admin.display(description="Units left")
    def units_left(self, item: ChainPostItem) -> int | None:
        return units_left(item)

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["sku", "price", "max_units"]
        return ["sku", "price_yuan", "max_units", "units_taken", "units_left"]

    def get_readonly_fields(self, request, obj=None):
        return [] if obj is None else self.get_fields(request, obj)

    def has_add_permission(self, request, obj=None):
        return obj is None

    def has_change_permission(self, request, obj=None):
        return False


class ChainEntryInline(admin.TabularInline):
    model = ChainEntry
    extra = 0
    can_delete = False
    fields = ENTRY_FIELDS
    readonly_fields = ENTRY_FIELDS
    ordering = ["seq"]

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(ChainPost)
class ChainPostAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "title",
        "community",
        "status",
        "deadline",
        "live_entries",
        "max_entries",
        "closed_at",
        "arrived_at",
    ]
    list_filter = ["status", "community"]
    search_fields = ["title"]
    list_select_related = ["community"]
    inlines = [ChainPostItemInline, ChainEntryInline]
    add_fields = ["community", "pickup_point", "title", "body", "deadline", "max_entries"]
    readonly_fields = [
        "community",
        "pickup_point",
        "author",
        "created_by",
        "title",
        "body",
        "status",
        "deadline",
        "max_entries",
        "live_entries",
        "next_seq",
        "closed_at",
        "arrived_at",
        "created_at",
    ]

    def get_fields(self, request, obj=None):
        return self.add_fields if obj is None else self.readonly_fields

    def get_readonly_fields(self, request, obj=None):
        return [] if obj is None else self.readonly_fields

    def get_inlines(self, request, obj):
        return [ChainPostItemInline] if obj is None else self.inlines

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        """Nothing yet: the post is published with its items in ``save_related``."""

    def save_related(self, request, form, formsets, change):
        [items] = [formset for formset in formsets if formset.model is ChainPostItem]
        draft = form.instance
        post = services.post_publish(
            created_by=request.user,
            author=None,
            community_id=draft.community_id,
            pickup_point_id=draft.pickup_point_id,
            title=draft.title,
            body=draft.body,
            deadline=draft.deadline,
            max_entries=draft.max_entries,
            items=items.items,
        )
        draft.pk = post.pk  # the admin's log entry and redirect name the published post
        # what the admin's change message lists (the service wrote the items, not the formset)
        items.new_objects = list(ChainPostItem.objects.filter(post=post).order_by("pk"))
        items.changed_objects, items.deleted_objects = [], []


@admin.register(CommunityAnnouncement)
class CommunityAnnouncementAdmin(admin.ModelAdmin):
    list_display = ["id", "community", "author", "status", "created_at", "hidden_at"]
    list_filter = ["status", "community"]
    search_fields = ["body", "author__nickname"]
    list_select_related = ["community", "author"]
    fields = ANNOUNCEMENT_FIELDS
    readonly_fields = ANNOUNCEMENT_FIELDS
    actions = ["hide"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_hide_permission(self, request):
        return request.user.has_perm(HIDE_PERM)

    @admin.action(description="Hide the selected announcements (moderation)", permissions=["hide"])
    def hide(self, request, queryset):
        for announcement in queryset.order_by("pk"):
            community_services.announcement_hide(
                announcement_id=announcement.pk, staff=request.user, reason=HIDDEN_IN_ADMIN
            )
        self.message_user(request, f"{queryset.count()} announcement(s) hidden.", messages.SUCCESS)
