"""Distributors through their services: the policy (one row, audited, no fee anywhere), every
onboarding mode, the operator's decisions and their audit rows, illegal transitions, the upline
from the customer's links, re-parenting (exact closure, cycles refused, attributions untouched),
the profile, qualification by spend on a real paid order, and the admin's actions."""

from datetime import timedelta
from itertools import count

import pytest
from django.apps import apps
from django.urls import reverse
from django.utils import timezone

from core.errors import ApplicationError
from core.models import Notification
from referral.models import (
    Attribution,
    AttributionLevel,
    AttributionRule,
    Click,
    Distributor,
    DistributorAncestry,
    DistributorEvent,
    ReferralPolicy,
    ShareLink,
)
from referral.services import distributors as services
from referral.services.tree import tree_ancestors
from shop.models import Order
from tests.factories import CustomerFactory, SkuFactory, StaffFactory
from tests.referral.factories import make_chain, make_distributor
from tests.shop.factories_orders import paid, place

pytestmark = pytest.mark.django_db

S = Distributor.Status
E = DistributorEvent.Kind
_codes = count(1)


# --- helpers (also used by the API and race tests) ------------------------------------------------
def closure() -> set[tuple[int, int, int]]:
    return set(DistributorAncestry.objects.values_list("ancestor_id", "descendant_id", "depth"))


def expected_closure() -> set[tuple[int, int, int]]:
    """Recomputed from the ``upline`` pointers alone (as tests/referral/test_tree.py)."""
    uplines = dict(Distributor.objects.values_list("pk", "upline_id"))
    rows = set()
    for node in uplines:
        depth, up = 1, uplines[node]
        while up is not None:
            rows.add((up, node, depth))
            depth, up = depth + 1, uplines[up]
    return rows


def depths_match_uplines() -> bool:
    by_pk = dict(Distributor.objects.values_list("pk", "depth"))
    counted = {pk: 0 for pk in by_pk}
    for _, descendant, _ in closure():
        counted[descendant] += 1
    return by_pk == counted


def set_policy(**fields) -> ReferralPolicy:
    return services.policy_update(actor=None, **fields)


def link_click(customer, distributor, *, at=None, status=Click.Status.COUNTED, kind="link"):
    link = ShareLink.objects.create(
        distributor=distributor, short_code=f"t{next(_codes)}", target_kind="shop"
    )
    return Click.objects.create(
        link=link,
        distributor=distributor,
        kind=kind,
        status=status,
        occurred_at=at or timezone.now(),
        customer=customer,
        visitor_key=f"c:{customer.pk}",
    )


def events(distributor) -> list[tuple]:
    return list(
        DistributorEvent.objects.filter(distributor=distributor)
        .order_by("id")
        .values_list("kind", "from_status", "to_status", "actor_id", "reason")
    )


def code_of(call) -> tuple[int, str, dict]:
    with pytest.raises(ApplicationError) as caught:
        call()
    return caught.value.status, caught.value.code, caught.value.details


def join(customer=None, **kwargs) -> Distributor:
    return services.distributor_join(
        customer=customer or CustomerFactory(),
        display_name=kwargs.pop("display_name", "Mei's picks"),
        channels=kwargs.pop("channels", ["wechat_group"]),
        **kwargs,
    )


# --- policy ---------------------------------------------------------------------------------------
def test_the_policy_is_one_row_with_the_defaults():
    first = services.policy_get()
    again = services.policy_get()

    assert first.pk == again.pk == 1
    assert (first.onboarding, first.recruit, first.spend_threshold) == (
        "application",
        "last_click",
        0,
    )
    assert ReferralPolicy.objects.count() == 1


