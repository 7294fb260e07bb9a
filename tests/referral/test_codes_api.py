"""Exclusive codes over HTTP: the staff's issue / list / deactivate and the distributor's own
list; then what the shop does with such a code at its real checkout (``POST /orders``, paid
through the sandbox confirm endpoint, refunded by staff): the exclusive slot, limits total and
per customer, minimum spend, validity, a cancelled or refunded order's coupon, and the rate limit
on guessing."""

from datetime import timedelta

import pytest
import time_machine
from django.contrib.auth.models import Permission
from django.utils import timezone

from referral.models import ExclusiveCode
from referral.services.codes import exclusive_code_issue
from shop.models import CouponCode, CouponTemplate, CustomerCoupon, Order
from tests.conftest import ApiClient, token_for
from tests.core.utils import assert_error
from tests.factories import SkuFactory, StaffFactory
from tests.referral.factories import make_distributor
from tests.shop.factories_coupons import coupon_for
from tests.shop.factories_orders import QuickCustomerFactory, quick_pickup_point

pytestmark = pytest.mark.django_db

API = "/api/v1"
CODES = f"{API}/staff/referral/exclusive-codes"
MINE = f"{API}/referral/distributor/me/codes"


def issue(distributor=None, **overrides) -> ExclusiveCode:
    fields = {"kind": "fixed", "amount": 500, "valid_until": timezone.now() + timedelta(days=30)}
    fields.update(overrides)
    distributor = distributor or make_distributor()
    return exclusive_code_issue(actor=None, distributor_id=distributor.pk, **fields)


def staff_with(*codenames: str) -> ApiClient:
    user = StaffFactory(is_superuser=False)
    user.user_permissions.add(
        *Permission.objects.filter(content_type__app_label="referral", codename__in=codenames)
    )
    return ApiClient(token_for(user))


def buyer() -> ApiClient:
    return ApiClient(token_for(QuickCustomerFactory().user))


def cart(price: int = 5000, quantity: int = 1, **extra) -> dict:
    sku = SkuFactory(price=price, list_price=None)
    return {
        "lines": [{"sku_id": sku.pk, "quantity": quantity}],
        "delivery_mode": "pickup",
        "pickup_point_id": quick_pickup_point().pk,
        **extra,
    }


def order_with(client: ApiClient, code: str, **extra):
    return client.post(f"{API}/orders", json=cart(coupon_code=code, **extra))


def pay(client: ApiClient, order_id: int) -> None:
    payment = client.post(f"{API}/orders/{order_id}/pay").json()
    assert client.post(payment["confirm_url"], json={}).status_code == 200
    assert Order.objects.get(pk=order_id).status == "paid"


def coupon_of(client_order_id: int) -> CustomerCoupon:
    return CustomerCoupon.objects.get(order_id=client_order_id)


# --- staff: issue ------------------------------------------------------------------------------
def test_staff_issue_a_code_and_get_it_back(operator, staff):
    distributor = make_distributor(display_name="Ming")
    until = (timezone.now() + timedelta(days=10)).replace(microsecond=0)
    body = {
        "distributor_id": distributor.pk,
        "code": "MING5",
        "kind": "fixed",
        "amount": 500,
        "min_spend": 3000,
        "valid_until": until.isoformat(),
        "total_limit": 200,
    }

    r = operator.post(CODES, json=body)

    assert r.status_code == 201, r.content
    data = r.json()
    exclusive = ExclusiveCode.objects.get()
    assert data["id"] == exclusive.pk
    assert (data["code"], data["distributor_id"], data["distributor_name"]) == (
        "MING5",
        distributor.pk,
        "Ming",
    )
    assert (data["active"], data["usable"], data["redemptions"], data["created_by_id"]) == (
        True,
        True,
        0,
        staff.pk,
    )
    assert data["terms"] == {
        "template_id": exclusive.coupon_code.template_id,
        "name": "Exclusive: Ming",
        "kind": "fixed",
        "amount": 500,
        "percent_bps": 0,
        "max_discount": None,
        "min_spend": 3000,
        "valid_from": None,
        "valid_until": until.isoformat().replace("+00:00", "Z"),
        "valid_days": None,
        "total_limit": 200,
        "per_customer_limit": 1,
        "status": "active",
    }
    assert (data["link_id"], data["link_short_code"]) == (
        exclusive.link_id,
        exclusive.link.short_code,
    )


