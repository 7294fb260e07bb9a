"""Group-buy over HTTP: the public campaign reads, opening and joining groups, a group's share
page and my groups (through the Django test client, on PostgreSQL)."""

from datetime import timedelta

import pytest
from django.utils import timezone

from groupbuy.models import Group, GroupCampaign, GroupSeat
from shop.models import Order
from shop.services.orders import order_cancel
from tests.db_snapshot import db_snapshot
from tests.groupbuy.factories import campaign, join, open_group, sku_of
from tests.shop.factories_orders import QuickCustomerFactory, pay, quick_pickup_point
from tests.test_openapi_errors import assert_documented

pytestmark = pytest.mark.django_db

API = "/api/v1"


def body(made: GroupCampaign, point=None, **extra):
    return {
        "sku_id": sku_of(made),
        "quantity": 1,
        "delivery_mode": "pickup",
        "pickup_point_id": (point or quick_pickup_point()).pk,
        **extra,
    }


def open_over_http(client, made, point=None, **extra):
    return client.post(f"{API}/group-campaigns/{made.pk}/groups", json=body(made, point, **extra))


# --- public campaign reads ------------------------------------------------------------------------
def test_the_campaign_list_is_public_running_only_soonest_ending_first(anon):
    later = campaign(lasts=timedelta(days=7), price=1990, group_price=990, leader_price=890)
    sooner = campaign(lasts=timedelta(days=2), leader_price=None, join_mode="community")
    campaign(status=GroupCampaign.Status.DRAFT)
    campaign(status=GroupCampaign.Status.ENDED)
    campaign(starts_in=timedelta(hours=1))  # not started
    campaign(starts_in=timedelta(days=-3), lasts=timedelta(days=1))  # over

    response = anon.get(f"{API}/group-campaigns")

    assert response.status_code == 200
    page = response.json()
    assert (page["count"], [c["id"] for c in page["items"]]) == (2, [sooner.pk, later.pk])
    second = page["items"][1]
    assert second["product"] == {"id": later.product_id, "title": later.product.title}
    assert {
        k: second[k]
        for k in ("group_size", "group_ttl_seconds", "join_mode", "auto_complete", "status")
    } == {
        "group_size": 2,
        "group_ttl_seconds": 86400,
        "join_mode": "share_token",
        "auto_complete": False,
        "status": "active",
    }
    assert second["auto_complete_min_fill_bps"] == 10000
    [sku] = second["skus"]
    offer = later.skus.select_related("sku").get()
    assert sku == {
        "sku_id": offer.sku_id,
        "sku_code": offer.sku.code,
        "list_price": 1990,
        "group_price": 990,
        "leader_price": 890,
    }
    assert page["items"][0]["skus"][0]["leader_price"] is None
    assert anon.get(f"{API}/group-campaigns", {"limit": 1}).json()["items"][0]["id"] == sooner.pk


def test_a_campaign_detail_is_public_and_draft_or_unknown_ones_are_not_found(anon):
    ended = campaign(status=GroupCampaign.Status.ENDED)
    draft = campaign(status=GroupCampaign.Status.DRAFT)

    shown = anon.get(f"{API}/group-campaigns/{ended.pk}")

    assert shown.status_code == 200
    assert (shown.json()["status"], shown.json()["open_groups"]) == ("ended", [])
    path = "/group-campaigns/{campaign_id}"
    for missing in (draft.pk, draft.pk + 1000):
        response = anon.get(f"{API}/group-campaigns/{missing}")
        assert_documented(response, "get", path, 404, "campaign_not_found")


def test_a_community_campaign_lists_the_joinable_groups_of_the_viewers_community(anon):
    made = campaign(size=3, join_mode=GroupCampaign.JoinMode.COMMUNITY)
    point, elsewhere = quick_pickup_point(), quick_pickup_point()
    leader = QuickCustomerFactory(nickname="Ming")
    first, _ = open_group(made, leader, point=point)
    full, _ = open_group(made, point=point)
    join(full, point=point)
    join(full, point=point)
    open_group(made, point=elsewhere)  # another community
    token_only, _ = open_group(campaign(size=3), point=point)

    mine = anon.get(f"{API}/group-campaigns/{made.pk}", {"community_id": point.community_id})
    nobody = anon.get(f"{API}/group-campaigns/{made.pk}")
    other_mode = anon.get(
        f"{API}/group-campaigns/{token_only.campaign_id}", {"community_id": point.community_id}
    )

    assert mine.status_code == 200
    [brief] = mine.json()["open_groups"]
    assert {k: brief[k] for k in ("id", "seats_left", "leader_nickname")} == {
        "id": first.pk,
        "seats_left": 2,
        "leader_nickname": "Ming",
    }
    assert nobody.json()["open_groups"] == []
    assert other_mode.json()["open_groups"] == []