def test_a_policy_change_appends_who_changed_what_from_what():
    staff = StaffFactory()
    services.policy_update(actor=staff, onboarding="spend_threshold", spend_threshold=5000)
    services.policy_update(actor=staff, onboarding="spend_threshold", spend_threshold=5000)
    policy = services.policy_update(actor=None, recruit="none")

    assert [entry["changes"] for entry in policy.history] == [
        {"onboarding": ["application", "spend_threshold"], "spend_threshold": [0, 5000]},
        {"recruit": ["last_click", "none"]},
    ]
    assert [entry["by"] for entry in policy.history] == [staff.pk, None]
    assert all(entry["at"] for entry in policy.history)
    stored = ReferralPolicy.objects.get()
    assert (stored.onboarding, stored.spend_threshold, stored.recruit) == (
        "spend_threshold",
        5000,
        "none",
    )


@pytest.mark.parametrize(
    "change",
    [
        {"onboarding": "paid_entry"},
        {"recruit": "any_click"},
        {"spend_threshold": -1},
        {"spend_threshold": True},
        {"spend_threshold": 10.0},
        {"spend_threshold": services.SPEND_THRESHOLD_MAX + 1},
    ],
)
def test_an_invalid_policy_is_refused_and_changes_nothing(change):
    status, code, details = code_of(lambda: services.policy_update(actor=None, **change))

    assert (status, code) == (422, "referral_policy_invalid")
    assert details["field"] == next(iter(change))
    assert services.policy_get().history == []


def test_no_referral_model_has_a_field_for_a_fee():
    names = [
        f"{model.__name__}.{field.name}"
        for model in apps.get_app_config("referral").get_models()
        for field in model._meta.get_fields()
    ]
    assert len(names) > 50  # the scan sees the models

    assert [
        n for n in names if any(w in n.lower() for w in ("fee", "price", "charge", "entry"))
    ] == []


# --- onboarding -----------------------------------------------------------------------------------
def test_everyone_mode_makes_an_active_distributor_at_once():
    set_policy(onboarding="everyone")
    customer = CustomerFactory()

    distributor = join(customer, channels=["moments", "wecom"], note="hi")

    assert (distributor.status, distributor.onboarding) == (S.ACTIVE, "joined")
    assert distributor.joined_at is not None
    assert distributor.channels == ["moments", "wecom"]
    assert distributor.application_note == "hi"
    assert events(distributor) == [(E.JOINED, "", S.ACTIVE, customer.user_id, "")]


def test_application_mode_waits_for_the_operator_who_approves_it():
    customer = CustomerFactory()
    staff = StaffFactory()

    applied = join(customer)
    assert (applied.status, applied.onboarding, applied.joined_at) == (
        S.APPLIED,
        "application",
        None,
    )
    approved = services.distributor_approve(
        distributor_id=applied.pk, actor=staff, reason="Runs a big group"
    )

    assert approved.status == S.ACTIVE
    assert approved.joined_at is not None
    assert approved.decision_reason == "Runs a big group"
    assert events(applied) == [
        (E.APPLIED, "", S.APPLIED, customer.user_id, ""),
        (E.APPROVED, S.APPLIED, S.ACTIVE, staff.pk, "Runs a big group"),
    ]
    notice = Notification.objects.get(user=customer.user)
    assert notice.kind == "referral_distributor_approved"


def test_spend_threshold_mode_counts_net_paid_spend_only():
    set_policy(onboarding="spend_threshold", spend_threshold=5000)
    customer = CustomerFactory()
    paid(customer)  # 3980
    place(customer)  # unpaid: not counted
    refunded = paid(customer)
    Order.objects.filter(pk=refunded.pk).update(status="refunded", refunded_amount=refunded.total)

    status, code, details = code_of(lambda: join(customer))

    assert (status, code, details) == (
        409,
        "spend_threshold_not_met",
        {"spent": 3980, "threshold": 5000},
    )
    assert not Distributor.objects.exists()

    partly = paid(customer, [(SkuFactory(price=1500), 1)])
    Order.objects.filter(pk=partly.pk).update(status="partially_refunded", refunded_amount=500)
    assert code_of(lambda: join(customer))[2] == {"spent": 4980, "threshold": 5000}

    paid(customer, [(SkuFactory(price=20), 1)])
    distributor = join(customer)

    assert (distributor.status, distributor.onboarding) == (S.ACTIVE, "spend")
    assert DistributorEvent.objects.get(distributor=distributor).data == {
        "mode": "spend_threshold",
        "spent": 5000,
        "threshold": 5000,
        "upline_id": None,
    }


