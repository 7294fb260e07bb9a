"""Bargains over HTTP: the public campaign reads, starting a bargain, its share page, friends'
helps (device id, IP rate), buying it and my bargains (through the Django test client, on
PostgreSQL)."""

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from core.realtime import topic_last_seq
from groupbuy.models import Bargain, BargainCampaign, BargainHelp
from shop.models import Order, Product, Sku
from tests.db_snapshot import db_snapshot
from tests.factories import UserFactory
from tests.groupbuy.factories_bargains import bargain_campaign, buy, helped, start, to_floor
from tests.shop.factories_orders import QuickCustomerFactory, paid, pay, quick_pickup_point
from tests.test_openapi_errors import _conforms, _document, _operation, assert_documented

pytestmark = pytest.mark.django_db

API = "/api/v1"
START = "/bargain-campaigns/{bargain_campaign_id}/bargains"
DETAIL = "/bargains/{bargain_id}"
HELPS = "/bargains/{bargain_id}/helps"
PURCHASE = "/bargains/{bargain_id}/purchase"


@pytest.fixture
def friend(client_for):
    """Another shopper, and an API client logged in as them."""
    customer = QuickCustomerFactory(nickname="Lan", avatar_url="https://img.example/l.png")
    return customer, client_for(customer.user)


def pickup(point=None, **extra):
    return {
        "delivery_mode": "pickup",
        "pickup_point_id": (point or quick_pickup_point()).pk,
        **extra,
    }


def code(response) -> tuple[int, str]:
    return response.status_code, response.json()["error"]["code"]


# --- public campaign reads ------------------------------------------------------------------------
def test_the_campaign_list_is_public_running_only_soonest_ending_first(anon):
    later = bargain_campaign(lasts=timedelta(days=7), price=1990, start_price=1890)
    sooner = bargain_campaign(lasts=timedelta(days=2), buy_at_any_price=True)
    bargain_campaign(status=BargainCampaign.Status.DRAFT)
    bargain_campaign(status=BargainCampaign.Status.ENDED)
    bargain_campaign(starts_in=timedelta(hours=1))  # not started
    bargain_campaign(starts_in=timedelta(days=-3), lasts=timedelta(days=1))  # over

    response = anon.get(f"{API}/bargain-campaigns")

    assert response.status_code == 200
    page = response.json()
    assert (page["count"], [c["id"] for c in page["items"]]) == (2, [sooner.pk, later.pk])
    shown = page["items"][1]
    assert shown["product"] == {"id": later.product_id, "title": later.product.title}
    assert shown["sku"] == {"sku_id": later.sku_id, "sku_code": later.sku.code, "list_price": 1990}
    assert {k: shown[k] for k in ("status", "start_price", "floor_price", "helps_needed")} == {
        "status": "active",
        "start_price": 1890,
        "floor_price": 990,
        "helps_needed": 3,
    }
    assert (shown["buy_at_any_price"], page["items"][0]["buy_at_any_price"]) == (False, True)
    assert anon.get(f"{API}/bargain-campaigns", {"limit": 1}).json()["items"][0]["id"] == sooner.pk


def test_a_campaign_detail_is_public_and_draft_or_unknown_ones_are_not_found(anon):
    ended = bargain_campaign(status=BargainCampaign.Status.ENDED)
    draft = bargain_campaign(status=BargainCampaign.Status.DRAFT)

    shown = anon.get(f"{API}/bargain-campaigns/{ended.pk}")

    assert (shown.status_code, shown.json()["status"], shown.json()["id"]) == (
        200,
        "ended",
        ended.pk,
    )
    for missing in (draft.pk, draft.pk + 1000):
        response = anon.get(f"{API}/bargain-campaigns/{missing}")
        assert_documented(
            response,
            "get",
            "/bargain-campaigns/{bargain_campaign_id}",
            404,
            "bargain_campaign_not_found",
        )


def test_ids_in_paths_are_positive_integers_that_fit(anon, shopper):
    for bad in ("abc", "1.5", "true", "0", "-1", str(2**63)):
        for client, url in (
            (anon, f"{API}/bargain-campaigns/{bad}"),
            (shopper, f"{API}/bargains/{bad}"),
        ):
            assert code(client.get(url)) == (422, "validation_error"), url
        before = db_snapshot()
        assert code(shopper.post(f"{API}/bargains/{bad}/helps")) == (422, "validation_error")
        assert code(shopper.post(f"{API}/bargain-campaigns/{bad}/bargains")) == (
            422,
            "validation_error",
        )
        assert db_snapshot() == before


