"""Races on real PostgreSQL with threads, each with its own connection; exact outcomes."""

import threading
from datetime import timedelta

import pytest
import time_machine
from django.conf import settings
from django.db import connection
from django.utils import timezone

from core.errors import ApplicationError
from core.models import Notification
from shop.models import Order, OrderEvent, Payment, Refund, StockReservation
from shop.services.orders import order_cancel, order_create, order_mark_paid, orders_expire_due
from shop.services.refunds import refund_approve, refund_mark_succeeded, refund_request
from tests.conftest import run_in_threads
from tests.factories import SkuFactory
from tests.shop.factories_orders import (
    QuickCustomerFactory,
    QuickUserFactory,
    SucceededPaymentFactory,
    paid,
    place,
    quick_pickup_point,
    stock_of,
)
from tests.shop.stripe_fakes import use_fake_stripe

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

# PostgreSQL allows 100 connections here and other suites share the server: at most this many
# threads hold a connection at once (the rest wait at the gate, then pile in).
DB_SESSIONS = 25


def gated(target):
    gate = threading.BoundedSemaphore(DB_SESSIONS)

    def run(i):
        with gate:
            try:
                return target(i)
            finally:
                connection.close()

    return run


def codes(results):
    return sorted(r.code if isinstance(r, ApplicationError) else type(r).__name__ for r in results)


def test_100_buyers_for_the_last_10_units():
    # given
    sku = SkuFactory(stock=10)
    point = quick_pickup_point()
    buyers = [QuickCustomerFactory() for _ in range(100)]
    # when
    results = run_in_threads(
        100,
        gated(
            lambda i: order_create(
                customer=buyers[i],
                lines=[(sku.pk, 1)],
                delivery_mode="pickup",
                pickup_point_id=point.pk,
            )
        ),
    )
    # then
    winners = [r for r in results if isinstance(r, Order)]
    losers = [r for r in results if isinstance(r, ApplicationError)]
    assert len(winners) == 10
    assert len(losers) == 90
    assert {r.code for r in losers} == {"out_of_stock"}
    assert stock_of(sku) == 0
    assert Order.objects.count() == 10
    assert sum(StockReservation.objects.filter(sku=sku).values_list("quantity", flat=True)) == 10


def test_multi_sku_orders_in_opposite_order_neither_deadlock_nor_oversell():
    a, b = SkuFactory(stock=15), SkuFactory(stock=15)
    point = quick_pickup_point()
    buyers = [QuickCustomerFactory() for _ in range(40)]

    def buy(i):
        lines = [(a.pk, 1), (b.pk, 1)] if i % 2 else [(b.pk, 1), (a.pk, 1)]
        return order_create(
            customer=buyers[i], lines=lines, delivery_mode="pickup", pickup_point_id=point.pk
        )

    results = run_in_threads(40, gated(buy))

    assert sum(isinstance(r, Order) for r in results) == 15
    assert codes(r for r in results if not isinstance(r, Order)) == ["out_of_stock"] * 25
    assert (stock_of(a), stock_of(b)) == (0, 0)


def test_cancel_racing_payment_has_one_consistent_winner():
    outcomes = set()
    for _ in range(12):
        # given
        sku = SkuFactory(stock=5)
        order = place(lines=[(sku, 2)])
        payment = SucceededPaymentFactory(order=order)

        def act(i, order=order, payment=payment):
            if i == 0:
                return order_cancel(order_id=order.pk, customer=order.customer)
            return order_mark_paid(order_id=order.pk, payment_id=payment.pk)

        # when
        cancel_result, paid_result = run_in_threads(2, act)
        # then
        order.refresh_from_db()
        reservations = set(order.reservations.values_list("status", flat=True))
        if order.status == "paid":
            assert paid_result is True
            assert isinstance(cancel_result, ApplicationError)
            assert cancel_result.code == "illegal_transition"
            assert (stock_of(sku), reservations) == (3, {"committed"})
        else:
            assert order.status == "cancelled"
            assert paid_result is False
            assert isinstance(cancel_result, Order)
            assert (stock_of(sku), reservations) == (5, {"released"})
        outcomes.add(order.status)
    assert outcomes <= {"paid", "cancelled"}


