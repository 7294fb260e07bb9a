"""Admin for categories, products and SKUs. Products are managed here (no staff product API);
publishing and withdrawing go through the catalog service. Prices are typed and shown in yuan."""

from django import forms
from django.contrib import admin, messages
from django.db.models import Count, Min, Q, Sum

from core.admin_money import YuanField, yuan_display
from core.errors import ApplicationError
from shop.models import Category, Product, Sku
from shop.services.catalog import product_set_status, sku_adjust_stock

# Stock is decremented concurrently by reservations, so the admin never writes the column from
# a form (that would overwrite a reservation made since the page loaded): it shows the live
# value and applies "stock change" as a relative, conditional update.
SKU_SAVED_FIELDS = ["code", "attributes", "price", "list_price", "is_active"]


@admin.register(Category)
class CategoryAdmin(admin.ModelAdmin):
    list_display = ("name", "slug", "parent", "sort_order", "products_count")
    list_filter = (("parent", admin.RelatedOnlyFieldListFilter),)
    search_fields = ("name", "slug")
    prepopulated_fields = {"slug": ("name",)}
    list_select_related = ("parent",)

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(products_count=Count("products"))

    @admin.display(description="Products", ordering="products_count")
    def products_count(self, obj: Category) -> int:
        return obj.products_count


class SkuAdminForm(forms.ModelForm):
    price = YuanField(label="Price (yuan)")
    list_price = YuanField(
        label="List price (yuan)", required=False, help_text="Crossed-out price (optional)"
    )
    stock_change = forms.IntegerField(
        required=False,
        initial=0,
        help_text="Units to add to stock (negative removes). New SKUs start from 0.",
    )

    class Meta:
        model = Sku
        fields = SKU_SAVED_FIELDS

    def clean_stock_change(self) -> int:
        change = self.cleaned_data.get("stock_change") or 0
        current = self.instance.stock if self.instance.pk else 0
        if current + change < 0:
            raise forms.ValidationError(f"Only {current} unit(s) in stock.")
        return change


def save_sku(request, admin_site: admin.ModelAdmin, sku: Sku, stock_change: int) -> None:
    if sku._state.adding:
        sku.stock = 0
        sku.save()
    else:
        sku.save(update_fields=SKU_SAVED_FIELDS)
    if stock_change:
        try:
            sku.stock = sku_adjust_stock(sku_id=sku.pk, delta=stock_change)
        except ApplicationError as exc:
            admin_site.message_user(request, f"{sku.code}: {exc.message}", messages.ERROR)


class SkuInline(admin.TabularInline):
    model = Sku
    form = SkuAdminForm
    extra = 0
    fields = ("code", "attributes", "price", "list_price", "stock", "stock_change", "is_active")
    readonly_fields = ("stock",)


@admin.register(Product)
class ProductAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "title",
        "category",
        "status",
        "is_promotional",
        "min_price",
        "stock_total",
        "purchase_limit",
        "updated_at",
    )
    list_display_links = ("id", "title")
    list_filter = ("status", "is_promotional", ("category", admin.RelatedOnlyFieldListFilter))
    search_fields = ("title", "skus__code")
    list_select_related = ("category",)
    filter_horizontal = ("communities",)
    readonly_fields = ("created_at", "updated_at")
    inlines = [SkuInline]
    actions = ["put_on_sale", "take_off_sale"]
    fieldsets = (
        (None, {"fields": ("title", "description", "images", "category", "status")}),
        ("Selling", {"fields": ("purchase_limit", "is_promotional", "communities")}),
        ("Timestamps", {"fields": ("created_at", "updated_at")}),
    )

    def save_formset(self, request, form, formset, change):
        if formset.model is not Sku:
            return super().save_formset(request, form, formset, change)
        skus = formset.save(commit=False)
        form_of = {id(sku_form.instance): sku_form for sku_form in formset.forms}
        for sku in formset.deleted_objects:
            sku.delete()
        for sku in skus:
            stock_change = form_of[id(sku)].cleaned_data.get("stock_change") or 0
            save_sku(request, self, sku, stock_change)
        formset.save_m2m()
        return None

    def get_queryset(self, request):
        active = Q(skus__is_active=True)
        return (
            super()
            .get_queryset(request)
            .annotate(
                min_price=Min("skus__price", filter=active),
                stock_total=Sum("skus__stock", filter=active),
            )
        )

    min_price = yuan_display("min_price", description="From")

    @admin.display(description="Stock", ordering="stock_total")
    def stock_total(self, obj: Product) -> int:
        return obj.stock_total or 0

    def _set_status(self, request, queryset, status: str) -> None:
        changed, refused = 0, []
        for product in queryset:
            try:
                product_set_status(product_id=product.pk, status=status)
                changed += 1
            except ApplicationError as exc:
                refused.append(f"{product.title}: {exc.message}")
        if changed:
            self.message_user(request, f"Updated {changed} product(s).", messages.SUCCESS)
        for message in refused:
            self.message_user(request, message, messages.ERROR)

    @admin.action(description="Put on sale")
    def put_on_sale(self, request, queryset):
        self._set_status(request, queryset, Product.Status.ON_SALE)

    @admin.action(description="Take off sale")
    def take_off_sale(self, request, queryset):
        self._set_status(request, queryset, Product.Status.OFF_SALE)


class SkuStandaloneForm(SkuAdminForm):
    class Meta(SkuAdminForm.Meta):
        fields = ["product", *SKU_SAVED_FIELDS]


@admin.register(Sku)
class SkuAdmin(admin.ModelAdmin):
    form = SkuStandaloneForm
    list_display = ("code", "product", "price_yuan", "list_price_yuan", "stock", "is_active")
    list_filter = ("is_active", "product__status")
    search_fields = ("code", "product__title")
    list_select_related = ("product",)
    autocomplete_fields = ("product",)
    price_yuan = yuan_display("price")
    list_price_yuan = yuan_display("list_price")
    fields = (
        "product",
        "code",
        "attributes",
        "price",
        "list_price",
        "stock",
        "stock_change",
        "is_active",
    )
    readonly_fields = ("stock",)

    def get_readonly_fields(self, request, obj=None):
        return ("stock", "product") if obj is not None else ("stock",)

    def save_model(self, request, obj, form, change):
        save_sku(request, self, obj, form.cleaned_data.get("stock_change") or 0)
