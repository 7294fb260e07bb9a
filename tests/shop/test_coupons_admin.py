"""The coupon admin: templates typed in yuan and checked like the API, status actions and
issuance through the services, read-only pages for issuances and customers' coupons."""

import pytest
from django.urls import reverse

from shop.models import CouponIssuance, CouponTemplate, CustomerCoupon
from tests.factories import CommunityFactory
from tests.shop.factories_coupons import CouponTemplateFactory, coupon_for
from tests.shop.factories_orders import QuickCustomerFactory
from tests.shop.test_admin import changelist, confirm_action, messages_of, run_action

pytestmark = pytest.mark.django_db


@pytest.fixture
def operator_client(staff, client):
    client.force_login(staff)
    return client


BASE = {
    "name": "Spend 99, save 10",
    "description": "",
    "channel": "claimable",
    "scope": "all",
    "percent_bps": "0",
    "valid_days": "7",
    "per_customer_limit": "1",
    "stackable": "on",
}


def test_a_threshold_template_is_typed_in_yuan(operator_client):
    data = {**BASE, "kind": "threshold", "tiers": "99 10\n199.50 25.5", "min_spend": ""}
    r = operator_client.post(reverse("admin:shop_coupontemplate_add"), data)
    assert r.status_code == 302, r.context["adminform"].form.errors if r.context else r
    template = CouponTemplate.objects.get()
    assert template.tiers == [
        {"threshold": 9900, "off": 1000},
        {"threshold": 19950, "off": 2550},
    ]
    assert (template.status, template.created_by_id is not None) == ("draft", True)
    page = operator_client.get(reverse("admin:shop_coupontemplate_change", args=[template.pk]))
    assert "99.00 10.00" in page.content.decode()


def test_a_broken_rule_is_a_form_error(operator_client):
    data = {**BASE, "kind": "fixed", "amount": "0"}
    r = operator_client.post(reverse("admin:shop_coupontemplate_add"), data)
    assert r.status_code == 200
    assert r.context["adminform"].form.errors["amount"] == [
        "a fixed coupon takes at least 1 fen off"
    ]
    bad_yuan = operator_client.post(
        reverse("admin:shop_coupontemplate_add"), {**BASE, "kind": "fixed", "amount": "1.234"}
    )
    assert "amount" in bad_yuan.context["adminform"].form.errors
    assert CouponTemplate.objects.count() == 0


def test_status_actions_go_through_the_service(operator_client):
    draft = CouponTemplateFactory(status="draft")
    ended = CouponTemplateFactory(status="ended")
    r = run_action(operator_client, "coupontemplate", "activate", [draft.pk, ended.pk])
    assert ("success", "Activated: 1") in messages_of(r)
    assert any(level == "error" and "illegal_transition" in m for level, m in messages_of(r))
    assert CouponTemplate.objects.get(pk=draft.pk).status == "active"


def test_issue_action_starts_an_issuance(operator_client, django_capture_on_commit_callbacks):
    community = CommunityFactory(leader=QuickCustomerFactory())
    QuickCustomerFactory().memberships.create(community=community)
    template = CouponTemplateFactory(channel="issued")
    form = run_action(operator_client, "coupontemplate", "issue", [template.pk])
    assert form.status_code == 200
    with django_capture_on_commit_callbacks(execute=True):
        r = confirm_action(
            operator_client,
            "coupontemplate",
            "issue",
            [template.pk],
            segment="community",
            community=community.pk,
        )
    assert ("success", f"Issuance #{CouponIssuance.objects.get().pk} to 1 customers started.") in (
        messages_of(r)
    )
    assert CouponIssuance.objects.get().status == "done"
    assert operator_client.get(changelist("couponissuance")).status_code == 200


def test_customer_coupons_are_read_only_and_can_be_revoked(operator_client):
    coupon = coupon_for(QuickCustomerFactory())
    assert operator_client.get(changelist("customercoupon")).status_code == 200
    page = operator_client.get(reverse("admin:shop_customercoupon_change", args=[coupon.pk]))
    assert page.status_code == 200
    r = run_action(operator_client, "customercoupon", "revoke", [coupon.pk])
    assert ("success", "Revoked: 1") in messages_of(r)
    assert CustomerCoupon.objects.get(pk=coupon.pk).status == "revoked"
    usage = operator_client.get(
        reverse("admin:shop_coupontemplate_change", args=[coupon.template_id])
    )
    assert "1 revoked" in usage.content.decode()
