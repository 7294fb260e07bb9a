"""Admin for distributors, their audit trail, the tree's closure rows and the policy: read-only
pages, with the operator's decisions on distributors as actions that call the same services as
the staff API (approve, reject and suspend with a reason, reinstate). The policy is changed
through ``PUT /staff/referral/policy`` (its history is shown here)."""

from collections.abc import Callable
from typing import Any

from django import forms
from django.contrib import admin
from django.http import HttpRequest

from core.admin_money import yuan_display
from referral.admin.readonly import ReadOnlyAdmin, ReadOnlyInline
from referral.models import Distributor, DistributorAncestry, DistributorEvent, ReferralPolicy
from referral.services import distributors as services
from shop.admin.pages import form_page, run_each

DECIDE_PERM = "referral.change_distributor"  # as the staff API's decisions


class DistributorEventInline(ReadOnlyInline):
    model = DistributorEvent
    fields = ["created_at", "kind", "from_status", "to_status", "actor", "reason", "data"]
    ordering = ["-id"]


class ReasonForm(forms.Form):
    reason = forms.CharField(
        max_length=services.REASON_MAX,
        widget=forms.Textarea(attrs={"rows": 2, "cols": 60}),
        help_text="Kept on the audit trail and shown to the distributor.",
    )


@admin.register(Distributor)
class DistributorAdmin(ReadOnlyAdmin):
    list_display = [
        "id",
        "display_name",
        "kind",
        "status",
        "onboarding",
        "upline",
        "depth",
        "customer",
        "joined_at",
    ]
    list_filter = ["status", "kind", "onboarding"]
    search_fields = ["display_name", "customer__nickname", "customer__openid"]
    list_select_related = ["customer", "upline"]
    date_hierarchy = "created_at"
    inlines = [DistributorEventInline]
    actions = ["approve", "reject", "suspend", "reinstate"]

    def has_decide_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(DECIDE_PERM)

    @admin.action(description="Approve the selected applications", permissions=["decide"])
    def approve(self, request, queryset):
        run_each(
            self,
            request,
            queryset,
            lambda d: services.distributor_approve(distributor_id=d.pk, actor=request.user),
            "Approved",
        )

    @admin.action(
        description="Reinstate the selected suspended distributors", permissions=["decide"]
    )
    def reinstate(self, request, queryset):
        run_each(
            self,
            request,
            queryset,
            lambda d: services.distributor_reinstate(distributor_id=d.pk, actor=request.user),
            "Reinstated",
        )

    @admin.action(
        description="Reject the selected applications (asks a reason)", permissions=["decide"]
    )
    def reject(self, request, queryset):
        return self._with_reason(
            request, queryset, "reject", "Reject", "Rejected", services.distributor_reject
        )

    @admin.action(
        description="Suspend the selected distributors (asks a reason)", permissions=["decide"]
    )
    def suspend(self, request, queryset):
        return self._with_reason(
            request, queryset, "suspend", "Suspend", "Suspended", services.distributor_suspend
        )

    def _with_reason(
        self,
        request: HttpRequest,
        queryset,
        action: str,
        verb: str,
        done: str,
        service: Callable[..., Any],
    ):
        """Asks for the reason first (one page for all the selected rows), then calls the
        service for each; what it refuses is reported per row."""
        form = ReasonForm(request.POST if "apply" in request.POST else None)
        if not form.is_valid():
            chosen = list(queryset.order_by("pk"))
            return form_page(
                request,
                self,
                title=f"{verb} {len(chosen)} distributor(s)",
                form=form,
                submit=verb,
                intro=[", ".join(str(d) for d in chosen)],
                action=action,
                objects=chosen,
            )
        reason = form.cleaned_data["reason"]
        run_each(
            self,
            request,
            queryset,
            lambda d: service(distributor_id=d.pk, actor=request.user, reason=reason),
            done,
        )
        return None


@admin.register(DistributorEvent)
class DistributorEventAdmin(ReadOnlyAdmin):
    list_display = ["id", "distributor", "kind", "from_status", "to_status", "actor", "created_at"]
    list_filter = ["kind"]
    search_fields = ["distributor__display_name", "reason"]
    list_select_related = ["distributor", "actor"]
    date_hierarchy = "created_at"


@admin.register(DistributorAncestry)
class DistributorAncestryAdmin(ReadOnlyAdmin):
    list_display = ["id", "ancestor", "descendant", "depth"]
    list_filter = ["depth"]
    search_fields = ["ancestor__display_name", "descendant__display_name"]
    list_select_related = ["ancestor", "descendant"]


@admin.register(ReferralPolicy)
class ReferralPolicyAdmin(ReadOnlyAdmin):
    list_display = ["id", "onboarding", "spend_threshold_yuan", "recruit", "updated_at"]
    money = ("spend_threshold",)
    spend_threshold_yuan = yuan_display("spend_threshold")