def test_issuing_replays_with_an_idempotency_key(operator):
    body = {
        "distributor_id": make_distributor().pk,
        "kind": "percent",
        "percent_bps": 1000,
        "valid_days": 7,
    }
    headers = {"Idempotency-Key": "issue-1"}
    first = operator.post(CODES, json=body, headers=headers)
    again = operator.post(CODES, json=body, headers=headers)
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()
    assert ExclusiveCode.objects.count() == 1


@pytest.mark.parametrize(
    ("change", "status", "code"),
    [
        ({"amount": "500"}, 422, "validation_error"),
        ({"amount": 5.0}, 422, "validation_error"),
        ({"total_limit": True}, 422, "validation_error"),
        ({"kind": "threshold"}, 422, "validation_error"),
        ({"per_customer_limit": 2}, 422, "validation_error"),
        ({"code": "no spaces"}, 422, "validation_error"),
        ({"coupon_kind": "shared"}, 422, "validation_error"),
        ({"amount": 0}, 422, "coupon_template_invalid"),
        ({"percent_bps": 100}, 422, "exclusive_code_invalid"),
        ({"distributor_id": 99999999}, 404, "distributor_not_found"),
    ],
)
def test_hostile_or_wrong_bodies_are_refused_and_write_nothing(operator, change, status, code):
    body = {
        "distributor_id": make_distributor().pk,
        "kind": "fixed",
        "amount": 500,
        "valid_days": 7,
        **change,
    }
    assert_error(operator.post(CODES, json=body), status, code)
    assert not CouponTemplate.objects.exists() and not ExclusiveCode.objects.exists()


def test_a_suspended_distributor_and_a_taken_code_are_conflicts(operator):
    suspended = make_distributor(status="suspended")
    body = {"kind": "fixed", "amount": 500, "valid_days": 7}
    r = operator.post(CODES, json={**body, "distributor_id": suspended.pk})
    assert assert_error(r, 409, "distributor_not_active")["details"] == {"status": "suspended"}
    issue(code="TAKEN")
    r = operator.post(
        CODES, json={**body, "distributor_id": make_distributor().pk, "code": "taken"}
    )
    assert_error(r, 409, "coupon_code_taken")
    assert ExclusiveCode.objects.count() == 1


def test_staff_need_the_permissions(client_for):
    distributor = make_distributor()
    body = {"distributor_id": distributor.pk, "kind": "fixed", "amount": 500, "valid_days": 7}
    exclusive = issue(distributor)
    viewer = staff_with("view_exclusivecode")

    assert_error(viewer.post(CODES, json=body), 403, "permission_denied")
    assert_error(viewer.post(f"{CODES}/{exclusive.pk}/deactivate"), 403, "permission_denied")
    assert viewer.get(CODES).status_code == 200
    assert_error(staff_with("add_exclusivecode").get(CODES), 403, "permission_denied")
    assert staff_with("add_exclusivecode").post(CODES, json=body).status_code == 201
    changer = staff_with("change_exclusivecode")
    assert changer.post(f"{CODES}/{exclusive.pk}/deactivate").status_code == 200
    shopper = client_for(distributor.customer.user)
    assert_error(shopper.get(CODES), 403, "staff_only")
    assert_error(ApiClient().get(CODES), 401, "not_authenticated")


# --- staff: list and deactivate --------------------------------------------------------------
def test_staff_list_codes_by_distributor_with_redemptions(operator):
    mine, other = make_distributor(), make_distributor()
    first = issue(mine, code="FIRST")
    second = issue(mine, code="SECOND", kind="percent", amount=0, percent_bps=1200)
    issue(other)
    CouponCode.objects.filter(pk=first.coupon_code_id).update(redemptions=3)

    r = operator.get(CODES, {"distributor_id": mine.pk})

    assert r.status_code == 200
    page = r.json()
    assert page["count"] == 2
    assert [(c["id"], c["code"]) for c in page["items"]] == [
        (second.pk, "SECOND"),
        (first.pk, "FIRST"),
    ]
    assert page["items"][1]["redemptions"] == 3
    assert page["items"][0]["terms"]["percent_bps"] == 1200
    assert operator.get(CODES).json()["count"] == 3


def test_staff_deactivate_a_code(operator):
    exclusive = issue()
    r = operator.post(f"{CODES}/{exclusive.pk}/deactivate")
    assert r.status_code == 200
    assert (r.json()["active"], r.json()["usable"]) == (False, False)
    assert operator.post(f"{CODES}/{exclusive.pk}/deactivate").json()["active"] is False
    assert_error(operator.post(f"{CODES}/999999/deactivate"), 404, "exclusive_code_not_found")


