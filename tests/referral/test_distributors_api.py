"""Distributors over HTTP: the programme, joining in every onboarding mode, my profile, my upline
and my downline (scoped to my own subtree, no customer data), and the staff endpoints (policy,
list, detail, audit trail, appoint, decisions, re-parent) with their permissions."""

import pytest
from django.contrib.auth.models import Permission

from referral.models import Distributor, DistributorEvent
from referral.services import distributors as services
from tests.conftest import ApiClient, token_for
from tests.core.utils import assert_error
from tests.factories import CustomerFactory, UserFactory
from tests.referral.factories import make_chain, make_distributor
from tests.referral.test_distributors import closure, expected_closure, link_click
from tests.shop.factories_orders import paid

pytestmark = pytest.mark.django_db

PREFIX = "/api/v1"
S = Distributor.Status
JOIN = {"display_name": "Mei's picks", "channels": ["wechat_group", "moments"], "note": "Hi"}
DOWNLINE_KEYS = {"id", "display_name", "kind", "status", "level", "joined_at", "downline_count"}


def me_client(distributor: Distributor) -> ApiClient:
    return ApiClient(token_for(distributor.customer.user))


def staff_with(*codenames: str) -> ApiClient:
    user = UserFactory(is_staff=True)
    user.user_permissions.add(
        *Permission.objects.filter(content_type__app_label="referral", codename__in=codenames)
    )
    return ApiClient(token_for(user))


# --- the programme and joining --------------------------------------------------------------------
def test_the_programme_tells_a_shopper_the_mode_and_where_they_stand(shopper, customer):
    assert shopper.get(f"{PREFIX}/referral/program").json() == {
        "onboarding": "application",
        "spend_threshold": 0,
        "spent": None,
        "distributor_id": None,
        "distributor_status": None,
        "can_join": True,
    }
    services.policy_update(actor=None, onboarding="spend_threshold", spend_threshold=5000)
    paid(customer)

    body = shopper.get(f"{PREFIX}/referral/program").json()

    assert (body["spent"], body["spend_threshold"], body["can_join"]) == (3980, 5000, False)


@pytest.mark.parametrize(
    ("mode", "status", "onboarding"),
    [
        ("everyone", "active", "joined"),
        ("application", "applied", "application"),
        ("spend_threshold", "active", "spend"),
    ],
)
def test_joining_through_the_api_in_each_open_mode(shopper, customer, mode, status, onboarding):
    services.policy_update(actor=None, onboarding=mode, spend_threshold=3000)
    paid(customer)

    response = shopper.post(f"{PREFIX}/referral/distributor", json=JOIN)

    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["status"], body["onboarding"], body["display_name"]) == (
        status,
        onboarding,
        "Mei's picks",
    )
    assert body["channels"] == ["wechat_group", "moments"]
    assert "customer_id" not in body
    assert shopper.get(f"{PREFIX}/referral/program").json()["distributor_status"] == status
    assert_error(
        shopper.post(f"{PREFIX}/referral/distributor", json=JOIN), 409, "already_distributor"
    )
    assert DistributorEvent.objects.filter(distributor_id=body["id"]).count() == 1


def test_joining_is_refused_when_closed_or_below_the_threshold(shopper, customer):
    services.policy_update(actor=None, onboarding="appointed")
    assert_error(
        shopper.post(f"{PREFIX}/referral/distributor", json=JOIN), 409, "onboarding_closed"
    )

    services.policy_update(actor=None, onboarding="spend_threshold", spend_threshold=5000)
    paid(customer)
    error = assert_error(
        shopper.post(f"{PREFIX}/referral/distributor", json=JOIN), 409, "spend_threshold_not_met"
    )

    assert error["details"] == {"spent": 3980, "threshold": 5000}
    assert not Distributor.objects.exists()


