"""Leads over HTTP: the public form (anonymous or logged in, hostile inputs refused with nothing
written, the per-IP rate limit, no personal data echoed), a distributor's own leads and their
transitions, the staff's list, and an automatic conversion after a real checkout."""

import pytest
from django.contrib.auth.models import Permission
from django.utils import timezone

from referral.models import Attribution, AttributionRule, Lead, LeadEvent, ShareLink
from referral.services.leads import CONSENT_TEXT, leads_convert_on_attribution
from shop.models import Order
from tests.conftest import ApiClient, token_for
from tests.core.utils import assert_error
from tests.factories import SkuFactory, StaffFactory
from tests.referral.factories import make_distributor
from tests.shop.factories_orders import QuickCustomerFactory, paid, quick_pickup_point

pytestmark = pytest.mark.django_db

API = "/api/v1"
FORM = f"{API}/referral/leads"
MINE = f"{API}/referral/distributor/me/leads"
STAFF = f"{API}/staff/referral/leads"


def form_link(distributor=None, **fields) -> ShareLink:
    distributor = distributor or make_distributor()
    defaults = {"short_code": f"LA{ShareLink.objects.count():06d}", "target_kind": "lead_form"}
    return ShareLink.objects.create(distributor=distributor, **{**defaults, **fields})


def form(link: ShareLink, **overrides) -> dict:
    return {
        "code": link.short_code,
        "name": "Wang Fang",
        "phone": "138 0013 8000",
        "interest": "Gift boxes",
        "consent": True,
        **overrides,
    }


def me(distributor) -> ApiClient:
    return ApiClient(token_for(distributor.customer.user))


def attribute(order: Order, distributor) -> Attribution:
    rule = AttributionRule.objects.order_by("-version").first() or AttributionRule.objects.create(
        version=1, model="last_touch", effective_from=timezone.now()
    )
    return Attribution.objects.create(
        order=order,
        customer=order.customer,
        distributor=distributor,
        rule=rule,
        rule_version=rule.version,
        touch="click",
        source=order.source,
        goods_amount=order.total,
        paid_at=order.paid_at,
    )


def status_url(lead_id: int) -> str:
    return f"{MINE}/{lead_id}/status"


# --- the public form -----------------------------------------------------------------------------
def test_an_anonymous_visitor_leaves_a_lead_and_gets_only_its_id_and_status(anon):
    link = form_link()

    r = anon.post(FORM, json=form(link))

    assert r.status_code == 201, r.content
    lead = Lead.objects.get()
    assert r.json() == {"lead_id": lead.pk, "status": "new"}
    assert (lead.distributor_id, lead.phone, lead.customer, lead.consent_text) == (
        link.distributor_id,
        "13800138000",
        None,
        CONSENT_TEXT,
    )
    assert len(lead.ip_hash) == 64


def test_a_logged_in_customer_is_noted_on_the_lead(shopper, customer):
    r = shopper.post(FORM, json=form(form_link()))
    assert r.status_code == 201
    assert Lead.objects.get().customer == customer


def test_an_operator_without_a_customer_profile_leaves_an_anonymous_lead(operator):
    assert operator.post(FORM, json=form(form_link())).status_code == 201
    assert Lead.objects.get().customer is None


def test_a_bad_token_is_refused_rather_than_ignored():
    r = ApiClient("not-a-token").post(FORM, json=form(form_link()))
    assert r.status_code == 401
    assert not Lead.objects.exists()


def test_the_same_phone_twice_is_one_lead(anon):
    link = form_link()
    first = anon.post(FORM, json=form(link)).json()
    again = anon.post(FORM, json=form(link, phone="13800138000", name="W. Fang")).json()
    assert first == again
    assert Lead.objects.count() == 1


@pytest.mark.parametrize(
    ("change", "status", "code"),
    [
        ({"consent": False}, 422, "consent_required"),
        ({"consent": "true"}, 422, "validation_error"),
        ({"consent": 1}, 422, "validation_error"),
        ({"consent": None}, 422, "validation_error"),
        ({"phone": "call me"}, 422, "lead_invalid"),
        ({"phone": "1234"}, 422, "lead_invalid"),
        ({"phone": 13800138000}, 422, "validation_error"),
        ({"phone": "1" * 33}, 422, "validation_error"),
        ({"name": " "}, 422, "lead_invalid"),
        ({"name": "n" * 65}, 422, "validation_error"),
        ({"interest": "i" * 501}, 422, "validation_error"),
        ({"code": "UNKNOWN1"}, 404, "link_not_found"),
        ({"code": ""}, 422, "validation_error"),
        ({"code": "X" * 17}, 422, "validation_error"),
        ({"distributor_id": 1}, 422, "validation_error"),
        ({"name": "Wang\x00Fang"}, 422, "invalid_characters"),
    ],
)
def test_hostile_forms_are_refused_and_nothing_is_written(anon, change, status, code):
    body = form(form_link(), **change)
    assert_error(anon.post(FORM, json=body), status, code)
    assert not Lead.objects.exists() and not LeadEvent.objects.exists()


