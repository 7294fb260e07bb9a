"""Payment and refund correctness: late refund successes, the payment refund bound, crash-safe
idempotency takeover, restock reporting, purchase limits after refunds, unknown coupons."""

import threading
from datetime import timedelta

import pytest
from django.db import IntegrityError, connection, transaction
from django.db.models import F
from django.test import Client, RequestFactory
from django.utils import timezone

from core.http import _request_fingerprint
from core.models import IdempotencyRecord, Notification
from shop.models import (
    Order,
    OrderLine,
    Payment,
    ReconciliationDiscrepancy,
    Refund,
    WebhookEvent,
)
from shop.services.payments import payment_start
from shop.services.refunds import refund_issue, refund_mark_failed, refund_mark_succeeded
from tests.conftest import ApiClient, token_for
from tests.core.utils import assert_error
from tests.factories import CustomerFactory, ProductFactory, SkuFactory, StaffFactory
from tests.shop.factories_orders import paid, quick_pickup_point, stock_of
from tests.shop.factories_payments import payable_order
from tests.shop.stripe_fakes import event, intent_obj, post_event, refund_obj, use_fake_stripe

pytestmark = pytest.mark.django_db


# --- a late "succeeded" for a refund marked failed and replaced -------------------------------
@pytest.fixture
def stripe_order(customer, settings, monkeypatch, django_capture_on_commit_callbacks):
    """A Stripe-paid order (one line, 2 x 1990) and the fake Stripe."""
    fake = use_fake_stripe(settings, monkeypatch)
    payment = payment_start(order_id=payable_order(customer).pk, customer=customer)
    with django_capture_on_commit_callbacks(execute=True):
        post_event(Client(), event("evt_paid", "payment_intent.succeeded", intent_obj(payment)))
    payment.refresh_from_db()
    return fake, payment


def _issue(order_id: int, staff, capture) -> Refund:
    with capture(execute=True):
        refund = refund_issue(order_id=order_id, staff=staff)
    refund.refresh_from_db()
    return refund


def _refund_event(capture, event_id: str, refund: Refund, payment: Payment, status: str):
    obj = refund_obj(
        refund.provider_ref, payment.provider_ref, refund.amount, refund_id=refund.id, status=status
    )
    with capture(execute=True):
        kind = "refund.failed" if status == "failed" else "refund.updated"
        return post_event(Client(), event(event_id, kind, obj))


def test_a_late_success_of_a_replaced_refund_is_a_discrepancy_not_a_500(
    stripe_order, staff, django_capture_on_commit_callbacks
):
    capture = django_capture_on_commit_callbacks
    _, payment = stripe_order
    order_id = payment.order_id
    # given: the first refund failed, a second one for the same units succeeded
    first = _issue(order_id, staff, capture)
    _refund_event(capture, "evt_first_failed", first, payment, "failed")
    second = _issue(order_id, staff, capture)
    _refund_event(capture, "evt_second_ok", second, payment, "succeeded")

    # when: Stripe reports the first one succeeded after all (twice, under two event ids)
    late = _refund_event(capture, "evt_first_late", first, payment, "succeeded")
    again = _refund_event(capture, "evt_first_late", first, payment, "succeeded")
    other_id = _refund_event(capture, "evt_first_late_2", first, payment, "succeeded")

    # then: 200, nothing applied twice, one discrepancy, operators told once
    assert late.status_code == 200 and late.json() == {"received": True, "duplicate": False}
    assert again.json()["duplicate"] is True
    assert other_id.status_code == 200
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.status, second.status) == (Refund.Status.FAILED, Refund.Status.SUCCEEDED)
    order = Order.objects.get(pk=order_id)
    assert (order.status, order.refunded_amount) == (Order.Status.REFUNDED, 3980)
    assert list(OrderLine.objects.values_list("refunded_quantity", "refunded_amount")) == [
        (2, 3980)
    ]
    assert Payment.objects.get(pk=payment.pk).refunded_amount == 3980
    discrepancy = ReconciliationDiscrepancy.objects.get()
    assert (
        discrepancy.kind,
        discrepancy.refund_id,
        discrepancy.order_id,
        discrepancy.amount,
        discrepancy.details["replaced_by_refund_id"],
        discrepancy.resolved_at,
    ) == ("refund_succeeded_after_replacement", first.pk, order_id, 3980, second.pk, None)
    notes = Notification.objects.filter(kind="reconciliation_discrepancy")
    assert [(n.user_id, n.data["discrepancy_id"]) for n in notes] == [(staff.pk, discrepancy.pk)]
    assert WebhookEvent.objects.filter(processed_at__isnull=True).count() == 0