@pytest.mark.parametrize(
    "body",
    [
        {**JOIN, "fee": 0},
        {**JOIN, "channels": ["fax"]},
        {**JOIN, "channels": ["other"] * 9},
        {**JOIN, "display_name": ""},
        {"channels": []},
    ],
)
def test_a_join_body_is_strict(shopper, body):
    assert_error(shopper.post(f"{PREFIX}/referral/distributor", json=body), 422, "validation_error")
    assert not Distributor.objects.exists()


def test_a_duplicate_channel_is_refused_by_the_service(shopper):
    body = {**JOIN, "channels": ["moments", "moments"]}

    assert_error(
        shopper.post(f"{PREFIX}/referral/distributor", json=body),
        422,
        "distributor_profile_invalid",
    )


def test_the_upline_comes_from_the_last_link_through_the_api(shopper, customer):
    recruiter = make_distributor(display_name="Xiao Li")
    link_click(customer, recruiter)

    shopper.post(f"{PREFIX}/referral/distributor", json=JOIN)
    body = shopper.get(f"{PREFIX}/referral/distributor/me/upline").json()

    assert body == {
        "upline": {
            "id": recruiter.pk,
            "display_name": "Xiao Li",
            "kind": "koc",
            "joined_at": body["upline"]["joined_at"],
        },
        "depth": 1,
    }


# --- my profile, upline, downline -----------------------------------------------------------------
@pytest.mark.parametrize(
    "path",
    ["/me", "/me/upline", "/me/downline", "/me/downline/summary"],
)
def test_a_customer_who_never_joined_is_not_a_distributor(shopper, path):
    assert_error(shopper.get(f"{PREFIX}/referral/distributor{path}"), 404, "not_a_distributor")


def test_an_operator_without_a_shopper_profile_is_not_a_customer(operator):
    assert_error(operator.get(f"{PREFIX}/referral/program"), 403, "not_a_customer")


def test_anonymous_callers_must_log_in(anon):
    assert_error(anon.get(f"{PREFIX}/referral/distributor/me"), 401, "not_authenticated")


def test_i_read_and_change_my_profile():
    me = make_distributor(display_name="Mei")
    client = me_client(me)

    patched = client.patch(
        f"{PREFIX}/referral/distributor/me", json={"channels": ["douyin"], "display_name": None}
    )
    assert patched.status_code == 200, patched.content
    assert (patched.json()["display_name"], patched.json()["channels"]) == ("Mei", ["douyin"])
    assert client.get(f"{PREFIX}/referral/distributor/me").json()["channels"] == ["douyin"]
    assert_error(
        client.patch(f"{PREFIX}/referral/distributor/me", json={"status": "active"}),
        422,
        "validation_error",
    )
    assert DistributorEvent.objects.get(distributor=me).kind == "profile_updated"


def test_a_root_has_no_upline():
    root = make_distributor()

    assert me_client(root).get(f"{PREFIX}/referral/distributor/me/upline").json() == {
        "upline": None,
        "depth": 0,
    }


def _tree():
    """root -> a -> (a1, a2 -> a21); root -> b -> b1."""
    root = make_distributor()
    a = make_distributor(upline=root)
    b = make_distributor(upline=root)
    a1 = make_distributor(upline=a)
    a2 = make_distributor(upline=a, status=S.SUSPENDED)
    a21 = make_distributor(upline=a2)
    b1 = make_distributor(upline=b)
    return root, a, b, a1, a2, a21, b1