def test_appointed_mode_refuses_joins():
    set_policy(onboarding="appointed")

    assert code_of(join)[:2] == (409, "onboarding_closed")
    assert not Distributor.objects.exists()


def test_a_second_join_is_refused_but_a_rejected_applicant_may_apply_again():
    customer = CustomerFactory()
    first = join(customer)

    assert code_of(lambda: join(customer))[:3] == (
        409,
        "already_distributor",
        {"status": "applied"},
    )
    services.distributor_reject(distributor_id=first.pk, actor=StaffFactory(), reason="No group")
    again = join(customer, display_name="Mei again", note="I have a group now")

    assert again.pk == first.pk
    assert (again.status, again.display_name, again.application_note) == (
        S.APPLIED,
        "Mei again",
        "I have a group now",
    )
    assert [e[:3] for e in events(first)] == [
        (E.APPLIED, "", S.APPLIED),
        (E.REJECTED, S.APPLIED, S.REJECTED),
        (E.APPLIED, S.REJECTED, S.APPLIED),
    ]
    assert Distributor.objects.count() == 1


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("display_name", "   "),
        ("display_name", "x" * 65),
        ("channels", ["fax"]),
        ("channels", ["moments", "moments"]),
        ("channels", "moments"),
        ("note", "x" * 501),
    ],
)
def test_an_invalid_profile_is_refused(field, value):
    status, code, details = code_of(lambda: join(**{field: value}))

    assert (status, code, details["field"]) == (422, "distributor_profile_invalid", field)
    assert not Distributor.objects.exists()


# --- the operator's decisions ---------------------------------------------------------------------
@pytest.mark.parametrize(
    ("status", "decide", "to"),
    [
        (S.ACTIVE, services.distributor_approve, S.ACTIVE),
        (S.SUSPENDED, services.distributor_approve, S.ACTIVE),
        (S.ACTIVE, services.distributor_reject, S.REJECTED),
        (S.REJECTED, services.distributor_reject, S.REJECTED),
        (S.APPLIED, services.distributor_suspend, S.SUSPENDED),
        (S.SUSPENDED, services.distributor_suspend, S.SUSPENDED),
        (S.ACTIVE, services.distributor_reinstate, S.ACTIVE),
        (S.APPLIED, services.distributor_reinstate, S.ACTIVE),
    ],
)
def test_an_illegal_transition_is_refused_and_changes_nothing(status, decide, to):
    distributor = make_distributor(status=status)

    result = code_of(lambda: decide(distributor_id=distributor.pk, actor=None, reason="why"))

    assert result == (409, "illegal_transition", {"from": status, "to": to})
    assert Distributor.objects.get(pk=distributor.pk).status == status
    assert events(distributor) == []


def test_suspend_and_reinstate_are_audited_and_keep_the_first_join_date():
    distributor = make_distributor()
    joined = distributor.joined_at
    staff = StaffFactory()

    services.distributor_suspend(distributor_id=distributor.pk, actor=staff, reason="Spam")
    back = services.distributor_reinstate(distributor_id=distributor.pk, actor=staff)

    assert back.status == S.ACTIVE
    assert back.joined_at == joined
    assert events(distributor) == [
        (E.SUSPENDED, S.ACTIVE, S.SUSPENDED, staff.pk, "Spam"),
        (E.REINSTATED, S.SUSPENDED, S.ACTIVE, staff.pk, ""),
    ]


