"""Coupons over HTTP (ninja test client): coupon centre, claim, my coupons, the price preview,
checkout with coupons, code guessing limits, and the staff endpoints."""

from datetime import timedelta

import pytest
from django.utils import timezone

from shop.demo import seed_shop
from shop.models import CouponCode, CouponIssuance, CouponTemplate, CustomerCoupon, Order, Sku
from tests.conftest import ApiClient, token_for
from tests.factories import CommunityFactory, SkuFactory, UserFactory
from tests.shop.factories_coupons import CouponCodeFactory, CouponTemplateFactory, coupon_for
from tests.shop.factories_orders import QuickCustomerFactory, quick_pickup_point

pytestmark = pytest.mark.django_db

API = "/api/v1"
T = CouponTemplate


def error(response) -> dict:
    return response.json()["error"]


def cart(*lines, point=None, **extra) -> dict:
    point = point or quick_pickup_point()
    return {
        "lines": [{"sku_id": sku.pk, "quantity": quantity} for sku, quantity in lines],
        "delivery_mode": "pickup",
        "pickup_point_id": point.pk,
        **extra,
    }


def sku_at(price, **kwargs):
    return SkuFactory(price=price, list_price=None, **kwargs)


# --- coupon centre and claiming ------------------------------------------------------------------
def test_the_centre_lists_what_i_can_claim_with_remaining_and_why_not(shopper, customer):
    open_ = CouponTemplateFactory(total_quantity=10, issued_count=3, name="Open")
    held = CouponTemplateFactory(name="Held")
    coupon_for(customer, held)
    drop = CouponTemplateFactory(
        channel=T.Channel.FAN_DROP,
        claim_starts_at=timezone.now() + timedelta(hours=2),
        name="Drop",
    )
    gone = CouponTemplateFactory(total_quantity=1, issued_count=1, name="Gone")
    CouponTemplateFactory(channel=T.Channel.ISSUED)  # not in the centre
    CouponTemplateFactory(status=T.Status.PAUSED)
    CouponTemplateFactory(communities=[CommunityFactory(leader=QuickCustomerFactory())])

    r = shopper.get(f"{API}/coupons/centre")

    assert r.status_code == 200
    by_id = {item["id"]: item for item in r.json()}
    assert set(by_id) == {open_.pk, held.pk, drop.pk, gone.pk}
    assert (by_id[open_.pk]["remaining"], by_id[open_.pk]["can_claim"]) == (7, True)
    assert (by_id[held.pk]["held"], by_id[held.pk]["refusal"]) == (1, "limit_reached")
    assert (by_id[drop.pk]["can_claim"], by_id[drop.pk]["refusal"]) == (False, "not_started")
    assert by_id[gone.pk]["refusal"] == "sold_out"
    assert by_id[open_.pk]["slot"] == "platform"


def test_claiming_answers_my_new_coupon_and_replays_with_an_idempotency_key(shopper, customer):
    template = CouponTemplateFactory(total_quantity=5)
    url = f"{API}/coupons/templates/{template.pk}/claim"
    headers = {"Idempotency-Key": "claim-1"}

    first = shopper.post(url, headers=headers)
    again = shopper.post(url, headers=headers)

    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()
    body = first.json()
    assert (body["state"], body["source"], body["terms"]["id"]) == (
        "available",
        "claim",
        template.pk,
    )
    assert CustomerCoupon.objects.filter(customer=customer).count() == 1
    second = shopper.post(url)
    assert (second.status_code, error(second)["code"]) == (409, "coupon_limit_reached")
    missing = shopper.post(f"{API}/coupons/templates/999999/claim")
    assert (missing.status_code, error(missing)["code"]) == (404, "coupon_template_not_found")


def test_my_coupons_by_state(shopper, customer):
    mine = coupon_for(customer)
    coupon_for(QuickCustomerFactory())
    r = shopper.get(f"{API}/coupons/mine", {"state": "available"})
    assert [c["id"] for c in r.json()["items"]] == [mine.pk]
    assert shopper.get(f"{API}/coupons/mine", {"state": "used"}).json()["count"] == 0
    bad = shopper.get(f"{API}/coupons/mine", {"state": "lost"})
    assert bad.status_code == 422