def test_my_downline_is_my_subtree_only_by_level_without_customer_data():
    root, a, b, a1, a2, a21, b1 = _tree()
    client = me_client(a)

    page = client.get(f"{PREFIX}/referral/distributor/me/downline").json()

    assert [(item["id"], item["level"]) for item in page["items"]] == [
        (a1.pk, 1),
        (a2.pk, 1),
        (a21.pk, 2),
    ]
    assert page["count"] == 3
    assert all(set(item) == DOWNLINE_KEYS for item in page["items"])
    by_id = {item["id"]: item for item in page["items"]}
    assert (by_id[a2.pk]["status"], by_id[a2.pk]["downline_count"]) == ("suspended", 1)
    assert by_id[a1.pk]["downline_count"] == 0
    seen = str(page)
    for other in (root, b, b1):
        assert other.pk not in by_id
    for d in (a1, a2, a21):
        assert d.customer.openid not in seen and d.customer.nickname not in seen
    level2 = client.get(f"{PREFIX}/referral/distributor/me/downline", {"level": 2}).json()
    assert [item["id"] for item in level2["items"]] == [a21.pk]
    assert me_client(a21).get(f"{PREFIX}/referral/distributor/me/downline").json()["count"] == 0
    small = client.get(f"{PREFIX}/referral/distributor/me/downline", {"limit": 1, "offset": 1})
    assert [item["id"] for item in small.json()["items"]] == [a2.pk]


def test_a_downline_member_never_sees_their_uplines_other_downline():
    _root, _a, b, _a1, _a2, _a21, b1 = _tree()

    page = me_client(b).get(f"{PREFIX}/referral/distributor/me/downline").json()

    assert [item["id"] for item in page["items"]] == [b1.pk]
    assert me_client(b1).get(f"{PREFIX}/referral/distributor/me/downline").json()["items"] == []


def test_my_downline_summary_counts_each_level():
    root, *_ = _tree()

    assert me_client(root).get(f"{PREFIX}/referral/distributor/me/downline/summary").json() == {
        "total": 6,
        "levels": [{"level": 1, "count": 2}, {"level": 2, "count": 3}, {"level": 3, "count": 1}],
    }


def test_the_downline_level_is_bounded(shopper):
    me = make_distributor()

    response = me_client(me).get(f"{PREFIX}/referral/distributor/me/downline", {"level": 0})

    assert_error(response, 422, "validation_error")


# --- staff: policy --------------------------------------------------------------------------------
def test_staff_read_and_set_the_policy_with_its_history(operator, staff):
    body = {"onboarding": "spend_threshold", "spend_threshold": 8800, "recruit": "first_click"}

    response = operator.put(f"{PREFIX}/staff/referral/policy", json=body)

    assert response.status_code == 200, response.content
    got = operator.get(f"{PREFIX}/staff/referral/policy").json()
    assert {k: got[k] for k in body} == body
    assert got["history"][0]["by"] == staff.pk
    assert got["history"][0]["changes"] == {
        "onboarding": ["application", "spend_threshold"],
        "spend_threshold": [0, 8800],
        "recruit": ["last_click", "first_click"],
    }


@pytest.mark.parametrize(
    "body",
    [
        {"onboarding": "everyone", "spend_threshold": 0},
        {"onboarding": "everyone", "spend_threshold": "0", "recruit": "none"},
        {"onboarding": "everyone", "spend_threshold": -1, "recruit": "none"},
        {"onboarding": "paid", "spend_threshold": 0, "recruit": "none"},
        {"onboarding": "everyone", "spend_threshold": 0, "recruit": "none", "entry_fee": 100},
    ],
)
def test_an_invalid_policy_body_is_refused(operator, body):
    assert_error(
        operator.put(f"{PREFIX}/staff/referral/policy", json=body), 422, "validation_error"
    )
    assert services.policy_get().history == []


