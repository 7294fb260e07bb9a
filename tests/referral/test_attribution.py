"""Order attribution end to end on PostgreSQL: real paid orders whose ``order_paid`` the outbox
delivers to referral's subscriber, clicks made at chosen times, each rule model, window edges,
codes, self purchase, the level cap and the snapshot of the tree, idempotency, refunds."""

import itertools
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.db import IntegrityError, connection, transaction
from django.test.utils import CaptureQueriesContext

from core.errors import InvalidInput
from core.models import OutboxEvent
from referral.error_codes import AttributionErrorCode
from referral.locks import tree_lock
from referral.models import (
    Attribution,
    AttributionLevel,
    AttributionRefund,
    AttributionRule,
    Binding,
    Click,
    Distributor,
    ExclusiveCode,
    FraudFlag,
    ShareLink,
)
from referral.services.attribution import attribution_refund, order_attribute
from referral.services.rules_admin import rule_current, rule_version_create
from referral.services.tree import tree_move
from shop.models import CouponCode, CouponTemplate
from tests.factories import SkuFactory
from tests.referral.factories import make_chain, make_distributor
from tests.shop.factories_orders import QuickCustomerFactory, pay, place

pytestmark = pytest.mark.django_db

T0 = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)
SECOND = timedelta(seconds=1)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_codes = itertools.count(1)


# --- helpers (also used by the API and race tests) ------------------------------------------------
def use_rule(model: str = "last_touch", **fields) -> AttributionRule:
    """A rule version in force since the epoch (the next version number)."""
    last = AttributionRule.objects.order_by("-version").first()
    values = {
        "binding_days": 30,
        "click_window_days": 7,
        "code_overrides_link": True,
        "self_purchase": "self",
        "effective_from": EPOCH,
        **fields,
    }
    return AttributionRule.objects.create(
        version=(last.version + 1) if last else 1, model=model, **values
    )


def link_of(distributor: Distributor, **fields) -> ShareLink:
    return ShareLink.objects.create(
        distributor=distributor, short_code=f"L{next(_codes)}", target_kind="shop", **fields
    )


def click(link: ShareLink, *, at: datetime, customer=None, device=None, status="counted") -> Click:
    visitor = f"c:{customer.pk}" if customer else f"d:{device}"
    return Click.objects.create(
        link=link,
        distributor=link.distributor,
        status=status,
        occurred_at=at,
        customer=customer,
        device_id=device,
        visitor_key=visitor,
    )


def exclusive_code(distributor: Distributor, text: str = "") -> ExclusiveCode:
    """An exclusive code made by hand (as the issuing service will): a code-channel exclusive
    template, its code, a hidden code link and the tie to the distributor."""
    template = CouponTemplate.objects.create(
        name="Exclusive 1 yuan off",
        kind=CouponTemplate.Kind.FIXED,
        amount=100,
        channel=CouponTemplate.Channel.CODE,
        status=CouponTemplate.Status.ACTIVE,
        is_exclusive=True,
        valid_days=7,
        per_customer_limit=5,
    )
    code = CouponCode.objects.create(
        code=text or f"KOC{next(_codes)}", template=template, kind=CouponCode.Kind.SHARED
    )
    link = link_of(distributor, is_code_link=True)
    return ExclusiveCode.objects.create(distributor=distributor, coupon_code=code, link=link)


def buy(committed, customer, at: datetime, *, pay_at: datetime | None = None, **order_fields):
    """A real order placed at ``at`` and paid at ``pay_at`` (default: the same instant); the
    outbox delivers its ``order_paid`` to referral's subscriber."""
    with time_machine.travel(at, tick=False):
        order = place(customer, [(SkuFactory(price=1990, stock=100), 2)], **order_fields)
    with time_machine.travel(pay_at or at, tick=False):
        committed(pay, order)
    return order


def attribution_of(order) -> Attribution:
    return Attribution.objects.get(order_id=order.pk)


def levels_of(attribution: Attribution) -> list[tuple[int, int]]:
    return list(attribution.levels.order_by("level").values_list("level", "distributor_id"))


