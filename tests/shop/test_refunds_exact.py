"""Refunds, exactly: amounts as ints, the rows written (audit fields, timeline, outbox payload),
and the error bodies. Complements test_refunds.py (the flows) with what mutation testing showed
was not pinned down."""

from datetime import UTC, datetime

import pytest

from core.errors import ApplicationError
from core.models import Notification, OutboxEvent
from shop import events
from shop.models import (
    Order,
    OrderEvent,
    OrderLine,
    Payment,
    ReconciliationDiscrepancy,
    Refund,
    RefundLine,
)
from shop.services.orders import order_mark_paid
from shop.services.refunds import (
    refund_approve,
    refund_for_unapplied_payment,
    refund_issue,
    refund_mark_failed,
    refund_mark_succeeded,
    refund_reject,
    refund_request,
)
from tests.factories import SkuFactory, StaffFactory
from tests.shop.factories_coupons import coupon_for
from tests.shop.factories_orders import (
    QuickCustomerFactory,
    SucceededPaymentFactory,
    fulfilled,
    paid,
    stock_of,
)
from tests.shop.factories_payments import OrderFactory, OrderLineFactory

pytestmark = pytest.mark.django_db

T = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


@pytest.fixture
def refunded_events():
    """What the subscribers of ``order_refunded`` receive."""
    received: list[dict] = []

    def record_refund(**payload):
        received.append(payload)

    events.subscribe(events.ORDER_REFUNDED, record_refund)
    yield received
    events.unsubscribe(events.ORDER_REFUNDED, record_refund)


def lines_of(order):
    return list(OrderLine.objects.filter(order=order).order_by("pk"))


def timeline(refund):
    """The refund's order events, as tuples of what each records."""
    return list(
        OrderEvent.objects.filter(refund=refund)
        .order_by("pk")
        .values_list(
            "kind",
            "actor_id",
            "actor_kind",
            "from_status",
            "to_status",
            "reason",
            "payment_id",
            "amount",
        )
    )


def one_line_order(monkeypatch, *, price: int, quantity: int, discount: int):
    """A paid order of one line, ``discount`` off it through a fixed-amount coupon."""
    customer = QuickCustomerFactory()
    coupon_ids = [coupon_for(customer, amount=discount).pk] if discount else []
    order = paid(
        customer, lines=[(SkuFactory(price=price, stock=10), quantity)], coupon_ids=coupon_ids
    )
    [line] = lines_of(order)
    return order, line


# --- amounts -------------------------------------------------------------------------------------
def test_a_refund_by_quantity_is_capped_at_what_the_line_has_left(monkeypatch):
    # given: a line of 3 units worth 1000 (unit share 333) of which 500 went back by amount
    order, line = one_line_order(monkeypatch, price=400, quantity=3, discount=200)
    refund_mark_succeeded(
        refund_id=refund_issue(order_id=order.pk, staff=StaffFactory(), amount=500).pk
    )
    # when: two units are refunded (2 x 333 = 666 > 500 left)
    refund = refund_issue(
        order_id=order.pk, staff=StaffFactory(), lines=[{"order_line_id": line.pk, "quantity": 2}]
    )
    # then: the line gives back only what it has left
    assert type(refund.amount) is int
    assert refund.amount == 500
    assert list(RefundLine.objects.filter(refund=refund).values_list("quantity", "amount")) == [
        (2, 500)
    ]
    refund_mark_succeeded(refund_id=refund.pk)
    line.refresh_from_db()
    assert (line.refunded_quantity, line.refunded_amount) == (2, 1000)
    assert Order.objects.get(pk=order.pk).status == "refunded"


def test_the_last_unit_takes_the_remainder_even_when_a_unit_share_is_zero(monkeypatch):
    # given: 3 units worth 2 fen in all (unit share 0, remainder 2)
    order, line = one_line_order(monkeypatch, price=1, quantity=3, discount=1)
    assert (order.total, line.line_total) == (2, 2)
    # when: the whole line is refunded by quantity
    refund = refund_issue(
        order_id=order.pk, staff=StaffFactory(), lines=[{"order_line_id": line.pk, "quantity": 3}]
    )
    # then
    assert type(refund.amount) is int
    assert refund.amount == 2
    [part] = RefundLine.objects.filter(refund=refund)
    assert (part.quantity, part.amount) == (3, 2)


def test_two_parts_of_one_line_are_added_and_a_whole_line_returns_its_line_total(monkeypatch):
    order, line = one_line_order(monkeypatch, price=400, quantity=3, discount=200)
    refund = refund_request(
        order_id=order.pk,
        customer=order.customer,
        lines=[
            {"order_line_id": line.pk, "quantity": 1},
            {"order_line_id": line.pk, "quantity": 2},
        ],
    )
    assert list(RefundLine.objects.filter(refund=refund).values_list("quantity", "amount")) == [
        (3, 1000)
    ]
    assert (refund.amount, type(refund.amount)) == (1000, int)


def test_refunding_exactly_what_is_left_is_allowed():
    order = paid(lines=[(SkuFactory(price=1000), 2)])
    [line] = lines_of(order)
    by_amount = refund_issue(order_id=order.pk, staff=StaffFactory(), amount=1)
    assert list(by_amount.lines.values_list("order_line_id", "quantity", "amount")) == [
        (line.pk, 0, 1)
    ]
    refund_mark_succeeded(refund_id=by_amount.pk)
    rest = refund_issue(order_id=order.pk, staff=StaffFactory(), amount=1999)
    assert rest.amount == 1999
    refund_mark_succeeded(refund_id=rest.pk)
    order.refresh_from_db()
    assert (order.status, order.refunded_amount) == ("refunded", 2000)