# --- staff: distributors --------------------------------------------------------------------------
def test_staff_list_filter_and_read_a_distributor_with_its_tree_and_events(operator):
    root, a, b, _a1, a2, _a21, _b1 = _tree()
    Distributor.objects.filter(pk=b.pk).update(display_name="Lobby Lan")
    services.distributor_suspend(distributor_id=a.pk, actor=None, reason="Spam")

    suspended = operator.get(f"{PREFIX}/staff/referral/distributors", {"status": "suspended"})
    named = operator.get(f"{PREFIX}/staff/referral/distributors", {"q": "lobby"})
    detail = operator.get(f"{PREFIX}/staff/referral/distributors/{a.pk}").json()
    trail = operator.get(f"{PREFIX}/staff/referral/distributors/{a.pk}/events").json()

    assert [d["id"] for d in suspended.json()["items"]] == [a2.pk, a.pk]
    assert [d["id"] for d in named.json()["items"]] == [b.pk]
    assert named.json()["items"][0]["customer_id"] == b.customer_id
    assert detail["upline"]["id"] == root.pk
    assert detail["depth"] == 1
    assert detail["downline"] == {
        "total": 3,
        "levels": [{"level": 1, "count": 2}, {"level": 2, "count": 1}],
    }
    assert [e["kind"] for e in detail["recent_events"]] == ["suspended"]
    assert [(e["kind"], e["reason"]) for e in trail["items"]] == [("suspended", "Spam")]
    assert_error(
        operator.get(f"{PREFIX}/staff/referral/distributors/999999"), 404, "distributor_not_found"
    )
    assert_error(
        operator.get(f"{PREFIX}/staff/referral/distributors/999999/events"),
        404,
        "distributor_not_found",
    )


def test_staff_appoint_then_decide_through_the_api(operator, staff):
    customer = CustomerFactory()
    upline = make_distributor()
    body = {
        "customer_id": customer.pk,
        "display_name": "Lobby promoter",
        "kind": "kos",
        "upline_id": upline.pk,
        "reason": "Store staff",
    }

    made = operator.post(f"{PREFIX}/staff/referral/distributors", json=body)
    assert made.status_code == 201, made.content
    ident = made.json()["id"]
    url = f"{PREFIX}/staff/referral/distributors/{ident}"
    assert_error(
        operator.post(f"{PREFIX}/staff/referral/distributors", json=body),
        409,
        "already_distributor",
    )
    assert_error(operator.post(f"{url}/approve", json={}), 409, "illegal_transition")
    assert_error(operator.post(f"{url}/suspend", json={}), 422, "validation_error")
    assert_error(operator.post(f"{url}/suspend", json={"reason": "  "}), 422, "validation_error")
    suspended = operator.post(f"{url}/suspend", json={"reason": "Spam"})
    reinstated = operator.post(f"{url}/reinstate", json={"reason": "Appeal"})

    assert (made.json()["kind"], made.json()["upline_id"]) == ("kos", upline.pk)
    assert suspended.json()["status"] == "suspended"
    assert reinstated.json()["status"] == "active"
    assert list(
        DistributorEvent.objects.filter(distributor_id=ident)
        .order_by("id")
        .values_list("kind", "actor_id", "reason")
    ) == [
        ("appointed", staff.pk, "Store staff"),
        ("suspended", staff.pk, "Spam"),
        ("reinstated", staff.pk, "Appeal"),
    ]
    body_unknown = {**body, "customer_id": 999_999}
    assert_error(
        operator.post(f"{PREFIX}/staff/referral/distributors", json=body_unknown),
        404,
        "customer_not_found",
    )


def test_staff_approve_and_reject_applications(operator):
    first, second = make_distributor(status=S.APPLIED), make_distributor(status=S.APPLIED)
    url = f"{PREFIX}/staff/referral/distributors"

    approved = operator.post(f"{url}/{first.pk}/approve", json={"reason": ""})
    assert_error(
        operator.post(f"{url}/{second.pk}/reject", json={"reason": ""}), 422, "validation_error"
    )
    rejected = operator.post(f"{url}/{second.pk}/reject", json={"reason": "No group yet"})

    assert (approved.json()["status"], approved.json()["joined_at"] is not None) == ("active", True)
    assert (rejected.json()["status"], rejected.json()["decision_reason"]) == (
        "rejected",
        "No group yet",
    )
    assert_error(operator.post(f"{url}/999999/approve", json={}), 404, "distributor_not_found")