def test_operators_told_are_those_who_may_resolve(
    stripe_order, staff, django_capture_on_commit_callbacks
):
    from django.contrib.auth.models import Permission

    capture = django_capture_on_commit_callbacks
    _, payment = stripe_order
    clerk = StaffFactory(is_superuser=False)
    resolver = StaffFactory(is_superuser=False)
    resolver.user_permissions.add(
        Permission.objects.get(codename="change_reconciliationdiscrepancy")
    )
    first = _issue(payment.order_id, staff, capture)
    _refund_event(capture, "evt_a", first, payment, "failed")
    second = _issue(payment.order_id, staff, capture)
    _refund_event(capture, "evt_b", second, payment, "succeeded")

    _refund_event(capture, "evt_c", first, payment, "succeeded")

    told = set(
        Notification.objects.filter(kind="reconciliation_discrepancy").values_list(
            "user_id", flat=True
        )
    )
    assert told == {staff.pk, resolver.pk}
    assert clerk.pk not in told


def test_a_late_success_of_a_failed_refund_nobody_replaced_is_applied(
    stripe_order, staff, django_capture_on_commit_callbacks
):
    capture = django_capture_on_commit_callbacks
    _, payment = stripe_order
    first = _issue(payment.order_id, staff, capture)
    _refund_event(capture, "evt_failed", first, payment, "failed")

    _refund_event(capture, "evt_late", first, payment, "succeeded")

    first.refresh_from_db()
    assert first.status == Refund.Status.SUCCEEDED
    order = Order.objects.get(pk=payment.order_id)
    assert (order.status, order.refunded_amount) == (Order.Status.REFUNDED, 3980)
    assert not ReconciliationDiscrepancy.objects.exists()


def test_a_success_beyond_what_is_left_is_a_discrepancy():
    order = paid(lines=[(SkuFactory(price=1000, stock=10), 2)])
    staff = StaffFactory()
    refund = refund_issue(order_id=order.pk, staff=staff, amount=500)
    # the books moved under it (e.g. money returned by hand and recorded)
    OrderLine.objects.filter(order=order).update(refunded_amount=F("line_total"))

    result = refund_mark_succeeded(refund_id=refund.pk)

    assert result.status == Refund.Status.APPROVED
    discrepancy = ReconciliationDiscrepancy.objects.get()
    assert (discrepancy.kind, discrepancy.refund_id) == ("refund_exceeds_paid", refund.pk)
    assert Payment.objects.get(pk=order.paid_payment_id).refunded_amount == 0


def test_discrepancies_are_listed_and_resolved_in_the_admin(
    stripe_order, staff, django_capture_on_commit_callbacks
):
    capture = django_capture_on_commit_callbacks
    _, payment = stripe_order
    first = _issue(payment.order_id, staff, capture)
    _refund_event(capture, "evt_a", first, payment, "failed")
    second = _issue(payment.order_id, staff, capture)
    _refund_event(capture, "evt_b", second, payment, "succeeded")
    _refund_event(capture, "evt_c", first, payment, "succeeded")
    discrepancy = ReconciliationDiscrepancy.objects.get()
    admin = Client()
    admin.force_login(staff)

    listed = admin.get("/admin/shop/reconciliationdiscrepancy/", {"resolved": "no"})
    resolved = admin.post(
        "/admin/shop/reconciliationdiscrepancy/",
        {"action": "resolve", "_selected_action": [discrepancy.pk]},
    )

    assert listed.status_code == 200
    assert f"/admin/shop/reconciliationdiscrepancy/{discrepancy.pk}/change/" in (
        listed.content.decode()
    )
    assert resolved.status_code == 302
    discrepancy.refresh_from_db()
    assert (discrepancy.resolved_by_id, discrepancy.resolved_at is not None) == (staff.pk, True)


