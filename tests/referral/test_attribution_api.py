"""Attribution over HTTP: a distributor's attributed orders (scoped, no buyer data), the staff
views of attributions and rule versions, permissions and strict input."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.utils import timezone

from referral.models import AttributionRule, FraudFlag
from tests.conftest import ApiClient, token_for
from tests.core.utils import assert_error
from tests.factories import UserFactory
from tests.referral.factories import make_distributor
from tests.referral.test_attribution import (
    DAY,
    T0,
    attribution_of,
    buy,
    click,
    link_of,
    use_rule,
)
from tests.shop.factories_orders import QuickCustomerFactory

pytestmark = pytest.mark.django_db

API = "/api/v1"
MY_KEYS = {
    "attribution_id",
    "level",
    "paid_at",
    "source",
    "goods_amount",
    "refunded_amount",
    "touch",
    "link_id",
    "rule_version",
    "held",
}
STAFF_KEYS = {
    "id",
    "order_id",
    "customer_id",
    "distributor_id",
    "rule_version",
    "touch",
    "reason",
    "click_id",
    "link_id",
    "exclusive_code_id",
    "self_purchase",
    "levels",
    "ancestry",
    "source",
    "goods_amount",
    "refunded_amount",
    "refunds",
    "held",
    "paid_at",
    "attributed_at",
}
RULE_BODY = {
    "model": "binding",
    "binding_days": 30,
    "click_window_days": 7,
    "code_overrides_link": True,
    "self_purchase": "self",
    "note": "Lock customers",
}


def as_customer(customer) -> ApiClient:
    return ApiClient(token_for(customer.user))


def clerk_with(*codenames: str) -> ApiClient:
    user = UserFactory(is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    return ApiClient(token_for(user))


@pytest.fixture
def sold(committed):
    """An upline and their distributor; the distributor's buyer bought twice through a link."""
    use_rule("last_touch")
    upline = make_distributor()
    koc = make_distributor(upline=upline)
    buyer = QuickCustomerFactory(phone="13800000001", nickname="Buyer Li")
    shared = link_of(koc)
    click(shared, at=T0 - DAY, customer=buyer)
    orders = [buy(committed, buyer, T0), buy(committed, buyer, T0 + DAY)]
    return {"upline": upline, "koc": koc, "buyer": buyer, "link": shared, "orders": orders}


# --- distributor ---------------------------------------------------------------------------------
def test_a_distributor_sees_their_attributed_orders_without_buyer_data(sold):
    first, second = (attribution_of(order) for order in sold["orders"])

    r = as_customer(sold["koc"].customer).get(f"{API}/referral/distributor/me/attributions")

    assert r.status_code == 200, r.content
    body = r.json()
    assert body["count"] == 2
    assert [item["attribution_id"] for item in body["items"]] == [second.pk, first.pk]
    for item in body["items"]:
        assert set(item) == MY_KEYS
    assert body["items"][0] == {
        "attribution_id": second.pk,
        "level": 1,
        "paid_at": "2025-06-02T12:00:00Z",
        "source": "normal",
        "goods_amount": 3980,
        "refunded_amount": 0,
        "touch": "click",
        "link_id": sold["link"].pk,
        "rule_version": 1,
        "held": False,
    }
    text = r.content.decode()
    buyer, order = sold["buyer"], sold["orders"][0]
    assert order.number not in text and buyer.phone not in text and buyer.nickname not in text


def test_the_upline_sees_the_same_orders_at_level_two(sold):
    r = as_customer(sold["upline"].customer).get(f"{API}/referral/distributor/me/attributions")

    assert r.status_code == 200
    assert [item["level"] for item in r.json()["items"]] == [2, 2]


def test_an_open_fraud_flag_shows_the_order_as_held(sold):
    attribution = attribution_of(sold["orders"][0])
    FraudFlag.objects.create(
        kind=FraudFlag.Kind.SELF_REFERRAL,
        distributor=sold["koc"],
        attribution=attribution,
        dedupe_key=f"self_referral:{attribution.pk}",
    )

    items = (
        as_customer(sold["koc"].customer)
        .get(f"{API}/referral/distributor/me/attributions")
        .json()["items"]
    )

    assert {item["attribution_id"]: item["held"] for item in items} == {
        attribution.pk: True,
        attribution_of(sold["orders"][1]).pk: False,
    }


def test_a_distributor_wide_flag_holds_every_order_of_theirs(sold):
    FraudFlag.objects.create(
        kind=FraudFlag.Kind.HIGH_REFUND_RATE,
        distributor=sold["koc"],
        dedupe_key=f"high_refund_rate:{sold['koc'].pk}:2025-06-01",
    )
    path = f"{API}/referral/distributor/me/attributions"

    mine = as_customer(sold["koc"].customer).get(path).json()["items"]
    uplines = as_customer(sold["upline"].customer).get(path).json()["items"]

    assert [item["held"] for item in mine] == [True, True]
    assert [item["held"] for item in uplines] == [True, True]  # the order's commissions are held


def test_someone_else_sees_nothing_of_it(sold):
    other = make_distributor()

    r = as_customer(other.customer).get(f"{API}/referral/distributor/me/attributions")

    assert r.json()["count"] == 0


def test_a_customer_who_is_no_distributor_gets_404(sold):
    r = as_customer(sold["buyer"]).get(f"{API}/referral/distributor/me/attributions")

    assert_error(r, 404, "not_a_distributor")