@pytest.mark.parametrize("decide", [services.distributor_reject, services.distributor_suspend])
@pytest.mark.parametrize("reason", ["", "   ", "x" * 501])
def test_rejecting_and_suspending_need_a_reason(decide, reason):
    distributor = make_distributor(
        status=S.APPLIED if decide is services.distributor_reject else S.ACTIVE
    )

    result = code_of(lambda: decide(distributor_id=distributor.pk, actor=None, reason=reason))

    assert result[:2] == (422, "distributor_reason_invalid")
    assert events(distributor) == []


def test_an_unknown_distributor_is_not_found():
    for decide in (services.distributor_approve, services.distributor_reinstate):
        assert code_of(lambda d=decide: d(distributor_id=999_999, actor=None))[:2] == (
            404,
            "distributor_not_found",
        )


def test_appointing_makes_an_active_distributor_in_any_mode():
    set_policy(onboarding="appointed")
    staff = StaffFactory()
    upline = make_distributor()
    customer = CustomerFactory()

    appointed = services.distributor_appoint(
        customer_id=customer.pk,
        actor=staff,
        display_name="Lobby promoter",
        kind="kos",
        upline_id=upline.pk,
        reason="Store staff",
    )

    assert (appointed.status, appointed.onboarding, appointed.kind) == (
        S.ACTIVE,
        "appointed",
        "kos",
    )
    assert appointed.upline_id == upline.pk
    assert tree_ancestors(appointed.pk) == [upline.pk]
    assert events(appointed) == [(E.APPOINTED, "", S.ACTIVE, staff.pk, "Store staff")]
    assert closure() == expected_closure()


def test_appointing_an_applicant_activates_their_row_and_may_move_it():
    staff = StaffFactory()
    customer = CustomerFactory()
    applied = join(customer)
    child = make_distributor(upline=applied)
    new_upline = make_distributor()

    appointed = services.distributor_appoint(
        customer_id=customer.pk, actor=staff, display_name="Now KOC", upline_id=new_upline.pk
    )

    assert appointed.pk == applied.pk
    assert (appointed.status, appointed.display_name) == (S.ACTIVE, "Now KOC")
    assert appointed.joined_at is not None
    assert tree_ancestors(child.pk) == [applied.pk, new_upline.pk]
    assert closure() == expected_closure()
    assert events(applied)[-1][:3] == (E.APPOINTED, S.APPLIED, S.ACTIVE)


def test_appointing_is_refused_for_active_ones_unknown_customers_uplines_and_cycles():
    active = make_distributor()
    applied = make_distributor(status=S.APPLIED)
    below = make_distributor(upline=applied)

    def appoint(customer_id, upline_id=None):
        return lambda: services.distributor_appoint(
            customer_id=customer_id, actor=None, display_name="X", upline_id=upline_id
        )

    assert code_of(appoint(active.customer_id))[:2] == (409, "already_distributor")
    assert code_of(appoint(999_999))[:2] == (404, "customer_not_found")
    assert code_of(appoint(CustomerFactory().pk, 999_999))[:2] == (404, "distributor_not_found")
    before = closure()
    assert code_of(appoint(applied.customer_id, below.pk))[:2] == (409, "referral_cycle")
    assert closure() == before
    assert Distributor.objects.get(pk=applied.pk).status == S.APPLIED
    assert code_of(
        lambda: services.distributor_appoint(
            customer_id=CustomerFactory().pk, actor=None, display_name="X", kind="boss"
        )
    )[:2] == (422, "distributor_profile_invalid")


# --- the upline from links ------------------------------------------------------------------------
def test_the_upline_is_the_distributor_of_the_latest_click_by_default():
    older, newer = make_distributor(), make_distributor()
    customer = CustomerFactory()
    now = timezone.now()
    link_click(customer, older, at=now - timedelta(days=3))
    link_click(customer, newer, at=now - timedelta(days=1))

    distributor = join(customer)  # application mode: applied, yet placed in the tree

    assert distributor.status == S.APPLIED
    assert distributor.upline_id == newer.pk
    assert distributor.depth == 1
    assert tree_ancestors(distributor.pk) == [newer.pk]
    assert events(distributor)[0][0] == E.APPLIED
    assert DistributorEvent.objects.get(distributor=distributor).data["upline_id"] == newer.pk


