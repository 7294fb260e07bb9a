"""The operators' fraud flag API: list (filters, newest first), detail, review transitions, and
who may do what."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.utils import timezone

from core import outbox
from core.models import OutboxEvent
from referral import events
from referral.models import FraudFlag
from tests.conftest import ApiClient, token_for
from tests.core.utils import assert_error
from tests.factories import UserFactory
from tests.referral.factories import make_distributor
from tests.referral.test_fraud import attribute, open_flag
from tests.shop.factories_orders import paid

pytestmark = pytest.mark.django_db

BASE = "/api/v1/staff/referral/fraud-flags"


def _noticed(**payload):
    """Subscribed so that ``fraud_flag_changed`` is recorded."""


@pytest.fixture
def announced():
    outbox.subscribe(events.FRAUD_FLAG_CHANGED, _noticed)
    yield lambda: list(
        OutboxEvent.objects.filter(name=events.FRAUD_FLAG_CHANGED)
        .order_by("id")
        .values_list("payload", flat=True)
    )
    outbox.unsubscribe(events.FRAUD_FLAG_CHANGED, _noticed)


def clerk(*codenames: str) -> ApiClient:
    """A staff user (not a superuser) with exactly these referral permissions."""
    user = UserFactory(is_staff=True)
    for codename in codenames:
        user.user_permissions.add(
            Permission.objects.get(content_type__app_label="referral", codename=codename)
        )
    return ApiClient(token_for(user))


def ids(response) -> list[int]:
    assert response.status_code == 200, response.content
    return [item["id"] for item in response.json()["items"]]


def test_the_list_is_newest_first_and_filtered(operator):
    # given
    ming, li = make_distributor(display_name="Ming"), make_distributor(display_name="Li")
    old = open_flag(key="old", distributor=ming)
    cleared = open_flag(key="cleared", distributor=ming, status=FraudFlag.Status.CLEARED)
    cycle = open_flag(key="cycle", distributor=li, kind=FraudFlag.Kind.REFERRAL_CYCLE)
    FraudFlag.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=1))

    # then
    assert ids(operator.get(BASE)) == [cycle.pk, cleared.pk, old.pk]
    assert ids(operator.get(BASE, {"status": "open"})) == [cycle.pk, old.pk]
    assert ids(operator.get(BASE, {"kind": "referral_cycle"})) == [cycle.pk]
    assert ids(operator.get(BASE, {"distributor_id": ming.pk})) == [cleared.pk, old.pk]
    assert ids(operator.get(BASE, {"distributor_id": ming.pk, "status": "cleared"})) == [cleared.pk]
    page = operator.get(BASE, {"limit": 1, "offset": 1}).json()
    assert (page["count"], [item["id"] for item in page["items"]]) == (3, [cleared.pk])


def test_a_flag_reads_with_its_evidence_and_order():
    distributor = make_distributor(display_name="Ming")
    order = paid()
    attribution = attribute(order, distributor)
    flag = FraudFlag.objects.create(
        kind=FraudFlag.Kind.SELF_REFERRAL,
        distributor=distributor,
        attribution=attribution,
        dedupe_key=f"self_referral:{attribution.pk}",
        details={"matched": ["phone"]},
    )
    viewer = clerk("view_fraudflag")

    body = viewer.get(f"{BASE}/{flag.pk}").json()

    assert body == {
        "id": flag.pk,
        "kind": "self_referral",
        "status": "open",
        "distributor_id": distributor.pk,
        "distributor_name": "Ming",
        "attribution_id": attribution.pk,
        "order_id": order.pk,
        "dedupe_key": f"self_referral:{attribution.pk}",
        "details": {"matched": ["phone"]},
        "created_at": body["created_at"],
        "reviewed_by_id": None,
        "reviewed_at": None,
        "review_note": "",
    }
    assert viewer.get(BASE).json()["items"] == [body]
    assert_error(viewer.get(f"{BASE}/{flag.pk + 1000}"), 404, "fraud_flag_not_found")


def test_clearing_through_the_api_is_final(operator, staff, announced):
    flag = open_flag(key="k")

    response = operator.post(f"{BASE}/{flag.pk}/clear", {"note": "  a family  "})

    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["status"], body["reviewed_by_id"], body["review_note"]) == (
        "cleared",
        staff.pk,
        "a family",
    )
    assert body["reviewed_at"] is not None
    assert operator.post(f"{BASE}/{flag.pk}/clear", {}).status_code == 409
    error = assert_error(
        operator.post(f"{BASE}/{flag.pk}/confirm", {"note": "fraud after all"}),
        409,
        "fraud_flag_already_reviewed",
    )
    assert error["details"] == {"status": "cleared"}
    assert [(p["flag_id"], p["status"]) for p in announced()] == [(flag.pk, "cleared")]


def test_confirming_needs_a_note(operator, announced):
    flag = open_flag(key="k")
    path = f"{BASE}/{flag.pk}/confirm"

    assert_error(operator.post(path, {"note": "   "}), 422, "fraud_flag_note_invalid")
    assert_error(operator.post(path, {}), 422, "validation_error")
    assert_error(operator.post(path, {"note": 5}), 422, "validation_error")
    assert_error(operator.post(path, {"note": "n" * 501}), 422, "validation_error")
    assert_error(operator.post(path, {"note": "x", "status": "open"}), 422, "validation_error")
    flag.refresh_from_db()
    assert flag.status == "open"
    assert announced() == []

    response = operator.post(path, {"note": "Twelve accounts on one phone."})

    assert response.status_code == 200, response.content
    assert (response.json()["status"], response.json()["review_note"]) == (
        "confirmed",
        "Twelve accounts on one phone.",
    )
    assert_error(
        operator.post(f"{BASE}/{flag.pk + 1000}/confirm", {"note": "x"}),
        404,
        "fraud_flag_not_found",
    )


def test_bad_filters_are_refused(operator):
    for params in ({"status": "closed"}, {"kind": "spam"}, {"distributor_id": "x"}):
        assert_error(operator.get(BASE, params), 422, "validation_error")


def test_who_may_read_and_review(anon, shopper):
    flag = open_flag(key="k")
    detail, clear, confirm = (
        f"{BASE}/{flag.pk}",
        f"{BASE}/{flag.pk}/clear",
        f"{BASE}/{flag.pk}/confirm",
    )
    review = {"note": "why"}

    assert_error(anon.get(BASE), 401, "not_authenticated")
    assert_error(anon.post(clear, review), 401, "not_authenticated")
    assert_error(shopper.get(BASE), 403, "staff_only")
    assert_error(shopper.post(confirm, review), 403, "staff_only")

    nobody = clerk()
    for response in (
        nobody.get(BASE),
        nobody.get(detail),
        nobody.post(clear, review),
        nobody.post(confirm, review),
    ):
        assert_error(response, 403, "permission_denied")

    viewer = clerk("view_fraudflag")
    assert ids(viewer.get(BASE)) == [flag.pk]
    assert viewer.get(detail).status_code == 200
    assert_error(viewer.post(clear, review), 403, "permission_denied")
    assert_error(viewer.post(confirm, review), 403, "permission_denied")
    flag.refresh_from_db()
    assert flag.status == "open"

    reviewer = clerk("view_fraudflag", "change_fraudflag")
    assert reviewer.post(confirm, review).json()["status"] == "confirmed"