def test_a_refund_by_amount_writes_no_line_with_a_zero_share():
    a, b = SkuFactory(price=1000), SkuFactory(price=10)
    order = paid(lines=[(a, 1), (b, 1)])
    refund = refund_issue(order_id=order.pk, staff=StaffFactory(), amount=1)
    assert list(refund.lines.values_list("order_line__sku_id", "quantity", "amount")) == [
        (a.pk, 0, 1)
    ]


def test_a_refund_of_everything_left_takes_each_line_s_remaining_units_and_amount():
    a, b = SkuFactory(price=1000, stock=10), SkuFactory(price=300, stock=10)
    order = paid(lines=[(a, 2), (b, 1)])
    line_a, line_b = lines_of(order)
    first = refund_issue(
        order_id=order.pk, staff=StaffFactory(), lines=[{"order_line_id": line_a.pk, "quantity": 1}]
    )
    refund_mark_succeeded(refund_id=first.pk)
    rest = refund_request(order_id=order.pk, customer=order.customer)
    assert sorted(rest.lines.values_list("order_line_id", "quantity", "amount")) == [
        (line_a.pk, 1, 1000),
        (line_b.pk, 1, 300),
    ]
    assert (rest.amount, rest.restock, rest.note) == (1300, True, "")


def test_a_refund_larger_than_the_order_s_balance_is_refused_even_if_the_lines_allow_it():
    # given: books where the lines hold more than the order's total (belt and braces)
    order = OrderFactory(subtotal=1000, discount=100, total=900)
    OrderLineFactory(order=order, unit_price=500, quantity=2)
    payment = SucceededPaymentFactory(order=order)
    assert order_mark_paid(order_id=order.pk, payment_id=payment.pk) is True
    # when / then
    with pytest.raises(ApplicationError) as refused:
        refund_issue(order_id=order.pk, staff=StaffFactory())
    assert (refused.value.code, refused.value.details) == (
        "refund_exceeds_paid",
        {"refundable": 900, "requested": 1000},
    )
    assert not Refund.objects.exists()


# --- error bodies ------------------------------------------------------------------------------
def test_refund_error_bodies(client_for, operator):
    order = paid(lines=[(SkuFactory(price=1000), 2)])
    shopper = client_for(order.customer.user)
    url = f"/api/v1/orders/{order.pk}/refunds"

    r = shopper.post(url, json={"amount": 2001})
    assert (r.status_code, r.json()["error"]) == (
        409,
        {
            "code": "refund_exceeds_paid",
            "message": "This is more than what was paid and not yet refunded.",
            "details": {"refundable": 2000, "requested": 2001},
        },
    )
    r = shopper.post(url, json={"amount": 2000})
    assert r.status_code == 201  # all of it: not more than what is left
    rejected = operator.post(f"/api/v1/staff/refunds/{r.json()['id']}/reject", json={})
    assert (rejected.status_code, rejected.json()["failure_message"]) == (200, "")

    r = operator.post(f"/api/v1/staff/refunds/{rejected.json()['id']}/approve")
    assert (r.status_code, r.json()["error"]) == (
        409,
        {
            "code": "illegal_transition",
            "message": "A refund that is rejected cannot become approved.",
            "details": {"from": "rejected", "to": "approved"},
        },
    )


def test_refund_spec_errors_say_what_is_wrong():
    order = paid(lines=[(SkuFactory(price=1000), 2)])
    [line] = lines_of(order)
    staff = StaffFactory()
    cases = [
        (
            {"amount": 10, "lines": [{"order_line_id": line.pk, "quantity": 1}]},
            ("refund_spec_invalid", "Refund either lines or an amount, not both."),
        ),
        ({"lines": []}, ("refund_spec_invalid", "Name at least one line to refund.")),
        (
            {"amount": 10, "restock": True},
            (
                "restock_needs_units",
                "A refund by amount returns no units to put back on sale; refund lines to restock.",
            ),
        ),
    ]
    for spec, expected in cases:
        with pytest.raises(ApplicationError) as refused:
            refund_issue(order_id=order.pk, staff=staff, **spec)
        assert (refused.value.code, refused.value.message) == expected
    assert not Refund.objects.exists()


def test_staff_refunds_of_a_fulfilled_order_do_not_restock_unless_asked(
    django_capture_on_commit_callbacks,
):
    sku = SkuFactory(price=1000, stock=10)
    order = fulfilled(lines=[(sku, 2)], mode="courier")
    [line] = lines_of(order)
    refund = refund_issue(
        order_id=order.pk, staff=StaffFactory(), lines=[{"order_line_id": line.pk, "quantity": 1}]
    )
    assert (refund.restock, refund.note) == (False, "")
    with django_capture_on_commit_callbacks(execute=True):
        refund_mark_succeeded(refund_id=refund.pk)
    assert stock_of(sku) == 8
    assert Refund.objects.get(pk=refund.pk).restocked_quantity == 0


# --- audit fields and the timeline --------------------------------------------------------------
def test_a_request_records_who_asked_and_approval_who_decided_and_when(
    time_machine, django_capture_on_commit_callbacks
):
    time_machine.move_to(T, tick=False)
    order = paid(lines=[(SkuFactory(price=1000, stock=10), 2)])
    refund = refund_request(order_id=order.pk, customer=order.customer, amount=300)
    refund.refresh_from_db()
    assert (refund.requested_by_id, refund.decided_by_id, refund.decided_at, refund.note) == (
        order.customer.user_id,
        None,
        None,
        "",
    )
    staff = StaffFactory()
    later = datetime(2026, 11, 23, 11, 0, tzinfo=UTC)
    time_machine.move_to(later, tick=False)
    # when: approved; the real refund_send task runs after commit (sandbox provider: paid at once)
    with django_capture_on_commit_callbacks(execute=True):
        approved = refund_approve(refund_id=refund.pk, staff=staff)
    assert approved.status == "approved"
    refund.refresh_from_db()
    assert (refund.status, refund.decided_by_id, refund.decided_at, refund.succeeded_at) == (
        "succeeded",
        staff.pk,
        later,
        later,
    )
    assert refund.provider_ref == f"sandbox_re_{refund.pk}"
    assert timeline(refund) == [
        ("refund_requested", order.customer.user_id, "customer", "paid", "paid",
         "customer_request", None, 300),
        ("refund_approved", staff.pk, "staff", "paid", "paid", "customer_request",
         order.paid_payment_id, 300),
        ("refund_succeeded", None, "system", "paid", "partially_refunded", "customer_request",
         order.paid_payment_id, 300),
    ]  # fmt: skip