# --- open -----------------------------------------------------------------------------------------
def test_opening_a_group_answers_201_with_the_group_and_a_held_order_at_the_leader_price(
    shopper, customer
):
    made = campaign(size=2, price=1990, group_price=990, leader_price=890)

    response = open_over_http(shopper, made)

    assert response.status_code == 201, response.json()
    group, order = response.json()["group"], response.json()["order"]
    assert (order["source"], order["fulfilment_held"], order["status"]) == (
        "group_buy",
        True,
        "pending_payment",
    )
    assert (order["total"], order["lines"][0]["unit_price"], order["source_ref"]) == (
        890,
        890,
        group["id"],
    )
    assert (group["status"], group["size"], group["held_seats"], group["seats_left"]) == (
        "open",
        2,
        1,
        1,
    )
    assert group["members"] == [
        {
            "nickname": customer.nickname,
            "avatar_url": customer.avatar_url,
            "is_leader": True,
            "paid": False,
        }
    ]
    row = Group.objects.get()
    assert (group["share_token"], group["is_member"]) == (row.share_token, True)
    assert 86390 <= group["seconds_left"] <= 86400


def test_opening_refusals_are_documented(shopper):
    path = "/group-campaigns/{campaign_id}/groups"
    made = campaign(max_quantity_per_order=2)
    draft = campaign(status=GroupCampaign.Status.DRAFT)
    sold_out = campaign(stock=0)

    cases = [
        (open_over_http(shopper, made, quantity=3), 422, "quantity_over_limit"),
        (open_over_http(shopper, draft), 409, "campaign_not_active"),
        (open_over_http(shopper, sold_out), 409, "out_of_stock"),
        (open_over_http(shopper, made, sku_id=sku_of(draft)), 404, "campaign_sku_not_found"),
        (
            shopper.post(f"{API}/group-campaigns/{made.pk + 1000}/groups", json=body(made)),
            404,
            "campaign_not_found",
        ),
        (
            open_over_http(shopper, made, delivery_mode="courier", pickup_point_id=None),
            422,
            "address_required",
        ),
    ]
    for response, status, code in cases:
        assert_documented(response, "post", path, status, code)
    assert Group.objects.count() == 0
    assert open_over_http(shopper, made).status_code == 201
    assert_documented(open_over_http(shopper, made), "post", path, 409, "too_many_open_groups")


def test_opening_needs_a_shopper(anon, operator):
    made = campaign()

    assert open_over_http(anon, made).status_code == 401
    assert_documented(
        open_over_http(operator, made),
        "post",
        "/group-campaigns/{campaign_id}/groups",
        403,
        "not_a_customer",
    )
    assert Group.objects.count() == 0


def test_strict_input_is_refused_and_writes_nothing(shopper):
    made = campaign()
    good = body(made)
    url = f"{API}/group-campaigns/{made.pk}/groups"
    before = db_snapshot()

    for bad in (
        {"quantity": "1"},
        {"quantity": 1.0},
        {"sku_id": str(sku_of(made))},
        {"coupon_ids": []},
        {"note": "hi"},
    ):
        response = shopper.post(url, json={**good, **bad})
        assert (response.status_code, response.json()["error"]["code"]) == (
            422,
            "validation_error",
        ), bad

    assert db_snapshot() == before
    assert shopper.post(url, json=good).status_code == 201


def test_a_retried_open_with_the_same_key_is_one_group_and_one_order(shopper):
    made = campaign()
    request = body(made)
    headers = {"Idempotency-Key": "open-1"}
    url = f"{API}/group-campaigns/{made.pk}/groups"

    first = shopper.post(url, json=request, headers=headers)
    again = shopper.post(url, json=request, headers=headers)

    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert (Group.objects.count(), Order.objects.count(), GroupSeat.objects.count()) == (1, 1, 1)