def test_missing_consent_is_refused(anon):
    body = form(form_link())
    del body["consent"]
    error = assert_error(anon.post(FORM, json=body), 422, "validation_error")
    assert error["details"]["fields"][0]["path"] == "consent"
    assert not Lead.objects.exists()


def test_a_bad_field_is_named(anon):
    error = assert_error(
        anon.post(FORM, json=form(form_link(), phone="12-ab")), 422, "lead_invalid"
    )
    assert error["details"]["field"] == "phone"


def test_the_form_is_rate_limited_per_client_ip(anon, settings):
    settings.REFERRAL_LEAD_IP_RATE = "3/m"
    link = form_link()
    answers = [anon.post(FORM, json=form(link, phone=f"1380013800{i}")) for i in range(3)]
    assert [r.status_code for r in answers] == [201, 201, 201]

    limited = anon.post(FORM, json=form(link, phone="13900139000"))
    assert_error(limited, 429, "rate_limited")
    assert int(limited["Retry-After"]) >= 1
    unknown = ApiClient().post(FORM, json=form(link, code="UNKNOWN1"))
    assert_error(unknown, 429, "rate_limited")  # guessing codes costs the same
    assert Lead.objects.count() == 3


# --- a distributor's leads -----------------------------------------------------------------------
def test_a_distributor_sees_their_leads_with_name_and_phone(anon):
    distributor = make_distributor()
    link = form_link(distributor)
    first = anon.post(FORM, json=form(link, phone="11111")).json()
    second = anon.post(FORM, json=form(link, phone="22222", name="Li Lei")).json()
    anon.post(FORM, json=form(form_link(), phone="33333"))  # someone else's

    r = me(distributor).get(MINE)

    assert r.status_code == 200
    page = r.json()
    assert page["count"] == 2
    assert [item["id"] for item in page["items"]] == [second["lead_id"], first["lead_id"]]
    item = page["items"][0]
    assert (item["name"], item["phone"], item["status"], item["link_id"]) == (
        "Li Lei",
        "22222",
        "new",
        link.pk,
    )
    assert item["consent_text"] == CONSENT_TEXT
    assert [(e["from_status"], e["to_status"]) for e in item["events"]] == [("", "new")]
    assert "ip_hash" not in item and "customer_id" not in item


def test_my_leads_by_status(anon):
    distributor = make_distributor()
    link = form_link(distributor)
    anon.post(FORM, json=form(link, phone="11111"))
    second = anon.post(FORM, json=form(link, phone="22222")).json()
    me(distributor).post(status_url(second["lead_id"]), json={"status": "lost"})

    lost = me(distributor).get(MINE, {"status": "lost"}).json()
    assert [item["id"] for item in lost["items"]] == [second["lead_id"]]
    assert me(distributor).get(MINE, {"status": "new"}).json()["count"] == 1
    assert me(distributor).get(MINE, {"status": "gone"}).status_code == 422


def test_leads_are_for_distributors(shopper):
    assert_error(shopper.get(MINE), 404, "not_a_distributor")
    assert_error(shopper.post(status_url(1), json={"status": "lost"}), 404, "not_a_distributor")
    assert_error(ApiClient().get(MINE), 401, "not_authenticated")


def test_a_distributor_moves_a_lead_and_its_history_grows(anon):
    distributor = make_distributor()
    lead_id = anon.post(FORM, json=form(form_link(distributor))).json()["lead_id"]

    r = me(distributor).post(status_url(lead_id), json={"status": "contacted", "note": "called"})

    assert r.status_code == 200, r.content
    assert r.json()["status"] == "contacted"
    assert [(e["to_status"], e["note"], e["actor_id"]) for e in r.json()["events"]] == [
        ("new", "", None),
        ("contacted", "called", distributor.customer.user_id),
    ]
    again = me(distributor).post(status_url(lead_id), json={"status": "contacted"})
    error = assert_error(again, 409, "lead_illegal_transition")
    assert error["details"] == {"from": "contacted", "to": "contacted"}