def test_staff_issue_records_the_decision_at_once(time_machine):
    time_machine.move_to(T, tick=False)
    order = paid(lines=[(SkuFactory(price=1000, stock=10), 2)])
    staff = StaffFactory()
    refund = refund_issue(order_id=order.pk, staff=staff, amount=300)
    refund.refresh_from_db()
    assert (
        refund.status,
        refund.reason,
        refund.payment_id,
        refund.requested_by_id,
        refund.decided_by_id,
        refund.decided_at,
        refund.restock,
    ) == ("approved", "staff", order.paid_payment_id, staff.pk, staff.pk, T, False)
    assert timeline(refund) == [
        ("refund_approved", staff.pk, "staff", "paid", "paid", "staff", None, 300)
    ]


def test_reject_records_who_decided_when_and_why(time_machine):
    time_machine.move_to(T, tick=False)
    order = paid()
    refund = refund_request(order_id=order.pk, customer=order.customer, amount=100)
    staff = StaffFactory()
    note = "not in the after-sale window " + "x" * 600
    rejected = refund_reject(refund_id=refund.pk, staff=staff, note=note)
    assert rejected.status == "rejected"
    refund.refresh_from_db()
    assert (refund.status, refund.decided_by_id, refund.decided_at, refund.failure_message) == (
        "rejected",
        staff.pk,
        T,
        note[:500],
    )
    assert timeline(refund)[1:] == [
        ("refund_rejected", staff.pk, "staff", "paid", "paid", note[:64], order.paid_payment_id,
         100),
    ]  # fmt: skip
    # idempotent: rejecting again changes nothing
    assert refund_reject(refund_id=refund.pk, staff=StaffFactory(), note="again").pk == refund.pk
    refund.refresh_from_db()
    assert (refund.decided_by_id, refund.failure_message) == (staff.pk, note[:500])


def test_reject_without_a_note_keeps_no_message():
    order = paid()
    refund = refund_request(order_id=order.pk, customer=order.customer, amount=100)
    refund_reject(refund_id=refund.pk, staff=StaffFactory())
    refund.refresh_from_db()
    assert (refund.status, refund.failure_message) == ("rejected", "")
    assert timeline(refund)[1][5] == "customer_request"  # the timeline falls back to the reason


def test_mark_failed_keeps_the_first_500_characters_of_the_message():
    order = paid()
    refund = refund_issue(order_id=order.pk, staff=StaffFactory(), amount=100)
    message = "m" * 600
    assert refund_mark_failed(refund_id=refund.pk, message=message).status == "failed"
    refund.refresh_from_db()
    assert (refund.status, refund.failure_message) == ("failed", "m" * 500)


def test_mark_succeeded_records_when_and_the_provider_reference_once(time_machine):
    time_machine.move_to(T, tick=False)
    order = paid()
    refund = refund_issue(order_id=order.pk, staff=StaffFactory(), amount=100)
    Refund.objects.filter(pk=refund.pk).update(provider_ref="re_first")
    refund_mark_succeeded(refund_id=refund.pk, provider_ref="re_other")
    refund.refresh_from_db()
    assert (refund.status, refund.succeeded_at, refund.provider_ref) == (
        "succeeded",
        T,
        "re_first",
    )
    [notification] = Notification.objects.filter(user=order.customer.user, kind="refund_succeeded")
    assert (
        notification.kind,
        notification.title,
        notification.body,
        notification.data,
        notification.dedupe_key,
    ) == (
        "refund_succeeded",
        "Refund sent",
        f"1.00 CNY is on its way back for order {order.number}.",
        {"order_id": order.pk, "refund_id": refund.pk, "amount": 100},
        f"refund:{refund.pk}:succeeded",
    )


def test_the_customer_is_told_the_amount_in_the_order_s_currency():
    order = paid()
    Order.objects.filter(pk=order.pk).update(currency="HKD")
    refund = refund_issue(order_id=order.pk, staff=StaffFactory(), amount=1234)
    refund_mark_succeeded(refund_id=refund.pk)
    [body] = Notification.objects.filter(
        user=order.customer.user, kind="refund_succeeded"
    ).values_list("body", flat=True)
    assert body == f"12.34 HKD is on its way back for order {order.number}."