def attributed_events(order) -> list[dict]:
    return list(
        OutboxEvent.objects.filter(name="order_attributed", payload__order_id=order.pk)
        .order_by("pk")
        .values_list("payload", flat=True)
    )


def order_paid_payload(order) -> dict:
    return OutboxEvent.objects.get(name="order_paid", payload__order_id=order.pk).payload


# --- last touch --------------------------------------------------------------------------------
def test_a_click_attributes_a_real_paid_order_and_announces_it(committed):
    rule = use_rule("last_touch", click_window_days=7)
    upline = make_distributor()
    koc = make_distributor(upline=upline)
    buyer = QuickCustomerFactory()
    shared = link_of(koc)
    made = click(shared, at=T0 - 2 * DAY, customer=buyer)

    order = buy(committed, buyer, T0)

    attribution = attribution_of(order)
    assert (attribution.distributor_id, attribution.touch, attribution.reason) == (
        koc.pk,
        "click",
        "last_touch",
    )
    assert (attribution.click_id, attribution.link_id) == (made.pk, shared.pk)
    assert (attribution.rule_id, attribution.rule_version) == (rule.pk, rule.version)
    assert attribution.ancestry == [upline.pk]
    assert levels_of(attribution) == [(1, koc.pk), (2, upline.pk)]
    assert attribution.goods_amount == order.total == 3980
    assert attribution.paid_at == T0 and attribution.source == "normal"
    assert attribution.self_purchase is False
    [event] = attributed_events(order)
    assert event == {
        "order_id": order.pk,
        "attribution_id": attribution.pk,
        "customer_id": buyer.pk,
        "community_id": order.community_id,
        "distributor_id": koc.pk,
        "rule_version": rule.version,
        "touch": "click",
        "reason": "last_touch",
        "click_id": made.pk,
        "link_id": shared.pk,
        "exclusive_code_id": None,
        "self_purchase": False,
        "levels": [
            {"level": 1, "distributor_id": koc.pk},
            {"level": 2, "distributor_id": upline.pk},
        ],
        "ancestry": [upline.pk],
        "source": "normal",
        "source_ref": None,
        "total": 3980,
        "goods_amount": 3980,
        "paid_at": T0.isoformat(),
        "lines": order_paid_payload(order)["lines"],
        "fraud_flags": [],
    }


def test_the_newest_click_wins_and_bot_clicks_never_count(committed):
    use_rule("last_touch")
    older, newer, bot = make_distributor(), make_distributor(), make_distributor()
    buyer = QuickCustomerFactory()
    click(link_of(older), at=T0 - 3 * DAY, customer=buyer)
    latest = click(link_of(newer), at=T0 - 2 * DAY, customer=buyer, status="duplicate")
    click(link_of(bot), at=T0 - DAY, customer=buyer, status="bot")

    attribution = attribution_of(buy(committed, buyer, T0))

    assert (attribution.distributor_id, attribution.click_id) == (newer.pk, latest.pk)


@pytest.mark.parametrize(
    ("age", "expected"),
    [(7 * DAY, "last_touch"), (7 * DAY + SECOND, "window_expired")],
    ids=["exactly 7 days: counted", "7 days and a second: expired"],
)
def test_the_click_window_edge_is_checked_at_payment_time(committed, age, expected):
    use_rule("last_touch", click_window_days=7)
    koc = make_distributor()
    buyer = QuickCustomerFactory()
    click(link_of(koc), at=T0 - age, customer=buyer)

    # placed a day after the click, paid when the click is exactly (or just over) 7 days old
    attribution = attribution_of(buy(committed, buyer, T0 - age + DAY, pay_at=T0))

    assert attribution.reason == expected
    assert attribution.distributor_id == (koc.pk if expected == "last_touch" else None)
    assert attribution.touch == ("click" if expected == "last_touch" else "none")
    assert levels_of(attribution) == ([(1, koc.pk)] if expected == "last_touch" else [])


def test_no_click_means_nobody_and_the_event_still_goes_out(committed):
    use_rule("last_touch")
    order = buy(committed, QuickCustomerFactory(), T0)

    attribution = attribution_of(order)
    assert (attribution.distributor_id, attribution.touch, attribution.reason) == (
        None,
        "none",
        "no_touch",
    )
    [event] = attributed_events(order)
    assert (event["distributor_id"], event["levels"], event["ancestry"]) == (None, [], [])


