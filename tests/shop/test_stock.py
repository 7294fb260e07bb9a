from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from core.errors import ApplicationError
from shop.models import Order, StockReservation
from shop.services import stock
from shop.services.stock import (
    stock_commit,
    stock_refuse_known_short,
    stock_release,
    stock_remember_short,
    stock_reserve,
    stock_restore,
)
from tests.factories import CustomerFactory, SkuFactory
from tests.shop.factories_orders import stock_of

pytestmark = pytest.mark.django_db


def bare_order() -> Order:
    return Order.objects.create(
        number=f"T{Order.objects.count() + 1:08d}",
        customer=CustomerFactory(),
        delivery_mode=Order.DeliveryMode.COURIER,
        subtotal=0,
        total=0,
        payment_deadline=timezone.now() + timedelta(minutes=15),
    )


def test_reserve_takes_stock_and_records_reservations_merged_per_sku():
    # given
    a, b = SkuFactory(stock=10), SkuFactory(stock=5)
    order = bare_order()
    expires = timezone.now() + timedelta(minutes=15)
    # when: b before a, and a twice
    stock_reserve(order=order, lines=[(b, 2), (a, 1), (a, 3)], expires_at=expires)
    # then
    assert (stock_of(a), stock_of(b)) == (6, 3)
    rows = list(order.reservations.order_by("sku_id").values_list("sku_id", "quantity", "status"))
    assert rows == [(a.pk, 4, "active"), (b.pk, 2, "active")]
    assert all(r.expires_at == expires for r in order.reservations.all())


def test_reserve_single_sku_is_one_statement_on_postgresql():
    sku = SkuFactory(stock=3)
    order = bare_order()
    with CaptureQueriesContext(connection) as queries:
        stock_reserve(order=order, lines=[(sku, 1)], expires_at=timezone.now())
    assert len(queries) == 1
    assert stock_of(sku) == 2
    assert order.reservations.get().quantity == 1


def test_reserve_refuses_short_stock_with_details_and_takes_nothing():
    # given: enough of a, not enough of b
    a, b = SkuFactory(stock=10), SkuFactory(stock=1)
    order = bare_order()
    # when
    with pytest.raises(ApplicationError) as exc, transaction.atomic():
        stock_reserve(order=order, lines=[(a, 2), (b, 2)], expires_at=timezone.now())
    # then: all or nothing
    assert exc.value.code == "out_of_stock"
    assert exc.value.status == 409
    assert exc.value.details == {"sku_id": b.pk, "available": 1}
    assert (stock_of(a), stock_of(b)) == (10, 1)
    assert not StockReservation.objects.filter(order=order).exists()


def test_release_returns_units_once_and_commit_keeps_them():
    sku = SkuFactory(stock=10)
    released_order, paid_order = bare_order(), bare_order()
    stock_reserve(order=released_order, lines=[(sku, 3)], expires_at=timezone.now())
    stock_reserve(order=paid_order, lines=[(sku, 2)], expires_at=timezone.now())
    assert stock_of(sku) == 5

    assert stock_commit(order=paid_order) == 1
    assert stock_release(order=released_order) == 3
    assert stock_release(order=released_order) == 0  # idempotent
    assert stock_release(order=paid_order) == 0  # committed units stay sold

    assert stock_of(sku) == 8
    assert released_order.reservations.get().status == "released"
    assert paid_order.reservations.get().status == "committed"


def test_restore_puts_units_back():
    sku = SkuFactory(stock=0)
    stock_restore(sku_id=sku.pk, quantity=4)
    assert stock_of(sku) == 4
    with pytest.raises(ValueError):
        stock_restore(sku_id=sku.pk, quantity=0)


def test_short_sku_is_remembered_and_refused_without_database():
    # given: a failed reservation saw 0 left
    sku = SkuFactory(stock=0)
    with pytest.raises(ApplicationError):
        stock_reserve(order=bare_order(), lines=[(sku, 1)], expires_at=timezone.now())
    # when / then: refused from the memo, no query
    with CaptureQueriesContext(connection) as queries, pytest.raises(ApplicationError) as exc:
        stock_refuse_known_short(quantities={sku.pk: 1})
    assert len(queries) == 0
    assert exc.value.code == "out_of_stock"
    assert exc.value.details == {"sku_id": sku.pk, "available": 0}


def test_memo_never_refuses_what_the_seen_stock_covers():
    sku = SkuFactory(stock=2)
    with pytest.raises(ApplicationError):
        stock_reserve(order=bare_order(), lines=[(sku, 3)], expires_at=timezone.now())
    stock_refuse_known_short(quantities={sku.pk: 2})  # 2 were there: ask the database
    with pytest.raises(ApplicationError):
        stock_refuse_known_short(quantities={sku.pk: 3})


def test_released_or_restored_stock_clears_the_memo_at_once():
    sku = SkuFactory(stock=1)
    holder = bare_order()
    stock_reserve(order=holder, lines=[(sku, 1)], expires_at=timezone.now())
    with pytest.raises(ApplicationError):
        stock_reserve(order=bare_order(), lines=[(sku, 1)], expires_at=timezone.now())
    # when
    stock_release(order=holder)
    # then: no stale refusal
    stock_refuse_known_short(quantities={sku.pk: 1})
    stock_reserve(order=bare_order(), lines=[(sku, 1)], expires_at=timezone.now())
    assert stock_of(sku) == 0

    with pytest.raises(ApplicationError):
        stock_reserve(order=bare_order(), lines=[(sku, 1)], expires_at=timezone.now())
    stock_restore(sku_id=sku.pk, quantity=1)
    stock_refuse_known_short(quantities={sku.pk: 1})


def test_memo_can_be_switched_off(monkeypatch):
    monkeypatch.setattr(stock, "SHORT_MEMO_SECONDS", 0)
    sku = SkuFactory(stock=0)
    with pytest.raises(ApplicationError):
        stock_reserve(order=bare_order(), lines=[(sku, 1)], expires_at=timezone.now())
    stock_refuse_known_short(quantities={sku.pk: 1})  # nothing remembered


def test_restocking_through_the_catalog_clears_the_memo():
    from shop.services.catalog import sku_adjust_stock

    sku = SkuFactory(stock=0)
    stock_remember_short(sku_id=sku.pk, available=0)
    with pytest.raises(ApplicationError) as refused:
        stock_refuse_known_short(quantities={sku.pk: 1})
    assert (refused.value.code, refused.value.details) == (
        "out_of_stock",
        {"sku_id": sku.pk, "available": 0},
    )

    sku_adjust_stock(sku_id=sku.pk, delta=5)

    assert stock_of(sku) == 5
    assert sku.pk not in stock._short_memo  # the memo was dropped: the next request goes through
    assert stock_refuse_known_short(quantities={sku.pk: 1}) is None