def test_converting_over_http_needs_my_paid_attributed_order(anon):
    distributor = make_distributor()
    lead_id = anon.post(FORM, json=form(form_link(distributor))).json()["lead_id"]
    order = paid()
    client = me(distributor)

    no_order = client.post(status_url(lead_id), json={"status": "converted"})
    assert assert_error(no_order, 422, "lead_invalid")["details"]["field"] == "order_id"
    unattributed = client.post(
        status_url(lead_id), json={"status": "converted", "order_id": order.pk}
    )
    assert assert_error(unattributed, 422, "lead_invalid")["details"]["field"] == "order_id"

    attribute(order, distributor)
    done = client.post(status_url(lead_id), json={"status": "converted", "order_id": order.pk})
    assert done.status_code == 200, done.content
    assert (done.json()["status"], done.json()["order_id"]) == ("converted", order.pk)
    final = client.post(status_url(lead_id), json={"status": "lost"})
    assert_error(final, 409, "lead_illegal_transition")


@pytest.mark.parametrize(
    "body",
    [
        {"status": "new"},
        {"status": "converted", "order_id": "5"},
        {"status": "converted", "order_id": 5.0},
        {"status": "lost", "note": "n" * 501},
        {"status": "lost", "extra": 1},
        {},
    ],
)
def test_hostile_status_bodies_change_nothing(anon, body):
    distributor = make_distributor()
    lead_id = anon.post(FORM, json=form(form_link(distributor))).json()["lead_id"]
    r = me(distributor).post(status_url(lead_id), json=body)
    assert r.status_code == 422
    assert Lead.objects.get(pk=lead_id).status == "new"
    assert LeadEvent.objects.filter(lead_id=lead_id).count() == 1


def test_another_distributors_lead_is_not_found_over_http(anon):
    lead_id = anon.post(FORM, json=form(form_link())).json()["lead_id"]
    r = me(make_distributor()).post(status_url(lead_id), json={"status": "lost"})
    assert_error(r, 404, "lead_not_found")
    assert_error(
        me(make_distributor()).post(status_url(999999), json={"status": "lost"}),
        404,
        "lead_not_found",
    )
    assert Lead.objects.get(pk=lead_id).status == "new"


# --- staff ---------------------------------------------------------------------------------------
def test_staff_list_leads_by_distributor_and_status(anon, operator):
    first, second = make_distributor(), make_distributor()
    mine = anon.post(FORM, json=form(form_link(first), phone="11111")).json()
    anon.post(FORM, json=form(form_link(second), phone="22222"))
    me(first).post(status_url(mine["lead_id"]), json={"status": "contacted"})

    everything = operator.get(STAFF).json()
    assert everything["count"] == 2
    filtered = operator.get(STAFF, {"distributor_id": first.pk, "status": "contacted"}).json()
    assert [(i["id"], i["distributor_id"]) for i in filtered["items"]] == [
        (mine["lead_id"], first.pk)
    ]
    assert operator.get(STAFF, {"distributor_id": first.pk, "status": "new"}).json()["count"] == 0


def test_staff_need_view_lead(client_for):
    plain = StaffFactory(is_superuser=False)
    assert_error(client_for(plain).get(STAFF), 403, "permission_denied")
    plain.user_permissions.add(
        Permission.objects.get(content_type__app_label="referral", codename="view_lead")
    )
    assert client_for(plain).get(STAFF).status_code == 200
    assert_error(client_for(QuickCustomerFactory().user).get(STAFF), 403, "staff_only")


# --- automatic conversion after a real checkout --------------------------------------------------
def test_the_buyers_attributed_order_converts_their_lead(client_for):
    distributor = make_distributor()
    buyer = QuickCustomerFactory(phone="13800138000")
    client = client_for(buyer.user)
    lead_id = client.post(FORM, json=form(form_link(distributor))).json()["lead_id"]
    sku = SkuFactory(price=1990)
    placed = client.post(
        f"{API}/orders",
        json={
            "lines": [{"sku_id": sku.pk, "quantity": 1}],
            "delivery_mode": "pickup",
            "pickup_point_id": quick_pickup_point().pk,
        },
    ).json()
    payment = client.post(f"{API}/orders/{placed['id']}/pay").json()
    assert client.post(payment["confirm_url"], json={}).status_code == 200

    leads_convert_on_attribution(
        order_attributed={
            "order_id": placed["id"],
            "customer_id": buyer.pk,
            "distributor_id": distributor.pk,
            "touch": "click",
            "levels": [{"level": 1, "distributor_id": distributor.pk}],
        }
    )

    [item] = me(distributor).get(MINE).json()["items"]
    assert (item["id"], item["status"], item["order_id"]) == (lead_id, "converted", placed["id"])
    assert item["events"][-1]["note"] == "auto: attributed order"
