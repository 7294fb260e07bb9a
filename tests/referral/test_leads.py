"""Leads, the service: the form (link, consent, fields, no duplicate per open phone, also under
concurrent submissions), the transitions table, conversion to a paid attributed order, and the
automatic conversion when an attributed order's buyer has a lead's phone."""

import itertools

import pytest
from django.db import transaction
from django.utils import timezone

from core import outbox
from core.errors import ApplicationError
from referral import events
from referral.models import Attribution, AttributionRule, Lead, LeadEvent, ShareLink
from referral.services.leads import (
    CONSENT_TEXT,
    lead_set_status,
    lead_submit,
    leads_convert_on_attribution,
    phone_normalized,
)
from shop.models import Order
from tests.conftest import run_in_threads
from tests.factories import StaffFactory
from tests.referral.factories import make_distributor
from tests.shop.factories_orders import QuickCustomerFactory, paid, place

pytestmark = pytest.mark.django_db

STATUSES = ["new", "contacted", "converted", "lost"]
ALLOWED = {
    ("new", "contacted"),
    ("new", "converted"),
    ("new", "lost"),
    ("contacted", "converted"),
    ("contacted", "lost"),
}


def form_link(distributor=None, **fields) -> ShareLink:
    distributor = distributor or make_distributor()
    defaults = {"short_code": f"LF{ShareLink.objects.count():06d}", "target_kind": "lead_form"}
    return ShareLink.objects.create(distributor=distributor, **{**defaults, **fields})


def submit(link: ShareLink, **overrides) -> Lead:
    fields = {
        "short_code": link.short_code,
        "name": "Wang Fang",
        "phone": "13800138000",
        "interest": "Gift boxes",
        "consent": True,
        "ip_hash": "iphash",
    }
    fields.update(overrides)
    return lead_submit(**fields)


def refused(call, *args, **kwargs) -> tuple:
    with pytest.raises(ApplicationError) as excinfo:
        call(*args, **kwargs)
    return excinfo.value.status, excinfo.value.code, excinfo.value.details


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
        goods_amount=order.total - order.shipping_fee,
        paid_at=order.paid_at or timezone.now(),
    )


def attributed_order(distributor, customer=None) -> Order:
    order = paid(customer or QuickCustomerFactory())
    attribute(order, distributor)
    return order


def set_status(lead, status, **kwargs):
    return lead_set_status(
        distributor=lead.distributor, lead_id=lead.pk, status=status, actor=None, **kwargs
    )


# --- the form ----------------------------------------------------------------------------------
def test_a_submission_makes_a_new_lead_of_the_links_distributor():
    link = form_link()
    customer = QuickCustomerFactory()

    lead = submit(link, phone=" 138-0013 8000 ", name="  Wang Fang ", customer=customer)

    assert (lead.distributor_id, lead.link, lead.status, lead.customer) == (
        link.distributor_id,
        link,
        "new",
        customer,
    )
    assert (lead.name, lead.phone, lead.interest, lead.ip_hash) == (
        "Wang Fang",
        "13800138000",
        "Gift boxes",
        "iphash",
    )
    assert (lead.consent, lead.consent_text) == (True, CONSENT_TEXT)
    assert list(LeadEvent.objects.values_list("lead_id", "from_status", "to_status")) == [
        (lead.pk, "", "new")
    ]


def test_the_same_phone_while_a_lead_is_open_gives_that_lead_back():
    link = form_link()
    first = submit(link)
    again = submit(link, phone="138 0013 8000", name="Fang", interest="Other")
    set_status(first, "contacted")
    still = submit(link)

    assert again.pk == first.pk == still.pk
    assert Lead.objects.get().name == "Wang Fang"  # unchanged
    other_link_same_distributor = form_link(link.distributor)
    assert submit(other_link_same_distributor).pk == first.pk


def test_a_closed_lead_or_another_distributor_means_a_new_lead():
    link = form_link()
    first = submit(link)
    set_status(first, "lost")
    second = submit(link)
    elsewhere = submit(form_link())
    assert len({first.pk, second.pk, elsewhere.pk}) == 3


def test_the_link_must_be_an_active_lead_form_of_an_active_distributor():
    links = [
        form_link(is_active=False),
        form_link(target_kind="shop"),
        form_link(make_distributor(status="suspended")),
        form_link(make_distributor(status="applied")),
    ]
    for link in links:
        assert refused(submit, link)[:2] == (404, "link_not_found")
    assert refused(lead_submit, short_code="NOPE", name="A", phone="12345", consent=True)[:2] == (
        404,
        "link_not_found",
    )
    assert not Lead.objects.exists()