# --- what a succeeded refund does to the order --------------------------------------------------
def test_two_lines_of_one_sku_are_restocked_together_and_the_event_says_exactly_what(
    time_machine, refunded_events, django_capture_on_commit_callbacks
):
    # given: a paid, undelivered order with two lines of the same SKU (2 + 3 units)
    time_machine.move_to(T, tick=False)
    sku = SkuFactory(price=500, stock=10)
    order = OrderFactory(subtotal=2500, total=2500)
    first = OrderLineFactory(order=order, sku=sku, unit_price=500, quantity=2)
    second = OrderLineFactory(order=order, sku=sku, unit_price=500, quantity=3)
    payment = SucceededPaymentFactory(order=order)
    assert order_mark_paid(order_id=order.pk, payment_id=payment.pk) is True
    # when: everything is refunded and the provider pays it back
    refund = refund_issue(order_id=order.pk, staff=StaffFactory())
    assert refund.restock is True
    with django_capture_on_commit_callbacks(execute=True):
        refund_mark_succeeded(refund_id=refund.pk)
    # then: all five units are back on sale
    assert stock_of(sku) == 15
    refund.refresh_from_db()
    assert (refund.restocked_quantity, refund.succeeded_at) == (5, T)
    order.refresh_from_db()
    assert (order.status, order.refunded_amount) == ("refunded", 2500)
    assert Payment.objects.get(pk=payment.pk).refunded_amount == 2500
    [event] = OutboxEvent.objects.filter(name=events.ORDER_REFUNDED)
    assert refunded_events == [event.payload]
    assert event.payload == {
        "order_id": order.pk,
        "customer_id": order.customer_id,
        "community_id": None,
        "refund_id": refund.pk,
        "amount": 2500,
        "order_refunded_amount": 2500,
        "order_total": 2500,
        "order_status": "refunded",
        "fully_refunded": True,
        "refunded_at": T.isoformat(),
        "lines": [
            {"line_id": first.pk, "sku_id": sku.pk, "quantity": 2, "amount": 1000},
            {"line_id": second.pk, "sku_id": sku.pk, "quantity": 3, "amount": 1500},
        ],
    }


def test_a_partial_refund_event_of_a_paid_order(
    refunded_events, django_capture_on_commit_callbacks
):
    order = paid(lines=[(SkuFactory(price=1000, stock=10), 2)])
    [line] = lines_of(order)
    refund = refund_issue(
        order_id=order.pk, staff=StaffFactory(), lines=[{"order_line_id": line.pk, "quantity": 1}]
    )
    with django_capture_on_commit_callbacks(execute=True):
        refund_mark_succeeded(refund_id=refund.pk)
    [payload] = refunded_events
    assert {k: payload[k] for k in ("amount", "order_refunded_amount", "order_status")} == {
        "amount": 1000,
        "order_refunded_amount": 1000,
        "order_status": "partially_refunded",
    }
    assert payload["fully_refunded"] is False
    assert Order.objects.get(pk=order.pk).status == "partially_refunded"


# --- refunds of unapplied payments -----------------------------------------------------------
def test_unapplied_payment_refunds_are_one_per_payment_and_reason(time_machine):
    time_machine.move_to(T, tick=False)
    order = paid()
    second = SucceededPaymentFactory(order=order, amount=order.total)
    third = SucceededPaymentFactory(order=order, amount=700)

    for_second = refund_for_unapplied_payment(payment_id=second.pk, reason="late_payment")
    for_third = refund_for_unapplied_payment(payment_id=third.pk, reason="late_payment")
    other_reason = refund_for_unapplied_payment(payment_id=second.pk, reason="out_of_stock")

    assert len({for_second.pk, for_third.pk, other_reason.pk}) == 3
    assert refund_for_unapplied_payment(payment_id=third.pk, reason="late_payment") == for_third
    rows = Refund.objects.filter(pk__in=[for_second.pk, for_third.pk]).order_by("pk")
    assert list(
        rows.values_list(
            "order_id",
            "payment_id",
            "amount",
            "status",
            "reason",
            "restock",
            "decided_at",
            "decided_by",
            "requested_by",
        )
    ) == [
        (order.pk, second.pk, order.total, "approved", "late_payment", False, T, None, None),
        (order.pk, third.pk, 700, "approved", "late_payment", False, T, None, None),
    ]
    assert timeline(for_third) == [
        ("refund_approved", None, "system", "paid", "paid", "late_payment", third.pk, 700)
    ]


def test_a_refund_of_everything_left_skips_finished_lines_and_keeps_units_without_money():
    a, b, c = SkuFactory(price=1000, stock=10), SkuFactory(price=1, stock=10), SkuFactory(price=50)
    order = paid(lines=[(a, 1), (b, 1), (c, 1)])
    line_a, line_b, line_c = lines_of(order)
    staff = StaffFactory()
    done = refund_issue(
        order_id=order.pk, staff=staff, lines=[{"order_line_id": line_c.pk, "quantity": 1}]
    )
    refund_mark_succeeded(refund_id=done.pk)
    by_amount = refund_issue(order_id=order.pk, staff=staff, amount=1000)
    assert sorted(by_amount.lines.values_list("order_line_id", "amount")) == [
        (line_a.pk, 999),
        (line_b.pk, 1),
    ]
    refund_mark_succeeded(refund_id=by_amount.pk)
    # when: everything left: 1 fen on line a; line b's unit (its money is back); nothing of c
    rest = refund_issue(order_id=order.pk, staff=staff)
    assert sorted(rest.lines.values_list("order_line_id", "quantity", "amount")) == [
        (line_a.pk, 1, 1),
        (line_b.pk, 1, 0),
    ]


def test_a_refund_worth_nothing_is_refused(monkeypatch):
    order, line = one_line_order(monkeypatch, price=1, quantity=3, discount=1)
    with pytest.raises(ApplicationError) as refused:
        refund_issue(
            order_id=order.pk,
            staff=StaffFactory(),
            lines=[{"order_line_id": line.pk, "quantity": 1}],
        )
    assert (refused.value.code, refused.value.details) == (
        "refund_exceeds_paid",
        {"refundable": 2, "requested": 0},
    )