def test_coupon_endpoints_are_for_customers(client_for):
    staff_user = ApiClient(token_for(UserFactory()))
    r = staff_user.get(f"{API}/coupons/centre")
    assert (r.status_code, error(r)["code"]) == (403, "not_a_customer")
    assert client_for(UserFactory()).get(f"{API}/coupons/mine").status_code == 403
    assert ApiClient().get(f"{API}/coupons/centre").status_code == 401


# --- price preview -------------------------------------------------------------------------------
def test_the_preview_prices_lines_lists_my_coupons_and_picks_the_best(shopper, customer):
    a, b = sku_at(3000), sku_at(1000)
    small = coupon_for(customer, amount=100)
    big = coupon_for(customer, kind=T.Kind.PERCENT, amount=0, percent_bps=1000)  # 10 %: 500
    tiers = [{"threshold": 5000, "off": 800}]
    threshold = coupon_for(customer, kind=T.Kind.THRESHOLD, amount=0, tiers=tiers)
    too_far = coupon_for(customer, min_spend=100_000)
    exclusive = coupon_for(customer, amount=200, is_exclusive=True)

    r = shopper.post(f"{API}/checkout/preview", json=cart((a, 1), (b, 2)))

    assert r.status_code == 200, r.content
    data = r.json()
    best = data["best"]
    assert (best["subtotal"], best["discount"], best["total"]) == (5000, 1000, 4000)
    assert sorted(best["coupon_ids"]) == sorted([threshold.pk, exclusive.pk])
    assert data["priced"] == best
    assert sum(line["paid_amount"] for line in best["lines"]) == 4000
    assert [(x["sku_id"], x["discount"], x["in_stock"]) for x in best["lines"]] == [
        (a.pk, 600, True),
        (b.pk, 400, True),
    ]
    choices = {c["coupon"]["id"]: c for c in data["coupons"]}
    assert choices[small.pk]["saves"] == 100
    assert choices[big.pk]["saves"] == 500
    assert choices[threshold.pk]["saves"] == 800
    assert (choices[too_far.pk]["applicable"], choices[too_far.pk]["reason"]) == (
        False,
        "min_spend",
    )


def test_the_preview_prices_a_chosen_combination_as_the_checkout_would(shopper, customer):
    sku = sku_at(2000)
    small = coupon_for(customer, amount=100)
    big = coupon_for(customer, amount=500)

    chosen = shopper.post(f"{API}/checkout/preview", json=cart((sku, 1), coupon_ids=[small.pk]))
    none = shopper.post(f"{API}/checkout/preview", json=cart((sku, 1), coupon_ids=[]))
    both = shopper.post(
        f"{API}/checkout/preview", json=cart((sku, 1), coupon_ids=[small.pk, big.pk])
    )

    assert (chosen.json()["priced"]["total"], chosen.json()["best"]["total"]) == (1900, 1500)
    assert none.json()["priced"]["total"] == 2000
    assert (both.status_code, error(both)["code"]) == (422, "coupon_not_stackable")


def test_the_preview_with_a_code(shopper):
    CouponCodeFactory(code="HELLO", template__amount=300)
    sku = sku_at(2000)
    r = shopper.post(f"{API}/checkout/preview", json=cart((sku, 1), coupon_code="hello"))
    assert r.json()["priced"]["coupon_code"] == "HELLO"
    assert r.json()["priced"]["discount"] == 300
    assert CustomerCoupon.objects.count() == 0  # a preview redeems nothing


def test_the_preview_of_a_sold_out_line_says_so(shopper):
    sku = sku_at(1000, stock=1)
    r = shopper.post(f"{API}/checkout/preview", json=cart((sku, 2)))
    assert r.json()["priced"]["lines"][0]["in_stock"] is False


# --- checkout with coupons -----------------------------------------------------------------------
def test_an_order_with_coupon_ids(shopper, customer):
    coupon = coupon_for(customer, amount=250)
    r = shopper.post(f"{API}/orders", json=cart((sku_at(1000), 1), coupon_ids=[coupon.pk]))
    assert r.status_code == 201, r.content
    assert (r.json()["discount"], r.json()["total"]) == (250, 750)
    assert CustomerCoupon.objects.get(pk=coupon.pk).order_id == r.json()["id"]