def test_clicks_of_the_device_before_login_are_the_customers(committed):
    use_rule("last_touch")
    koc, other = make_distributor(), make_distributor()
    device = uuid.uuid4()
    buyer = QuickCustomerFactory()
    made = click(link_of(koc), at=T0 - DAY, device=device)  # anonymous, before login
    click(link_of(other), at=T0 - SECOND, device=uuid.uuid4())  # another device's

    attribution = attribution_of(buy(committed, buyer, T0, device_id=device))

    assert (attribution.distributor_id, attribution.click_id) == (koc.pk, made.pk)


def test_a_click_after_the_payment_did_not_cause_it():
    use_rule("last_touch")
    before, after = make_distributor(), make_distributor()
    buyer = QuickCustomerFactory()
    with time_machine.travel(T0, tick=False):
        order = place(buyer)
        pay(order)
    earlier = click(link_of(before), at=T0 - DAY, customer=buyer)
    click(link_of(after), at=T0 + SECOND, customer=buyer)  # e.g. an event delivered late

    attribution = order_attribute(order_paid=order_paid_payload(order))

    assert (attribution.distributor_id, attribution.click_id) == (before.pk, earlier.pk)


# --- binding and first touch --------------------------------------------------------------------
def test_binding_keeps_the_customer_through_an_intruder_until_it_expires(committed):
    use_rule("binding", binding_days=30)
    first, intruder = make_distributor(), make_distributor()
    buyer = QuickCustomerFactory()
    first_click = click(link_of(first), at=T0, customer=buyer)

    one = attribution_of(buy(committed, buyer, T0 + DAY))
    click(link_of(intruder), at=T0 + 5 * DAY, customer=buyer)
    two = attribution_of(buy(committed, buyer, T0 + 6 * DAY))
    # 30 days after the first distributor's last touch the binding is still on...
    three = attribution_of(buy(committed, buyer, T0 + 30 * DAY))
    # ...and a second later it has expired: the intruder's old click bound nothing
    four = attribution_of(buy(committed, buyer, T0 + 30 * DAY + SECOND))
    late_click = click(link_of(intruder), at=T0 + 40 * DAY, customer=buyer)
    five = attribution_of(buy(committed, buyer, T0 + 41 * DAY))

    assert (one.distributor_id, one.touch, one.reason, one.click_id) == (
        first.pk,
        "binding",
        "binding",
        first_click.pk,
    )
    assert (two.distributor_id, two.touch, two.click_id) == (first.pk, "binding", first_click.pk)
    assert three.distributor_id == first.pk
    assert (four.distributor_id, four.reason) == (None, "binding_expired")
    assert (five.distributor_id, five.click_id) == (intruder.pk, late_click.pk)
    binding = Binding.objects.get(customer=buyer)
    assert (binding.distributor_id, binding.bound_at, binding.last_touch_at) == (
        intruder.pk,
        T0 + 40 * DAY,
        T0 + 40 * DAY,
    )


def test_a_touch_of_the_bound_distributor_refreshes_the_binding(committed):
    use_rule("binding", binding_days=30)
    bound = make_distributor()
    buyer = QuickCustomerFactory()
    shared = link_of(bound)
    click(shared, at=T0, customer=buyer)
    buy(committed, buyer, T0 + DAY)
    refresh = click(shared, at=T0 + 20 * DAY, customer=buyer)

    later = attribution_of(buy(committed, buyer, T0 + 45 * DAY))

    assert (later.distributor_id, later.click_id, later.link_id) == (
        bound.pk,
        refresh.pk,
        shared.pk,
    )
    binding = Binding.objects.get(customer=buyer)
    assert (binding.bound_at, binding.last_touch_at, binding.click_id) == (
        T0,
        T0 + 20 * DAY,
        refresh.pk,
    )