def test_consent_is_required():
    status, code, details = refused(submit, form_link(), consent=False)
    assert (status, code, details) == (422, "consent_required", {"consent_text": CONSENT_TEXT})
    assert not Lead.objects.exists()


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"name": ""}, "name"),
        ({"name": "   "}, "name"),
        ({"name": "n" * 65}, "name"),
        ({"phone": ""}, "phone"),
        ({"phone": "1234"}, "phone"),
        ({"phone": "1" * 21}, "phone"),
        ({"phone": "+" + "1" * 21}, "phone"),
        ({"phone": "12a456"}, "phone"),
        ({"phone": "++123456"}, "phone"),
        ({"phone": "123+456"}, "phone"),
        ({"phone": "\uff11\uff13\uff18\uff10\uff10\uff11"}, "phone"),  # full-width digits
        ({"phone": "\u0661\u0662\u0663\u0664\u0665\u0666"}, "phone"),  # Arabic-Indic
        ({"interest": "i" * 501}, "interest"),
    ],
)
def test_bad_fields_are_refused_by_name_and_nothing_is_written(overrides, field):
    status, code, details = refused(submit, form_link(), **overrides)
    assert (status, code, details["field"]) == (422, "lead_invalid", field)
    assert not Lead.objects.exists() and not LeadEvent.objects.exists()


@pytest.mark.parametrize(
    ("raw", "stored"),
    [
        ("12345", "12345"),
        ("+8613800138000", "+8613800138000"),
        ("+86 138-0013-8000", "+8613800138000"),
        ("1" * 20, "1" * 20),
        ("  012345  ", "012345"),
    ],
)
def test_phones_are_stored_as_plus_and_digits(raw, stored):
    assert phone_normalized(raw) == stored


# --- transitions ---------------------------------------------------------------------------------
def lead_in(status: str) -> Lead:
    lead = submit(form_link())
    if status == "converted":
        order = attributed_order(lead.distributor)
        Lead.objects.filter(pk=lead.pk).update(status=status, order=order)
    else:
        Lead.objects.filter(pk=lead.pk).update(status=status)
    lead.refresh_from_db()
    return lead


@pytest.mark.parametrize(("start", "target"), list(itertools.product(STATUSES, STATUSES)))
def test_the_transitions_table(start, target):
    lead = lead_in(start)
    extra = {}
    if target == "converted":
        extra["order_id"] = attributed_order(lead.distributor).pk
    if (start, target) in ALLOWED:
        moved = set_status(lead, target, note="called", **extra)
        assert moved.status == target
        last = LeadEvent.objects.filter(lead=lead).last()
        assert (last.from_status, last.to_status, last.note) == (start, target, "called")
    else:
        assert refused(set_status, lead, target, **extra) == (
            409,
            "lead_illegal_transition",
            {"from": start, "to": target},
        )
        assert Lead.objects.get(pk=lead.pk).status == start
        assert LeadEvent.objects.filter(lead=lead).count() == 1


def test_a_conversion_records_the_order_the_actor_and_the_buyer():
    lead = submit(form_link())
    staff_user = StaffFactory()
    order = attributed_order(lead.distributor)

    moved = lead_set_status(
        distributor=lead.distributor,
        lead_id=lead.pk,
        status="converted",
        order_id=order.pk,
        note=" bought the gift box ",
        actor=staff_user,
    )

    assert (moved.status, moved.order_id, moved.customer_id) == (
        "converted",
        order.pk,
        order.customer_id,
    )
    event = LeadEvent.objects.filter(lead=lead).last()
    assert (event.actor, event.note) == (staff_user, "bought the gift box")


def test_a_conversion_needs_a_paid_order_attributed_to_this_distributor():
    lead = submit(form_link())
    mine = lead.distributor
    unpaid = place()
    attribute(unpaid, mine)
    refunded = attributed_order(mine)
    Order.objects.filter(pk=refunded.pk).update(status="refunded")
    theirs = attributed_order(make_distributor())
    unattributed = paid()

    for order_id in (None, unpaid.pk, refunded.pk, theirs.pk, unattributed.pk, 987654):
        status, code, details = refused(set_status, lead, "converted", order_id=order_id)
        assert (status, code, details["field"]) == (422, "lead_invalid", "order_id")
    assert Lead.objects.get(pk=lead.pk).status == "new"

    partly = attributed_order(mine)
    Order.objects.filter(pk=partly.pk).update(status="partially_refunded")
    assert set_status(lead, "converted", order_id=partly.pk).status == "converted"


def test_one_order_converts_one_lead_and_only_a_conversion_names_an_order():
    link = form_link()
    first = submit(link, phone="11111")
    second = submit(link, phone="22222")
    order = attributed_order(link.distributor)
    set_status(first, "converted", order_id=order.pk)

    assert refused(set_status, second, "converted", order_id=order.pk)[2]["field"] == "order_id"
    assert refused(set_status, second, "contacted", order_id=order.pk)[2]["field"] == "order_id"
    assert refused(set_status, second, "contacted", note="n" * 501)[2]["field"] == "note"
    assert refused(set_status, second, "archived")[2]["field"] == "status"