def test_the_order_lists_its_coupons_locked_then_used_and_not_once_given_back(
    shopper, customer, settings, operator
):
    settings.CELERY_TASK_ALWAYS_EAGER = True
    coupon = coupon_for(customer, amount=250, name="2.5 off")
    r = shopper.post(f"{API}/orders", json=cart((sku_at(1000), 1), coupon_ids=[coupon.pk]))
    order_id = r.json()["id"]
    held = {
        "id": coupon.pk,
        "template_id": coupon.template_id,
        "name": "2.5 off",
        "kind": "fixed",
        "status": "locked",
        "discount": 250,
    }
    assert r.json()["coupons"] == [held]
    assert shopper.get(f"{API}/orders/{order_id}").json()["coupons"] == [held]

    payment = shopper.post(f"{API}/orders/{order_id}/pay").json()
    assert shopper.post(payment["confirm_url"], json={}).status_code == 200
    assert shopper.get(f"{API}/orders/{order_id}").json()["coupons"] == [{**held, "status": "used"}]
    [listed] = [o for o in shopper.get(f"{API}/orders").json()["items"] if o["id"] == order_id]
    assert listed["coupons"] == [{**held, "status": "used"}]
    staff_view = operator.get(f"{API}/staff/orders/{order_id}").json()
    assert staff_view["coupons"] == [{**held, "status": "used"}]

    plain = shopper.post(f"{API}/orders", json=cart((sku_at(1000), 1))).json()
    assert plain["coupons"] == []
    second = coupon_for(customer, amount=100)
    other = shopper.post(f"{API}/orders", json=cart((sku_at(1000), 1), coupon_ids=[second.pk]))
    assert shopper.post(f"{API}/orders/{other.json()['id']}/cancel").status_code == 200
    after = shopper.get(f"{API}/orders/{other.json()['id']}").json()
    assert (after["coupons"], after["discount"]) == ([], 100)


@pytest.mark.parametrize("bad", ["1", 1.0, True, [1, 2, 3, 4, 5, 6]])
def test_coupon_ids_are_strict(shopper, customer, bad):
    coupon = coupon_for(customer)
    value = [bad] if not isinstance(bad, list) else [coupon.pk] * 6
    if bad == "1":
        value = [str(coupon.pk)]
    r = shopper.post(f"{API}/orders", json=cart((sku_at(1000), 1), coupon_ids=value))
    assert (r.status_code, error(r)["code"]) == (422, "validation_error")
    assert Order.objects.count() == 0


def test_a_coupon_of_another_customer_is_invalid_over_http(shopper):
    theirs = coupon_for(QuickCustomerFactory())
    r = shopper.post(f"{API}/orders", json=cart((sku_at(1000), 1), coupon_ids=[theirs.pk]))
    assert (r.status_code, error(r)["code"]) == (422, "coupon_invalid")


# --- guessing codes ------------------------------------------------------------------------------
def test_wrong_codes_are_limited_per_shopper(settings, shopper, client_for):
    settings.COUPON_CODE_RATE = "3/m"
    settings.COUPON_CODE_IP_RATE = "100/m"
    CouponCodeFactory(code="REAL")
    sku, point = sku_at(1000), quick_pickup_point()
    answers = [
        shopper.post(f"{API}/orders", json=cart((sku, 1), point=point, coupon_code=f"GUESS{i}"))
        for i in range(4)
    ]
    assert [r.status_code for r in answers] == [422, 422, 422, 429]
    limited = error(answers[-1])
    assert limited["code"] == "coupon_code_rate_limited"
    assert int(answers[-1]["Retry-After"]) >= 1
    # even the right code waits now; another shopper is not affected, and no code is never limited
    right = shopper.post(f"{API}/orders", json=cart((sku, 1), point=point, coupon_code="REAL"))
    assert right.status_code == 429
    assert shopper.post(f"{API}/orders", json=cart((sku, 1), point=point)).status_code == 201
    other = client_for(QuickCustomerFactory().user)
    ok = other.post(f"{API}/orders", json=cart((sku, 1), point=point, coupon_code="REAL"))
    assert ok.status_code == 201