# --- provider failures --------------------------------------------------------------------------
def test_a_failure_records_the_provider_detail_on_the_timeline_only():
    order = paid()
    refund = refund_issue(order_id=order.pk, staff=StaffFactory(), amount=100)
    detail = "card_declined: " + "d" * 600
    refund_mark_failed(refund_id=refund.pk, message="The card refused it.", detail=detail)
    refund.refresh_from_db()
    assert (refund.status, refund.failure_message) == ("failed", "The card refused it.")
    assert timeline(refund)[1:] == [
        ("refund_failed", None, "system", "paid", "paid", detail[:64], order.paid_payment_id, 100)
    ]


def test_a_failure_without_a_detail_falls_back_to_the_reason_on_the_timeline():
    order = paid()
    refund = refund_issue(order_id=order.pk, staff=StaffFactory(), amount=100)
    refund_mark_failed(refund_id=refund.pk, message="failed")
    assert timeline(refund)[1:] == [
        ("refund_failed", None, "system", "paid", "paid", "staff", order.paid_payment_id, 100)
    ]


# --- late successes of failed refunds -----------------------------------------------------------
def test_a_late_success_of_a_failed_unapplied_payment_refund_is_applied_after_an_order_refund():
    # given: a refund of a second payment failed, then an order refund was issued and succeeded
    order = paid(lines=[(SkuFactory(price=1000, stock=10), 2)])
    second = SucceededPaymentFactory(order=order, amount=700)
    unapplied = refund_for_unapplied_payment(payment_id=second.pk, reason="late_payment")
    refund_mark_failed(refund_id=unapplied.pk, message="failed")
    later = refund_issue(order_id=order.pk, staff=StaffFactory(), amount=300)
    refund_mark_succeeded(refund_id=later.pk)
    # when: the provider reports that the unapplied payment's refund went through after all
    result = refund_mark_succeeded(refund_id=unapplied.pk)
    # then: it has no lines, so nothing replaced it: applied to the payment, the order untouched
    assert result.status == "succeeded"
    assert not ReconciliationDiscrepancy.objects.exists()
    assert Payment.objects.get(pk=second.pk).refunded_amount == 700
    order.refresh_from_db()
    assert (order.status, order.refunded_amount) == ("partially_refunded", 300)


def test_a_later_refund_of_another_order_does_not_replace_a_failed_one():
    order = paid(lines=[(SkuFactory(price=1000, stock=10), 2)])
    failed = refund_issue(order_id=order.pk, staff=StaffFactory(), amount=300)
    refund_mark_failed(refund_id=failed.pk, message="failed")
    other = paid(lines=[(SkuFactory(price=1000, stock=10), 1)])
    refund_mark_succeeded(refund_id=refund_issue(order_id=other.pk, staff=StaffFactory()).pk)

    assert refund_mark_succeeded(refund_id=failed.pk).status == "succeeded"
    assert not ReconciliationDiscrepancy.objects.exists()
    order.refresh_from_db()
    assert (order.status, order.refunded_amount) == ("partially_refunded", 300)


def test_an_earlier_refund_of_the_order_does_not_replace_a_failed_one():
    # given: a first refund succeeded, the second one failed
    order = paid(lines=[(SkuFactory(price=1000, stock=10), 2)])
    staff = StaffFactory()
    refund_mark_succeeded(refund_id=refund_issue(order_id=order.pk, staff=staff, amount=300).pk)
    failed = refund_issue(order_id=order.pk, staff=staff, amount=200)
    refund_mark_failed(refund_id=failed.pk, message="failed")
    # when: the second one succeeds after all
    assert refund_mark_succeeded(refund_id=failed.pk).status == "succeeded"
    # then: nothing came after it, so it is applied
    assert not ReconciliationDiscrepancy.objects.exists()
    order.refresh_from_db()
    assert (order.status, order.refunded_amount) == ("partially_refunded", 500)
    assert Payment.objects.get(pk=order.paid_payment_id).refunded_amount == 500


def test_a_later_refund_of_an_unapplied_payment_does_not_replace_a_failed_order_refund():
    order = paid(lines=[(SkuFactory(price=1000, stock=10), 2)])
    failed = refund_issue(order_id=order.pk, staff=StaffFactory(), amount=300)
    refund_mark_failed(refund_id=failed.pk, message="failed")
    second = SucceededPaymentFactory(order=order, amount=700)
    refund_for_unapplied_payment(payment_id=second.pk, reason="late_payment")  # no lines

    assert refund_mark_succeeded(refund_id=failed.pk).status == "succeeded"
    assert not ReconciliationDiscrepancy.objects.exists()
    assert Order.objects.get(pk=order.pk).refunded_amount == 300


def test_a_later_refund_that_was_rejected_or_failed_does_not_replace_a_failed_one():
    order = paid(lines=[(SkuFactory(price=1000, stock=10), 2)])
    staff = StaffFactory()
    failed = refund_issue(order_id=order.pk, staff=staff, amount=300)
    refund_mark_failed(refund_id=failed.pk, message="failed")
    rejected = refund_request(order_id=order.pk, customer=order.customer, amount=300)
    refund_reject(refund_id=rejected.pk, staff=staff)
    also_failed = refund_issue(order_id=order.pk, staff=staff, amount=300)
    refund_mark_failed(refund_id=also_failed.pk, message="failed")

    assert refund_mark_succeeded(refund_id=failed.pk).status == "succeeded"
    assert not ReconciliationDiscrepancy.objects.exists()
    assert Order.objects.get(pk=order.pk).refunded_amount == 300