def test_anonymous_gets_401(anon):
    assert_error(anon.get(f"{API}/referral/distributor/me/attributions"), 401, "not_authenticated")


# --- staff: attributions -------------------------------------------------------------------------
def test_staff_list_and_filter_attributions_in_full(sold, operator):
    first = attribution_of(sold["orders"][0])

    everything = operator.get(f"{API}/staff/referral/attributions").json()
    by_order = operator.get(
        f"{API}/staff/referral/attributions", {"order_id": sold["orders"][0].pk}
    ).json()
    by_upline = operator.get(
        f"{API}/staff/referral/attributions", {"distributor_id": sold["upline"].pk}
    ).json()
    by_stranger = operator.get(
        f"{API}/staff/referral/attributions", {"distributor_id": make_distributor().pk}
    ).json()

    assert everything["count"] == 2
    assert set(everything["items"][0]) == STAFF_KEYS
    assert [item["id"] for item in by_order["items"]] == [first.pk]
    assert by_order["items"][0]["levels"] == [
        {"level": 1, "distributor_id": sold["koc"].pk},
        {"level": 2, "distributor_id": sold["upline"].pk},
    ]
    assert by_order["items"][0]["ancestry"] == [sold["upline"].pk]
    assert by_order["items"][0]["reason"] == "last_touch"
    assert by_upline["count"] == 2  # paying them at level 2
    assert by_stranger["count"] == 0


def test_staff_detail_and_unknown_id(sold, operator):
    first = attribution_of(sold["orders"][0])

    r = operator.get(f"{API}/staff/referral/attributions/{first.pk}")
    missing = operator.get(f"{API}/staff/referral/attributions/999999")

    assert r.status_code == 200
    assert (r.json()["id"], r.json()["order_id"], r.json()["customer_id"]) == (
        first.pk,
        first.order_id,
        sold["buyer"].pk,
    )
    assert_error(missing, 404, "attribution_not_found")


def test_staff_without_the_permission_or_not_staff_are_refused(sold, client_for):
    attribution = attribution_of(sold["orders"][0])
    clerk = clerk_with("view_attributionrule")
    shopper = as_customer(sold["buyer"])

    for path in ("/staff/referral/attributions", f"/staff/referral/attributions/{attribution.pk}"):
        assert_error(clerk.get(f"{API}{path}"), 403, "permission_denied")
        assert_error(shopper.get(f"{API}{path}"), 403, "staff_only")
    allowed = clerk_with("view_attribution").get(f"{API}/staff/referral/attributions")
    assert allowed.status_code == 200


# --- staff: rule versions ------------------------------------------------------------------------
def test_the_rule_list_shows_the_default_as_current(operator):
    r = operator.get(f"{API}/staff/referral/rules")

    assert r.status_code == 200
    [default] = r.json()["items"]
    assert (default["version"], default["model"], default["is_current"]) == (1, "last_touch", True)


def test_a_new_version_is_saved_and_becomes_current_when_it_takes_effect(operator):
    later_start = (timezone.now() + timedelta(days=30)).isoformat()

    now = operator.post(f"{API}/staff/referral/rules", RULE_BODY)
    later = operator.post(
        f"{API}/staff/referral/rules",
        {**RULE_BODY, "model": "first_touch", "effective_from": later_start},
    )
    listed = operator.get(f"{API}/staff/referral/rules").json()["items"]

    assert now.status_code == 201, now.content
    assert (now.json()["version"], now.json()["model"], now.json()["is_current"]) == (
        2,
        "binding",
        True,
    )
    assert now.json()["note"] == "Lock customers"
    assert later.status_code == 201
    assert (later.json()["version"], later.json()["is_current"]) == (3, False)
    assert [(r["version"], r["is_current"]) for r in listed] == [(3, False), (2, True), (1, False)]
    assert AttributionRule.objects.get(version=2).created_by_id is not None


def test_a_version_in_the_past_is_refused_naming_the_field(operator):
    yesterday = (timezone.now() - timedelta(days=1)).isoformat()

    r = operator.post(f"{API}/staff/referral/rules", {**RULE_BODY, "effective_from": yesterday})

    error = assert_error(r, 422, "attribution_rule_invalid")
    assert error["details"] == {"field": "effective_from", "reason": "in_the_past"}


@pytest.mark.parametrize(
    "change",
    [
        {"binding_days": "30"},
        {"binding_days": 30.0},
        {"code_overrides_link": 1},
        {"click_window_days": 0},
        {"click_window_days": 366},
        {"model": "three_levels"},
        {"self_purchase": "upline"},
        {"paid_levels": 3},
    ],
)
def test_a_rule_body_is_read_strictly(operator, change):
    r = operator.post(f"{API}/staff/referral/rules", {**RULE_BODY, **change})

    assert_error(r, 422, "validation_error")
    assert not AttributionRule.objects.filter(version__gt=1).exists()


def test_saving_a_version_needs_its_permission(client_for):
    viewer = clerk_with("view_attributionrule")

    assert viewer.get(f"{API}/staff/referral/rules").status_code == 200
    assert_error(viewer.post(f"{API}/staff/referral/rules", RULE_BODY), 403, "permission_denied")
    assert_error(
        clerk_with("add_attributionrule").get(f"{API}/staff/referral/rules"),
        403,
        "permission_denied",
    )
    assert (
        clerk_with("add_attributionrule").post(f"{API}/staff/referral/rules", RULE_BODY).status_code
        == 201
    )
