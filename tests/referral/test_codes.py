"""Exclusive codes, the service: what issuing writes (through the shop's services, in one
transaction), the refusals (referral's own and the shop's, passed through), the hidden link's
short code, deactivation, and when a code is usable."""

from datetime import timedelta

import pytest
from django.utils import timezone

from core.errors import ApplicationError
from referral.models import ExclusiveCode, ShareLink
from referral.services import codes
from referral.services.codes import (
    exclusive_code_deactivate,
    exclusive_code_issue,
    exclusive_code_usable,
    exclusive_codes,
)
from shop.models import CouponCode, CouponTemplate
from shop.services.coupons import CODE_ALPHABET, GENERATED_CODE_LENGTH
from tests.factories import StaffFactory
from tests.referral.factories import make_distributor
from tests.shop.factories_coupons import CouponCodeFactory

pytestmark = pytest.mark.django_db


def issue(distributor=None, **overrides):
    fields = {
        "kind": "fixed",
        "amount": 500,
        "valid_until": timezone.now() + timedelta(days=30),
    }
    fields.update(overrides)
    distributor = distributor or make_distributor()
    return exclusive_code_issue(
        actor=fields.pop("actor", None), distributor_id=distributor.pk, **fields
    )


def refusal(**kwargs) -> tuple:
    with pytest.raises(ApplicationError) as excinfo:
        issue(**kwargs)
    return excinfo.value.status, excinfo.value.code, excinfo.value.details


def nothing_written() -> bool:
    return not (
        CouponTemplate.objects.exists()
        or CouponCode.objects.exists()
        or ShareLink.objects.exists()
        or ExclusiveCode.objects.exists()
    )


# --- issuing -----------------------------------------------------------------------------------
def test_issuing_makes_an_exclusive_template_a_shared_code_a_hidden_link_and_the_tie():
    staff = StaffFactory()
    distributor = make_distributor(display_name="Ming")
    until = timezone.now() + timedelta(days=10)

    exclusive = issue(
        distributor,
        actor=staff,
        code="MING5",
        amount=500,
        min_spend=3000,
        valid_until=until,
        total_limit=200,
        name="Ming's 5 off",
    )

    code = exclusive.coupon_code
    template = code.template
    assert (code.code, code.kind, code.max_redemptions, code.is_active) == (
        "MING5",
        "shared",
        200,
        True,
    )
    assert (template.channel, template.is_exclusive, template.slot, template.status) == (
        "code",
        True,
        "exclusive",
        "active",
    )
    assert (template.kind, template.amount, template.percent_bps, template.max_discount) == (
        "fixed",
        500,
        0,
        None,
    )
    assert (template.min_spend, template.valid_until, template.valid_days) == (3000, until, None)
    assert (template.total_quantity, template.per_customer_limit, template.name) == (
        200,
        1,
        "Ming's 5 off",
    )
    assert template.created_by == staff
    link = exclusive.link
    assert (link.distributor, link.target_kind, link.target_id, link.is_code_link) == (
        distributor,
        "shop",
        None,
        True,
    )
    assert (link.utm_source, link.utm_medium, link.utm_campaign, link.is_active) == (
        "exclusive_code",
        "code",
        "MING5",
        True,
    )
    assert len(link.short_code) == 8 and set(link.short_code) <= set(codes.LINK_CODE_ALPHABET)
    assert (exclusive.distributor, exclusive.created_by) == (distributor, staff)


def test_without_a_chosen_text_the_shop_generates_the_code():
    exclusive = issue(kind="percent", amount=0, percent_bps=1500, max_discount=2000)

    text = exclusive.coupon_code.code
    assert len(text) == GENERATED_CODE_LENGTH and set(text) <= set(CODE_ALPHABET)
    assert exclusive.link.utm_campaign == text
    template = exclusive.coupon_code.template
    assert (template.kind, template.percent_bps, template.max_discount) == ("percent", 1500, 2000)
    assert exclusive.coupon_code.max_redemptions is None
    assert template.total_quantity is None  # no limit in all
    assert template.name == f"Exclusive: {exclusive.distributor.display_name}"


def test_valid_from_is_when_the_code_may_first_be_redeemed_also_with_valid_days():
    start = timezone.now() + timedelta(days=2)
    exclusive = issue(valid_from=start, valid_until=None, valid_days=7)
    template = exclusive.coupon_code.template
    assert (template.valid_from, template.claim_starts_at, template.valid_days) == (start, start, 7)


@pytest.mark.parametrize("status", ["applied", "suspended", "rejected"])
def test_only_an_active_distributor_gets_a_code(status):
    distributor = make_distributor(status=status)
    assert refusal(distributor=distributor) == (
        409,
        "distributor_not_active",
        {"status": status},
    )
    assert nothing_written()