# --- start ----------------------------------------------------------------------------------------
def test_starting_answers_201_with_my_bargain_after_my_first_cut(shopper, customer):
    made = bargain_campaign(start_price=1990, floor_price=990, helps_needed=3)

    response = shopper.post(f"{API}/bargain-campaigns/{made.pk}/bargains")

    assert response.status_code == 201, response.json()
    view = response.json()
    bargain = Bargain.objects.get()
    assert (view["id"], bargain.initiator) == (bargain.pk, customer)
    assert view["campaign"] == {
        "id": made.pk,
        "title": made.title,
        "product_title": made.product.title,
        "sku_id": made.sku_id,
    }
    assert (view["status"], view["start_price"], view["floor_price"]) == ("active", 1990, 990)
    assert (view["first_cut"], view["current_price"]) == (
        bargain.first_cut,
        1990 - bargain.first_cut,
    )
    assert (view["helps_needed"], view["helps_done"], view["helps_left"], view["helps"]) == (
        3,
        0,
        3,
        [],
    )
    assert (view["is_initiator"], view["has_helped"], view["can_buy"]) == (True, False, False)
    assert (view["order_id"], view["seed"], view["buy_at_any_price"]) == (None, None, False)
    assert (view["topic"], view["seq"]) == (f"bargain:{bargain.pk}", 0)
    assert 86390 <= view["seconds_left"] <= 86400


def test_starting_refusals_are_documented(shopper):
    made = bargain_campaign(max_bargains_per_customer=1)
    draft = bargain_campaign(status=BargainCampaign.Status.DRAFT)
    off_sale = bargain_campaign()
    Product.objects.filter(pk=off_sale.product_id).update(status=Product.Status.DRAFT)

    def started(campaign_id):
        return shopper.post(f"{API}/bargain-campaigns/{campaign_id}/bargains")

    assert_documented(started(draft.pk), "post", START, 409, "bargain_campaign_not_active")
    assert_documented(started(made.pk + 1000), "post", START, 404, "bargain_campaign_not_found")
    assert_documented(started(off_sale.pk), "post", START, 409, "product_unavailable")
    assert Bargain.objects.count() == 0
    assert started(made.pk).status_code == 201
    assert_documented(started(made.pk), "post", START, 409, "too_many_bargains")


def test_starting_needs_a_shopper(anon, operator):
    made = bargain_campaign()
    url = f"{API}/bargain-campaigns/{made.pk}/bargains"

    assert anon.post(url).status_code == 401
    assert_documented(operator.post(url), "post", START, 403, "not_a_customer")
    assert Bargain.objects.count() == 0


def test_a_retried_start_with_the_same_key_is_one_bargain(shopper):
    made = bargain_campaign(max_bargains_per_customer=3)
    url, headers = f"{API}/bargain-campaigns/{made.pk}/bargains", {"Idempotency-Key": "start-1"}

    first = shopper.post(url, headers=headers)
    again = shopper.post(url, headers=headers)

    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert Bargain.objects.count() == 1


# --- the share page -------------------------------------------------------------------------------
def test_a_friend_and_an_operator_read_the_bargain_and_only_the_initiator_sees_the_order(
    shopper, customer, friend, operator
):
    bargain = to_floor(start(bargain_campaign(helps_needed=2), customer))
    order = buy(bargain)

    mine = shopper.get(f"{API}/bargains/{bargain.pk}").json()
    theirs = friend[1].get(f"{API}/bargains/{bargain.pk}").json()
    staff = operator.get(f"{API}/bargains/{bargain.pk}")

    assert (mine["order_id"], mine["is_initiator"], mine["can_buy"]) == (order.pk, True, False)
    assert (theirs["order_id"], theirs["is_initiator"], theirs["can_buy"]) == (None, False, False)
    assert staff.status_code == 200
    assert (staff.json()["order_id"], staff.json()["is_initiator"]) == (None, False)
    assert mine["seed"] == theirs["seed"] == str(bargain.seed)  # no longer active: auditable
    assert {k for help_ in mine["helps"] for k in help_} == {
        "seq",
        "nickname",
        "avatar_url",
        "cut",
        "price_after",
        "created_at",
    }


def test_can_buy_says_whether_the_initiator_could_buy_now(shopper, customer, friend):
    bargain = start(bargain_campaign(helps_needed=2), customer)
    url = f"{API}/bargains/{bargain.pk}"
    assert shopper.get(url).json()["can_buy"] is False  # not at the floor

    to_floor(bargain)

    assert shopper.get(url).json()["can_buy"] is True
    assert friend[1].get(url).json()["can_buy"] is False
    anytime = start(bargain_campaign(buy_at_any_price=True), customer)
    assert shopper.get(f"{API}/bargains/{anytime.pk}").json()["can_buy"] is True