def test_concurrent_refund_requests_open_one_refund():
    order = paid(lines=[(SkuFactory(price=1000), 2)])
    results = run_in_threads(
        8, gated(lambda i: refund_request(order_id=order.pk, customer=order.customer, amount=100))
    )
    assert sum(isinstance(r, Refund) for r in results) == 1
    assert codes(r for r in results if not isinstance(r, Refund)) == ["refund_in_progress"] * 7


def test_concurrent_approvals_and_provider_reports_refund_once(settings, monkeypatch):
    # given: a requested full refund of an undelivered order paid through Stripe, whose SDK talks
    # to a fake that records each request and answers a refund "pending" (it waits for a webhook)
    fake_stripe = use_fake_stripe(settings, monkeypatch)
    sku = SkuFactory(price=1000, stock=10)
    order = place(lines=[(sku, 3)])
    payment = SucceededPaymentFactory(
        order=order, provider=Payment.Provider.STRIPE, provider_ref=f"pi_test_{order.pk}"
    )
    assert order_mark_paid(order_id=order.pk, payment_id=payment.pk) is True
    refund = refund_request(order_id=order.pk, customer=order.customer)
    staff = [QuickUserFactory(is_staff=True, is_superuser=True) for _ in range(8)]
    # when: eight operators approve at once (each approval sends the real refund_send task after
    # its commit, run eagerly)
    results = run_in_threads(
        8, gated(lambda i: refund_approve(refund_id=refund.pk, staff=staff[i]))
    )
    # then: approved once, sent to the provider once
    assert all(isinstance(r, Refund) and r.status == "approved" for r in results), results
    [call] = fake_stripe.calls_to("/v1/refunds")
    assert (call.idempotency_key, call.form["amount"]) == (f"refund-{refund.pk}", "3000")
    refund.refresh_from_db()
    assert (refund.status, refund.provider_ref) == ("approved", f"re_test_{refund.pk}")
    assert OrderEvent.objects.filter(refund=refund, kind="refund_approved").count() == 1
    # when: the provider's answer and its webhook arrive together, several times
    results = run_in_threads(
        8,
        gated(
            lambda i: refund_mark_succeeded(refund_id=refund.pk, provider_ref=refund.provider_ref)
        ),
    )
    # then: the money and the units are counted once
    assert all(isinstance(r, Refund) and r.status == "succeeded" for r in results), results
    order.refresh_from_db()
    assert (order.status, order.refunded_amount) == ("refunded", 3000)
    assert Payment.objects.get(pk=payment.pk).refunded_amount == 3000
    assert stock_of(sku) == 10
    assert order.lines.get().refunded_quantity == 3
    assert OrderEvent.objects.filter(refund=refund, kind="refund_succeeded").count() == 1
    assert Notification.objects.filter(kind="refund_succeeded").count() == 1


def test_concurrent_expiry_sweeps_cancel_each_order_once():
    sku = SkuFactory(stock=60)
    point = quick_pickup_point()
    orders = [place(lines=[(sku, 2)], pickup_point=point) for _ in range(30)]
    assert stock_of(sku) == 0
    later = timezone.now() + settings.STOCK_RESERVATION_TTL + timedelta(seconds=1)

    with time_machine.travel(later):  # process-wide, so every thread sees it
        results = run_in_threads(4, gated(lambda i: orders_expire_due()))

    assert sum(results) == 30, results
    assert stock_of(sku) == 60
    assert Order.objects.filter(pk__in=[o.pk for o in orders], status="cancelled").count() == 30
    assert Notification.objects.filter(kind="order_cancelled").count() == 30


def test_one_customer_racing_their_own_purchase_limit_gets_exactly_the_limit():
    # given: a product limited to 2 units per customer, plenty of stock
    from tests.factories import ProductFactory

    sku = SkuFactory(stock=100, product=ProductFactory(purchase_limit=2))
    point = quick_pickup_point()
    customer = QuickCustomerFactory()
    # when: 8 orders of 1 unit each by the same customer at once
    results = run_in_threads(
        8,
        gated(
            lambda i: order_create(
                customer=customer,
                lines=[(sku.pk, 1)],
                delivery_mode="pickup",
                pickup_point_id=point.pk,
            )
        ),
    )
    # then: the customer's row lock counts them one after the other
    assert codes(results) == ["Order", "Order"] + ["purchase_limit_exceeded"] * 6
    assert Order.objects.filter(customer=customer).count() == 2
    assert stock_of(sku) == 98