def test_a_late_success_of_a_replaced_refund_records_which_refund_replaced_it():
    order = paid(lines=[(SkuFactory(price=1000, stock=10), 2)])
    staff = StaffFactory()
    failed = refund_issue(order_id=order.pk, staff=staff, amount=300)
    Refund.objects.filter(pk=failed.pk).update(provider_ref="re_failed")
    refund_mark_failed(refund_id=failed.pk, message="failed")
    replacement = refund_issue(order_id=order.pk, staff=staff, amount=300)
    # when: the failed one succeeds after all (its provider reference is the one we know)
    assert refund_mark_succeeded(refund_id=failed.pk, provider_ref=None).status == "failed"
    # then
    assert discrepancies() == [
        (
            "refund_succeeded_after_replacement",
            300,
            order.pk,
            order.paid_payment_id,
            failed.pk,
            "re_failed",
            {"replaced_by_refund_id": replacement.pk, "refund_status": "failed"},
        )
    ]
    order.refresh_from_db()
    assert (order.status, order.refunded_amount) == ("paid", 0)


def discrepancies():
    return list(
        ReconciliationDiscrepancy.objects.order_by("pk").values_list(
            "kind", "amount", "order_id", "payment_id", "refund_id", "provider_ref", "details"
        )
    )


def _paid_with_a_refund_behind_it():
    """A paid order of 2 x 1000 of which 300 went back, and an approved refund of 500 (one unit's
    worth by amount would be 500 of the line's 1700 left)."""
    order = paid(lines=[(SkuFactory(price=1000, stock=10), 2)])
    staff = StaffFactory()
    refund_mark_succeeded(refund_id=refund_issue(order_id=order.pk, staff=staff, amount=300).pk)
    refund = refund_issue(order_id=order.pk, staff=staff, amount=500)
    [line] = lines_of(order)
    return order, line, refund


def _assert_left_alone(order, refund):
    refund.refresh_from_db()
    assert (refund.status, refund.succeeded_at) == ("approved", None)
    order.refresh_from_db()
    assert Payment.objects.get(pk=order.paid_payment_id).refunded_amount == 300
    assert not OutboxEvent.objects.filter(name=events.ORDER_REFUNDED, payload__refund_id=refund.pk)


def test_a_success_beyond_what_a_line_has_left_is_a_discrepancy_with_the_figures():
    order, line, refund = _paid_with_a_refund_behind_it()
    OrderLine.objects.filter(pk=line.pk).update(refunded_amount=1600)  # 400 left on the line

    assert refund_mark_succeeded(refund_id=refund.pk, provider_ref="re_late").status == "approved"

    assert discrepancies() == [
        (
            "refund_exceeds_paid",
            500,
            order.pk,
            order.paid_payment_id,
            refund.pk,
            "re_late",
            {
                "order_line_ids": [line.pk],
                "order_refundable": 1700,
                "payment_refundable": 1700,
                "refund_status": "approved",
            },
        )
    ]
    _assert_left_alone(order, refund)
    assert Order.objects.get(pk=order.pk).refunded_amount == 300


def test_a_success_beyond_what_a_line_has_left_in_units_is_a_discrepancy():
    order = paid(lines=[(SkuFactory(price=1000, stock=10), 2)])
    [line] = lines_of(order)
    refund = refund_issue(
        order_id=order.pk, staff=StaffFactory(), lines=[{"order_line_id": line.pk, "quantity": 1}]
    )
    OrderLine.objects.filter(pk=line.pk).update(refunded_quantity=2)  # units back, money not

    assert refund_mark_succeeded(refund_id=refund.pk).status == "approved"

    [(kind, *_, details)] = discrepancies()
    assert (kind, details) == (
        "refund_exceeds_paid",
        {
            "order_line_ids": [line.pk],
            "order_refundable": 2000,
            "payment_refundable": 2000,
            "refund_status": "approved",
        },
    )
    assert OrderLine.objects.get(pk=line.pk).refunded_amount == 0


def test_a_success_beyond_what_the_order_has_left_is_a_discrepancy():
    order, _, refund = _paid_with_a_refund_behind_it()
    Order.objects.filter(pk=order.pk).update(refunded_amount=1600)  # the lines still allow it

    assert refund_mark_succeeded(refund_id=refund.pk).status == "approved"

    [(kind, *_, details)] = discrepancies()
    assert (kind, details) == (
        "refund_exceeds_paid",
        {
            "order_line_ids": [],
            "order_refundable": 400,
            "payment_refundable": 1700,
            "refund_status": "approved",
        },
    )
    _assert_left_alone(order, refund)
    assert Order.objects.get(pk=order.pk).refunded_amount == 1600


def test_a_success_beyond_what_the_payment_has_left_is_a_discrepancy():
    order, _, refund = _paid_with_a_refund_behind_it()
    Payment.objects.filter(pk=order.paid_payment_id).update(refunded_amount=1600)

    assert refund_mark_succeeded(refund_id=refund.pk).status == "approved"

    [(kind, *_, details)] = discrepancies()
    assert (kind, details) == (
        "refund_exceeds_paid",
        {
            "order_line_ids": [],
            "order_refundable": 1700,
            "payment_refundable": 400,
            "refund_status": "approved",
        },
    )
    order.refresh_from_db()
    assert order.refunded_amount == 300
    assert Payment.objects.get(pk=order.paid_payment_id).refunded_amount == 1600


def test_a_refund_of_an_order_without_a_recorded_payment_is_applied_to_the_order_only():
    # given: books where the order is paid but names no payment (set by hand)
    order = paid(lines=[(SkuFactory(price=1000, stock=10), 2)])
    Order.objects.filter(pk=order.pk).update(paid_payment=None)
    [line] = lines_of(order)
    refund = refund_issue(order_id=order.pk, staff=StaffFactory(), amount=500)
    assert refund.payment_id is None
    # when
    assert refund_mark_succeeded(refund_id=refund.pk).status == "succeeded"
    # then
    order.refresh_from_db()
    assert (order.status, order.refunded_amount) == ("partially_refunded", 500)
    assert OrderLine.objects.get(pk=line.pk).refunded_amount == 500
    assert timeline(refund)[-1] == (
        "refund_succeeded", None, "system", "paid", "partially_refunded", "staff", None, 500
    )  # fmt: skip