def test_the_page_needs_a_login_and_an_unknown_bargain_is_documented(anon, shopper):
    bargain = start(bargain_campaign())

    assert anon.get(f"{API}/bargains/{bargain.pk}").status_code == 401
    assert_documented(
        shopper.get(f"{API}/bargains/{bargain.pk + 1000}"), "get", DETAIL, 404, "bargain_not_found"
    )


def test_a_user_who_is_neither_customer_nor_operator_is_refused(client_for):
    bargain = start(bargain_campaign())
    response = client_for(UserFactory()).get(f"{API}/bargains/{bargain.pk}")

    assert_documented(response, "get", DETAIL, 403, "not_a_customer")


def test_the_snapshot_is_current_to_the_topics_seq(shopper, customer, committed):
    bargain = start(bargain_campaign(helps_needed=2), customer)
    topic = f"bargain:{bargain.pk}"

    committed(helped, bargain)
    one = shopper.get(f"{API}/bargains/{bargain.pk}").json()
    committed(helped, bargain)  # the last cut: bargain_cut and bargain_floor_reached
    two = shopper.get(f"{API}/bargains/{bargain.pk}").json()

    assert (one["topic"], one["seq"], one["helps_done"]) == (topic, 1, 1)
    assert (two["seq"], two["helps_done"], two["status"]) == (3, 2, "floor_reached")
    assert two["seq"] == topic_last_seq(topic)


# --- helps ----------------------------------------------------------------------------------------
def test_a_friend_helps_with_their_device_and_gets_the_cut_and_the_page(customer, friend):
    bargain = start(bargain_campaign(helps_needed=3), customer)
    bargain.refresh_from_db()
    device = uuid.uuid4()

    response = friend[1].post(
        f"{API}/bargains/{bargain.pk}/helps", headers={"X-Device-Id": str(device)}
    )

    assert response.status_code == 201, response.json()
    body = response.json()
    price = bargain.current_price - bargain.cuts[0]
    assert body["help"] == {"seq": 1, "cut": bargain.cuts[0], "price_after": price}
    view = body["bargain"]
    assert (view["has_helped"], view["is_initiator"], view["current_price"]) == (True, False, price)
    assert view["helps"][0]["nickname"] == "Lan"
    assert view["helps"][0]["avatar_url"] == "https://img.example/l.png"
    stored = BargainHelp.objects.get()
    assert (stored.helper, stored.device_id) == (friend[0], device)
    assert len(stored.ip_hash) == 64
    assert "device" not in str(view) and stored.ip_hash not in str(view)


def test_help_refusals_are_documented(shopper, customer, friend, client_for):
    made = bargain_campaign(helps_needed=2, helps_per_helper_per_day=1, helps_per_device_per_day=1)
    bargain = start(made, customer)
    url = f"{API}/bargains/{bargain.pk}/helps"
    device = {"X-Device-Id": str(uuid.uuid4())}

    assert_documented(shopper.post(url), "post", HELPS, 409, "cannot_help_own_bargain")
    assert friend[1].post(url, headers=device).status_code == 201
    assert_documented(friend[1].post(url), "post", HELPS, 409, "already_helped")
    assert_documented(
        friend[1].post(f"{API}/bargains/{start(made).pk}/helps"),
        "post",
        HELPS,
        409,
        "help_limit_reached",
    )
    other = client_for(QuickCustomerFactory().user)
    assert_documented(
        other.post(f"{API}/bargains/{start(made).pk}/helps", headers=device),
        "post",
        HELPS,
        409,
        "device_help_limit_reached",
    )
    assert other.post(url).status_code == 201  # the floor
    late = client_for(QuickCustomerFactory().user)
    assert_documented(late.post(url), "post", HELPS, 409, "bargain_closed")
    assert_documented(
        late.post(f"{API}/bargains/{bargain.pk + 1000}/helps"),
        "post",
        HELPS,
        404,
        "bargain_not_found",
    )
    veteran = QuickCustomerFactory()
    paid(veteran)
    for_new = start(bargain_campaign(helpers_must_be_new=True))
    assert_documented(
        client_for(veteran.user).post(f"{API}/bargains/{for_new.pk}/helps"),
        "post",
        HELPS,
        409,
        "helper_not_new",
    )


