"""Flash sale races on real PostgreSQL with threads, each with its own connection; exact counts."""

import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from core.errors import ApplicationError
from shop.models import FlashQuota, Order, StockReservation
from shop.services import flash
from shop.services.orders import order_cancel
from tests.conftest import run_in_threads
from tests.shop.factories_flash import buy, flash_item, quota_of, remaining_of, sku_stock
from tests.shop.factories_orders import QuickCustomerFactory, quick_pickup_point

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

# PostgreSQL allows 100 connections here, shared with other suites (PITFALLS.md): at most this
# many threads hold a connection at once; the 1,000-buyer burst runs over HTTP in the benchmark.
DB_SESSIONS = 25


@pytest.fixture(autouse=True)
def _clean_flash_memo():
    flash.flash_memo_clear()
    yield
    flash.flash_memo_clear()


def gated(target):
    gate = threading.BoundedSemaphore(DB_SESSIONS)

    def run(i):
        with gate:
            try:
                return target(i)
            finally:
                connection.close()

    return run


def outcome(results) -> dict[str, int]:
    counts: dict[str, int] = {}
    for r in results:
        key = r.code if isinstance(r, ApplicationError) else type(r).__name__
        counts[key] = counts.get(key, 0) + 1
    return counts


def test_60_buyers_for_15_units_get_exactly_15_and_nothing_is_oversold():
    # given
    item = flash_item(stock=15, cap=1)
    point = quick_pickup_point()
    buyers = [QuickCustomerFactory() for _ in range(60)]
    # when
    results = run_in_threads(60, gated(lambda i: buy(item, buyers[i], point=point)))
    # then
    assert outcome(results) == {"Order": 15, "out_of_stock": 45}
    assert remaining_of(item) == 0
    assert Order.objects.count() == 15
    reserved = StockReservation.objects.filter(flash_item=item)
    assert sum(reserved.values_list("quantity", flat=True)) == 15
    assert sum(FlashQuota.objects.filter(item=item).values_list("units", flat=True)) == 15
    assert sku_stock(item) == 50


def test_one_customer_racing_themselves_gets_exactly_the_cap():
    # given: no product purchase limit, so the quota upsert is the only guard
    item = flash_item(stock=50, cap=3)
    customer, point = QuickCustomerFactory(), quick_pickup_point()
    # when
    results = run_in_threads(20, gated(lambda i: buy(item, customer, point=point)))
    # then
    assert outcome(results) == {"Order": 3, "purchase_limit_exceeded": 17}
    assert quota_of(item, customer) == 3
    assert remaining_of(item) == 47
    assert Order.objects.filter(customer=customer).count() == 3


def test_multi_unit_buyers_never_overshoot_the_last_units():
    item = flash_item(stock=10, cap=3)
    point = quick_pickup_point()
    buyers = [QuickCustomerFactory() for _ in range(20)]

    results = run_in_threads(20, gated(lambda i: buy(item, buyers[i], quantity=3, point=point)))

    assert outcome(results) == {"Order": 3, "out_of_stock": 17}
    assert remaining_of(item) == 1


def test_cancelling_while_the_same_customer_buys_again_neither_deadlocks_nor_leaks():
    # given: 10 customers each hold 1 of their cap of 2; each cancels it while buying 1 more
    item = flash_item(stock=30, cap=2)
    point = quick_pickup_point()
    customers = [QuickCustomerFactory() for _ in range(10)]
    held = [buy(item, c, point=point) for c in customers]

    def work(i: int):
        customer = customers[i // 2]
        if i % 2:
            return order_cancel(order_id=held[i // 2].pk, customer=customer)
        return buy(item, customer, point=point)

    results = run_in_threads(20, gated(work))

    assert outcome(results) == {"Order": 20}  # 10 new orders and 10 cancelled ones
    assert remaining_of(item) == 20
    for customer in customers:
        assert quota_of(item, customer) == 1


def test_expired_and_new_orders_race_without_losing_units():
    from shop.services.orders import orders_expire_due

    item = flash_item(stock=10, cap=1, payment_ttl=30)
    point = quick_pickup_point()
    for _ in range(10):
        buy(item, point=point)
    Order.objects.update(payment_deadline=timezone.now() - timedelta(seconds=1))
    buyers = [QuickCustomerFactory() for _ in range(12)]

    def work(i: int):
        if i < 2:
            return orders_expire_due()
        return buy(item, buyers[i], point=point)

    results = run_in_threads(12, gated(work))

    sold_after = sum(isinstance(r, Order) for r in results)
    assert sum(r for r in results if isinstance(r, int)) == 10  # each expired exactly once
    assert remaining_of(item) == 10 - sold_after
    assert StockReservation.objects.filter(
        flash_item=item, status=StockReservation.Status.ACTIVE
    ).count() == (sold_after)