def test_a_success_beyond_the_books_without_a_recorded_payment_says_so():
    order = paid(lines=[(SkuFactory(price=1000, stock=10), 2)])
    Order.objects.filter(pk=order.pk).update(paid_payment=None)
    [line] = lines_of(order)
    refund = refund_issue(order_id=order.pk, staff=StaffFactory(), amount=500)
    OrderLine.objects.filter(pk=line.pk).update(refunded_amount=2000)

    assert refund_mark_succeeded(refund_id=refund.pk).status == "approved"

    assert discrepancies() == [
        (
            "refund_exceeds_paid",
            500,
            order.pk,
            None,
            refund.pk,
            "",
            {
                "order_line_ids": [line.pk],
                "order_refundable": 2000,
                "payment_refundable": None,
                "refund_status": "approved",
            },
        )
    ]


def test_only_an_approved_or_failed_refund_can_succeed():
    order = paid()
    refund = refund_request(order_id=order.pk, customer=order.customer, amount=100)
    for decide in (None, refund_reject):
        if decide:
            decide(refund_id=refund.pk, staff=StaffFactory())
        with pytest.raises(ApplicationError) as refused:
            refund_mark_succeeded(refund_id=refund.pk)
        status = Refund.objects.get(pk=refund.pk).status
        assert (refused.value.code, refused.value.message, refused.value.details) == (
            "illegal_transition",
            f"A refund that is {status} cannot become succeeded.",
            {"from": status, "to": "succeeded"},
        )
    assert Payment.objects.get(pk=order.paid_payment_id).refunded_amount == 0


def test_mark_succeeded_keeps_the_provider_reference_it_is_told_when_it_had_none(time_machine):
    time_machine.move_to(T, tick=False)
    order = paid()
    refund = refund_issue(order_id=order.pk, staff=StaffFactory(), amount=100)
    assert Refund.objects.get(pk=refund.pk).provider_ref is None
    refund_mark_succeeded(refund_id=refund.pk, provider_ref="re_told")
    refund.refresh_from_db()
    assert (refund.status, refund.succeeded_at, refund.provider_ref) == ("succeeded", T, "re_told")


# --- refusals, exactly ----------------------------------------------------------------------------
def error_of(excinfo) -> tuple:
    error = excinfo.value
    return (type(error).__name__, error.status, error.code, error.message, error.details)


def test_an_unknown_refund_is_not_found():
    staff = StaffFactory()
    for decide in (
        lambda: refund_approve(refund_id=10**9, staff=staff),
        lambda: refund_reject(refund_id=10**9, staff=staff),
        lambda: refund_mark_succeeded(refund_id=10**9),
        lambda: refund_mark_failed(refund_id=10**9, message="failed"),
    ):
        with pytest.raises(ApplicationError) as excinfo:
            decide()
        assert error_of(excinfo) == ("NotFound", 404, "refund_not_found", "Refund not found.", {})


def test_a_second_open_refund_is_refused_exactly():
    order = paid(lines=[(SkuFactory(price=1000, stock=10), 2)])
    refund_request(order_id=order.pk, customer=order.customer, amount=100)
    for open_another in (
        lambda: refund_request(order_id=order.pk, customer=order.customer, amount=100),
        lambda: refund_issue(order_id=order.pk, staff=StaffFactory(), amount=100),
    ):
        with pytest.raises(ApplicationError) as excinfo:
            open_another()
        assert error_of(excinfo) == (
            "Conflict",
            409,
            "refund_in_progress",
            "A refund of this order is already open.",
            {},
        )
    assert Refund.objects.count() == 1


def test_an_approved_refund_is_open_too_but_a_failed_one_is_not():
    order = paid(lines=[(SkuFactory(price=1000, stock=10), 2)])
    staff = StaffFactory()
    approved = refund_issue(order_id=order.pk, staff=staff, amount=100)
    with pytest.raises(ApplicationError) as excinfo:
        refund_request(order_id=order.pk, customer=order.customer, amount=100)
    assert error_of(excinfo)[2] == "refund_in_progress"
    refund_mark_failed(refund_id=approved.pk, message="failed")
    assert refund_request(order_id=order.pk, customer=order.customer, amount=100).amount == 100


def test_a_fully_refunded_order_is_not_refundable_by_anyone():
    order = paid(lines=[(SkuFactory(price=1000, stock=10), 1)])
    refund_mark_succeeded(refund_id=refund_issue(order_id=order.pk, staff=StaffFactory()).pk)
    for again in (
        lambda: refund_request(order_id=order.pk, customer=order.customer),
        lambda: refund_issue(order_id=order.pk, staff=StaffFactory()),
    ):
        with pytest.raises(ApplicationError) as excinfo:
            again()
        assert error_of(excinfo) == (
            "Conflict",
            409,
            "order_not_refundable",
            "An order that is refunded cannot be refunded.",
            {"status": "refunded"},
        )


def test_a_customer_may_ask_for_a_refund_of_a_fulfilled_or_partially_refunded_order():
    order = fulfilled(lines=[(SkuFactory(price=1000, stock=10), 2)], mode="courier")
    first = refund_request(order_id=order.pk, customer=order.customer, amount=100)
    assert (first.status, first.amount, first.restock) == ("requested", 100, False)
    refund_approve(refund_id=first.pk, staff=StaffFactory())
    refund_mark_succeeded(refund_id=first.pk)
    assert Order.objects.get(pk=order.pk).status == "fulfilled"

    other = paid(lines=[(SkuFactory(price=1000, stock=10), 2)])
    refund_mark_succeeded(
        refund_id=refund_issue(order_id=other.pk, staff=StaffFactory(), amount=1).pk
    )
    assert Order.objects.get(pk=other.pk).status == "partially_refunded"
    second = refund_request(order_id=other.pk, customer=other.customer, amount=100)
    assert (second.status, second.amount) == ("requested", 100)


