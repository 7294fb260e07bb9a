"""Stock errors, exactly (tests/shop/test_stock.py has the flows)."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from core.errors import ApplicationError
from shop.models import Order
from shop.services.stock import out_of_stock, stock_release, stock_reserve, stock_restore
from tests.factories import CustomerFactory, SkuFactory
from tests.shop.factories_orders import stock_of


def test_out_of_stock_says_how_much_is_left_never_below_zero():
    error = out_of_stock(sku_id=7, available=-3)
    assert (error.status, error.code, error.message, error.details) == (
        409,
        "out_of_stock",
        "Not enough stock for this item.",
        {"sku_id": 7, "available": 0},
    )


@pytest.mark.django_db
@pytest.mark.parametrize("quantity", [0, -1])
def test_restoring_nothing_is_a_bug(quantity):
    sku = SkuFactory(stock=5)
    with pytest.raises(ValueError, match=r"^restored quantity must be positive$"):
        stock_restore(sku_id=sku.pk, quantity=quantity)
    assert stock_of(sku) == 5


@pytest.mark.django_db
def test_release_adds_up_every_reservation_of_a_sku_without_a_savepoint():
    # given: an order holding the same SKU twice (two reservations), and another SKU
    a, b = SkuFactory(stock=10), SkuFactory(stock=10)
    order = Order.objects.create(
        number="T00000001",
        customer=CustomerFactory(),
        delivery_mode=Order.DeliveryMode.COURIER,
        subtotal=0,
        total=0,
        payment_deadline=timezone.now() + timedelta(minutes=15),
    )
    expires = timezone.now() + timedelta(minutes=15)
    stock_reserve(order=order, lines=[(a, 2)], expires_at=expires)
    stock_reserve(order=order, lines=[(a, 3), (b, 1)], expires_at=expires)
    assert (stock_of(a), stock_of(b)) == (5, 9)
    # when: released inside the caller's transaction
    with CaptureQueriesContext(connection) as queries:
        released = stock_release(order=order)
    # then: every unit is back, in the caller's transaction (no savepoint round trips)
    assert released == 6
    assert (stock_of(a), stock_of(b)) == (10, 10)
    assert set(order.reservations.values_list("status", flat=True)) == {"released"}
    assert not [q["sql"] for q in queries.captured_queries if "SAVEPOINT" in q["sql"]]


@pytest.mark.django_db
def test_release_gives_flash_units_back_to_their_item_and_counts_them():
    from shop.models import FlashItem, StockReservation
    from tests.shop.factories_flash import flash_item

    # given: an order holding one flash item twice (2 + 3 units, taken from its own stock) and
    # one unit of a plain SKU
    item = flash_item(stock=10)
    FlashItem.objects.filter(pk=item.pk).update(remaining=5)
    plain = SkuFactory(stock=10)
    order = Order.objects.create(
        number="T00000002",
        customer=CustomerFactory(),
        delivery_mode=Order.DeliveryMode.COURIER,
        subtotal=0,
        total=0,
        payment_deadline=timezone.now() + timedelta(minutes=15),
    )
    expires = timezone.now() + timedelta(minutes=15)
    for quantity in (2, 3):
        StockReservation.objects.create(
            sku=item.sku, flash_item=item, order=order, quantity=quantity, expires_at=expires
        )
    stock_reserve(order=order, lines=[(plain, 1)], expires_at=expires)
    sku_before = stock_of(item.sku)
    # when
    released = stock_release(order=order)
    # then: 6 units back: 5 to the flash item, 1 to the plain SKU, none to the flash item's SKU
    assert released == 6
    assert FlashItem.objects.values_list("remaining", flat=True).get(pk=item.pk) == 10
    assert (stock_of(plain), stock_of(item.sku)) == (10, sku_before)


@pytest.mark.django_db
def test_the_short_memo_looks_at_every_sku_of_the_order():
    from shop.services import stock

    stock.stock_memo_clear()
    try:
        stock.stock_remember_short(sku_id=20, available=1)
        # sku 10 (first in id order) is not in the memo: the check must go on to sku 20
        with pytest.raises(ApplicationError) as excinfo:
            stock.stock_refuse_known_short(quantities={10: 1, 20: 2})
        assert (excinfo.value.code, excinfo.value.details) == (
            "out_of_stock",
            {"sku_id": 20, "available": 1},
        )
    finally:
        stock.stock_memo_clear()


def test_a_memo_entry_is_dropped_at_its_expiry_exactly(monkeypatch):
    from shop.services import stock

    stock.stock_memo_clear()
    clock = [100.0]
    monkeypatch.setattr(stock.time, "monotonic", lambda: clock[0])
    try:
        stock.stock_remember_short(sku_id=7, available=0)
        assert stock._short_memo[7] == (0, 100.0 + stock.SHORT_MEMO_SECONDS)
        clock[0] = 100.0 + stock.SHORT_MEMO_SECONDS  # the very moment it expires
        stock.stock_refuse_known_short(quantities={7: 1})  # no longer refused
        assert 7 not in stock._short_memo
    finally:
        monkeypatch.undo()
        stock.stock_memo_clear()


@pytest.mark.django_db
@pytest.mark.parametrize("quantity", [0, -2])
def test_reserving_nothing_is_a_bug(quantity):
    sku = SkuFactory(stock=5)
    order = Order.objects.create(
        number="T00000003",
        customer=CustomerFactory(),
        delivery_mode=Order.DeliveryMode.COURIER,
        subtotal=0,
        total=0,
        payment_deadline=timezone.now() + timedelta(minutes=15),
    )
    with pytest.raises(ValueError, match=r"^reserved quantities must be positive$"):
        stock_reserve(order=order, lines=[(sku, quantity)], expires_at=timezone.now())
    assert stock_of(sku) == 5


@pytest.mark.django_db
def test_commit_turns_only_active_reservations_into_committed():
    from shop.models import StockReservation
    from shop.services.stock import stock_commit

    sku = SkuFactory(stock=10)
    order = Order.objects.create(
        number="T00000004",
        customer=CustomerFactory(),
        delivery_mode=Order.DeliveryMode.COURIER,
        subtotal=0,
        total=0,
        payment_deadline=timezone.now() + timedelta(minutes=15),
    )
    expires = timezone.now() + timedelta(minutes=15)
    released = StockReservation.objects.create(
        sku=sku, order=order, quantity=1, expires_at=expires, status="released"
    )
    active = StockReservation.objects.create(sku=sku, order=order, quantity=2, expires_at=expires)
    assert stock_commit(order=order) == 1
    assert dict(StockReservation.objects.values_list("pk", "status")) == {
        released.pk: "released",
        active.pk: "committed",
    }