def test_an_unknown_distributor_is_not_found():
    with pytest.raises(ApplicationError) as excinfo:
        exclusive_code_issue(
            actor=None,
            distributor_id=987654,
            kind="fixed",
            amount=100,
            valid_until=timezone.now() + timedelta(days=1),
        )
    assert (excinfo.value.status, excinfo.value.code) == (404, "distributor_not_found")
    assert nothing_written()


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"code": "ab"}, "code"),
        ({"code": "has space"}, "code"),
        ({"code": "X" * 33}, "code"),
        ({"kind": "threshold"}, "kind"),
        ({"kind": "free_shipping", "amount": 0}, "kind"),
        ({"percent_bps": 1000}, "percent_bps"),
        ({"max_discount": 300}, "max_discount"),
        ({"kind": "percent", "amount": 100, "percent_bps": 1000}, "amount"),
        ({"total_limit": 0}, "total_limit"),
        ({"per_customer_limit": 2}, "per_customer_limit"),
        ({"name": "n" * 101}, "name"),
        ({"valid_until": timezone.now() - timedelta(seconds=1)}, "valid_until"),
    ],
)
def test_referral_side_refusals_name_the_field_and_write_nothing(overrides, field):
    status, code, details = refusal(**overrides)
    assert (status, code, details["field"]) == (422, "exclusive_code_invalid", field)
    assert nothing_written()


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"amount": 0}, "amount"),
        ({"kind": "percent", "amount": 0, "percent_bps": 0}, "percent_bps"),
        ({"valid_until": None}, "valid_until"),
        ({"valid_from": timezone.now() + timedelta(days=60)}, "valid_until"),
    ],
)
def test_the_shops_template_refusals_pass_through_unchanged(overrides, field):
    status, code, details = refusal(**overrides)
    assert (status, code, details["field"]) == (422, "coupon_template_invalid", field)
    assert nothing_written()


def test_a_taken_code_is_the_shops_conflict_and_leaves_no_template_behind():
    CouponCodeFactory(code="ming5")
    before = CouponTemplate.objects.count()

    assert refusal(code="MING5") == (409, "coupon_code_taken", {"code": "MING5"})

    assert CouponTemplate.objects.count() == before
    assert not ShareLink.objects.exists() and not ExclusiveCode.objects.exists()


def test_a_clashing_short_code_is_drawn_again(monkeypatch):
    first = issue()
    drawn = iter([first.link.short_code, "FRESH234"])
    monkeypatch.setattr(codes, "_link_code", lambda: next(drawn))

    second = issue()

    assert second.link.short_code == "FRESH234"


def test_issuing_is_one_transaction(monkeypatch):
    taken = issue().link.short_code
    monkeypatch.setattr(codes, "_link_code", lambda: taken)
    templates, shop_codes = CouponTemplate.objects.count(), CouponCode.objects.count()

    with pytest.raises(RuntimeError):
        issue(code="NEVER1")

    assert (CouponTemplate.objects.count(), CouponCode.objects.count()) == (templates, shop_codes)
    assert ExclusiveCode.objects.count() == 1


# --- deactivating ------------------------------------------------------------------------------
def test_deactivating_stops_the_code_and_is_idempotent():
    exclusive = issue()

    done = exclusive_code_deactivate(actor=None, exclusive_code_id=exclusive.pk)
    again = exclusive_code_deactivate(actor=None, exclusive_code_id=exclusive.pk)

    assert done.coupon_code.is_active is False and again.coupon_code.is_active is False
    assert done.link.is_active is True  # orders placed with it before still attribute
    assert done.coupon_code.template.status == "active"


def test_deactivating_an_unknown_code_is_not_found():
    with pytest.raises(ApplicationError) as excinfo:
        exclusive_code_deactivate(actor=None, exclusive_code_id=424242)
    assert (excinfo.value.status, excinfo.value.code) == (404, "exclusive_code_not_found")


# --- reads -------------------------------------------------------------------------------------
def test_usable_means_a_new_customer_could_redeem_it_now():
    now = timezone.now()
    plain = issue(valid_until=now + timedelta(days=1))
    later = issue(valid_from=now + timedelta(hours=1), valid_until=now + timedelta(days=1))
    used_up = issue(total_limit=1)
    CouponCode.objects.filter(pk=used_up.coupon_code_id).update(redemptions=1)
    off = exclusive_code_deactivate(actor=None, exclusive_code_id=issue().pk)

    assert exclusive_code_usable(plain, now) is True
    assert exclusive_code_usable(later, now) is False
    assert exclusive_code_usable(later, now + timedelta(hours=2)) is True
    assert exclusive_code_usable(plain, now + timedelta(days=2)) is False
    assert exclusive_code_usable(exclusive_codes().get(pk=used_up.pk), now) is False
    assert exclusive_code_usable(off, now) is False
    CouponTemplate.objects.filter(pk=plain.coupon_code.template_id).update(status="paused")
    assert exclusive_code_usable(exclusive_codes().get(pk=plain.pk), now) is False


def test_listing_filters_by_distributor_newest_first():
    mine, other = make_distributor(), make_distributor()
    first, second = issue(mine), issue(mine)
    issue(other)
    assert [e.pk for e in exclusive_codes(distributor_id=mine.pk)] == [second.pk, first.pk]
    assert exclusive_codes().count() == 3