def test_first_touch_binds_for_good(committed):
    use_rule("first_touch")
    first, second = make_distributor(), make_distributor()
    buyer = QuickCustomerFactory()
    click(link_of(first), at=T0 - 400 * DAY, customer=buyer)
    click(link_of(second), at=T0 - DAY, customer=buyer)

    now = attribution_of(buy(committed, buyer, T0))
    click(link_of(second), at=T0 + 300 * DAY, customer=buyer)
    much_later = attribution_of(buy(committed, buyer, T0 + 900 * DAY))

    assert (now.distributor_id, now.touch, now.reason) == (first.pk, "binding", "first_touch")
    assert much_later.distributor_id == first.pk
    assert Binding.objects.get(customer=buyer).distributor_id == first.pk


# --- exclusive codes ----------------------------------------------------------------------------
def test_an_exclusive_code_overrides_a_link_and_is_recorded_as_a_code_click(committed):
    use_rule("last_touch", code_overrides_link=True)
    linker, coder = make_distributor(), make_distributor()
    buyer = QuickCustomerFactory()
    click(link_of(linker), at=T0 - SECOND, customer=buyer)
    code = exclusive_code(coder, "MINGS-PICKS")

    order = buy(committed, buyer, T0 - DAY, pay_at=T0, coupon_code="mings-picks")

    attribution = attribution_of(order)
    code_click = Click.objects.get(kind="code", customer=buyer)
    assert (attribution.distributor_id, attribution.touch, attribution.reason) == (
        coder.pk,
        "code",
        "code_overrides_link",
    )
    assert (attribution.exclusive_code_id, attribution.click_id, attribution.link_id) == (
        code.pk,
        code_click.pk,
        code.link_id,
    )
    assert (code_click.link_id, code_click.distributor_id, code_click.status) == (
        code.link_id,
        coder.pk,
        "counted",
    )
    assert code_click.occurred_at == order.created_at == T0 - DAY  # the checkout, not the payment
    assert (code_click.visitor_key, code_click.flushed) == (f"c:{buyer.pk}", False)
    assert order.discount == 100  # the code discounted the order too


def test_a_code_that_does_not_override_is_the_newest_touch(committed):
    use_rule("last_touch", code_overrides_link=False)
    linker, coder = make_distributor(), make_distributor()
    buyer = QuickCustomerFactory()
    click(link_of(linker), at=T0 - SECOND, customer=buyer)  # after the checkout, before paying
    exclusive_code(coder, "LAN-CODE")

    attribution = attribution_of(buy(committed, buyer, T0 - DAY, pay_at=T0, coupon_code="LAN-CODE"))

    # the click came after the checkout's code touch: the newest touch wins
    assert (attribution.distributor_id, attribution.touch) == (linker.pk, "click")
    assert attribution.exclusive_code_id is not None


def test_under_binding_a_code_does_not_steal_a_bound_customer_unless_configured(committed):
    use_rule("binding", code_overrides_link=False)
    bound, coder = make_distributor(), make_distributor()
    buyer = QuickCustomerFactory()
    click(link_of(bound), at=T0 - 2 * DAY, customer=buyer)
    exclusive_code(coder, "STEAL")
    exclusive_code(coder, "STEAL-AGAIN")  # a customer redeems each code once

    kept = attribution_of(buy(committed, buyer, T0, coupon_code="STEAL"))
    use_rule("binding", code_overrides_link=True)
    overridden = attribution_of(buy(committed, buyer, T0 + DAY, coupon_code="STEAL-AGAIN"))

    assert (kept.distributor_id, kept.touch, kept.reason) == (bound.pk, "binding", "binding")
    assert (overridden.distributor_id, overridden.touch) == (coder.pk, "code")
    assert Binding.objects.get(customer=buyer).distributor_id == bound.pk


