"""Admin for flash sales: sessions with their items inline, prices in yuan. Every write goes
through shop.services.flash; an item's ``remaining`` is never written from a form (buyers
decrement it concurrently): changing ``total_stock`` moves it by the same amount."""

from django import forms
from django.contrib import admin, messages
from django.db.models import Count
from django.utils import timezone

from core.admin_money import YuanField, yuan_display
from core.errors import ApplicationError
from shop.models import FlashItem, FlashSession
from shop.selectors.flash import SCHEDULED, session_status
from shop.services import flash as services


def _form_error(exc: ApplicationError) -> forms.ValidationError:
    return forms.ValidationError(exc.message, code=str(exc.code))


class FlashSessionForm(forms.ModelForm):
    class Meta:
        model = FlashSession
        fields = ["title", "starts_at", "ends_at", "payment_ttl", "is_published"]

    def clean(self):
        data = super().clean()
        if self.errors:
            return data
        instance = self.instance
        if (
            instance.pk
            and data["starts_at"] != instance.starts_at
            and session_status(instance, timezone.now()) != SCHEDULED
        ):
            self.add_error("starts_at", "This flash sale has started: its start cannot move.")
            return data
        try:
            services.check_session(
                title=data["title"],
                starts_at=data["starts_at"],
                ends_at=data["ends_at"],
                payment_ttl=data["payment_ttl"],
            )
        except ApplicationError as exc:
            raise _form_error(exc) from None
        return data


class FlashItemForm(forms.ModelForm):
    # not required: once the session started the price is shown read-only and not posted
    flash_price = YuanField(label="Flash price (yuan)", required=False)

    class Meta:
        model = FlashItem
        fields = ["sku", "flash_price", "total_stock", "per_customer_limit", "sort_order"]

    def clean(self):
        data = super().clean()
        if self.errors or data.get("DELETE"):
            return data
        instance = self.instance
        sku = data.get("sku") or (instance.sku if instance.pk else None)
        if sku is None:
            return data
        if data.get("flash_price") is None:
            if not instance.pk:
                self.add_error("flash_price", "Enter the flash price.")
                return data
            data["flash_price"] = instance.flash_price
        try:
            services.check_item(
                sku=sku,
                flash_price=data["flash_price"],
                total_stock=data["total_stock"],
                per_customer_limit=data["per_customer_limit"],
            )
        except ApplicationError as exc:
            raise _form_error(exc) from None
        return data


class FlashItemInline(admin.TabularInline):
    model = FlashItem
    form = FlashItemForm
    extra = 0
    fields = ("sku", "flash_price", "total_stock", "remaining", "per_customer_limit", "sort_order")
    readonly_fields = ("remaining",)
    autocomplete_fields = ("sku",)

    def get_readonly_fields(self, request, obj=None):
        if obj is not None and session_status(obj, timezone.now()) != SCHEDULED:
            return ("sku", "flash_price", "remaining")  # started: prices and SKUs are fixed
        return self.readonly_fields


@admin.register(FlashSession)
class FlashSessionAdmin(admin.ModelAdmin):
    form = FlashSessionForm
    list_display = ("title", "starts_at", "ends_at", "status", "is_published", "items_count")
    list_filter = ("is_published",)
    search_fields = ("title",)
    date_hierarchy = "starts_at"
    readonly_fields = ("created_at",)
    inlines = [FlashItemInline]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(items_count=Count("items"))

    @admin.display(description="Status")
    def status(self, obj: FlashSession) -> str:
        return session_status(obj, timezone.now())

    @admin.display(description="Items", ordering="items_count")
    def items_count(self, obj: FlashSession) -> int:
        return obj.items_count

    def has_delete_permission(self, request, obj=None):
        # orders point at sessions and their items: end a session instead of deleting it
        return False

    def save_model(self, request, obj, form, change):
        fields = {name: form.cleaned_data[name] for name in FlashSessionForm.Meta.fields}
        if change:
            services.flash_session_update(session_id=obj.pk, **fields)
            return
        created = services.flash_session_create(**fields)
        obj.pk, obj.created_at = created.pk, created.created_at
        obj._state.adding = False

    def save_formset(self, request, form, formset, change):
        if formset.model is not FlashItem:
            return super().save_formset(request, form, formset, change)
        session = form.instance
        # what the admin's history message reads (formset.save() is not called)
        formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []
        for item_form in formset.forms:
            if not item_form.has_changed() and not item_form.cleaned_data.get("DELETE"):
                continue
            data = item_form.cleaned_data
            item = item_form.instance
            try:
                if data.get("DELETE"):
                    if item.pk:
                        services.flash_item_remove(item_id=item.pk)
                        formset.deleted_objects.append(item)
                elif item.pk:
                    formset.changed_objects.append((item, item_form.changed_data))
                    services.flash_item_update(
                        item_id=item.pk,
                        flash_price=data.get("flash_price"),
                        total_stock=data["total_stock"],
                        per_customer_limit=data["per_customer_limit"],
                        sort_order=data["sort_order"],
                    )
                elif data.get("sku"):
                    added = services.flash_item_add(
                        session_id=session.pk,
                        spec=services.FlashItemSpec(
                            sku_id=data["sku"].pk,
                            flash_price=data["flash_price"],
                            total_stock=data["total_stock"],
                            per_customer_limit=data["per_customer_limit"],
                            sort_order=data["sort_order"],
                        ),
                    )
                    formset.new_objects.append(added)
            except ApplicationError as exc:
                self.message_user(request, f"{data.get('sku')}: {exc.message}", messages.ERROR)
        return None


@admin.register(FlashItem)
class FlashItemAdmin(admin.ModelAdmin):
    """Read-only list of flash items across sessions (edit them on their session)."""

    list_display = (
        "session",
        "sku",
        "flash_price_yuan",
        "total_stock",
        "remaining",
        "per_customer_limit",
    )
    list_select_related = ("session", "sku")
    list_filter = (("session", admin.RelatedOnlyFieldListFilter),)
    search_fields = ("sku__code", "sku__product__title", "session__title")
    flash_price_yuan = yuan_display("flash_price", description="Flash price")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
