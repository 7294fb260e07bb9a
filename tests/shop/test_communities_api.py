from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission
from django.test import Client

from core.errors import Conflict
from core.models import Notification
from shop.models import Community, CommunityMembership, PickupPoint
from shop.services.communities import community_leave, community_set_leader
from tests.conftest import run_in_threads
from tests.factories import (
    CommunityFactory,
    CustomerFactory,
    PickupPointFactory,
    StaffFactory,
)

pytestmark = pytest.mark.django_db

COMMUNITIES = "/api/v1/communities"
STAFF = "/api/v1/staff"


def error_code(response) -> str:
    return response.json()["error"]["code"]


def staff_with(*codenames: str):
    user = StaffFactory(is_superuser=False)
    user.user_permissions.add(
        *Permission.objects.filter(content_type__app_label="shop", codename__in=codenames)
    )
    return user


# --- Public reads ----------------------------------------------------------------------------
def test_list_shows_active_communities_with_member_counts(anon):
    leader = CustomerFactory(nickname="Aunt Wang")
    busy = CommunityFactory(name="Busy", leader=leader)
    for _ in range(3):
        CommunityMembership.objects.create(community=busy, customer=CustomerFactory())
    quiet = CommunityFactory(name="Quiet", leader=None)
    CommunityFactory(name="Closed", is_active=False)

    response = anon.get(COMMUNITIES)

    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 2
    assert [(c["id"], c["members_count"]) for c in body["items"]] == [(busy.id, 3), (quiet.id, 0)]
    assert body["items"][0]["leader"] == {
        "id": leader.id,
        "nickname": "Aunt Wang",
        "avatar_url": "",
    }
    assert body["items"][1]["leader"] is None


def test_list_is_paginated(anon):
    communities = [CommunityFactory() for _ in range(3)]

    body = anon.get(COMMUNITIES, {"limit": 2, "offset": 2}).json()

    assert body["count"] == 3
    assert [c["id"] for c in body["items"]] == [communities[2].id]


def test_list_query_count_is_constant(anon, django_assert_max_num_queries):
    for _ in range(15):
        community = CommunityFactory()
        CommunityMembership.objects.create(community=community, customer=CustomerFactory())

    with django_assert_max_num_queries(2):
        response = anon.get(COMMUNITIES, {"limit": 15})

    assert len(response.json()["items"]) == 15


def test_detail_has_active_pickup_points_with_coordinates(anon):
    community = CommunityFactory()
    point = PickupPointFactory(
        community=community, latitude=Decimal("30.281420"), longitude=Decimal("120.130510")
    )
    PickupPointFactory(community=community, is_active=False)

    response = anon.get(f"{COMMUNITIES}/{community.id}")

    assert response.status_code == 200
    body = response.json()
    assert body["id"] == community.id
    assert body["pickup_points"] == [
        {
            "id": point.id,
            "community_id": community.id,
            "name": point.name,
            "address": "1 Market Street",
            "opening_hours": "Mon-Sun 09:00-21:00",
            "latitude": 30.28142,
            "longitude": 120.13051,
            "contact_phone": "",
            "is_active": True,
        }
    ]


def test_inactive_or_unknown_community_is_not_found(anon):
    closed = CommunityFactory(is_active=False)

    for community_id in (closed.id, 999999):
        response = anon.get(f"{COMMUNITIES}/{community_id}")
        assert response.status_code == 404
        assert error_code(response) == "community_not_found"


# --- Join and leave --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/api/v1/me/communities"),
        ("post", f"{COMMUNITIES}/1/join"),
        ("post", f"{COMMUNITIES}/1/leave"),
    ],
)
def test_membership_endpoints_need_a_login(anon, method, path):
    assert getattr(anon, method)(path).status_code == 401


def test_join_is_idempotent(shopper, customer):
    community = CommunityFactory()

    first = shopper.post(f"{COMMUNITIES}/{community.id}/join")
    again = shopper.post(f"{COMMUNITIES}/{community.id}/join")

    assert first.status_code == 201
    assert first.json()["created"] is True
    assert again.status_code == 200
    assert again.json()["created"] is False
    assert again.json()["joined_at"] == first.json()["joined_at"]
    assert CommunityMembership.objects.filter(community=community, customer=customer).count() == 1