# --- Payment.refunded_amount <= amount ----------------------------------------------------
def test_payment_refunded_amount_cannot_exceed_its_amount_in_the_database():
    order = paid()
    payment = Payment.objects.get(pk=order.paid_payment_id)

    with pytest.raises(IntegrityError, match="payment_refund_within_amount"), transaction.atomic():
        Payment.objects.filter(pk=payment.pk).update(refunded_amount=payment.amount + 1)

    Payment.objects.filter(pk=payment.pk).update(refunded_amount=payment.amount)
    assert Payment.objects.get(pk=payment.pk).refunded_amount == payment.amount


# --- idempotency takeover never makes a second order -------------------------------------------
ORDERS = "/api/v1/orders"


def _order_body(sku, point) -> dict:
    return {
        "lines": [{"sku_id": sku.pk, "quantity": 1}],
        "delivery_mode": "pickup",
        "pickup_point_id": point.pk,
    }


def _claim(user, key: str, body: dict, age: timedelta) -> IdempotencyRecord:
    request = RequestFactory().post(ORDERS, data=body, content_type="application/json")
    record = IdempotencyRecord.objects.create(
        user=user, key=key, method="POST", path=ORDERS, request_hash=_request_fingerprint(request)
    )
    IdempotencyRecord.objects.filter(pk=record.pk).update(created_at=timezone.now() - age)
    return record


def test_a_crash_after_the_order_write_rolls_the_order_back_with_the_claim(
    customer, shopper, monkeypatch
):
    from shop.api import orders as api

    body = _order_body(SkuFactory(stock=5), quick_pickup_point())
    monkeypatch.setattr(api, "_mine", lambda *a: (_ for _ in ()).throw(RuntimeError("died")))

    crashed = shopper.post(ORDERS, json=body, headers={"Idempotency-Key": "k-crash"})

    assert crashed.status_code == 500
    assert (Order.objects.count(), IdempotencyRecord.objects.count()) == (0, 0)
    monkeypatch.undo()
    retried = shopper.post(ORDERS, json=body, headers={"Idempotency-Key": "k-crash"})
    assert retried.status_code == 201
    assert Order.objects.count() == 1


def test_an_abandoned_claim_is_taken_over_and_makes_exactly_one_order(customer, shopper):
    sku, point = SkuFactory(stock=5), quick_pickup_point()
    body = _order_body(sku, point)
    _claim(customer.user, "k-dead", body, timedelta(seconds=61))

    first = shopper.post(ORDERS, json=body, headers={"Idempotency-Key": "k-dead"})
    second = shopper.post(ORDERS, json=body, headers={"Idempotency-Key": "k-dead"})

    assert first.status_code == 201 and "Idempotent-Replayed" not in first
    assert (second.status_code, second["Idempotent-Replayed"]) == (201, "true")
    assert second.json()["id"] == first.json()["id"]
    assert Order.objects.count() == 1
    assert stock_of(sku) == 4


@pytest.mark.django_db(transaction=True)
def test_a_slow_first_attempt_past_the_timeout_is_not_taken_over():
    customer = CustomerFactory()
    body = _order_body(SkuFactory(stock=5), quick_pickup_point())
    record = _claim(customer.user, "k-slow", body, timedelta(seconds=120))
    holding, release = threading.Event(), threading.Event()

    def first_attempt_still_running():
        try:
            with transaction.atomic():
                IdempotencyRecord.objects.select_for_update().get(pk=record.pk)
                holding.set()
                release.wait(10)
        finally:
            connection.close()

    thread = threading.Thread(target=first_attempt_still_running)
    thread.start()
    try:
        assert holding.wait(10)
        duplicate = ApiClient(token_for(customer.user)).post(
            ORDERS, json=body, headers={"Idempotency-Key": "k-slow"}
        )
    finally:
        release.set()
        thread.join()

    assert_error(duplicate, 409, "idempotency_request_in_progress")
    assert Order.objects.count() == 0
    assert IdempotencyRecord.objects.filter(pk=record.pk, completed_at__isnull=True).exists()