def test_staff_reparent_and_refuse_cycles_through_the_api(operator):
    a, b, c = make_chain(3)
    other = make_distributor()
    url = f"{PREFIX}/staff/referral/distributors"
    before = closure()

    cycle = operator.post(f"{url}/{a.pk}/reparent", json={"upline_id": c.pk, "reason": "Try"})
    assert_error(cycle, 409, "referral_cycle")
    assert closure() == before
    moved = operator.post(f"{url}/{b.pk}/reparent", json={"upline_id": other.pk, "reason": "Fix"})
    rooted = operator.post(f"{url}/{other.pk}/reparent", json={"upline_id": None, "reason": "x"})

    assert (moved.json()["upline_id"], moved.json()["depth"]) == (other.pk, 1)
    assert rooted.status_code == 200
    assert closure() == expected_closure()
    assert_error(
        operator.post(f"{url}/{b.pk}/reparent", json={"upline_id": 999_999, "reason": "x"}),
        404,
        "distributor_not_found",
    )
    assert_error(
        operator.post(f"{url}/{b.pk}/reparent", json={"upline_id": None, "reason": ""}),
        422,
        "validation_error",
    )
    assert_error(
        operator.post(f"{url}/{b.pk}/reparent", json={"upline_id": "1", "reason": "x"}),
        422,
        "validation_error",
    )


# --- staff: permissions ---------------------------------------------------------------------------
def _staff_calls(distributor_id: int, customer_id: int) -> list[tuple[str, str, dict | None, str]]:
    url = f"{PREFIX}/staff/referral/distributors"
    return [
        ("get", f"{PREFIX}/staff/referral/policy", None, "view_referralpolicy"),
        (
            "put",
            f"{PREFIX}/staff/referral/policy",
            {"onboarding": "everyone", "spend_threshold": 0, "recruit": "none"},
            "change_referralpolicy",
        ),
        ("get", url, None, "view_distributor"),
        ("get", f"{url}/{distributor_id}", None, "view_distributor"),
        ("get", f"{url}/{distributor_id}/events", None, "view_distributor"),
        ("post", url, {"customer_id": customer_id, "display_name": "X"}, "change_distributor"),
        ("post", f"{url}/{distributor_id}/approve", {"reason": ""}, "change_distributor"),
        ("post", f"{url}/{distributor_id}/reject", {"reason": "x"}, "change_distributor"),
        ("post", f"{url}/{distributor_id}/suspend", {"reason": "x"}, "change_distributor"),
        ("post", f"{url}/{distributor_id}/reinstate", {"reason": ""}, "change_distributor"),
        (
            "post",
            f"{url}/{distributor_id}/reparent",
            {"upline_id": None, "reason": "x"},
            "change_distributor",
        ),
    ]


def _call(client: ApiClient, method: str, path: str, body):
    return getattr(client, method)(path) if body is None else getattr(client, method)(path, body)


def test_every_staff_endpoint_needs_its_permission(shopper):
    target = make_distributor(status=S.APPLIED)
    customer = CustomerFactory()
    nobody = staff_with()

    for method, path, body, codename in _staff_calls(target.pk, customer.pk):
        error = assert_error(_call(nobody, method, path, body), 403, "permission_denied")
        assert error["details"] == {"permission": f"referral.{codename}"}
        assert_error(_call(shopper, method, path, body), 403, "staff_only")
        assert_error(_call(ApiClient(), method, path, body), 401, "not_authenticated")
    assert Distributor.objects.get(pk=target.pk).status == S.APPLIED
    assert not Distributor.objects.filter(customer=customer).exists()
    assert not DistributorEvent.objects.exists()


def test_a_viewer_may_look_but_not_change():
    target = make_distributor(status=S.APPLIED)
    viewer = staff_with("view_distributor")

    assert viewer.get(f"{PREFIX}/staff/referral/distributors/{target.pk}").status_code == 200
    assert_error(
        viewer.post(f"{PREFIX}/staff/referral/distributors/{target.pk}/approve", json={}),
        403,
        "permission_denied",
    )
    changer = staff_with("change_distributor")
    approved = changer.post(f"{PREFIX}/staff/referral/distributors/{target.pk}/approve", json={})
    assert approved.json()["status"] == "active"