# --- the distributor's own codes -------------------------------------------------------------
def test_a_distributor_lists_their_own_codes_only(client_for):
    distributor, other = make_distributor(), make_distributor()
    mine = issue(distributor, code="MINE1", min_spend=2000)
    issue(other, code="THEIRS")
    me = client_for(distributor.customer.user)

    r = me.get(MINE)

    assert r.status_code == 200
    [item] = r.json()["items"]
    assert (item["id"], item["code"], item["active"], item["usable"]) == (
        mine.pk,
        "MINE1",
        True,
        True,
    )
    assert (item["terms"]["min_spend"], item["terms"]["amount"], item["redemptions"]) == (
        2000,
        500,
        0,
    )
    assert "distributor_id" not in item and "link_short_code" not in item


def test_the_codes_of_someone_who_is_not_a_distributor(shopper):
    assert_error(shopper.get(MINE), 404, "not_a_distributor")
    assert_error(ApiClient().get(MINE), 401, "not_authenticated")


# --- at the shop's checkout ------------------------------------------------------------------
def test_the_code_discounts_the_order_in_the_exclusive_slot_and_is_used_when_paid(client_for):
    exclusive = issue(code="MING5", amount=500)
    customer = QuickCustomerFactory()
    client = client_for(customer.user)
    platform = coupon_for(customer, amount=200)

    r = client.post(f"{API}/orders", json=cart(5000, coupon_code="ming5", coupon_ids=[platform.pk]))

    assert r.status_code == 201, r.content
    order = r.json()
    assert (order["subtotal"], order["discount"], order["total"]) == (5000, 700, 4300)
    assert order["coupon_code"].upper() == exclusive.coupon_code.code
    redeemed = CustomerCoupon.objects.get(code=exclusive.coupon_code)
    assert (redeemed.customer, redeemed.status, redeemed.discount) == (customer, "locked", 500)
    assert redeemed.template.slot == "exclusive"

    pay(client, order["id"])

    redeemed.refresh_from_db()
    assert redeemed.status == "used"
    assert CouponCode.objects.get(pk=exclusive.coupon_code_id).redemptions == 1


def test_two_exclusive_codes_do_not_stack(client_for):
    issue(code="FIRSTX")
    second = issue(code="SECONDX")
    customer = QuickCustomerFactory()
    exclusive_coupon = CustomerCoupon.objects.create(
        template=second.coupon_code.template,
        customer=customer,
        source="code",
        code=second.coupon_code,
        valid_from=timezone.now() - timedelta(minutes=1),
        valid_until=timezone.now() + timedelta(days=1),
    )
    r = client_for(customer.user).post(
        f"{API}/orders", json=cart(coupon_code="FIRSTX", coupon_ids=[exclusive_coupon.pk])
    )
    assert_error(r, 422, "coupon_not_stackable")


def test_the_total_limit_holds(client_for):
    issue(code="TWICE", total_limit=2)
    for _ in range(2):
        assert order_with(buyer(), "TWICE").status_code == 201
    error = assert_error(order_with(buyer(), "TWICE"), 409, "coupon_unavailable")
    assert error["details"]["reason"] == "code_used_up"


def test_a_customer_redeems_it_once(client_for):
    issue(code="ONCEEACH")
    client = buyer()
    first = order_with(client, "ONCEEACH").json()
    pay(client, first["id"])
    error = assert_error(order_with(client, "ONCEEACH"), 409, "coupon_unavailable")
    assert error["details"]["reason"] == "already_redeemed"


def test_the_minimum_spend_holds():
    issue(code="BIGSPEND", min_spend=3000)
    r = buyer().post(f"{API}/orders", json=cart(2999, coupon_code="BIGSPEND"))
    error = assert_error(r, 422, "coupon_not_applicable")
    assert (error["details"]["reason"], error["details"]["min_spend"]) == ("min_spend", 3000)
    assert buyer().post(f"{API}/orders", json=cart(3000, coupon_code="BIGSPEND")).status_code == 201


def test_the_validity_window_holds():
    now = timezone.now()
    issue(code="SOON", valid_from=now + timedelta(days=1), valid_until=now + timedelta(days=3))
    assert_error(order_with(buyer(), "SOON"), 422, "coupon_expired")
    with time_machine.travel(now + timedelta(days=2)):
        assert order_with(buyer(), "SOON").status_code == 201
    with time_machine.travel(now + timedelta(days=3, seconds=1)):
        assert_error(order_with(buyer(), "SOON"), 422, "coupon_expired")