def test_another_customer_s_order_is_not_found():
    order = paid()
    stranger = paid().customer
    with pytest.raises(ApplicationError) as excinfo:
        refund_request(order_id=order.pk, customer=stranger, amount=100)
    assert error_of(excinfo) == ("NotFound", 404, "not_found", "Order not found.", {})
    assert not Refund.objects.exists()


def test_bad_lines_are_refused_with_what_is_wrong():
    order = paid(lines=[(SkuFactory(price=1000, stock=10), 2)])
    [line] = lines_of(order)
    other_line = lines_of(paid())[0]
    staff = StaffFactory()
    cases = [
        (
            [{"order_line_id": line.pk, "quantity": 0}],
            ("InvalidInput", 422, "invalid_quantity", "Refunded quantities are positive.",
             {"order_line_id": line.pk, "quantity": 0}),
        ),
        (
            [{"order_line_id": other_line.pk, "quantity": 1}],
            ("NotFound", 404, "order_line_not_found", "This order has no such line.",
             {"order_line_id": other_line.pk}),
        ),
        (
            [{"order_line_id": line.pk, "quantity": 2}, {"order_line_id": line.pk, "quantity": 1}],
            ("Conflict", 409, "refund_exceeds_paid",
             "This is more than what was paid and not yet refunded.",
             {"order_line_id": line.pk, "refundable_quantity": 2}),
        ),
    ]  # fmt: skip
    for lines, expected in cases:
        with pytest.raises(ApplicationError) as excinfo:
            refund_issue(order_id=order.pk, staff=staff, lines=lines)
        assert error_of(excinfo) == expected
    with pytest.raises(ApplicationError) as excinfo:
        refund_issue(order_id=order.pk, staff=staff, amount=0)
    assert error_of(excinfo) == (
        "InvalidInput",
        422,
        "invalid_amount",
        "Refund a positive amount (fen).",
        {},
    )
    assert not Refund.objects.exists()


def test_staff_may_choose_not_to_restock_undelivered_units_and_may_refund_an_amount_so():
    sku = SkuFactory(price=1000, stock=10)
    order = paid(lines=[(sku, 2)])
    [line] = lines_of(order)
    staff = StaffFactory()
    by_amount = refund_issue(order_id=order.pk, staff=staff, amount=100, restock=False)
    assert by_amount.restock is False
    refund_mark_succeeded(refund_id=by_amount.pk)
    kept = refund_issue(
        order_id=order.pk,
        staff=staff,
        restock=False,
        lines=[{"order_line_id": line.pk, "quantity": 1}],
    )
    assert (kept.restock, kept.amount) == (False, 1000)
    refund_mark_succeeded(refund_id=kept.pk)
    assert stock_of(sku) == 8
    assert Refund.objects.get(pk=kept.pk).restocked_quantity == 0


def test_units_already_refunded_cannot_be_refunded_again():
    order = paid(lines=[(SkuFactory(price=1000, stock=10), 2)])
    [line] = lines_of(order)
    staff = StaffFactory()
    one = [{"order_line_id": line.pk, "quantity": 1}]
    refund_mark_succeeded(refund_id=refund_issue(order_id=order.pk, staff=staff, lines=one).pk)
    with pytest.raises(ApplicationError) as excinfo:
        refund_issue(
            order_id=order.pk, staff=staff, lines=[{"order_line_id": line.pk, "quantity": 2}]
        )
    assert error_of(excinfo) == (
        "Conflict",
        409,
        "refund_exceeds_paid",
        "This is more than what was paid and not yet refunded.",
        {"order_line_id": line.pk, "refundable_quantity": 1},
    )
    assert Refund.objects.count() == 1


def test_a_refund_worth_nothing_after_an_earlier_refund_says_what_is_left(monkeypatch):
    # given: 3 units worth 2 fen in all (unit share 0), of which 1 fen went back
    order, line = one_line_order(monkeypatch, price=1, quantity=3, discount=1)
    refund_mark_succeeded(
        refund_id=refund_issue(order_id=order.pk, staff=StaffFactory(), amount=1).pk
    )
    with pytest.raises(ApplicationError) as refused:
        refund_issue(
            order_id=order.pk,
            staff=StaffFactory(),
            lines=[{"order_line_id": line.pk, "quantity": 1}],
        )
    assert (refused.value.code, refused.value.details) == (
        "refund_exceeds_paid",
        {"refundable": 1, "requested": 0},
    )


def test_the_order_s_balance_bounds_a_refund_after_an_earlier_refund_too():
    # given: books where the lines hold more than the order's total, 100 already refunded
    order = OrderFactory(subtotal=1000, discount=100, total=900)
    OrderLineFactory(order=order, unit_price=500, quantity=2)
    payment = SucceededPaymentFactory(order=order)
    assert order_mark_paid(order_id=order.pk, payment_id=payment.pk) is True
    refund_mark_succeeded(
        refund_id=refund_issue(order_id=order.pk, staff=StaffFactory(), amount=100).pk
    )
    # when / then: the lines have 900 left, the order 800
    with pytest.raises(ApplicationError) as refused:
        refund_issue(order_id=order.pk, staff=StaffFactory())
    assert (refused.value.code, refused.value.details) == (
        "refund_exceeds_paid",
        {"refundable": 800, "requested": 900},
    )
    assert Refund.objects.count() == 1