def test_a_malformed_device_id_is_refused_and_writes_nothing(friend):
    bargain = start(bargain_campaign())
    before = db_snapshot()

    for bad in ("not-a-uuid", "1234", "x" * 100):
        response = friend[1].post(
            f"{API}/bargains/{bargain.pk}/helps", headers={"X-Device-Id": bad}
        )
        assert_documented(response, "post", HELPS, 400, "invalid_device_id")

    assert db_snapshot() == before


def test_helps_from_one_ip_over_the_rate_are_refused(settings, customer, client_for):
    settings.BARGAIN_HELP_IP_RATE = "2/m"
    bargain = start(bargain_campaign(helps_needed=5), customer)
    url = f"{API}/bargains/{bargain.pk}/helps"
    friends = [client_for(QuickCustomerFactory().user) for _ in range(3)]

    assert [friends[i].post(url).status_code for i in range(2)] == [201, 201]
    before = db_snapshot()
    response = friends[2].post(url)

    assert_documented(response, "post", HELPS, 429, "rate_limited")
    assert int(response.headers["Retry-After"]) >= 1
    assert db_snapshot() == before


def test_a_retried_help_with_the_same_key_is_one_help(customer, friend):
    bargain = start(bargain_campaign(helps_needed=3), customer)
    url, headers = f"{API}/bargains/{bargain.pk}/helps", {"Idempotency-Key": "help-1"}

    first = friend[1].post(url, headers=headers)
    again = friend[1].post(url, headers=headers)

    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json() == first.json()
    assert BargainHelp.objects.count() == 1


# --- purchase -------------------------------------------------------------------------------------
def test_at_the_floor_the_initiator_buys_at_the_floor_price(shopper, customer, committed):
    made = bargain_campaign(price=1990, start_price=1990, floor_price=990, helps_needed=2)
    bargain = to_floor(start(made, customer))

    response = shopper.post(f"{API}/bargains/{bargain.pk}/purchase", json=pickup())

    assert response.status_code == 201, response.json()
    view, order = response.json()["bargain"], response.json()["order"]
    assert (order["source"], order["source_ref"], order["status"]) == (
        "bargain",
        bargain.pk,
        "pending_payment",
    )
    assert (order["total"], order["lines"][0]["unit_price"], order["coupons"]) == (990, 990, [])
    assert (view["order_id"], view["can_buy"], view["status"]) == (
        order["id"],
        False,
        "floor_reached",
    )

    committed(pay, Order.objects.get(pk=order["id"]))

    done = shopper.get(f"{API}/bargains/{bargain.pk}").json()
    assert (done["status"], done["seconds_left"], done["purchased_at"] is not None) == (
        "purchased",
        0,
        True,
    )


def test_purchase_refusals_are_documented(shopper, customer, friend):
    strict = start(bargain_campaign(helps_needed=2), customer)
    point = quick_pickup_point()

    def bought(bargain, client=shopper, **body):
        return client.post(f"{API}/bargains/{bargain.pk}/purchase", json=pickup(point, **body))

    assert_documented(bought(strict), "post", PURCHASE, 409, "bargain_not_at_floor")
    to_floor(strict)
    assert_documented(bought(strict, client=friend[1]), "post", PURCHASE, 404, "bargain_not_found")
    assert_documented(
        shopper.post(f"{API}/bargains/{strict.pk}/purchase", json={"delivery_mode": "courier"}),
        "post",
        PURCHASE,
        422,
        "address_required",
    )
    assert Order.objects.count() == 0
    first = bought(strict)
    assert first.status_code == 201
    pending = bought(strict)
    assert_documented(pending, "post", PURCHASE, 409, "bargain_order_pending")
    assert pending.json()["error"]["details"]["order_id"] == first.json()["order"]["id"]
    expired = start(bargain_campaign(), customer)
    Bargain.objects.filter(pk=expired.pk).update(status="expired", expired_at=timezone.now())
    assert_documented(bought(expired), "post", PURCHASE, 409, "bargain_closed")
    sold_out = to_floor(start(bargain_campaign(helps_needed=2, stock=0), customer))
    assert_documented(bought(sold_out), "post", PURCHASE, 409, "out_of_stock")