def test_valid_codes_are_not_counted(settings, shopper):
    settings.COUPON_CODE_RATE = "2/m"
    CouponCodeFactory(code="FINE")
    sku = sku_at(1000)
    for _ in range(4):
        r = shopper.post(f"{API}/checkout/preview", json=cart((sku, 1), coupon_code="FINE"))
        assert r.status_code == 200


def test_wrong_codes_are_limited_per_client_ip(settings, client_for):
    settings.COUPON_CODE_RATE = "100/m"
    settings.COUPON_CODE_IP_RATE = "2/m"
    sku = sku_at(1000)
    statuses = []
    for _ in range(3):
        shopper = client_for(QuickCustomerFactory().user)  # a new shopper each time, same IP
        r = shopper.post(f"{API}/checkout/preview", json=cart((sku, 1), coupon_code="GUESS"))
        statuses.append(r.status_code)
    assert statuses == [422, 422, 429]


# --- staff ---------------------------------------------------------------------------------------
def test_staff_create_a_threshold_template_and_list_it(operator):
    sku = SkuFactory()
    body = {
        "name": " Spend 99 save 10 ",
        "kind": "threshold",
        "tiers": [{"threshold": 9900, "off": 1000}, {"threshold": 19900, "off": 2500}],
        "scope": "skus",
        "sku_ids": [sku.pk],
        "valid_days": 7,
        "channel": "claimable",
        "total_quantity": 100,
        "activate": True,
    }
    r = operator.post(f"{API}/staff/coupon-templates", json=body)
    assert r.status_code == 201, r.content
    data = r.json()
    assert (data["name"], data["status"], data["sku_ids"], data["tiers"][1]["off"]) == (
        "Spend 99 save 10",
        "active",
        [sku.pk],
        2500,
    )
    listed = operator.get(f"{API}/staff/coupon-templates", {"status": "active"}).json()
    assert [t["id"] for t in listed["items"]] == [data["id"]]
    bad = operator.post(f"{API}/staff/coupon-templates", json={**body, "tiers": []})
    assert (bad.status_code, error(bad)["details"]["field"]) == (422, "tiers")
    strict = operator.post(f"{API}/staff/coupon-templates", json={**body, "total_quantity": "5"})
    assert strict.status_code == 422


def test_staff_pause_a_template(operator):
    template = CouponTemplateFactory()
    url = f"{API}/staff/coupon-templates/{template.pk}/status"
    assert operator.post(url, json={"status": "paused"}).json()["status"] == "paused"
    operator.post(url, json={"status": "ended"})
    r = operator.post(url, json={"status": "active"})
    assert (r.status_code, error(r)["code"]) == (409, "illegal_transition")


def test_staff_issue_to_a_segment_and_follow_its_progress(
    operator, django_capture_on_commit_callbacks
):
    community = CommunityFactory(leader=QuickCustomerFactory())
    for _ in range(3):
        QuickCustomerFactory().memberships.create(community=community)
    template = CouponTemplateFactory(channel=T.Channel.ISSUED)

    with django_capture_on_commit_callbacks(execute=True):
        r = operator.post(
            f"{API}/staff/coupon-templates/{template.pk}/issuances",
            json={"segment": "community", "community_id": community.pk, "reason": "thanks"},
        )

    assert r.status_code == 202, r.content
    assert (r.json()["status"], r.json()["total"]) == ("pending", 3)
    progress = operator.get(f"{API}/staff/coupon-issuances/{r.json()['id']}").json()
    assert (progress["status"], progress["issued"], progress["skipped"]) == ("done", 3, 0)
    assert CouponIssuance.objects.get().created_by is not None