# --- join -----------------------------------------------------------------------------------------
def test_another_shopper_joins_by_token_and_the_share_token_is_for_members_only(
    shopper, client_for
):
    made = campaign(size=3, group_price=990, leader_price=890)
    group = open_over_http(shopper, made).json()["group"]
    member = QuickCustomerFactory(nickname="Lan")
    other = client_for(member.user)
    token = group["share_token"]

    before_join = other.get(f"{API}/groups/by-token/{token}").json()
    response = other.post(f"{API}/groups/by-token/{token}/join", json=body(made))

    assert (before_join["is_member"], before_join["share_token"]) == (False, None)
    assert response.status_code == 201, response.json()
    joined, order = response.json()["group"], response.json()["order"]
    assert (order["total"], order["source"], order["fulfilment_held"]) == (990, "group_buy", True)
    assert (joined["held_seats"], joined["seats_left"], joined["share_token"]) == (2, 1, token)
    assert [(m["nickname"], m["is_leader"]) for m in joined["members"]][1] == ("Lan", False)
    stranger = client_for(QuickCustomerFactory().user)
    seen = stranger.get(f"{API}/groups/{group['id']}").json()
    assert (seen["share_token"], seen["is_member"], len(seen["members"])) == (None, False, 2)
    assert shopper.get(f"{API}/groups/{group['id']}").json()["share_token"] == token


def test_joining_twice_or_a_full_group_is_refused(shopper, customer, client_for):
    made = campaign(size=2)
    group, _ = open_group(made)
    url = f"{API}/groups/by-token/{group.share_token}/join"
    path = "/groups/by-token/{share_token}/join"

    assert shopper.post(url, json=body(made)).status_code == 201
    assert_documented(shopper.post(url, json=body(made)), "post", path, 409, "already_joined")
    late = client_for(QuickCustomerFactory().user)
    assert_documented(late.post(url, json=body(made)), "post", path, 409, "group_full")
    assert GroupSeat.objects.filter(group=group).count() == 2


def test_joining_by_id_follows_the_join_mode(shopper):
    point = quick_pickup_point()
    token_only, _ = open_group(campaign(size=3), point=point)
    community, _ = open_group(
        campaign(size=3, join_mode=GroupCampaign.JoinMode.COMMUNITY), point=point
    )
    path = "/groups/{group_id}/join"

    refused = shopper.post(
        f"{API}/groups/{token_only.pk}/join", json=body(token_only.campaign, point)
    )
    missing = shopper.post(
        f"{API}/groups/{community.pk + 1000}/join", json=body(community.campaign, point)
    )
    joined = shopper.post(f"{API}/groups/{community.pk}/join", json=body(community.campaign, point))

    assert_documented(refused, "post", path, 409, "group_not_joinable")
    assert_documented(missing, "post", path, 404, "group_not_found")
    assert joined.status_code == 201, joined.json()
    assert joined.json()["group"]["id"] == community.pk


def test_a_closed_group_and_an_unknown_token_are_documented(shopper):
    group, _ = open_group(campaign(size=3))
    Group.objects.filter(pk=group.pk).update(status="failed", failed_at=timezone.now())
    path = "/groups/by-token/{share_token}/join"

    closed = shopper.post(
        f"{API}/groups/by-token/{group.share_token}/join", json=body(group.campaign)
    )
    unknown = shopper.post(f"{API}/groups/by-token/no-such-token/join", json=body(group.campaign))

    assert_documented(closed, "post", path, 409, "group_closed")
    assert_documented(unknown, "post", path, 404, "group_not_found")
    assert_documented(
        shopper.get(f"{API}/groups/by-token/no-such-token"),
        "get",
        "/groups/by-token/{share_token}",
        404,
        "group_not_found",
    )
    assert_documented(
        shopper.get(f"{API}/groups/{group.pk + 1000}"),
        "get",
        "/groups/{group_id}",
        404,
        "group_not_found",
    )


def test_a_retried_join_with_the_same_key_is_one_seat(shopper):
    made = campaign(size=3)
    group, _ = open_group(made)
    url = f"{API}/groups/by-token/{group.share_token}/join"
    request, headers = body(made), {"Idempotency-Key": "join-1"}

    first = shopper.post(url, json=request, headers=headers)
    again = shopper.post(url, json=request, headers=headers)

    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert (Order.objects.count(), GroupSeat.objects.filter(group=group).count()) == (2, 2)