def test_first_click_and_none_recruit_rules():
    older, newer = make_distributor(), make_distributor()
    set_policy(onboarding="everyone", recruit="first_click")
    now = timezone.now()
    first, second = CustomerFactory(), CustomerFactory()
    for customer in (first, second):
        link_click(customer, older, at=now - timedelta(days=3))
        link_click(customer, newer, at=now - timedelta(days=1))

    assert join(first).upline_id == older.pk
    set_policy(recruit="none")
    assert join(second).upline_id is None


def test_only_clicks_of_other_active_distributors_through_links_recruit():
    set_policy(onboarding="everyone")
    now = timezone.now()
    good = make_distributor()
    suspended = make_distributor(status=S.SUSPENDED)
    spammer = make_distributor()
    coder = make_distributor()
    customer = CustomerFactory()
    link_click(customer, good, at=now - timedelta(days=5))
    link_click(customer, suspended, at=now - timedelta(days=4))
    link_click(customer, spammer, at=now - timedelta(days=3), status=Click.Status.BOT)
    link_click(customer, coder, at=now - timedelta(days=2), kind=Click.Kind.CODE)

    assert join(customer).upline_id == good.pk


def test_a_duplicate_click_still_recruits():
    recruiter = make_distributor()
    customer = CustomerFactory()
    link_click(customer, recruiter, status=Click.Status.DUPLICATE)

    assert join(customer).upline_id == recruiter.pk


# --- re-parenting ---------------------------------------------------------------------------------
def _attribution_of(distributor: Distributor) -> Attribution:
    rule = AttributionRule.objects.create(
        version=AttributionRule.objects.count() + 1,
        model="last_touch",
        effective_from=timezone.now(),
    )
    order = paid()
    attribution = Attribution.objects.create(
        order=order,
        customer=order.customer,
        distributor=distributor,
        rule=rule,
        rule_version=rule.version,
        touch="click",
        source="normal",
        goods_amount=order.total,
        paid_at=order.paid_at,
        ancestry=tree_ancestors(distributor.pk),
    )
    AttributionLevel.objects.create(attribution=attribution, level=1, distributor=distributor)
    AttributionLevel.objects.create(
        attribution=attribution, level=2, distributor_id=distributor.upline_id
    )
    return attribution


def test_reparenting_moves_the_subtree_exactly_and_leaves_attributions_alone():
    root, a, b, c = make_chain(4)
    leaf = make_distributor(upline=c)
    other = make_distributor()
    attribution = _attribution_of(c)
    staff = StaffFactory()

    moved = services.distributor_reparent(
        distributor_id=b.pk, upline_id=other.pk, actor=staff, reason="Recruited offline"
    )

    assert (moved.upline_id, moved.depth) == (other.pk, 1)
    assert tree_ancestors(leaf.pk) == [c.pk, b.pk, other.pk]
    assert closure() == expected_closure()
    assert depths_match_uplines()
    assert DistributorEvent.objects.get(distributor=b).data == {
        "from_upline_id": a.pk,
        "to_upline_id": other.pk,
        "from_depth": 2,
        "to_depth": 1,
    }
    assert events(b) == [(E.REPARENTED, S.ACTIVE, S.ACTIVE, staff.pk, "Recruited offline")]
    attribution.refresh_from_db()
    assert attribution.ancestry == [b.pk, a.pk, root.pk]
    assert list(attribution.levels.values_list("level", "distributor_id")) == [(1, c.pk), (2, b.pk)]