def test_cannot_join_an_inactive_community(shopper):
    closed = CommunityFactory(is_active=False)

    response = shopper.post(f"{COMMUNITIES}/{closed.id}/join")

    assert response.status_code == 404
    assert not CommunityMembership.objects.filter(community=closed).exists()


def test_my_communities_lists_memberships_and_leadership(shopper, customer):
    led = CommunityFactory(leader=customer)
    CommunityMembership.objects.create(community=led, customer=customer)
    joined = CommunityFactory()
    shopper.post(f"{COMMUNITIES}/{joined.id}/join")
    CommunityFactory()  # not a member

    body = shopper.get("/api/v1/me/communities").json()

    assert body["count"] == 2
    assert [(c["id"], c["is_leader"]) for c in body["items"]] == [
        (joined.id, False),
        (led.id, True),
    ]
    assert all(c["joined_at"] for c in body["items"])


def test_leave_removes_the_membership_and_is_idempotent(shopper, customer):
    community = CommunityFactory()
    shopper.post(f"{COMMUNITIES}/{community.id}/join")

    first = shopper.post(f"{COMMUNITIES}/{community.id}/leave")
    again = shopper.post(f"{COMMUNITIES}/{community.id}/leave")

    assert (first.status_code, again.status_code) == (204, 204)
    assert not CommunityMembership.objects.filter(community=community, customer=customer).exists()
    assert shopper.get("/api/v1/me/communities").json()["count"] == 0


def test_the_leader_cannot_leave_their_community(shopper, customer):
    community = CommunityFactory(leader=customer)
    CommunityMembership.objects.create(community=community, customer=customer)

    response = shopper.post(f"{COMMUNITIES}/{community.id}/leave")

    assert response.status_code == 409
    assert error_code(response) == "leader_cannot_leave"
    assert CommunityMembership.objects.filter(community=community, customer=customer).exists()


def test_leaving_an_unknown_community_is_not_found(shopper):
    response = shopper.post(f"{COMMUNITIES}/999999/leave")

    assert response.status_code == 404
    assert error_code(response) == "community_not_found"


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_leaving_while_being_appointed_never_leaves_a_leader_outside():
    community = CommunityFactory(leader=None)
    customer = CustomerFactory()
    CommunityMembership.objects.create(community=community, customer=customer)

    def act(i: int):
        if i == 0:
            return community_set_leader(community_id=community.id, customer_id=customer.id)
        return community_leave(community_id=community.id, customer=customer)

    results = run_in_threads(2, act)

    community.refresh_from_db()
    is_member = CommunityMembership.objects.filter(community=community, customer=customer).exists()
    assert community.leader_id == customer.id
    assert is_member  # appointed after leaving: re-added; appointed first: leave refused
    assert all(r is True or isinstance(r, Community | Conflict) for r in results)


# --- Staff: permissions ----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("post", f"{STAFF}/communities", {"name": "X"}),
        ("patch", f"{STAFF}/communities/1", {"name": "X"}),
        ("post", f"{STAFF}/communities/1/leader", {"customer_id": 1}),
        ("post", f"{STAFF}/communities/1/pickup-points", {"name": "X", "address": "Y"}),
        ("patch", f"{STAFF}/pickup-points/1", {"name": "X"}),
    ],
)
def test_staff_endpoints_refuse_anonymous_shoppers_and_unpermitted_staff(
    anon, shopper, client_for, method, path, body
):
    unpermitted = client_for(StaffFactory(is_superuser=False))

    assert getattr(anon, method)(path, json=body).status_code == 401
    as_shopper = getattr(shopper, method)(path, json=body)
    assert as_shopper.status_code == 403
    assert error_code(as_shopper) == "staff_only"
    as_staff = getattr(unpermitted, method)(path, json=body)
    assert as_staff.status_code == 403
    assert error_code(as_staff) == "permission_denied"