def test_with_valid_days_the_code_waits_for_valid_from_and_each_coupon_lasts_its_days():
    now = timezone.now()
    exclusive = issue(
        code="DAYS", valid_from=now + timedelta(days=1), valid_until=None, valid_days=3
    )
    assert_error(order_with(buyer(), "DAYS"), 422, "coupon_expired")
    with time_machine.travel(now + timedelta(days=2), tick=False):
        assert order_with(buyer(), "DAYS").status_code == 201
    coupon = CustomerCoupon.objects.get(code=exclusive.coupon_code)
    assert coupon.valid_until - coupon.valid_from == timedelta(days=3)


def test_a_cancelled_unpaid_order_gives_the_coupon_back_to_the_customer():
    exclusive = issue(code="COMEBACK", total_limit=1)
    client = buyer()
    first = order_with(client, "COMEBACK").json()

    assert client.post(f"{API}/orders/{first['id']}/cancel").status_code == 200

    mine = CustomerCoupon.objects.get(code=exclusive.coupon_code)
    assert (mine.status, mine.order_id) == ("available", None)
    again = order_with(client, "COMEBACK")
    assert again.status_code == 201  # theirs still: typing the code again uses it
    assert CouponCode.objects.get(pk=exclusive.coupon_code_id).redemptions == 1
    assert_error(order_with(buyer(), "COMEBACK"), 409, "coupon_unavailable")  # used up by them


def test_a_fully_refunded_order_returns_the_coupon_while_valid(
    operator, django_capture_on_commit_callbacks
):
    exclusive = issue(code="REFUNDME")
    client = buyer()
    order = order_with(client, "REFUNDME").json()
    pay(client, order["id"])

    with django_capture_on_commit_callbacks(execute=True):
        r = operator.post(f"{API}/staff/orders/{order['id']}/refunds", json={})
    assert r.status_code == 201, r.content

    assert Order.objects.get(pk=order["id"]).status == "refunded"
    mine = CustomerCoupon.objects.get(code=exclusive.coupon_code)
    assert (mine.status, mine.order_id) == ("available", None)
    assert order_with(client, "REFUNDME").status_code == 201


def test_a_partially_refunded_order_keeps_the_coupon_used(
    operator, django_capture_on_commit_callbacks
):
    exclusive = issue(code="PARTIAL")
    client = buyer()
    order = order_with(client, "PARTIAL").json()
    pay(client, order["id"])

    with django_capture_on_commit_callbacks(execute=True):
        r = operator.post(f"{API}/staff/orders/{order['id']}/refunds", json={"amount": 100})
    assert r.status_code == 201, r.content

    assert Order.objects.get(pk=order["id"]).status == "partially_refunded"
    assert CustomerCoupon.objects.get(code=exclusive.coupon_code).status == "used"
    assert_error(order_with(client, "PARTIAL"), 409, "coupon_unavailable")


def test_guessing_codes_is_rate_limited(settings):
    settings.COUPON_CODE_RATE = "3/m"
    settings.COUPON_CODE_IP_RATE = "100/m"
    issue(code="REALONE")
    client = buyer()
    answers = [order_with(client, f"GUESS{i}") for i in range(3)]
    assert [r.status_code for r in answers] == [422, 422, 422]
    limited = assert_error(order_with(client, "GUESS9"), 429, "coupon_code_rate_limited")
    assert limited["details"]["retry_after"] >= 1
    assert_error(order_with(client, "REALONE"), 429, "coupon_code_rate_limited")
    assert order_with(buyer(), "REALONE").status_code == 201


def test_after_deactivation_new_customers_are_refused_and_holders_keep_their_coupon(operator):
    exclusive = issue(code="STOPPED")
    holder_customer = QuickCustomerFactory()
    holder = ApiClient(token_for(holder_customer.user))
    placed = order_with(holder, "STOPPED").json()
    holder.post(f"{API}/orders/{placed['id']}/cancel")

    assert operator.post(f"{CODES}/{exclusive.pk}/deactivate").status_code == 200

    assert_error(order_with(buyer(), "STOPPED"), 422, "coupon_invalid")
    kept = CustomerCoupon.objects.get(code=exclusive.coupon_code, customer=holder_customer)
    assert kept.status == "available"
    r = holder.post(f"{API}/orders", json=cart(coupon_ids=[kept.pk]))
    assert r.status_code == 201, r.content
    assert r.json()["discount"] == 500