# --- self purchase ------------------------------------------------------------------------------
@pytest.mark.parametrize("option", ["self", "none"])
def test_a_distributors_own_order_counts_for_them_or_for_nobody(committed, option):
    use_rule("last_touch", self_purchase=option)
    upline = make_distributor()
    buyer = QuickCustomerFactory()
    me = make_distributor(upline=upline, customer=buyer)
    click(link_of(make_distributor()), at=T0 - DAY, customer=buyer)

    attribution = attribution_of(buy(committed, buyer, T0))

    assert attribution.self_purchase is True
    if option == "self":
        assert (attribution.distributor_id, attribution.touch, attribution.reason) == (
            me.pk,
            "self",
            "self_purchase",
        )
        assert levels_of(attribution) == [(1, me.pk), (2, upline.pk)]
    else:
        assert (attribution.distributor_id, attribution.touch, attribution.reason) == (
            None,
            "none",
            "self_purchase_excluded",
        )
        assert levels_of(attribution) == []


def test_a_suspended_distributor_buying_is_an_ordinary_customer(committed):
    use_rule("last_touch", self_purchase="self")
    buyer = QuickCustomerFactory()
    make_distributor(customer=buyer, status=Distributor.Status.SUSPENDED)
    koc = make_distributor()
    click(link_of(koc), at=T0 - DAY, customer=buyer)

    attribution = attribution_of(buy(committed, buyer, T0))

    assert (attribution.distributor_id, attribution.self_purchase) == (koc.pk, False)


# --- active distributors and the level cap ------------------------------------------------------
def test_a_suspended_distributors_click_gives_nobody_not_someone_else(committed):
    use_rule("last_touch")
    active, suspended = make_distributor(), make_distributor(status=Distributor.Status.SUSPENDED)
    buyer = QuickCustomerFactory()
    click(link_of(active), at=T0 - 2 * DAY, customer=buyer)
    theirs = click(link_of(suspended), at=T0 - DAY, customer=buyer)

    attribution = attribution_of(buy(committed, buyer, T0))

    assert (attribution.distributor_id, attribution.reason) == (None, "distributor_inactive")
    assert attribution.click_id == theirs.pk  # the operators see whose click it was
    assert levels_of(attribution) == []


@pytest.mark.parametrize("upline_status", [Distributor.Status.ACTIVE, Distributor.Status.SUSPENDED])
def test_level_two_only_for_an_active_direct_upline_never_a_skip(committed, upline_status):
    use_rule("last_touch")
    root = make_distributor()
    upline = make_distributor(upline=root)
    koc = make_distributor(upline=upline)
    Distributor.objects.filter(pk=upline.pk).update(status=upline_status)
    buyer = QuickCustomerFactory()
    click(link_of(koc), at=T0 - DAY, customer=buyer)

    attribution = attribution_of(buy(committed, buyer, T0))

    expected = [(1, koc.pk), (2, upline.pk)] if upline_status == "active" else [(1, koc.pk)]
    assert levels_of(attribution) == expected
    assert attribution.ancestry == [upline.pk, root.pk]


def test_a_five_deep_chain_pays_two_levels_and_snapshots_the_whole_ancestry(committed):
    use_rule("last_touch")
    chain = make_chain(5)
    buyer = QuickCustomerFactory()
    click(link_of(chain[-1]), at=T0 - DAY, customer=buyer)

    order = buy(committed, buyer, T0)

    attribution = attribution_of(order)
    assert levels_of(attribution) == [(1, chain[4].pk), (2, chain[3].pk)]
    assert attribution.ancestry == [d.pk for d in reversed(chain[:4])]
    [event] = attributed_events(order)
    assert len(event["levels"]) == 2 and event["ancestry"] == attribution.ancestry


def test_a_later_re_parenting_leaves_the_stored_attribution_alone(committed):
    use_rule("last_touch")
    old_upline, new_upline = make_distributor(), make_distributor()
    koc = make_distributor(upline=old_upline)
    buyer = QuickCustomerFactory()
    click(link_of(koc), at=T0 - DAY, customer=buyer)
    before = attribution_of(buy(committed, buyer, T0))

    with transaction.atomic():
        tree_lock()
        tree_move(distributor=Distributor.objects.get(pk=koc.pk), upline=new_upline)
    after = attribution_of(buy(committed, buyer, T0 + SECOND))

    before.refresh_from_db()
    assert (before.ancestry, levels_of(before)) == (
        [old_upline.pk],
        [(1, koc.pk), (2, old_upline.pk)],
    )
    assert (after.ancestry, levels_of(after)) == (
        [new_upline.pk],
        [(1, koc.pk), (2, new_upline.pk)],
    )