def test_create_community_needs_add_permission_not_change(client_for):
    only_change = client_for(staff_with("change_community"))
    can_add = client_for(staff_with("add_community"))

    refused = only_change.post(f"{STAFF}/communities", json={"name": "Riverside"})
    created = can_add.post(f"{STAFF}/communities", json={"name": "Riverside"})

    assert refused.status_code == 403
    assert refused.json()["error"]["details"] == {"permission": "shop.add_community"}
    assert created.status_code == 201
    assert Community.objects.filter(name="Riverside").count() == 1


def test_pickup_point_endpoints_check_their_own_permissions(client_for):
    community = CommunityFactory()
    point = PickupPointFactory(community=community)
    community_only = client_for(staff_with("add_community", "change_community"))

    created = community_only.post(
        f"{STAFF}/communities/{community.id}/pickup-points", json={"name": "A", "address": "B"}
    )
    changed = community_only.patch(f"{STAFF}/pickup-points/{point.id}", json={"name": "C"})

    assert created.status_code == 403
    assert created.json()["error"]["details"] == {"permission": "shop.add_pickuppoint"}
    assert changed.status_code == 403
    assert changed.json()["error"]["details"] == {"permission": "shop.change_pickuppoint"}


# --- Staff: communities ----------------------------------------------------------------------
def test_operator_creates_a_community_with_a_leader(operator):
    leader = CustomerFactory()

    response = operator.post(
        f"{STAFF}/communities",
        json={
            "name": "  Riverside  ",
            "description": "By the river",
            "leader_customer_id": leader.id,
        },
    )

    assert response.status_code == 201
    body = response.json()
    assert body["name"] == "Riverside"
    assert body["leader"]["id"] == leader.id
    assert body["members_count"] == 1
    assert body["pickup_points"] == []
    assert CommunityMembership.objects.filter(community_id=body["id"], customer=leader).exists()


@pytest.mark.parametrize(
    "payload", [{"name": ""}, {"name": "   "}, {"name": "x" * 101}, {}, {"leader_customer_id": 0}]
)
def test_bad_community_payloads_are_refused(operator, payload):
    response = operator.post(f"{STAFF}/communities", json=payload)

    assert response.status_code == 422
    assert error_code(response) == "validation_error"
    assert not Community.objects.exists()


def test_creating_with_an_unknown_leader_creates_nothing(operator):
    response = operator.post(
        f"{STAFF}/communities", json={"name": "Riverside", "leader_customer_id": 999999}
    )

    assert response.status_code == 404
    assert error_code(response) == "customer_not_found"
    assert not Community.objects.exists()


def test_operator_updates_a_community(operator):
    community = CommunityFactory(name="Old", description="keep")

    response = operator.patch(
        f"{STAFF}/communities/{community.id}", json={"name": "New", "is_active": False}
    )

    assert response.status_code == 200
    community.refresh_from_db()
    assert (community.name, community.description, community.is_active) == ("New", "keep", False)


@pytest.mark.parametrize("payload", [{"name": ""}, {"name": None}, {"is_active": None}])
def test_community_update_refuses_empty_or_null_values(operator, payload):
    community = CommunityFactory(name="Old")

    response = operator.patch(f"{STAFF}/communities/{community.id}", json=payload)

    assert response.status_code == 422
    community.refresh_from_db()
    assert (community.name, community.is_active) == ("Old", True)


def test_updating_an_unknown_community_is_not_found(operator):
    response = operator.patch(f"{STAFF}/communities/999999", json={"name": "X"})

    assert response.status_code == 404
    assert error_code(response) == "community_not_found"


def test_appointing_a_leader_makes_them_a_member_and_notifies_them(operator):
    community = CommunityFactory(leader=None)
    previous = CustomerFactory()
    community_set_leader(community_id=community.id, customer_id=previous.id)
    leader = CustomerFactory()

    response = operator.post(
        f"{STAFF}/communities/{community.id}/leader", json={"customer_id": leader.id}
    )

    assert response.status_code == 200
    assert response.json()["leader"]["id"] == leader.id
    members = set(
        CommunityMembership.objects.filter(community=community).values_list("customer", flat=True)
    )
    assert members == {previous.id, leader.id}
    notification = Notification.objects.get(user=leader.user)
    assert notification.kind == "community_leader_appointed"
    assert notification.data == {"community_id": community.id}