# --- restocking and purchase limits -----------------------------------------------------------
def test_a_refund_by_amount_restocks_nothing_and_says_so(operator):
    sku = SkuFactory(price=1000, stock=10)
    order = paid(lines=[(sku, 2)])

    asked = operator.post(
        f"/api/v1/staff/orders/{order.pk}/refunds", json={"amount": 700, "restock": True}
    )
    by_amount = operator.post(f"/api/v1/staff/orders/{order.pk}/refunds", json={"amount": 700})

    assert by_amount.status_code == 201, by_amount.content
    assert (by_amount.json()["restock"], by_amount.json()["restocked_quantity"]) == (False, 0)
    assert_error(asked, 422, "restock_needs_units")
    refund_mark_succeeded(refund_id=by_amount.json()["id"])
    shown = operator.get(f"/api/v1/staff/refunds?order_id={order.pk}").json()["items"][0]
    assert (shown["status"], shown["restock"], shown["restocked_quantity"]) == (
        "succeeded",
        False,
        0,
    )
    assert stock_of(sku) == 8


def test_a_refund_of_units_reports_the_units_it_restocked(operator):
    sku = SkuFactory(price=1000, stock=10)
    order = paid(lines=[(sku, 3)])
    line = OrderLine.objects.get(order=order)

    created = operator.post(
        f"/api/v1/staff/orders/{order.pk}/refunds",
        json={"lines": [{"order_line_id": line.pk, "quantity": 2}]},
    ).json()
    before = created["restocked_quantity"]
    refund_mark_succeeded(refund_id=created["id"])

    shown = operator.get(f"/api/v1/staff/refunds?order_id={order.pk}").json()["items"][0]
    assert (before, shown["restock"], shown["restocked_quantity"]) == (0, True, 2)
    assert stock_of(sku) == 9


def test_refunded_units_no_longer_count_against_the_purchase_limit(customer, shopper):
    sku = SkuFactory(price=1000, stock=20, product=ProductFactory(purchase_limit=2))
    point = quick_pickup_point()
    order = paid(customer, lines=[(sku, 2)], pickup_point=point)
    line = OrderLine.objects.get(order=order)
    over = shopper.post(ORDERS, json=_order_body(sku, point))
    assert_error(over, 409, "purchase_limit_exceeded")

    refund = refund_issue(
        order_id=order.pk, staff=StaffFactory(), lines=[{"order_line_id": line.pk, "quantity": 1}]
    )
    refund_mark_succeeded(refund_id=refund.pk)
    one_more = shopper.post(ORDERS, json=_order_body(sku, point))
    two_more = shopper.post(
        ORDERS,
        json={**_order_body(sku, point), "lines": [{"sku_id": sku.pk, "quantity": 2}]},
    )

    assert one_more.status_code == 201
    error = assert_error(two_more, 409, "purchase_limit_exceeded")
    assert error["details"]["already_bought"] == 2


def test_a_failed_refund_still_counts_its_units(customer, shopper):
    sku = SkuFactory(price=1000, stock=20, product=ProductFactory(purchase_limit=2))
    point = quick_pickup_point()
    order = paid(customer, lines=[(sku, 2)], pickup_point=point)
    refund = refund_issue(order_id=order.pk, staff=StaffFactory())
    refund_mark_failed(refund_id=refund.pk, message="card closed")

    assert_error(shopper.post(ORDERS, json=_order_body(sku, point)), 409, "purchase_limit_exceeded")


# --- coupons -------------------------------------------------------------------------------------
@pytest.mark.parametrize("code", ["SAVE10", " anything "])
def test_an_unknown_coupon_code_is_refused_and_nothing_is_stored(shopper, code):
    sku = SkuFactory(stock=5)
    body = {**_order_body(sku, quick_pickup_point()), "coupon_code": code}

    response = shopper.post(ORDERS, json=body)

    error = assert_error(response, 422, "coupon_invalid")
    assert error["details"] == {"coupon_code": code.strip()}
    assert Order.objects.count() == 0
    assert stock_of(sku) == 5


def test_an_empty_coupon_code_is_no_coupon(shopper):
    body = {**_order_body(SkuFactory(stock=5), quick_pickup_point()), "coupon_code": ""}

    response = shopper.post(ORDERS, json=body)

    assert response.status_code == 201
    assert Order.objects.get().coupon_code == ""
