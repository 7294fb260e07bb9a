"""Admin for coupons: templates (money typed and shown in yuan; activate / pause / end and "issue
to a segment" go through the coupon services, as the staff API), codes, issuances with their
progress (resume through the service), and customers' coupons (read-only; revoke)."""

from django import forms
from django.contrib import admin, messages

from core.admin_money import YuanField, format_yuan, parse_yuan, yuan_display
from core.errors import ApplicationError
from shop.admin.pages import form_page, run_each
from shop.models import (
    Community,
    CouponCode,
    CouponIssuance,
    CouponTemplate,
    CustomerCoupon,
    Product,
)
from shop.selectors.coupons import coupon_template_stats
from shop.services.coupons import (
    coupon_issuance_create,
    coupon_issuance_resume,
    coupon_revoke,
    coupon_template_set_status,
    template_check,
)

T = CouponTemplate


class TiersField(forms.CharField):
    """Threshold tiers typed as one ``threshold off`` pair of yuan amounts per line
    (``99 10`` = spend ¥99, get ¥10 off); stored as fen."""

    widget = forms.Textarea(attrs={"rows": 3, "cols": 30})

    def prepare_value(self, value):
        if isinstance(value, list):
            return "\n".join(
                f"{format_yuan(t['threshold'])[1:]} {format_yuan(t['off'])[1:]}" for t in value
            )
        return value

    def to_python(self, value):
        text = super().to_python(value) or ""
        tiers = []
        for line in filter(None, (row.strip() for row in text.splitlines())):
            parts = line.split()
            if len(parts) != 2:
                raise forms.ValidationError(f"Write 'threshold off' in yuan, e.g. '99 10': {line}")
            try:
                threshold, off = (parse_yuan(part) for part in parts)
            except ValueError:
                raise forms.ValidationError(f"Not amounts of yuan: {line}") from None
            tiers.append({"threshold": threshold, "off": off})
        return tiers


class CouponTemplateForm(forms.ModelForm):
    amount = YuanField(label="Amount off (yuan)", required=False, help_text="Fixed coupons")
    max_discount = YuanField(
        label="Cap (yuan)", required=False, help_text="Percentage coupons: the most they take off"
    )
    min_spend = YuanField(
        label="Minimum spend (yuan)", required=False, help_text="On the goods it applies to"
    )
    tiers = TiersField(
        required=False,
        help_text="Threshold coupons: one 'threshold off' pair in yuan per line, e.g. '99 10'",
    )

    class Meta:
        model = CouponTemplate
        fields = [
            "name",
            "description",
            "channel",
            "kind",
            "amount",
            "percent_bps",
            "max_discount",
            "tiers",
            "min_spend",
            "scope",
            "categories",
            "products",
            "skus",
            "communities",
            "valid_from",
            "valid_until",
            "valid_days",
            "claim_starts_at",
            "claim_ends_at",
            "total_quantity",
            "per_customer_limit",
            "stackable",
            "is_exclusive",
        ]

    def clean_amount(self) -> int:
        return self.cleaned_data.get("amount") or 0

    def clean_min_spend(self) -> int:
        return self.cleaned_data.get("min_spend") or 0

    def _post_clean(self):
        super()._post_clean()  # the instance now carries the cleaned values
        if self.errors:
            return
        try:
            template_check(self.instance)
        except ApplicationError as exc:
            field = exc.details.get("field")
            self.add_error(
                field if field in self.fields else None, exc.details.get("reason", exc.message)
            )


def _value(template: CouponTemplate) -> str:
    if template.kind == T.Kind.FIXED:
        return f"{format_yuan(template.amount)} off"
    if template.kind == T.Kind.PERCENT:
        cap = f", at most {format_yuan(template.max_discount)}" if template.max_discount else ""
        return f"{template.percent_bps / 100:g} % off{cap}"
    if template.kind == T.Kind.THRESHOLD:
        return "; ".join(
            f"{format_yuan(t['threshold'])} → {format_yuan(t['off'])} off" for t in template.tiers
        )
    return "Free shipping"