def test_strict_purchase_bodies_are_refused_and_write_nothing(shopper, customer):
    bargain = to_floor(start(bargain_campaign(helps_needed=2), customer))
    point = quick_pickup_point()
    url = f"{API}/bargains/{bargain.pk}/purchase"
    good = pickup(point)
    before = db_snapshot()

    for bad in (
        {"pickup_point_id": str(point.pk)},
        {"pickup_point_id": float(point.pk)},
        {"pickup_point_id": True},
        {"price": 1},
        {"sku_id": bargain.campaign.sku_id},
        {"quantity": 2},
        {"coupon_code": "TAKE10"},
        {"delivery_mode": "teleport"},
    ):
        assert code(shopper.post(url, json={**good, **bad})) == (422, "validation_error"), bad
    assert code(shopper.post(url, json={})) == (422, "validation_error")
    assert code(shopper.post(url, json=[good])) == (422, "invalid_body")
    assert code(
        shopper.client.post(
            url,
            "1",
            content_type="application/json",
            headers={"Authorization": f"Bearer {shopper.token}"},
        )
    ) == (422, "invalid_body")

    assert db_snapshot() == before
    assert shopper.post(url, json=good).status_code == 201


def test_a_retried_purchase_with_the_same_key_is_one_order(shopper, customer):
    bargain = to_floor(start(bargain_campaign(helps_needed=2), customer))
    url, body, headers = (
        f"{API}/bargains/{bargain.pk}/purchase",
        pickup(),
        {"Idempotency-Key": "buy-1"},
    )

    first = shopper.post(url, json=body, headers=headers)
    again = shopper.post(url, json=body, headers=headers)

    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json() == first.json()
    assert Order.objects.count() == 1


# --- my bargains, reads ---------------------------------------------------------------------------
def test_my_bargains_are_those_i_started_newest_first(shopper, customer):
    first = start(bargain_campaign(), customer)
    second = to_floor(start(bargain_campaign(helps_needed=2), customer))
    order = buy(second)
    start(bargain_campaign())  # someone else's

    mine = shopper.get(f"{API}/me/bargains").json()

    assert (mine["count"], [b["id"] for b in mine["items"]]) == (2, [second.pk, first.pk])
    top = mine["items"][0]
    assert {
        k: top[k] for k in ("campaign_id", "status", "current_price", "helps_left", "order_id")
    } == {
        "campaign_id": second.campaign_id,
        "status": "floor_reached",
        "current_price": 990,
        "helps_left": 0,
        "order_id": order.pk,
    }
    assert top["campaign_title"] == second.campaign.title and top["seconds_left"] > 0


def test_reading_twice_changes_nothing(shopper, customer, anon, operator):
    made = bargain_campaign(helps_needed=3)
    bargain = start(made, customer)
    helped(bargain)
    with_expiry_due = start(bargain_campaign(bargain_ttl_seconds=60), customer)
    Bargain.objects.filter(pk=with_expiry_due.pk).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    reads = [
        (anon, f"{API}/bargain-campaigns"),
        (anon, f"{API}/bargain-campaigns/{made.pk}"),
        (shopper, f"{API}/bargains/{bargain.pk}"),
        (shopper, f"{API}/bargains/{with_expiry_due.pk}"),
        (operator, f"{API}/bargains/{bargain.pk}"),
        (shopper, f"{API}/me/bargains"),
    ]
    before = db_snapshot()

    for client, url in reads * 2:
        assert client.get(url).status_code == 200, url

    assert db_snapshot() == before
    assert Bargain.objects.get(pk=with_expiry_due.pk).status == "active"  # only the sweep expires


def test_my_bargains_need_a_shopper(anon, operator):
    assert anon.get(f"{API}/me/bargains").status_code == 401
    assert_documented(
        operator.get(f"{API}/me/bargains"), "get", "/me/bargains", 403, "not_a_customer"
    )


def test_a_price_change_of_the_sku_never_raises_the_bargains_price(shopper, customer):
    made = bargain_campaign(price=1990, start_price=1990, floor_price=990, helps_needed=2)
    bargain = to_floor(start(made, customer))
    Sku.objects.filter(pk=made.sku_id).update(price=700)

    response = shopper.post(f"{API}/bargains/{bargain.pk}/purchase", json=pickup())

    assert response.json()["order"]["total"] == 700


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/bargain-campaigns"),
        ("get", "/bargain-campaigns/{bargain_campaign_id}"),
        ("post", START),
        ("get", DETAIL),
        ("post", HELPS),
        ("post", PURCHASE),
        ("get", "/me/bargains"),
    ],
)
def test_each_operation_shows_a_success_example_that_fits_its_response(method, path):
    operation = _operation(method, path)
    status = min((s for s in operation["responses"] if str(s).startswith("2")), key=str)
    media = operation["responses"][status]["content"]["application/json"]

    assert _conforms(media["example"], media["schema"], _document()) == []