def test_the_former_leader_may_leave_after_a_new_appointment(operator, shopper, customer):
    community = CommunityFactory(leader=None)
    community_set_leader(community_id=community.id, customer_id=customer.id)
    operator.post(
        f"{STAFF}/communities/{community.id}/leader", json={"customer_id": CustomerFactory().id}
    )

    response = shopper.post(f"{COMMUNITIES}/{community.id}/leave")

    assert response.status_code == 204


def test_the_leader_can_be_removed(operator):
    community = CommunityFactory()

    response = operator.post(
        f"{STAFF}/communities/{community.id}/leader", json={"customer_id": None}
    )

    assert response.status_code == 200
    assert response.json()["leader"] is None


def test_appointing_an_unknown_customer_is_not_found(operator):
    community = CommunityFactory()

    response = operator.post(
        f"{STAFF}/communities/{community.id}/leader", json={"customer_id": 999999}
    )

    assert response.status_code == 404
    assert error_code(response) == "customer_not_found"


def test_leader_changes_are_pushed_to_the_community_topic(
    operator, django_capture_on_commit_callbacks, monkeypatch
):
    pushed = []
    monkeypatch.setattr(
        "core.side_effects.push_now",
        lambda group, message, *args, **kwargs: pushed.append((group, message)),
    )
    community = CommunityFactory(leader=None)
    leader = CustomerFactory()

    with django_capture_on_commit_callbacks(execute=True):
        operator.post(f"{STAFF}/communities/{community.id}/leader", json={"customer_id": leader.id})

    assert (
        f"topic.community.{community.id}",
        {"type": "community.leader_changed", "community_id": community.id, "leader_id": leader.id},
    ) in pushed


# --- Staff: pickup points --------------------------------------------------------------------
def test_operator_adds_a_pickup_point(operator, anon):
    community = CommunityFactory()

    response = operator.post(
        f"{STAFF}/communities/{community.id}/pickup-points",
        json={
            "name": "Gate 2 store",
            "address": "88 Wensan Road",
            "opening_hours": "Mon-Sun 08:00-21:00",
            "latitude": 30.2814204,
            "longitude": -120.13051,
            "contact_phone": "0571-88880000",
        },
    )

    assert response.status_code == 201
    point = PickupPoint.objects.get(community=community)
    assert point.latitude == Decimal("30.281420")
    assert point.longitude == Decimal("-120.130510")
    assert response.json()["latitude"] == 30.28142
    shown = anon.get(f"{COMMUNITIES}/{community.id}").json()["pickup_points"]
    assert [p["name"] for p in shown] == ["Gate 2 store"]


@pytest.mark.parametrize(
    "change",
    [
        {"latitude": 90.5, "longitude": 0},
        {"latitude": -91, "longitude": 0},
        {"latitude": 0, "longitude": 180.01},
        {"latitude": 0, "longitude": -181},
        {"latitude": "north", "longitude": 0},
        {"name": ""},
        {"name": "  "},
        {"address": ""},
    ],
)
def test_bad_pickup_points_are_refused(operator, change):
    community = CommunityFactory()
    payload = {"name": "Gate 2", "address": "88 Wensan Road", **change}

    response = operator.post(f"{STAFF}/communities/{community.id}/pickup-points", json=payload)

    assert response.status_code == 422
    assert error_code(response) == "validation_error"
    assert not PickupPoint.objects.exists()


def test_coordinates_come_in_pairs(operator):
    community = CommunityFactory()

    response = operator.post(
        f"{STAFF}/communities/{community.id}/pickup-points",
        json={"name": "Gate 2", "address": "88 Wensan Road", "latitude": 30.1},
    )

    assert response.status_code == 422
    assert error_code(response) == "invalid_coordinates"
    assert not PickupPoint.objects.exists()