def test_another_distributors_lead_is_not_found():
    lead = submit(form_link())
    assert refused(
        lead_set_status,
        distributor=make_distributor(),
        lead_id=lead.pk,
        status="contacted",
        actor=None,
    )[:2] == (404, "lead_not_found")
    assert Lead.objects.get(pk=lead.pk).status == "new"


# --- automatic conversion ------------------------------------------------------------------------
def attributed_payload(order: Order, distributor) -> dict:
    return {
        "order_id": order.pk,
        "customer_id": order.customer_id,
        "distributor_id": distributor.pk if distributor else None,
        "attribution_id": None,
        "rule_version": 1,
        "touch": "click",
        "levels": [{"level": 1, "distributor_id": distributor.pk}] if distributor else [],
    }


def test_an_attributed_order_of_the_leads_phone_converts_it_once():
    link = form_link()
    lead = submit(link, phone="13800138000")
    order = paid(QuickCustomerFactory(phone="138 0013 8000"))

    leads_convert_on_attribution(order_attributed=attributed_payload(order, link.distributor))
    leads_convert_on_attribution(order_attributed=attributed_payload(order, link.distributor))

    lead.refresh_from_db()
    assert (lead.status, lead.order_id, lead.customer_id) == (
        "converted",
        order.pk,
        order.customer_id,
    )
    auto = LeadEvent.objects.filter(lead=lead, to_status="converted")
    assert list(auto.values_list("from_status", "actor", "note")) == [
        ("new", None, "auto: attributed order")
    ]


def test_no_automatic_conversion_without_a_match():
    link = form_link()
    lead = submit(link, phone="13800138000")
    lost = submit(form_link(link.distributor), phone="13900139000")
    set_status(lost, "lost")
    buyer = QuickCustomerFactory(phone="13800138000")
    unpaid = place(buyer)

    cases = [
        attributed_payload(paid(buyer), None),  # nobody attributed
        attributed_payload(paid(buyer), make_distributor()),  # another distributor
        attributed_payload(paid(QuickCustomerFactory(phone="13700137000")), link.distributor),
        attributed_payload(paid(QuickCustomerFactory(phone="")), link.distributor),
        attributed_payload(paid(QuickCustomerFactory(phone="13900139000")), link.distributor),
        attributed_payload(unpaid, link.distributor),
    ]
    for payload in cases:
        leads_convert_on_attribution(order_attributed=payload)

    assert Lead.objects.get(pk=lead.pk).status == "new"
    assert Lead.objects.get(pk=lost.pk).status == "lost"


def test_nothing_is_even_read_when_no_distributor_was_attributed(django_assert_num_queries):
    order = paid(QuickCustomerFactory(phone="13800138000"))
    with django_assert_num_queries(0):
        leads_convert_on_attribution(order_attributed=attributed_payload(order, None))


def test_an_order_that_already_converted_a_lead_converts_no_second_one():
    link = form_link()
    first = submit(link, phone="13800138000")
    order = attributed_order(link.distributor, QuickCustomerFactory(phone="13800138000"))
    set_status(first, "converted", order_id=order.pk)
    second = submit(link, phone="13800138000")  # the same person again, a new open lead

    leads_convert_on_attribution(order_attributed=attributed_payload(order, link.distributor))

    assert Lead.objects.get(pk=second.pk).status == "new"


def test_the_order_attributed_event_converts_through_the_outbox(committed):
    link = form_link()
    lead = submit(link, phone="13800138000")
    order = paid(QuickCustomerFactory(phone="13800138000"))

    def announce():
        with transaction.atomic():
            outbox.event_record(
                events.ORDER_ATTRIBUTED, attributed_payload(order, link.distributor)
            )

    committed(announce)

    assert Lead.objects.get(pk=lead.pk).status == "converted"


# --- races ---------------------------------------------------------------------------------------
@pytest.mark.django_db(transaction=True)
def test_ten_submissions_of_one_phone_at_once_make_one_lead():
    link = form_link()
    results = run_in_threads(10, lambda i: submit(link, name=f"Twin {i}").pk)
    assert all(isinstance(r, int) for r in results), results
    assert Lead.objects.count() == 1
    assert set(results) == {Lead.objects.get().pk}
    assert LeadEvent.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_ten_changes_from_one_state_at_once_apply_exactly_once():
    lead = submit(form_link())

    results = run_in_threads(10, lambda i: set_status(lead, "contacted").status)

    won = [r for r in results if isinstance(r, str)]
    lost = [r for r in results if isinstance(r, ApplicationError)]
    assert len(won) == 1 and len(lost) == 9, results
    assert {e.code for e in lost} == {"lead_illegal_transition"}
    assert Lead.objects.get(pk=lead.pk).status == won[0]
    assert LeadEvent.objects.filter(lead=lead).count() == 2