def test_a_retried_join_by_id_with_the_same_key_is_one_seat(shopper):
    point = quick_pickup_point()
    made = campaign(size=3, join_mode=GroupCampaign.JoinMode.COMMUNITY)
    group, _ = open_group(made, point=point)
    url = f"{API}/groups/{group.pk}/join"
    request, headers = body(made, point), {"Idempotency-Key": "join-by-id-1"}

    first = shopper.post(url, json=request, headers=headers)
    again = shopper.post(url, json=request, headers=headers)

    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json() == first.json()
    assert GroupSeat.objects.filter(group=group).count() == 2


# --- paid: succeeded; reads -----------------------------------------------------------------------
def test_when_every_seat_is_paid_the_group_succeeds_and_my_groups_list_it(
    shopper, customer, committed
):
    made = campaign(size=2)
    opened = open_over_http(shopper, made).json()
    member_group, member_order = join(Group.objects.get(pk=opened["group"]["id"]))
    leader_order = Order.objects.get(pk=opened["order"]["id"])

    committed(pay, leader_order)
    committed(pay, member_order)

    detail = shopper.get(f"{API}/groups/{member_group.pk}").json()
    assert (detail["status"], detail["paid_seats"], detail["held_seats"]) == ("succeeded", 2, 0)
    assert (detail["seats_left"], detail["seconds_left"], detail["disclosure"]) == (0, 0, None)
    assert detail["succeeded_at"] is not None
    assert [m["paid"] for m in detail["members"]] == [True, True]
    for order in (leader_order, member_order):
        order.refresh_from_db()
        assert (order.fulfilment_held, bool(order.pickup_code)) == (False, True)
    assert shopper.get(f"{API}/orders/{leader_order.pk}").json()["fulfilment_held"] is False
    mine = shopper.get(f"{API}/me/groups").json()
    assert mine["count"] == 1
    assert mine["items"][0] == {
        "id": member_group.pk,
        "campaign_id": made.pk,
        "campaign_title": made.title,
        "status": "succeeded",
        "size": 2,
        "seats_left": 0,
        "expires_at": mine["items"][0]["expires_at"],
        "leader_nickname": customer.nickname,
        "seat_status": "paid",
        "is_leader": True,
        "order_id": leader_order.pk,
    }


def test_my_groups_are_newest_first_and_leave_out_released_seats(shopper, customer, committed):
    first, _ = open_group(campaign(size=3))
    join(first, customer)
    second, _ = open_group(campaign(size=3))
    _, cancelled = join(second, customer)
    third, _ = open_group(campaign(size=3))
    join(third, customer)

    committed(order_cancel, order_id=cancelled.pk, customer=customer)

    mine = shopper.get(f"{API}/me/groups").json()
    assert [g["id"] for g in mine["items"]] == [third.pk, first.pk]
    assert {g["seat_status"] for g in mine["items"]} == {"held"}


def test_an_auto_completed_group_discloses_its_waived_seats(shopper):
    group, _ = open_group(campaign(size=3))
    Group.objects.filter(pk=group.pk).update(
        status="succeeded",
        succeeded_at=timezone.now(),
        held_seats=0,
        paid_seats=2,
        auto_completed=True,
        waived_seats=1,
    )

    detail = shopper.get(f"{API}/groups/{group.pk}").json()

    assert (detail["auto_completed"], detail["waived_seats"]) == (True, 1)
    assert "2 of 3" in detail["disclosure"] and "1 seat(s) were waived" in detail["disclosure"]


def test_reading_twice_changes_nothing(shopper, anon):
    made = campaign(size=3, join_mode=GroupCampaign.JoinMode.COMMUNITY)
    point = quick_pickup_point()
    group, _ = open_group(made, point=point)
    reads = [
        (anon, f"{API}/group-campaigns", {}),
        (anon, f"{API}/group-campaigns/{made.pk}", {"community_id": point.community_id}),
        (shopper, f"{API}/groups/{group.pk}", {}),
        (shopper, f"{API}/groups/by-token/{group.share_token}", {}),
        (shopper, f"{API}/me/groups", {}),
    ]
    before = db_snapshot()

    for client, url, params in reads * 2:
        assert client.get(url, params).status_code == 200, url

    assert db_snapshot() == before


def test_reading_a_group_needs_a_login(anon):
    group, _ = open_group(campaign())

    assert anon.get(f"{API}/groups/{group.pk}").status_code == 401
    assert anon.get(f"{API}/groups/by-token/{group.share_token}").status_code == 401
    assert anon.get(f"{API}/me/groups").status_code == 401