class IssueForm(forms.Form):
    segment = forms.ChoiceField(choices=CouponIssuance.Segment.choices)
    community = forms.ModelChoiceField(
        Community.objects.all(), required=False, help_text="Segment: community"
    )
    product = forms.ModelChoiceField(
        Product.objects.all(), required=False, help_text="Segment: customers who bought it"
    )
    customer_ids = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 2, "cols": 60}),
        help_text="Segment: listed customers (ids separated by spaces or commas)",
    )
    reason = forms.CharField(required=False, max_length=200)

    def params(self) -> dict:
        data = self.cleaned_data
        params: dict = {}
        if data.get("community"):
            params["community_id"] = data["community"].pk
        if data.get("product"):
            params["product_id"] = data["product"].pk
        text = (data.get("customer_ids") or "").replace(",", " ")
        if text.strip():
            try:
                params["customer_ids"] = [int(part) for part in text.split()]
            except ValueError:
                params["customer_ids"] = text
        return params


@admin.register(CouponTemplate)
class CouponTemplateAdmin(admin.ModelAdmin):
    form = CouponTemplateForm
    list_display = [
        "name",
        "kind",
        "value",
        "channel",
        "status",
        "issued",
        "per_customer_limit",
        "valid_until",
    ]
    list_filter = ["status", "channel", "kind"]
    search_fields = ["name"]
    filter_horizontal = ["categories", "products", "skus", "communities"]
    readonly_fields = ["status", "issued_count", "created_by", "created_at", "usage"]
    actions = ["activate", "pause", "end", "issue"]
    fieldsets = (
        (None, {"fields": ("name", "description", "channel", "status")}),
        ("Value", {"fields": ("kind", "amount", "percent_bps", "max_discount", "tiers")}),
        ("Where", {"fields": ("min_spend", "scope", "categories", "products", "skus")}),
        ("Communities", {"fields": ("communities",)}),
        ("Validity", {"fields": ("valid_from", "valid_until", "valid_days")}),
        ("Claiming", {"fields": ("claim_starts_at", "claim_ends_at")}),
        ("Limits", {"fields": ("total_quantity", "issued_count", "per_customer_limit")}),
        ("Stacking", {"fields": ("stackable", "is_exclusive")}),
        ("Usage", {"fields": ("usage", "created_by", "created_at")}),
    )

    @admin.display(description="Value")
    def value(self, obj: CouponTemplate) -> str:
        return _value(obj)

    @admin.display(description="Issued")
    def issued(self, obj: CouponTemplate) -> str:
        total = "∞" if obj.total_quantity is None else obj.total_quantity
        return f"{obj.issued_count} / {total}"

    @admin.display(description="Usage")
    def usage(self, obj: CouponTemplate) -> str:
        if not obj.pk:
            return "-"
        stats = coupon_template_stats(template_id=obj.pk)
        return (
            f"{stats['issued']} held: {stats['available']} available, {stats['locked']} locked, "
            f"{stats['used']} used, {stats['expired']} expired, {stats['revoked']} revoked "
            f"({stats['returned']} returned by refunds). Discount given "
            f"{format_yuan(stats['discount_given'])} on {stats['orders']} orders, GMV "
            f"{format_yuan(stats['gmv'])}."
        )

    def save_model(self, request, obj, form, change):
        if not change:
            obj.created_by = request.user
        super().save_model(request, obj, form, change)

    def _set_status(self, request, queryset, status: str, label: str) -> None:
        run_each(
            self,
            request,
            queryset,
            lambda t: coupon_template_set_status(template_id=t.pk, status=status),
            label,
        )

    @admin.action(description="Activate", permissions=["change"])
    def activate(self, request, queryset):
        self._set_status(request, queryset, T.Status.ACTIVE, "Activated")

    @admin.action(description="Pause (held coupons stay usable)", permissions=["change"])
    def pause(self, request, queryset):
        self._set_status(request, queryset, T.Status.PAUSED, "Paused")

    @admin.action(description="End for good", permissions=["change"])
    def end(self, request, queryset):
        self._set_status(request, queryset, T.Status.ENDED, "Ended")

    def has_issue_permission(self, request) -> bool:
        return request.user.has_perm("shop.add_couponissuance")  # as the staff API

    @admin.action(description="Issue to a segment (background job)", permissions=["issue"])
    def issue(self, request, queryset):
        templates = list(queryset.order_by("pk")[:2])
        if len(templates) != 1:
            self.message_user(request, "Issue one template at a time.", messages.ERROR)
            return None
        (template,) = templates
        form = IssueForm(request.POST if "apply" in request.POST else None)
        if not form.is_valid():
            return form_page(
                request,
                self,
                title=f"Issue {template}",
                form=form,
                submit="Issue",
                intro=[f"{template}: {_value(template)}, channel {template.channel}."],
                action="issue",
                objects=[template],
            )
        try:
            issuance = coupon_issuance_create(
                template_id=template.pk,
                segment=form.cleaned_data["segment"],
                params=form.params(),
                staff=request.user,
                reason=form.cleaned_data["reason"],
            )
        except ApplicationError as exc:
            self.message_user(request, f"{template}: {exc.message} ({exc.code})", messages.ERROR)
        else:
            self.message_user(
                request,
                f"Issuance #{issuance.pk} to {issuance.total} customers started.",
                messages.SUCCESS,
            )
        return None