def test_staff_compensate_a_customer_and_read_stats(operator):
    template = CouponTemplateFactory(channel=T.Channel.COMPENSATION)
    customer = QuickCustomerFactory()
    url = f"{API}/staff/customers/{customer.pk}/coupons"
    body = {"template_id": template.pk, "reason": "late delivery"}
    r = operator.post(url, json=body, headers={"Idempotency-Key": "comp-1"})
    replay = operator.post(url, json=body, headers={"Idempotency-Key": "comp-1"})
    assert r.status_code == replay.status_code == 201, r.content
    assert r.json() == replay.json()
    assert (r.json()["customer_id"], r.json()["source"]) == (customer.pk, "compensation")
    stats = operator.get(f"{API}/staff/coupon-templates/{template.pk}/stats").json()
    assert (stats["issued"], stats["available"], stats["used"]) == (1, 1, 0)
    missing = operator.post(
        f"{API}/staff/customers/999999/coupons", json={"template_id": template.pk}
    )
    assert (missing.status_code, error(missing)["code"]) == (404, "customer_not_found")


def test_staff_without_the_permission_are_refused(client_for):
    clerk = client_for(UserFactory(is_staff=True))
    template = CouponTemplateFactory()
    assert clerk.get(f"{API}/staff/coupon-templates").status_code == 403
    r = clerk.post(f"{API}/staff/coupon-templates/{template.pk}/status", json={"status": "paused"})
    assert (r.status_code, error(r)["code"]) == (403, "permission_denied")
    assert CouponTemplate.objects.get(pk=template.pk).status == "active"


# --- demo ----------------------------------------------------------------------------------------
def test_the_demo_seed_has_claimable_coupons_with_a_threshold_discount_and_a_code(anon):
    summary = seed_shop()
    assert seed_shop()["coupon_template_ids"] == summary["coupon_template_ids"]
    login = anon.post(f"{API}/auth/wechat", json={"code": summary["shopper_login_code"]}).json()
    shopper = ApiClient(login["access_token"])

    centre = shopper.get(f"{API}/coupons/centre").json()
    threshold = next(t for t in centre if t["kind"] == "threshold")
    assert len(centre) >= 3 and all(t["can_claim"] for t in centre)
    claimed = shopper.post(f"{API}/coupons/templates/{threshold['id']}/claim")
    assert claimed.status_code == 201
    mango = Sku.objects.get(code="DEMO-MANGO-5KG")  # 54.90 x 2 = 109.80: the 99 tier
    preview = shopper.post(
        f"{API}/checkout/preview",
        json={
            "lines": [{"sku_id": mango.pk, "quantity": 2}],
            "delivery_mode": "pickup",
            "pickup_point_id": summary["pickup_point_id"],
            "coupon_code": summary["coupon_code"],
        },
    ).json()
    # the threshold coupon and the code are both platform coupons: one of them, 10 yuan
    assert preview["best"]["discount"] == 1000
    assert len(preview["best"]["applied"]) == 1


def test_the_preview_refuses_a_used_up_code_without_locking_anything(shopper):
    CouponCodeFactory(code="USED", kind="single_use", redemptions=1)
    r = shopper.post(f"{API}/checkout/preview", json=cart((sku_at(1000), 1), coupon_code="USED"))
    assert (r.status_code, error(r)["code"], error(r)["details"]["reason"]) == (
        409,
        "coupon_unavailable",
        "code_used_up",
    )


# --- staff: codes --------------------------------------------------------------------------------
def code_template(**kwargs):
    return CouponTemplateFactory(channel=T.Channel.CODE, amount=300, valid_days=7, **kwargs)


def test_an_operator_makes_a_shared_code_that_shoppers_redeem_once_each(operator, client_for):
    template = code_template()
    r = operator.post(
        f"{API}/staff/coupon-templates/{template.pk}/codes",
        json={"kind": "shared", "code": "SPRING20", "max_redemptions": 2},
    )
    assert r.status_code == 201, r.content
    [made] = r.json()
    assert (made["code"], made["kind"], made["max_redemptions"], made["redemptions"]) == (
        "SPRING20",
        "shared",
        2,
        0,
    )
    sku, point = sku_at(1000), quick_pickup_point()
    for _ in range(2):
        shopper = client_for(QuickCustomerFactory().user)
        placed = shopper.post(
            f"{API}/orders", json=cart((sku, 1), point=point, coupon_code="spring20")
        )
        assert (placed.status_code, placed.json()["discount"]) == (201, 300)
    third = client_for(QuickCustomerFactory().user).post(
        f"{API}/orders", json=cart((sku, 1), point=point, coupon_code="SPRING20")
    )
    assert (third.status_code, error(third)["details"]["reason"]) == (409, "code_used_up")
    listed = operator.get(f"{API}/staff/coupon-templates/{template.pk}/codes").json()
    assert [(c["code"], c["redemptions"]) for c in listed["items"]] == [("SPRING20", 2)]


