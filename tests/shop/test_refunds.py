import pytest
from django.contrib.auth.models import Permission

from core.errors import ApplicationError
from core.models import Notification
from shop import events
from shop.models import Order, OrderLine, Payment, Refund
from shop.services.orders import order_complete, order_fulfil
from shop.services.refunds import (
    refund_approve,
    refund_for_unapplied_payment,
    refund_issue,
    refund_mark_failed,
    refund_mark_succeeded,
    refund_reject,
    refund_request,
)
from tests.factories import SkuFactory, StaffFactory, UserFactory
from tests.shop.factories_coupons import coupon_for
from tests.shop.factories_orders import (
    QuickCustomerFactory,
    SucceededPaymentFactory,
    fulfilled,
    paid,
    place,
    stock_of,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def refunded_events():
    received: list[dict] = []

    def record_refund(**payload):
        received.append(payload)

    events.subscribe(events.ORDER_REFUNDED, record_refund)
    yield received
    events.unsubscribe(events.ORDER_REFUNDED, record_refund)


def refunds_url(order):
    return f"/api/v1/orders/{order.pk}/refunds"


def lines_of(order):
    return list(OrderLine.objects.filter(order=order).order_by("pk"))


# --- the whole flow through the API --------------------------------------------------------------
def test_customer_asks_staff_approve_provider_pays_back(
    client_for, operator, refunded_events, django_capture_on_commit_callbacks
):
    # given: a paid, not yet fulfilled order of 2 x 1990 + 1 x 500
    a, b = SkuFactory(price=1990, stock=10), SkuFactory(price=500, stock=10)
    order = paid(lines=[(a, 2), (b, 1)])
    shopper = client_for(order.customer.user)
    # when: the customer asks for everything back
    r = shopper.post(refunds_url(order), json={"note": "changed my mind"})
    # then
    assert r.status_code == 201, r.content
    refund = r.json()
    assert (refund["status"], refund["amount"], refund["restock"]) == ("requested", 4480, True)
    assert refund["payment_id"] == order.paid_payment_id
    assert sorted((x["quantity"], x["amount"]) for x in refund["lines"]) == [(1, 500), (2, 3980)]

    # when: staff approve, and after commit the refund is sent to the (sandbox) provider,
    # which pays it back at once
    with django_capture_on_commit_callbacks(execute=True):
        r = operator.post(f"/api/v1/staff/refunds/{refund['id']}/approve")
    assert (r.status_code, r.json()["status"]) == (200, "approved")
    # then
    order.refresh_from_db()
    assert (order.status, order.refunded_amount) == ("refunded", 4480)
    assert [(x.refunded_quantity, x.refunded_amount) for x in lines_of(order)] == [
        (2, 3980),
        (1, 500),
    ]
    assert (stock_of(a), stock_of(b)) == (10, 10)  # not delivered: back on sale
    assert Payment.objects.get(pk=order.paid_payment_id).refunded_amount == 4480
    sent = Refund.objects.get(pk=refund["id"])
    assert (sent.status, sent.provider_ref) == ("succeeded", f"sandbox_re_{refund['id']}")
    [event] = refunded_events
    assert event["order_id"] == order.pk
    assert event["amount"] == 4480
    assert event["fully_refunded"] is True
    assert sorted((x["sku_id"], x["quantity"], x["amount"]) for x in event["lines"]) == sorted(
        [(a.pk, 2, 3980), (b.pk, 1, 500)]
    )
    assert (
        Notification.objects.filter(user=order.customer.user, kind="refund_succeeded").count() == 1
    )
    # and the customer sees it
    listed = shopper.get(refunds_url(order)).json()
    assert [(x["id"], x["status"]) for x in listed] == [(refund["id"], "succeeded")]


def test_refund_by_line_quantity_gives_the_last_unit_the_remainder():
    # given: one line of 3 units whose line_total is 1000 after a 200 coupon
    customer = QuickCustomerFactory()
    sku = SkuFactory(price=400, stock=10)
    order = paid(customer, lines=[(sku, 3)], coupon_ids=[coupon_for(customer, amount=200).pk])
    [line] = lines_of(order)
    assert line.line_total == 1000
    amounts = []
    for expected_status in ("partially_refunded", "partially_refunded", "refunded"):
        # when
        refund = refund_issue(
            order_id=order.pk,
            staff=StaffFactory(),
            lines=[{"order_line_id": line.pk, "quantity": 1}],
        )
        refund_mark_succeeded(refund_id=refund.pk)
        amounts.append(refund.amount)
        # then
        assert Order.objects.get(pk=order.pk).status == expected_status
    assert amounts == [333, 333, 334]
    line.refresh_from_db()
    assert (line.refunded_quantity, line.refunded_amount) == (3, 1000)
    assert stock_of(sku) == 10


def test_refund_by_amount_is_allocated_over_what_is_left_on_each_line():
    a, b = SkuFactory(price=1990), SkuFactory(price=700)
    order = paid(lines=[(a, 2), (b, 1)])  # line totals 3980 and 700
    first = refund_issue(order_id=order.pk, staff=StaffFactory(), amount=1000)
    assert sorted(first.lines.values_list("amount", "quantity")) == [(150, 0), (850, 0)]
    refund_mark_succeeded(refund_id=first.pk)

    # the rest of it, in one go: never more than each line has left
    rest = refund_issue(order_id=order.pk, staff=StaffFactory(), amount=4680 - 1000)
    refund_mark_succeeded(refund_id=rest.pk)
    order.refresh_from_db()
    assert (order.status, order.refunded_amount) == ("refunded", 4680)
    assert [(x.refunded_amount, x.refunded_quantity) for x in lines_of(order)] == [
        (3980, 0),
        (700, 0),
    ]
    # an amount refund says nothing about units: nothing goes back on sale
    assert stock_of(a) == 98


def test_refund_cannot_exceed_what_was_paid(client_for):
    order = paid(lines=[(SkuFactory(price=1000), 2)])
    shopper = client_for(order.customer.user)
    [line] = lines_of(order)

    r = shopper.post(refunds_url(order), json={"amount": 2001})
    assert r.status_code == 409
    assert r.json()["error"]["code"] == "refund_exceeds_paid"
    assert r.json()["error"]["details"] == {"refundable": 2000, "requested": 2001}

    r = shopper.post(
        refunds_url(order), json={"lines": [{"order_line_id": line.pk, "quantity": 3}]}
    )
    assert r.status_code == 409
    assert r.json()["error"]["details"] == {"order_line_id": line.pk, "refundable_quantity": 2}

    refund_mark_succeeded(
        refund_id=refund_issue(order_id=order.pk, staff=StaffFactory(), amount=1500).pk
    )
    r = shopper.post(refunds_url(order), json={"amount": 501})
    assert (r.status_code, r.json()["error"]["code"]) == (409, "refund_exceeds_paid")
    assert shopper.post(refunds_url(order), json={"amount": 500}).status_code == 201
    assert not Refund.objects.filter(amount__gt=500, status="requested").exists()


def test_refund_input_errors(client_for):
    order = paid()
    other_line = lines_of(paid())[0]
    shopper = client_for(order.customer.user)
    [line] = lines_of(order)

    r = shopper.post(
        refunds_url(order),
        json={"amount": 10, "lines": [{"order_line_id": line.pk, "quantity": 1}]},
    )
    assert (r.status_code, r.json()["error"]["code"]) == (422, "refund_spec_invalid")
    r = shopper.post(
        refunds_url(order), json={"lines": [{"order_line_id": other_line.pk, "quantity": 1}]}
    )
    assert (r.status_code, r.json()["error"]["code"]) == (404, "order_line_not_found")
    r = shopper.post(
        refunds_url(order), json={"lines": [{"order_line_id": line.pk, "quantity": 0}]}
    )
    assert r.status_code == 422
    assert shopper.post(refunds_url(order), json={"amount": 0}).status_code == 422
    assert not Refund.objects.exists()


def test_one_open_refund_per_order(client_for, operator):
    order = paid(lines=[(SkuFactory(price=1000), 2)])
    shopper = client_for(order.customer.user)
    first = shopper.post(refunds_url(order), json={"amount": 100}).json()

    r = shopper.post(refunds_url(order), json={"amount": 100})
    assert (r.status_code, r.json()["error"]["code"]) == (409, "refund_in_progress")
    r = operator.post(f"/api/v1/staff/orders/{order.pk}/refunds", json={"amount": 100})
    assert (r.status_code, r.json()["error"]["code"]) == (409, "refund_in_progress")

    # once it is decided, a new one may be opened
    r = operator.post(f"/api/v1/staff/refunds/{first['id']}/reject", json={"note": "no reason"})
    assert (r.status_code, r.json()["status"], r.json()["failure_message"]) == (
        200,
        "rejected",
        "no reason",
    )
    assert shopper.post(refunds_url(order), json={"amount": 100}).status_code == 201


def test_unpaid_or_refunded_orders_are_not_refundable(client_for):
    unpaid = place()
    r = client_for(unpaid.customer.user).post(refunds_url(unpaid), json={})
    assert r.status_code == 409
    assert r.json()["error"] == {
        "code": "order_not_refundable",
        "message": "An order that is pending_payment cannot be refunded.",
        "details": {"status": "pending_payment"},
    }


def test_completed_orders_are_refunded_by_staff_only(client_for, operator):
    order = fulfilled(mode="courier")
    order_complete(order_id=order.pk)
    r = client_for(order.customer.user).post(refunds_url(order), json={"amount": 100})
    assert (r.status_code, r.json()["error"]["code"]) == (409, "order_not_refundable")
    r = operator.post(f"/api/v1/staff/orders/{order.pk}/refunds", json={"amount": 100})
    assert r.status_code == 201


def test_staff_issue_a_refund_that_is_approved_at_once(
    operator, django_capture_on_commit_callbacks
):
    order = paid()
    with django_capture_on_commit_callbacks(execute=True):
        r = operator.post(
            f"/api/v1/staff/orders/{order.pk}/refunds",
            json={"amount": 100, "note": "damaged box"},
            headers={"Idempotency-Key": "staff-refund-1"},
        )
    assert r.status_code == 201, r.content
    assert (r.json()["status"], r.json()["reason"], r.json()["note"]) == (
        "approved",
        "staff",
        "damaged box",
    )
    sent = Refund.objects.get(pk=r.json()["id"])  # sent after commit, paid by the sandbox
    assert (sent.status, sent.provider_ref) == ("succeeded", f"sandbox_re_{sent.pk}")
    replay = operator.post(
        f"/api/v1/staff/orders/{order.pk}/refunds",
        json={"amount": 100, "note": "damaged box"},
        headers={"Idempotency-Key": "staff-refund-1"},
    )
    assert replay.json()["id"] == r.json()["id"]
    assert Refund.objects.count() == 1


def test_delivered_units_are_not_restocked_by_default():
    sku = SkuFactory(stock=10)
    order = fulfilled(lines=[(sku, 2)], mode="courier")
    [line] = lines_of(order)
    refund = refund_request(
        order_id=order.pk,
        customer=order.customer,
        lines=[{"order_line_id": line.pk, "quantity": 1}],
    )
    assert refund.restock is False
    refund_approve(refund_id=refund.pk, staff=StaffFactory())
    refund_mark_succeeded(refund_id=refund.pk)
    order.refresh_from_db()
    assert order.status == "fulfilled"  # a partial refund keeps the lifecycle status
    assert order.refunded_amount == 1990
    assert stock_of(sku) == 8

    restocked = refund_issue(
        order_id=order.pk,
        staff=StaffFactory(),
        restock=True,
        lines=[{"order_line_id": line.pk, "quantity": 1}],
    )
    refund_mark_succeeded(refund_id=restocked.pk)
    assert stock_of(sku) == 9
    assert Order.objects.get(pk=order.pk).status == "refunded"


def test_partially_refunded_order_can_still_be_fulfilled_and_completed():
    order = paid(lines=[(SkuFactory(price=1000), 2)], mode="courier")
    refund = refund_issue(order_id=order.pk, staff=StaffFactory(), amount=300)
    refund_mark_succeeded(refund_id=refund.pk)
    assert Order.objects.get(pk=order.pk).status == "partially_refunded"

    assert order_fulfil(order_id=order.pk, actor=StaffFactory()).status == "fulfilled"
    assert order_complete(order_id=order.pk).status == "completed"
    assert Order.objects.get(pk=order.pk).refunded_amount == 300


def test_mark_succeeded_is_idempotent(refunded_events, django_capture_on_commit_callbacks):
    order = paid()
    refund = refund_issue(order_id=order.pk, staff=StaffFactory(), amount=500)
    with django_capture_on_commit_callbacks(execute=True):
        refund_mark_succeeded(refund_id=refund.pk)
        refund_mark_succeeded(refund_id=refund.pk)
    order.refresh_from_db()
    assert order.refunded_amount == 500
    assert Payment.objects.get(pk=order.paid_payment_id).refunded_amount == 500
    assert len(refunded_events) == 1
    assert Notification.objects.filter(kind="refund_succeeded").count() == 1


def test_mark_failed_frees_the_order_for_another_refund_and_never_undoes_success():
    order = paid()
    refund = refund_issue(order_id=order.pk, staff=StaffFactory(), amount=500)
    assert refund_mark_failed(refund_id=refund.pk, message="card closed").status == "failed"
    order.refresh_from_db()
    assert (order.status, order.refunded_amount) == ("paid", 0)

    second = refund_issue(order_id=order.pk, staff=StaffFactory(), amount=500)
    refund_mark_succeeded(refund_id=second.pk)
    assert refund_mark_failed(refund_id=second.pk, message="late").status == "succeeded"
    assert Order.objects.get(pk=order.pk).refunded_amount == 500


def test_approve_and_reject_rules(operator, django_capture_on_commit_callbacks):
    order = paid()
    refund = refund_request(order_id=order.pk, customer=order.customer, amount=100)
    with django_capture_on_commit_callbacks(execute=True):
        operator.post(f"/api/v1/staff/refunds/{refund.pk}/approve")
        again = operator.post(f"/api/v1/staff/refunds/{refund.pk}/approve")
    assert again.status_code == 200
    # sent and paid back once: the second approval changed nothing
    refund.refresh_from_db()
    assert (refund.status, refund.provider_ref) == ("succeeded", f"sandbox_re_{refund.pk}")
    order.refresh_from_db()
    assert order.refunded_amount == 100
    assert Payment.objects.get(pk=order.paid_payment_id).refunded_amount == 100

    r = operator.post(f"/api/v1/staff/refunds/{refund.pk}/reject", json={})
    assert r.status_code == 409
    assert r.json()["error"]["details"] == {"from": "succeeded", "to": "rejected"}
    assert operator.post("/api/v1/staff/refunds/999999/approve").status_code == 404


def test_rejected_refund_cannot_be_approved():
    order = paid()
    refund = refund_request(order_id=order.pk, customer=order.customer, amount=100)
    refund_reject(refund_id=refund.pk, staff=StaffFactory())
    with pytest.raises(ApplicationError) as exc:
        refund_approve(refund_id=refund.pk, staff=StaffFactory())
    assert exc.value.code == "illegal_transition"
    with pytest.raises(ApplicationError):
        refund_mark_succeeded(refund_id=refund.pk)


def test_refund_decisions_need_permissions(client_for, shopper):
    order = paid()
    refund = refund_request(order_id=order.pk, customer=order.customer, amount=100)
    clerk = UserFactory(is_staff=True)
    clerk.user_permissions.add(Permission.objects.get(codename="view_refund"))
    clerk_api = client_for(clerk)

    assert clerk_api.get("/api/v1/staff/refunds", {"status": "requested"}).json()["count"] == 1
    assert clerk_api.post(f"/api/v1/staff/refunds/{refund.pk}/approve").status_code == 403
    assert clerk_api.post(f"/api/v1/staff/orders/{order.pk}/refunds", json={}).status_code == 403
    assert shopper.post(f"/api/v1/staff/refunds/{refund.pk}/approve").status_code == 403
    assert Refund.objects.get(pk=refund.pk).status == "requested"


def test_refund_for_an_unapplied_payment_returns_it_and_leaves_the_order_alone():
    # given: the order was paid, then a second payment arrived
    order = paid()
    second = SucceededPaymentFactory(order=order, amount=order.total)
    # when
    refund = refund_for_unapplied_payment(payment_id=second.pk, reason="late_payment")
    again = refund_for_unapplied_payment(payment_id=second.pk, reason="late_payment")
    # then
    assert again.pk == refund.pk
    assert (refund.status, refund.amount, refund.payment_id) == ("approved", order.total, second.pk)
    assert not refund.lines.exists()
    # it does not count as an open refund of the order
    assert order_fulfil(order_id=order.pk, actor=StaffFactory()).status == "fulfilled"

    refund_mark_succeeded(refund_id=refund.pk)
    order.refresh_from_db()
    assert (order.status, order.refunded_amount) == ("fulfilled", 0)
    assert Payment.objects.get(pk=second.pk).refunded_amount == order.total
    assert Notification.objects.filter(kind="refund_succeeded").count() == 1