@admin.register(CouponCode)
class CouponCodeAdmin(admin.ModelAdmin):
    list_display = ["code", "template", "kind", "redemptions", "max_redemptions", "is_active"]
    list_filter = ["kind", "is_active"]
    search_fields = ["code", "template__name"]
    list_select_related = ["template"]
    readonly_fields = ["redemptions", "created_at"]


@admin.register(CouponIssuance)
class CouponIssuanceAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "template",
        "segment",
        "status",
        "progress",
        "issued",
        "skipped",
        "created_at",
        "finished_at",
    ]
    list_filter = ["status", "segment"]
    list_select_related = ["template"]
    readonly_fields = [f.name for f in CouponIssuance._meta.fields]
    actions = ["resume"]

    @admin.display(description="Progress")
    def progress(self, obj: CouponIssuance) -> str:
        done = obj.issued + obj.skipped
        return f"{done} / {obj.total}" if obj.total else str(done)

    def has_add_permission(self, request) -> bool:
        return False  # issued from a template ("Issue to a segment"), through the service

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    @admin.action(description="Resume (pending, stuck or failed)", permissions=["change"])
    def resume(self, request, queryset):
        run_each(
            self,
            request,
            queryset,
            lambda issuance: coupon_issuance_resume(issuance_id=issuance.pk),
            "Resumed",
        )


@admin.register(CustomerCoupon)
class CustomerCouponAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "customer",
        "template",
        "status",
        "source",
        "valid_until",
        "order",
        "discount_yuan",
    ]
    list_filter = ["status", "source"]
    search_fields = ["customer__nickname", "customer__openid", "template__name", "code__code"]
    list_select_related = ["customer", "template", "order"]
    readonly_fields = [
        *(f.name for f in CustomerCoupon._meta.fields if f.name != "discount"),
        "discount_yuan",
    ]
    exclude = ["discount"]
    actions = ["revoke"]
    discount_yuan = yuan_display("discount", "Saved")

    def has_add_permission(self, request) -> bool:
        return False  # claimed, issued or given through the services

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    @admin.action(description="Revoke (available coupons only)", permissions=["change"])
    def revoke(self, request, queryset):
        revoked = coupon_revoke(coupon_ids=list(queryset.values_list("pk", flat=True)))
        self.message_user(request, f"Revoked: {revoked}", messages.SUCCESS)