def test_reparenting_to_a_root_and_back():
    a, b, c = make_chain(3)

    services.distributor_reparent(distributor_id=b.pk, upline_id=None, actor=None, reason="Split")
    assert Distributor.objects.get(pk=c.pk).depth == 1
    assert closure() == expected_closure()

    services.distributor_reparent(distributor_id=b.pk, upline_id=a.pk, actor=None, reason="Undo")
    assert tree_ancestors(c.pk) == [b.pk, a.pk]
    assert closure() == expected_closure()
    assert depths_match_uplines()


@pytest.mark.parametrize("target", ["itself", "child", "grandchild"])
def test_reparenting_under_itself_or_its_downline_is_refused_and_changes_nothing(target):
    _, b, c, d = make_chain(4)
    upline = {"itself": b, "child": c, "grandchild": d}[target]
    before = closure()
    uplines = dict(Distributor.objects.values_list("pk", "upline_id"))

    result = code_of(
        lambda: services.distributor_reparent(
            distributor_id=b.pk, upline_id=upline.pk, actor=None, reason="Try"
        )
    )

    assert result == (409, "referral_cycle", {"distributor_id": b.pk, "upline_id": upline.pk})
    assert closure() == before
    assert dict(Distributor.objects.values_list("pk", "upline_id")) == uplines
    assert not DistributorEvent.objects.exists()


def test_reparenting_needs_a_reason_and_a_known_upline_and_under_the_same_upline_is_a_no_op():
    a, b = make_chain(2)

    def reparent(upline_id, reason="Why"):
        return lambda: services.distributor_reparent(
            distributor_id=b.pk, upline_id=upline_id, actor=None, reason=reason
        )

    assert code_of(reparent(None, reason=" "))[:2] == (422, "distributor_reason_invalid")
    assert code_of(reparent(999_999))[:2] == (404, "distributor_not_found")
    assert reparent(a.pk)().upline_id == a.pk
    assert not DistributorEvent.objects.exists()


# --- the profile ----------------------------------------------------------------------------------
def test_a_profile_change_records_what_changed():
    customer = CustomerFactory()
    distributor = make_distributor(customer=customer, display_name="Mei")

    services.distributor_profile_update(distributor=distributor, display_name="Mei")  # same
    updated = services.distributor_profile_update(
        distributor=distributor, display_name=" Mei's picks ", channels=["douyin", "offline"]
    )

    assert (updated.display_name, updated.channels) == ("Mei's picks", ["douyin", "offline"])
    event = DistributorEvent.objects.get(distributor=distributor)
    assert (event.kind, event.actor_id) == (E.PROFILE_UPDATED, customer.user_id)
    assert event.data == {
        "changes": {
            "display_name": ["Mei", "Mei's picks"],
            "channels": [[], ["douyin", "offline"]],
        }
    }
    too_many = [*services.CHANNELS, "other"]
    assert code_of(
        lambda: services.distributor_profile_update(distributor=distributor, channels=too_many)
    )[:2] == (422, "distributor_profile_invalid")


# --- qualification by spend (on order_paid) -------------------------------------------------------
def test_a_paid_order_that_reaches_the_threshold_makes_a_distributor(committed):
    set_policy(onboarding="spend_threshold", spend_threshold=5000)
    recruiter = make_distributor()
    customer = CustomerFactory(nickname="Lan")
    link_click(customer, recruiter)

    committed(paid, customer)  # 3980
    assert not Distributor.objects.filter(customer=customer).exists()
    committed(paid, customer)  # 7960
    committed(paid, customer)

    distributor = Distributor.objects.get(customer=customer)
    assert (distributor.status, distributor.onboarding, distributor.display_name) == (
        S.ACTIVE,
        "spend",
        "Lan",
    )
    assert distributor.upline_id == recruiter.pk
    event = DistributorEvent.objects.get(distributor=distributor)
    assert (event.kind, event.actor_id) == (E.QUALIFIED, None)
    assert event.data == {"spent": 7960, "threshold": 5000, "upline_id": recruiter.pk}
    assert Notification.objects.filter(user=customer.user, kind__startswith="referral").count() == 1
    assert closure() == expected_closure()