def test_generated_single_use_codes_are_distinct_unambiguous_and_redeemed_once(
    operator, client_for
):
    template = code_template()
    r = operator.post(
        f"{API}/staff/coupon-templates/{template.pk}/codes", json={"kind": "single_use", "count": 5}
    )
    assert r.status_code == 201, r.content
    codes = [c["code"] for c in r.json()]
    assert len(set(codes)) == 5
    assert all(len(c) == 12 and set(c) <= set("ABCDEFGHJKLMNPQRSTUVWXYZ23456789") for c in codes)
    assert {c["kind"] for c in r.json()} == {"single_use"}
    sku, point = sku_at(1000), quick_pickup_point()
    first = client_for(QuickCustomerFactory().user)
    assert (
        first.post(
            f"{API}/orders", json=cart((sku, 1), point=point, coupon_code=codes[0])
        ).status_code
        == 201
    )
    again = client_for(QuickCustomerFactory().user).post(
        f"{API}/orders", json=cart((sku, 1), point=point, coupon_code=codes[0])
    )
    assert (again.status_code, error(again)["details"]["reason"]) == (409, "code_used_up")


def test_a_code_in_use_whatever_its_case_is_409_and_adds_nothing(operator):
    template = code_template()
    CouponCodeFactory(code="Summer5", template=template)
    before = CouponCode.objects.count()
    r = operator.post(
        f"{API}/staff/coupon-templates/{template.pk}/codes",
        json={"kind": "shared", "code": "SUMMER5"},
    )
    assert (r.status_code, error(r)) == (
        409,
        {
            "code": "coupon_code_taken",
            "message": "This code is already in use.",
            "details": {"code": "SUMMER5"},
        },
    )
    assert CouponCode.objects.count() == before


def test_codes_only_for_code_templates_that_have_not_ended(operator):
    claimable = CouponTemplateFactory()
    ended = code_template(status=T.Status.ENDED)
    for template in (claimable, ended):
        r = operator.post(
            f"{API}/staff/coupon-templates/{template.pk}/codes",
            json={"kind": "single_use", "count": 1},
        )
        assert (r.status_code, error(r)["code"]) == (409, "coupon_not_issuable")
        assert error(r)["details"] == {"channel": template.channel, "status": template.status}
    r = operator.post(f"{API}/staff/coupon-templates/999999/codes", json={"kind": "shared"})
    assert (r.status_code, error(r)["code"]) == (404, "coupon_template_not_found")
    r = operator.get(f"{API}/staff/coupon-templates/999999/codes")
    assert (r.status_code, error(r)["code"]) == (404, "coupon_template_not_found")
    assert not CouponCode.objects.exists()


@pytest.mark.parametrize(
    "body",
    [
        {"kind": "shared", "code": "ABCD", "count": 2},
        {"kind": "single_use", "count": 2, "max_redemptions": 5},
        {"kind": "shared", "code": "AB"},
        {"kind": "shared", "code": "HAS SPACE"},
        {"kind": "single_use", "count": 1001},
        {"kind": "single_use", "count": "5"},
        {"kind": "forever"},
    ],
)
def test_code_requests_that_make_no_sense_are_422(operator, body):
    template = code_template()
    r = operator.post(f"{API}/staff/coupon-templates/{template.pk}/codes", json=body)
    assert (r.status_code, error(r)["code"]) == (422, "validation_error")
    assert not CouponCode.objects.exists()


def test_making_codes_needs_the_permission(client_for):
    template = code_template()
    clerk = client_for(UserFactory(is_staff=True))
    r = clerk.post(f"{API}/staff/coupon-templates/{template.pk}/codes", json={"kind": "shared"})
    assert (r.status_code, error(r)["code"]) == (403, "permission_denied")
    assert clerk.get(f"{API}/staff/coupon-templates/{template.pk}/codes").status_code == 403