def test_the_database_refuses_a_third_paid_level(committed):
    use_rule("last_touch")
    root, _, leaf = make_chain(3)
    buyer = QuickCustomerFactory()
    click(link_of(leaf), at=T0 - DAY, customer=buyer)
    attribution = attribution_of(buy(committed, buyer, T0))

    with pytest.raises(IntegrityError), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO referral_attributionlevel (attribution_id, level, distributor_id) "
            "VALUES (%s, 3, %s)",
            [attribution.pk, root.pk],
        )
    assert AttributionLevel.objects.filter(attribution=attribution).count() == 2


# --- idempotency and history --------------------------------------------------------------------
def test_the_same_order_paid_delivered_twice_attributes_once_and_announces_once(committed):
    use_rule("binding")
    koc = make_distributor()
    buyer = QuickCustomerFactory()
    click(link_of(koc), at=T0 - DAY, customer=buyer)
    order = buy(committed, buyer, T0)
    first = attribution_of(order)

    again = committed(order_attribute, order_paid=order_paid_payload(order))

    assert again.pk == first.pk
    assert Attribution.objects.filter(order_id=order.pk).count() == 1
    assert len(attributed_events(order)) == 1
    assert Binding.objects.filter(customer=buyer).count() == 1


def test_the_rule_in_force_at_the_payment_is_applied_and_stored(committed):
    v1 = use_rule("last_touch")
    koc = make_distributor()
    buyer = QuickCustomerFactory()
    click(link_of(koc), at=T0 - 10 * DAY, customer=buyer)
    with time_machine.travel(T0 - 20 * DAY, tick=False):
        v2 = rule_version_create(
            actor=None,
            model="last_touch",
            binding_days=30,
            click_window_days=14,
            code_overrides_link=True,
            self_purchase="self",
            effective_from=T0 - SECOND,
            note="Two weeks",
        )

    before = attribution_of(buy(committed, buyer, T0 - 2 * SECOND))
    after = attribution_of(buy(committed, buyer, T0))

    assert (before.rule_version, before.reason) == (v1.version, "window_expired")
    assert (after.rule_version, after.distributor_id) == (v2.version, koc.pk)
    assert v2.version == v1.version + 1


def test_the_default_rule_is_version_one_from_the_epoch_and_made_once():
    made = rule_current()
    again = rule_current(now=T0)

    assert made.pk == again.pk
    assert (made.version, made.model, made.click_window_days, made.binding_days) == (
        1,
        "last_touch",
        7,
        30,
    )
    assert (made.code_overrides_link, made.self_purchase, made.effective_from) == (
        True,
        "self",
        EPOCH,
    )
    assert AttributionRule.objects.count() == 1


def test_a_first_attribution_without_any_rule_uses_the_default(committed):
    koc = make_distributor()
    buyer = QuickCustomerFactory()
    click(link_of(koc), at=T0 - DAY, customer=buyer)

    attribution = attribution_of(buy(committed, buyer, T0))

    assert (attribution.rule_version, attribution.distributor_id) == (1, koc.pk)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("model", "pyramid"),
        ("binding_days", 0),
        ("binding_days", 3651),
        ("click_window_days", 366),
        ("click_window_days", True),
        ("code_overrides_link", 1),
        ("self_purchase", "upline"),
        ("note", "x" * 501),
        ("effective_from", T0 - DAY),
        ("effective_from", datetime(2025, 6, 2, 12, 0)),
    ],
)
def test_a_rule_version_out_of_range_is_refused_naming_the_field(field, value):
    good = {
        "model": "binding",
        "binding_days": 30,
        "click_window_days": 7,
        "code_overrides_link": True,
        "self_purchase": "self",
        "effective_from": None,
        "note": "",
    }
    with time_machine.travel(T0, tick=False), pytest.raises(InvalidInput) as refused:
        rule_version_create(actor=None, **{**good, field: value})

    assert refused.value.code == AttributionErrorCode.RULE_INVALID
    assert refused.value.details["field"] == field
    assert not AttributionRule.objects.exclude(version=1).exists()