def test_qualification_is_idempotent_and_named_after_the_id_without_a_nickname():
    set_policy(onboarding="spend_threshold", spend_threshold=0)
    customer = CustomerFactory(nickname="  ")

    made = services.distributor_qualify_by_spend(customer_id=customer.pk)
    again = services.distributor_qualify_by_spend(customer_id=customer.pk)

    assert made.display_name == f"KOC {customer.pk}"
    assert again is None
    assert Distributor.objects.count() == 1
    assert services.distributor_qualify_by_spend(customer_id=999_999) is None


@pytest.mark.parametrize("mode", ["everyone", "application", "appointed"])
def test_no_qualification_in_other_modes_and_one_query(mode, django_assert_num_queries):
    set_policy(onboarding=mode)
    customer = CustomerFactory()
    paid(customer)

    with django_assert_num_queries(1):
        assert services.distributor_qualify_by_spend(customer_id=customer.pk) is None
    assert not Distributor.objects.exists()


def test_qualification_costs_two_queries_when_nothing_applies(django_assert_num_queries):
    set_policy(onboarding="spend_threshold", spend_threshold=5000)
    below = CustomerFactory()
    paid(below)
    already = make_distributor()

    for customer_id in (below.pk, already.customer_id):
        with django_assert_num_queries(2):
            assert services.distributor_qualify_by_spend(customer_id=customer_id) is None
    assert Distributor.objects.count() == 1


# --- the admin ------------------------------------------------------------------------------------
def test_every_referral_model_has_a_read_only_admin_page(client):
    client.force_login(StaffFactory())
    make_distributor(upline=make_distributor())
    services.policy_get()

    for model in apps.get_app_config("referral").get_models():
        name = model._meta.model_name
        listing = client.get(reverse(f"admin:referral_{name}_changelist"))
        assert listing.status_code == 200, name
        assert client.get(reverse(f"admin:referral_{name}_add")).status_code == 403, name
    one = Distributor.objects.first()
    page = client.get(reverse("admin:referral_distributor_change", args=[one.pk]))
    assert page.status_code == 200
    assert b'name="_save"' not in page.content


def test_the_admin_approves_and_suspends_with_a_reason_through_the_services(client):
    staff = StaffFactory()
    client.force_login(staff)
    applied = make_distributor(status=S.APPLIED)
    active = make_distributor()
    url = reverse("admin:referral_distributor_changelist")

    client.post(url, {"action": "approve", "_selected_action": [applied.pk, active.pk]})
    asked = client.post(url, {"action": "suspend", "_selected_action": [active.pk]})
    refused = client.post(
        url, {"action": "suspend", "_selected_action": [active.pk], "apply": "1", "reason": ""}
    )
    client.post(
        url, {"action": "suspend", "_selected_action": [active.pk], "apply": "1", "reason": "Spam"}
    )

    assert asked.status_code == 200 and b"reason" in asked.content
    assert refused.status_code == 200
    assert events(applied) == [(E.APPROVED, S.APPLIED, S.ACTIVE, staff.pk, "")]
    assert events(active) == [(E.SUSPENDED, S.ACTIVE, S.SUSPENDED, staff.pk, "Spam")]


def test_the_admin_actions_need_the_change_permission(client):
    from django.contrib.auth.models import Permission

    from tests.factories import UserFactory

    viewer = UserFactory(is_staff=True)
    viewer.user_permissions.add(
        Permission.objects.get(content_type__app_label="referral", codename="view_distributor")
    )
    client.force_login(viewer)
    applied = make_distributor(status=S.APPLIED)
    url = reverse("admin:referral_distributor_changelist")

    client.post(url, {"action": "approve", "_selected_action": [applied.pk]})

    assert Distributor.objects.get(pk=applied.pk).status == S.APPLIED
    assert client.get(url).status_code == 200