def test_operator_updates_a_pickup_point(operator):
    point = PickupPointFactory(latitude=Decimal("30.1"), longitude=Decimal("120.1"))

    response = operator.patch(
        f"{STAFF}/pickup-points/{point.id}",
        json={"opening_hours": "Daily 07:00-22:00", "latitude": -33.8688, "longitude": 151.2093},
    )

    assert response.status_code == 200
    point.refresh_from_db()
    assert point.opening_hours == "Daily 07:00-22:00"
    assert (point.latitude, point.longitude) == (Decimal("-33.868800"), Decimal("151.209300"))
    assert point.name.startswith("Pickup")


def test_pickup_point_coordinates_can_be_cleared_together_only(operator):
    point = PickupPointFactory(latitude=Decimal("30.1"), longitude=Decimal("120.1"))

    half = operator.patch(f"{STAFF}/pickup-points/{point.id}", json={"latitude": None})
    both = operator.patch(
        f"{STAFF}/pickup-points/{point.id}", json={"latitude": None, "longitude": None}
    )

    assert half.status_code == 422
    assert error_code(half) == "invalid_coordinates"
    assert both.status_code == 200
    point.refresh_from_db()
    assert (point.latitude, point.longitude) == (None, None)


@pytest.mark.parametrize(
    "payload", [{"latitude": 95, "longitude": 0}, {"name": ""}, {"is_active": None}]
)
def test_pickup_point_update_refuses_bad_values(operator, payload):
    point = PickupPointFactory()

    response = operator.patch(f"{STAFF}/pickup-points/{point.id}", json=payload)

    assert response.status_code == 422
    point.refresh_from_db()
    assert point.is_active is True and point.name.startswith("Pickup")


def test_unknown_pickup_point_or_community_is_not_found(operator):
    missing_point = operator.patch(f"{STAFF}/pickup-points/999999", json={"name": "X"})
    missing_community = operator.post(
        f"{STAFF}/communities/999999/pickup-points", json={"name": "X", "address": "Y"}
    )

    assert error_code(missing_point) == "pickup_point_not_found"
    assert error_code(missing_community) == "community_not_found"


# --- Admin -----------------------------------------------------------------------------------
def test_admin_refuses_bad_pickup_point_coordinates():
    admin_user = StaffFactory()
    admin_user.refresh_from_db()  # the factory's password is not saved; see test_customers_api
    client = Client()
    client.force_login(admin_user)
    community = CommunityFactory(leader=None, name="Hill")
    leader = CustomerFactory()

    response = client.post(
        f"/admin/shop/community/{community.id}/change/",
        {
            "name": "Hill",
            "description": "",
            "leader": leader.id,
            "is_active": "on",
            "pickup_points-TOTAL_FORMS": "1",
            "pickup_points-INITIAL_FORMS": "0",
            "pickup_points-MIN_NUM_FORMS": "0",
            "pickup_points-MAX_NUM_FORMS": "1000",
            "pickup_points-0-name": "Gate",
            "pickup_points-0-address": "1 Road",
            "pickup_points-0-latitude": "91",
            "pickup_points-0-longitude": "0",
            "pickup_points-0-is_active": "on",
        },
    )

    assert response.status_code == 200  # the form is shown again: bad latitude
    assert not PickupPoint.objects.exists()
    community.refresh_from_db()
    assert community.leader_id is None


def test_admin_saves_a_leader_and_makes_them_a_member():
    admin_user = StaffFactory()
    admin_user.refresh_from_db()
    client = Client()
    client.force_login(admin_user)
    community = CommunityFactory(leader=None, name="Hill")
    leader = CustomerFactory()

    response = client.post(
        f"/admin/shop/community/{community.id}/change/",
        {
            "name": "Hill",
            "description": "",
            "leader": leader.id,
            "is_active": "on",
            "pickup_points-TOTAL_FORMS": "0",
            "pickup_points-INITIAL_FORMS": "0",
            "pickup_points-MIN_NUM_FORMS": "0",
            "pickup_points-MAX_NUM_FORMS": "1000",
        },
    )

    assert response.status_code == 302
    community.refresh_from_db()
    assert community.leader_id == leader.id
    assert CommunityMembership.objects.filter(community=community, customer=leader).exists()