def test_a_version_cannot_take_effect_before_the_latest_one():
    fields = {
        "actor": None,
        "model": "last_touch",
        "binding_days": 30,
        "click_window_days": 7,
        "code_overrides_link": True,
        "self_purchase": "self",
    }
    with time_machine.travel(T0, tick=False):
        later = rule_version_create(**fields, effective_from=T0 + 10 * DAY)
        with pytest.raises(InvalidInput) as refused:
            rule_version_create(**fields, effective_from=T0 + 5 * DAY)

    assert refused.value.details == {"field": "effective_from", "reason": "before_latest_version"}
    assert later.version == 2
    assert list(AttributionRule.objects.values_list("version", flat=True)) == [2, 1]


# --- refunds -----------------------------------------------------------------------------------
def _refund(order, refund_id, amount):
    return {
        "order_id": order.pk,
        "refund_id": refund_id,
        "amount": amount,
        "refunded_at": (T0 + DAY).isoformat(),
        "lines": [],
    }


def test_refunds_add_up_once_each_and_never_past_the_goods(committed):
    use_rule("last_touch")
    koc = make_distributor()
    buyer = QuickCustomerFactory()
    click(link_of(koc), at=T0 - DAY, customer=buyer)
    order = buy(committed, buyer, T0)

    first = attribution_refund(order_refunded=_refund(order, 9001, 1000))
    twice = attribution_refund(order_refunded=_refund(order, 9001, 1000))
    attribution_refund(order_refunded=_refund(order, 9002, 5000))

    attribution = attribution_of(order)
    assert first is not None and twice is None
    assert attribution.refunded_amount == attribution.goods_amount == 3980
    assert list(
        AttributionRefund.objects.order_by("refund_id").values_list("refund_id", "amount")
    ) == [(9001, 1000), (9002, 5000)]


def test_an_attributed_refund_lets_the_fraud_work_check_the_refund_rate(committed, settings):
    settings.REFERRAL_REFUND_RATE_MIN_ORDERS = 1
    use_rule("last_touch")
    koc = make_distributor()
    buyer = QuickCustomerFactory()
    click(link_of(koc), at=T0 - DAY, customer=buyer)
    order = buy(committed, buyer, T0)

    with time_machine.travel(T0 + DAY, tick=False):
        attribution_refund(order_refunded=_refund(order, 9003, 995))  # 995 / 3980: 25 %, not over

        assert not FraudFlag.objects.filter(distributor=koc).exists()
        attribution_refund(order_refunded=_refund(order, 9004, 1))

    [flag] = FraudFlag.objects.filter(distributor=koc)
    assert (flag.kind, flag.attribution_id) == ("high_refund_rate", None)


def test_a_refund_of_an_unattributed_order_records_nothing():
    with time_machine.travel(T0, tick=False):
        order = place(QuickCustomerFactory())

    assert attribution_refund(order_refunded=_refund(order, 9100, 500)) is None
    assert not AttributionRefund.objects.exists()


# --- budget ------------------------------------------------------------------------------------
def _payload_of_a_paid_order(buyer, **order_fields) -> dict:
    with time_machine.travel(T0, tick=False):
        order = place(buyer, **order_fields)
        pay(order)
    return order_paid_payload(order)


@pytest.mark.parametrize("model", ["last_touch", "binding"])
def test_an_attribution_costs_at_most_12_queries_whatever_the_path(model):
    use_rule(model, code_overrides_link=False)
    koc = make_chain(6)[-1]
    buyer = QuickCustomerFactory()
    click(link_of(koc), at=T0 - DAY, customer=buyer)
    exclusive_code(koc, "BUDGET")
    plain = _payload_of_a_paid_order(buyer)
    with_code = _payload_of_a_paid_order(buyer, coupon_code="BUDGET")

    counts = []
    for payload in (plain, with_code):
        with CaptureQueriesContext(connection) as queries:
            attribution = order_attribute(order_paid=payload)
        assert attribution.distributor_id == koc.pk
        # in the test's transaction the SAVEPOINT and RELEASE stand for BEGIN and COMMIT
        counts.append(len(queries))

    assert max(counts) <= 12, counts
