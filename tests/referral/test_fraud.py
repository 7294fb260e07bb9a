"""Fraud signals (referral/services/fraud.py) on real PostgreSQL: each raised exactly when its
threshold is crossed and not one below, once only (one flag, one ``fraud_flag_changed``), and
the review's transitions. Attributions are built directly (Attribution + AttributionLevel rows
under a rule version 1), as the attribution service would write them."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from core import outbox
from core.errors import ApplicationError
from core.models import OutboxEvent
from referral import events
from referral.models import (
    Attribution,
    AttributionLevel,
    AttributionRule,
    Click,
    Distributor,
    FraudFlag,
    ShareLink,
)
from referral.selectors.fraud import open_flags
from referral.services.fraud import (
    attribution_signals,
    flag_clear,
    flag_confirm,
    fraud_scan,
    refund_rate_check,
)
from referral.services.tree import tree_ancestors
from shop.events import order_paid_payload
from shop.models import Order
from tests.conftest import run_in_threads
from tests.factories import SkuFactory, StaffFactory
from tests.referral.factories import make_chain, make_distributor
from tests.shop.factories_orders import QuickCustomerFactory, paid, quick_pickup_point

pytestmark = pytest.mark.django_db

DEVICE = uuid.UUID("6f1c7a52-0b1e-4f5e-9d55-0f7a3c2e9b11")
OTHER_DEVICE = uuid.UUID("0d3e5b8a-1c2d-4e6f-8a9b-7c6d5e4f3a21")


# --- helpers ------------------------------------------------------------------------------------
def _noticed(**payload):
    """Subscribed in tests so that ``fraud_flag_changed`` is recorded (the outbox writes nothing
    for an event nobody subscribes to)."""


@pytest.fixture
def announced():
    """``announced()``: the payloads of every ``fraud_flag_changed`` recorded, in order."""
    outbox.subscribe(events.FRAUD_FLAG_CHANGED, _noticed)
    yield lambda: list(
        OutboxEvent.objects.filter(name=events.FRAUD_FLAG_CHANGED)
        .order_by("id")
        .values_list("payload", flat=True)
    )
    outbox.unsubscribe(events.FRAUD_FLAG_CHANGED, _noticed)


@pytest.fixture
def store(db):
    """One SKU and one pickup point for every order of a test."""
    return SkuFactory(price=1000, stock=100_000), quick_pickup_point()


def buy(store, customer=None, **kwargs) -> Order:
    sku, point = store
    return paid(customer or QuickCustomerFactory(), [(sku, 1)], pickup_point=point, **kwargs)


def rule() -> AttributionRule:
    return AttributionRule.objects.get_or_create(
        version=1,
        defaults={
            "model": AttributionRule.Model.LAST_TOUCH,
            "effective_from": timezone.now() - timedelta(days=365),
        },
    )[0]


def attribute(
    order: Order,
    distributor: Distributor,
    *,
    ancestry: list[int] | None = None,
    goods_amount: int | None = None,
    refunded_amount: int = 0,
    paid_at: datetime | None = None,
) -> Attribution:
    """What the attribution service writes for ``order`` attributed to ``distributor``."""
    ancestry = tree_ancestors(distributor.pk) if ancestry is None else ancestry
    own = order.customer_id == distributor.customer_id
    attribution = Attribution.objects.create(
        order=order,
        customer_id=order.customer_id,
        distributor=distributor,
        rule=rule(),
        rule_version=1,
        touch=Attribution.Touch.SELF if own else Attribution.Touch.CLICK,
        ancestry=ancestry,
        self_purchase=own,
        source=order.source,
        goods_amount=order.total - order.shipping_fee if goods_amount is None else goods_amount,
        refunded_amount=refunded_amount,
        paid_at=paid_at or order.paid_at,
    )
    AttributionLevel.objects.create(attribution=attribution, level=1, distributor=distributor)
    if ancestry:
        AttributionLevel.objects.create(
            attribution=attribution, level=2, distributor_id=ancestry[0]
        )
    return attribution


def signals(order: Order, distributor: Distributor, **kwargs) -> tuple[Attribution, list]:
    attribution = attribute(order, distributor, **kwargs)
    with transaction.atomic():
        flags = attribution_signals(attribution=attribution, order_paid=order_paid_payload(order))
    return attribution, flags


def link_of(distributor: Distributor) -> ShareLink:
    link = ShareLink.objects.filter(distributor=distributor).first()
    return link or ShareLink.objects.create(
        distributor=distributor, short_code=uuid.uuid4().hex[:12], target_kind="shop"
    )


def clicks(
    distributor: Distributor,
    count: int,
    *,
    at: datetime,
    device: uuid.UUID | None = None,
    ip: str = "",
    customer=None,
    status: str = Click.Status.COUNTED,
    kind: str = Click.Kind.LINK,
) -> None:
    link = link_of(distributor)
    Click.objects.bulk_create(
        Click(
            link=link,
            distributor=distributor,
            status=status,
            kind=kind,
            occurred_at=at,
            customer=customer,
            device_id=device,
            ip_hash=ip,
            visitor_key=f"d:{device}" if device else f"h:{ip}{i}",
        )
        for i in range(count)
    )


def open_flag(
    *,
    key: str,
    distributor: Distributor | None = None,
    kind: str = FraudFlag.Kind.CLICK_SPAM,
    **kwargs,
) -> FraudFlag:
    """A flag made directly (status open unless given), for the review tests."""
    return FraudFlag.objects.create(
        kind=kind,
        distributor=distributor or make_distributor(),
        dedupe_key=key,
        **kwargs,
    )


def kinds(flags) -> list[str]:
    return sorted(flag.kind for flag in flags)


# --- self-referral ------------------------------------------------------------------------------
def test_self_referral_when_the_buyer_uses_a_device_of_the_distributors_orders(store, announced):
    distributor = make_distributor()
    buy(store, distributor.customer, device_id=DEVICE)
    order = buy(store, device_id=DEVICE)

    attribution, flags = signals(order, distributor)

    (flag,) = flags
    assert (flag.kind, flag.status, flag.dedupe_key) == (
        "self_referral",
        "open",
        f"self_referral:{attribution.pk}",
    )
    assert (flag.distributor_id, flag.attribution_id) == (distributor.pk, attribution.pk)
    assert flag.details == {
        "matched": ["device"],
        "order_id": order.pk,
        "buyer_customer_id": order.customer_id,
        "distributor_customer_id": distributor.customer_id,
    }
    assert announced() == [
        {
            "flag_id": flag.pk,
            "kind": "self_referral",
            "status": "open",
            "distributor_id": distributor.pk,
            "attribution_id": attribution.pk,
            "details": flag.details,
        }
    ]


def test_self_referral_when_the_buyer_uses_a_device_the_distributor_clicked_with(store):
    distributor = make_distributor()
    other = make_distributor()
    clicks(other, 1, at=timezone.now(), device=DEVICE, customer=distributor.customer)

    _, flags = signals(buy(store, device_id=DEVICE), distributor)

    assert [flag.details["matched"] for flag in flags] == [["device"]]


def test_self_referral_by_phone_and_never_by_two_empty_phones(store):
    distributor = make_distributor()
    distributor.customer.phone = "13800001111"
    distributor.customer.save(update_fields=["phone"])
    sharing = buy(store, QuickCustomerFactory(phone="13800001111"))
    other = buy(store, QuickCustomerFactory(phone="13800002222"))
    unphoned = make_distributor()

    assert [flag.details["matched"] for flag in signals(sharing, distributor)[1]] == [["phone"]]
    assert signals(other, distributor)[1] == []
    assert signals(buy(store), unphoned)[1] == []


def test_self_referral_by_ip_within_30_days_before_the_payment(store):
    distributor = make_distributor()
    own = buy(store, distributor.customer, ip_hash="ip-of-the-distributor")
    order = buy(store, ip_hash="ip-of-the-distributor")
    late = buy(store, ip_hash="ip-of-the-distributor")
    edge = order.paid_at - timedelta(days=30)
    Order.objects.filter(pk=own.pk).update(created_at=edge)

    _, flags = signals(order, distributor)
    Order.objects.filter(pk=own.pk).update(created_at=edge - timedelta(seconds=1))
    _, too_old = signals(late, distributor)

    assert [flag.details["matched"] for flag in flags] == [["ip"]]
    assert too_old == []


def test_self_referral_by_the_ip_of_a_click_and_all_matches_in_one_flag(store):
    distributor = make_distributor()
    distributor.customer.phone = "13900000000"
    distributor.customer.save(update_fields=["phone"])
    clicks(
        make_distributor(),
        1,
        at=timezone.now() - timedelta(days=29),
        device=DEVICE,
        ip="ip-x",
        customer=distributor.customer,
    )
    buyer = QuickCustomerFactory(phone="13900000000")

    _, flags = signals(buy(store, buyer, device_id=DEVICE, ip_hash="ip-x"), distributor)

    assert [flag.details["matched"] for flag in flags] == [["device", "phone", "ip"]]


def test_a_distributors_own_purchase_is_never_fraud(store, announced):
    # given: everything matches, and the distributor bought through their downline before
    upline, distributor = make_chain(2)
    buy(store, distributor.customer, device_id=DEVICE, ip_hash="ip")
    signals(buy(store, upline.customer), distributor)
    own = buy(store, distributor.customer, device_id=DEVICE, ip_hash="ip")

    # when
    _, flags = signals(own, distributor)

    # then: the earlier upline purchase is a cycle, the own one nothing
    assert flags == []
    assert kinds(FraudFlag.objects.all()) == ["referral_cycle"]
    assert len(announced()) == 1


def test_an_unrelated_buyer_raises_nothing_in_two_queries(store, django_assert_num_queries):
    distributor = make_distributor()
    buy(store, distributor.customer, device_id=DEVICE, ip_hash="ip-1")
    order = buy(store, device_id=OTHER_DEVICE, ip_hash="ip-2")
    attribution = attribute(order, distributor)
    payload = order_paid_payload(order)

    with django_assert_num_queries(2):  # the test's transaction is the attribution's
        flags = attribution_signals(attribution=attribution, order_paid=payload)

    assert flags == []
    assert FraudFlag.objects.count() == 0


def test_no_ip_and_no_device_on_either_side_match_nothing(store):
    distributor = make_distributor()
    buy(store, distributor.customer)
    clicks(make_distributor(), 1, at=timezone.now(), customer=distributor.customer)

    assert signals(buy(store), distributor)[1] == []


def test_signals_are_raised_once_for_an_attribution(store, announced):
    distributor = make_distributor()
    buy(store, distributor.customer, device_id=DEVICE)
    order = buy(store, device_id=DEVICE)
    attribution, first = signals(order, distributor)

    with transaction.atomic():
        again = attribution_signals(attribution=attribution, order_paid=order_paid_payload(order))

    assert [flag.pk for flag in again] == [flag.pk for flag in first]
    assert FraudFlag.objects.count() == 1
    assert len(announced()) == 1


def test_an_attribution_without_distributor_raises_nothing(store, django_assert_num_queries):
    order = buy(store, device_id=DEVICE)
    attribution = Attribution.objects.create(
        order=order,
        customer_id=order.customer_id,
        rule=rule(),
        rule_version=1,
        touch=Attribution.Touch.NONE,
        source=order.source,
        goods_amount=order.total,
        paid_at=order.paid_at,
    )
    with django_assert_num_queries(0):
        assert attribution_signals(attribution=attribution, order_paid={}) == []


def test_the_flags_returned_are_those_holding_the_attribution(store):
    # given: the distributor's open distributor-wide flag, a reviewed one, another distributor's,
    # and an open flag of the distributor on another attribution
    distributor = make_distributor()
    held = open_flag(key="a", distributor=distributor)
    open_flag(key="b", distributor=distributor, status="cleared")
    open_flag(key="c")
    buy(store, distributor.customer, device_id=DEVICE)
    earlier, _ = signals(buy(store, device_id=DEVICE), distributor)

    # when
    attribution, flags = signals(buy(store, device_id=DEVICE), distributor)

    # then
    own = FraudFlag.objects.get(attribution=attribution)
    assert [flag.pk for flag in flags] == [held.pk, own.pk]
    assert open_flags(attribution_id=earlier.pk).count() == 1
    assert open_flags(distributor_id=distributor.pk).count() == 3


# --- referral cycles ----------------------------------------------------------------------------
def test_an_upline_buying_through_their_downline_is_a_cycle(store):
    root, upline, distributor = make_chain(3)

    direct, by_upline = signals(buy(store, upline.customer), distributor)
    two_up, by_root = signals(buy(store, root.customer), distributor)

    assert [(f.kind, f.dedupe_key) for f in by_upline] == [
        ("referral_cycle", f"referral_cycle:{direct.pk}")
    ]
    assert by_upline[0].details == {
        "cycle": ["ancestor"],
        "order_id": direct.order_id,
        "buyer_distributor_id": upline.pk,
        "ancestor_level": 1,
    }
    assert [f.details["ancestor_level"] for f in by_root if f.attribution_id == two_up.pk] == [2]


def test_the_ancestry_snapshot_decides_not_todays_tree(store):
    upline, distributor = make_chain(2)

    _, flags = signals(buy(store, upline.customer), distributor, ancestry=[])

    assert flags == []


def test_a_downline_or_an_unrelated_distributor_buying_is_no_cycle(store):
    upline, downline = make_chain(2)
    stranger = make_distributor()

    assert signals(buy(store, downline.customer), upline)[1] == []
    assert signals(buy(store, stranger.customer), upline)[1] == []


def test_two_distributors_buying_through_each_other_is_a_cycle(store):
    a, b = make_distributor(), make_distributor()
    earlier, first = signals(buy(store, a.customer), b)

    later, flags = signals(buy(store, b.customer), a)

    assert first == []
    (flag,) = flags
    assert (flag.kind, flag.attribution_id) == ("referral_cycle", later.pk)
    assert flag.details["cycle"] == ["mutual"]
    assert flag.details["mutual_attribution_id"] == earlier.pk


# --- click spam -------------------------------------------------------------------------------
WINDOW = 3600
NOW = datetime(2025, 6, 5, 10, 30, tzinfo=UTC)
WINDOW_START = datetime(2025, 6, 5, 10, 0, tzinfo=UTC)


@pytest.fixture
def spam_limit(settings):
    settings.REFERRAL_CLICK_SPAM_LIMIT = 5
    settings.REFERRAL_CLICK_SPAM_WINDOW = timedelta(seconds=WINDOW)


def test_click_spam_is_flagged_past_the_limit_not_at_it(spam_limit, announced):
    distributor = make_distributor()
    clicks(distributor, 5, at=WINDOW_START + timedelta(minutes=1), device=DEVICE)

    assert fraud_scan(now=NOW) == 0

    clicks(distributor, 1, at=WINDOW_START + timedelta(minutes=20), device=DEVICE)
    assert fraud_scan(now=NOW) == 1
    assert fraud_scan(now=NOW) == 0

    flag = FraudFlag.objects.get()
    epoch = int(WINDOW_START.timestamp())
    assert flag.dedupe_key == f"click_spam:{distributor.pk}:dev:{DEVICE}:{epoch}"
    assert (flag.kind, flag.distributor_id, flag.attribution_id) == (
        "click_spam",
        distributor.pk,
        None,
    )
    assert flag.details == {
        "source": "dev",
        "value": str(DEVICE),
        "clicks": 6,
        "limit": 5,
        "window_start": "2025-06-05T10:00:00+00:00",
        "window_seconds": WINDOW,
    }
    assert [payload["flag_id"] for payload in announced()] == [flag.pk]


def test_click_spam_from_one_ip_across_devices(spam_limit):
    distributor = make_distributor()
    for _ in range(5):
        clicks(distributor, 1, at=WINDOW_START, device=uuid.uuid4(), ip="ip-farm")

    assert fraud_scan(now=NOW) == 0

    clicks(distributor, 1, at=WINDOW_START, device=uuid.uuid4(), ip="ip-farm")
    assert fraud_scan(now=NOW) == 1
    assert FraudFlag.objects.get().dedupe_key == (
        f"click_spam:{distributor.pk}:ip:ip-farm:{int(WINDOW_START.timestamp())}"
    )


def test_click_spam_counts_per_fixed_window(spam_limit):
    distributor = make_distributor()
    clicks(distributor, 3, at=WINDOW_START - timedelta(seconds=1), device=DEVICE)
    clicks(distributor, 3, at=WINDOW_START, device=DEVICE)

    assert fraud_scan(now=NOW) == 0


def test_click_spam_in_the_previous_window_is_caught_older_ones_are_not_scanned(spam_limit):
    distributor = make_distributor()
    clicks(distributor, 6, at=WINDOW_START - timedelta(minutes=30), device=DEVICE)
    clicks(distributor, 6, at=WINDOW_START - timedelta(hours=1, minutes=30), device=OTHER_DEVICE)

    assert fraud_scan(now=NOW) == 1
    previous = int(WINDOW_START.timestamp()) - WINDOW
    assert FraudFlag.objects.get().dedupe_key.endswith(f":dev:{DEVICE}:{previous}")


def test_click_spam_counts_duplicates_not_bots_codes_or_other_distributors(spam_limit):
    spammed, other = make_distributor(), make_distributor()
    clicks(spammed, 5, at=WINDOW_START, device=DEVICE, status=Click.Status.BOT)
    clicks(spammed, 5, at=WINDOW_START, device=DEVICE, kind=Click.Kind.CODE)
    clicks(spammed, 5, at=WINDOW_START, device=DEVICE, status=Click.Status.DUPLICATE)
    clicks(other, 3, at=WINDOW_START, device=DEVICE)

    assert fraud_scan(now=NOW) == 0

    clicks(spammed, 1, at=WINDOW_START, device=DEVICE)
    assert fraud_scan(now=NOW) == 1
    assert FraudFlag.objects.get().distributor_id == spammed.pk


# --- device clusters ------------------------------------------------------------------------------
def test_a_device_shared_by_enough_buyers_of_one_distributor_is_a_cluster(
    store, settings, announced
):
    settings.REFERRAL_DEVICE_CLUSTER_SIZE = 3
    distributor, elsewhere = make_distributor(), make_distributor()
    first, second, third = (QuickCustomerFactory() for _ in range(3))
    attribute(buy(store, first, device_id=DEVICE), distributor)
    attribute(buy(store, second), distributor)
    clicks(elsewhere, 1, at=timezone.now(), device=DEVICE, customer=second)
    attribute(buy(store, third, device_id=DEVICE), elsewhere)

    assert fraud_scan() == 0  # two of the distributor's buyers on the device; the third is not

    attribute(buy(store, third, device_id=OTHER_DEVICE), distributor)
    assert fraud_scan() == 1
    assert fraud_scan() == 0

    flag = FraudFlag.objects.get()
    assert flag.dedupe_key == f"device_cluster:{distributor.pk}:{DEVICE}"
    assert flag.details == {
        "device_id": str(DEVICE),
        "accounts": 3,
        "customer_ids": sorted([first.pk, second.pk, third.pk]),
    }
    assert len(announced()) == 1


def test_one_buyer_with_many_orders_on_a_device_is_no_cluster(store, settings):
    settings.REFERRAL_DEVICE_CLUSTER_SIZE = 2
    distributor = make_distributor()
    buyer = QuickCustomerFactory()
    for _ in range(3):
        attribute(buy(store, buyer, device_id=DEVICE), distributor)

    assert fraud_scan() == 0


# --- refund rate ------------------------------------------------------------------------------
@pytest.fixture
def refund_rules(settings):
    settings.REFERRAL_REFUND_RATE_BPS = 2500
    settings.REFERRAL_REFUND_RATE_MIN_ORDERS = 4
    settings.REFERRAL_REFUND_RATE_WINDOW = timedelta(days=30)


def refunded_orders(store, distributor, refunds: list[int], *, goods: int = 1000, paid_at=None):
    for refunded in refunds:
        attribute(
            buy(store),
            distributor,
            goods_amount=goods,
            refunded_amount=refunded,
            paid_at=paid_at,
        )


def test_a_refund_rate_of_exactly_25_percent_is_not_flagged(store, refund_rules):
    distributor = make_distributor()
    refunded_orders(store, distributor, [1000, 0, 0, 0])

    assert refund_rate_check(distributor_id=distributor.pk) is None
    assert fraud_scan() == 0


def test_a_refund_rate_over_25_percent_is_flagged_once_per_period(store, refund_rules, announced):
    distributor = make_distributor()
    refunded_orders(store, distributor, [1000, 1, 0, 0])
    now = timezone.now()
    assert refund_rate_check(distributor_id=distributor.pk, now=now - timedelta(hours=1)) is None

    flag = refund_rate_check(distributor_id=distributor.pk, now=now)

    window = 30 * 86400
    period = datetime.fromtimestamp(int(now.timestamp()) // window * window, tz=UTC).date()
    assert flag.dedupe_key == f"high_refund_rate:{distributor.pk}:{period.isoformat()}"
    assert flag.details == {
        "attributions": 4,
        "goods_amount": 4000,
        "refunded_amount": 1001,
        "rate_bps": 2502,
        "threshold_bps": 2500,
        "window_days": 30,
        "period_start": period.isoformat(),
    }
    assert refund_rate_check(distributor_id=distributor.pk, now=now) is None
    assert fraud_scan(now=now) == 0
    assert len(announced()) == 1
    next_period = datetime.combine(period, datetime.min.time(), tzinfo=UTC) + timedelta(
        days=30, hours=1
    )
    Attribution.objects.filter(distributor=distributor).update(paid_at=next_period)
    assert fraud_scan(now=next_period) == 1


def test_too_few_orders_are_never_a_refund_rate(store, refund_rules):
    distributor = make_distributor()
    refunded_orders(store, distributor, [1000, 1000, 1000])

    assert refund_rate_check(distributor_id=distributor.pk) is None


def test_the_refund_rate_reads_the_window_and_the_distributors_level_1_only(store, refund_rules):
    distributor = make_distributor()
    downline = make_distributor(upline=distributor)
    now = timezone.now() + timedelta(minutes=5)  # after the orders paid below
    refunded_orders(store, distributor, [1000], paid_at=now - timedelta(days=30, seconds=1))
    refunded_orders(store, downline, [1000, 1000, 1000, 1000])
    refunded_orders(store, distributor, [1000, 1000, 0])

    assert refund_rate_check(distributor_id=distributor.pk, now=now) is None

    refunded_orders(store, distributor, [0], paid_at=now - timedelta(days=30))
    assert refund_rate_check(distributor_id=distributor.pk, now=now).distributor_id == (
        distributor.pk
    )
    assert open_flags(distributor_id=downline.pk).count() == 0  # not checked yet
    assert fraud_scan(now=now) == 1  # the sweep finds the downline


# --- concurrency ------------------------------------------------------------------------------
@pytest.mark.django_db(transaction=True)
def test_concurrent_scans_raise_each_flag_once(settings, announced):
    settings.REFERRAL_CLICK_SPAM_LIMIT = 2
    spammed = [make_distributor() for _ in range(3)]
    now = timezone.now()
    for distributor in spammed:
        clicks(distributor, 3, at=now, device=DEVICE)
        clicks(distributor, 3, at=now, ip="ip-farm")

    results = run_in_threads(8, lambda i: fraud_scan(now=now))

    assert all(isinstance(raised, int) for raised in results), results
    assert sum(results) == 6
    assert FraudFlag.objects.count() == 6
    assert len(announced()) == 6


# --- review -------------------------------------------------------------------------------------
def test_clearing_and_confirming_an_open_flag(announced):
    distributor = make_distributor()
    staff = StaffFactory()
    one = FraudFlag.objects.create(kind="click_spam", distributor=distributor, dedupe_key="one")
    two = FraudFlag.objects.create(kind="click_spam", distributor=distributor, dedupe_key="two")

    cleared = flag_clear(flag_id=one.pk, actor=staff, note="")
    confirmed = flag_confirm(flag_id=two.pk, actor=staff, note="  a farm of phones  ")

    for flag, status, note in ((one, "cleared", ""), (two, "confirmed", "a farm of phones")):
        flag.refresh_from_db()
        assert (flag.status, flag.reviewed_by_id, flag.review_note) == (status, staff.pk, note)
        assert flag.reviewed_at is not None
    assert (cleared.status, confirmed.status) == ("cleared", "confirmed")
    assert [(p["flag_id"], p["status"]) for p in announced()] == [
        (one.pk, "cleared"),
        (two.pk, "confirmed"),
    ]
    assert open_flags(distributor_id=distributor.pk).count() == 0


def test_a_review_is_final_confirm_needs_a_note_and_unknown_flags_are_404(announced):
    staff = StaffFactory()
    flag = open_flag(key="x")

    for review, note, code in (
        (flag_confirm, "   ", "fraud_flag_note_invalid"),
        (flag_clear, "n" * 501, "fraud_flag_note_invalid"),
    ):
        with pytest.raises(ApplicationError) as refused:
            review(flag_id=flag.pk, actor=staff, note=note)
        assert (refused.value.code, refused.value.status) == (code, 422)
    flag.refresh_from_db()
    assert flag.status == "open"

    flag_clear(flag_id=flag.pk, actor=staff, note="ok")
    for review in (flag_clear, flag_confirm):
        with pytest.raises(ApplicationError) as refused:
            review(flag_id=flag.pk, actor=staff, note="again")
        assert (refused.value.code, refused.value.status) == ("fraud_flag_already_reviewed", 409)
        assert refused.value.details == {"status": "cleared"}
    with pytest.raises(ApplicationError) as unknown:
        flag_clear(flag_id=flag.pk + 1000, actor=staff, note="")
    assert (unknown.value.code, unknown.value.status) == ("fraud_flag_not_found", 404)
    flag.refresh_from_db()
    assert (flag.status, flag.review_note) == ("cleared", "ok")
    assert len(announced()) == 1


@pytest.mark.django_db(transaction=True)
def test_concurrent_reviews_let_exactly_one_through(announced):
    staff = StaffFactory()
    flag = open_flag(key="r")

    def review(i):
        action = flag_clear if i % 2 else flag_confirm
        return action(flag_id=flag.pk, actor=staff, note=f"reviewer {i}").status

    results = run_in_threads(10, review)

    won = [r for r in results if isinstance(r, str)]
    lost = [r for r in results if isinstance(r, ApplicationError)]
    assert len(won) == 1 and len(lost) == 9
    assert {r.code for r in lost} == {"fraud_flag_already_reviewed"}
    flag.refresh_from_db()
    assert flag.status == won[0]
    assert [p["status"] for p in announced()] == won
