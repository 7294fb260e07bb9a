"""Flash sales: the service (on PostgreSQL), the HTTP API and the admin."""

from datetime import timedelta

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from core.errors import ApplicationError
from shop.models import FlashItem, FlashQuota, FlashSession, Order, StockReservation
from shop.services import flash
from shop.services.flash import (
    FlashItemSpec,
    flash_item_update,
    flash_session_create,
    flash_session_update,
)
from shop.services.orders import order_cancel, orders_expire_due
from tests.db_snapshot import db_snapshot
from tests.factories import SkuFactory
from tests.shop.factories_flash import buy, flash_item, quota_of, remaining_of, sku_stock
from tests.shop.factories_orders import QuickCustomerFactory, pay, place, quick_pickup_point
from tests.test_openapi_errors import assert_documented

pytestmark = pytest.mark.django_db

API = "/api/v1"
WRITES = ("INSERT", "UPDATE", "DELETE", "SAVEPOINT", "BEGIN")


@pytest.fixture(autouse=True)
def _clean_flash_memo(settings):
    settings.FLASH_LIST_CACHE_SECONDS = 0
    flash.flash_memo_clear()
    yield
    flash.flash_memo_clear()


def code_of(call) -> str:
    with pytest.raises(ApplicationError) as caught:
        call()
    return caught.value.code


def writes(queries) -> list[str]:
    return [q["sql"] for q in queries if q["sql"].lstrip().upper().startswith(WRITES)]


# --- buying ---------------------------------------------------------------------------------------
def test_a_flash_order_takes_flash_stock_at_the_flash_price_with_a_short_deadline():
    item = flash_item(stock=5, cap=2, price=1990, flash_price=990)
    customer = QuickCustomerFactory()
    before = timezone.now()

    order = buy(item, customer, quantity=2)

    assert (order.source, order.source_ref) == (Order.Source.FLASH_SALE, item.session_id)
    line = order.lines.get()
    assert (line.list_unit_price, line.unit_price, line.quantity) == (1990, 990, 2)
    assert (order.subtotal, order.total) == (1980, 1980)
    assert before + timedelta(seconds=300) <= order.payment_deadline
    assert order.payment_deadline <= timezone.now() + timedelta(seconds=300)
    reservation = StockReservation.objects.get(order=order)
    assert (reservation.flash_item_id, reservation.sku_id, reservation.quantity) == (
        item.pk,
        item.sku_id,
        2,
    )
    assert remaining_of(item) == 3
    assert quota_of(item, customer) == 2
    assert sku_stock(item) == 50  # normal stock untouched


def test_the_sessions_payment_ttl_sets_the_deadline():
    item = flash_item(payment_ttl=60)

    order = buy(item)

    assert order.payment_deadline - order.created_at < timedelta(seconds=61)


def test_an_item_of_a_session_not_started_ended_or_unpublished_cannot_be_bought():
    scheduled = flash_item(starts_in=timedelta(minutes=5))
    ended = flash_item(starts_in=timedelta(hours=-2), lasts=timedelta(hours=1))
    hidden = flash_item()
    FlashSession.objects.filter(pk=hidden.session_id).update(is_published=False)

    with pytest.raises(ApplicationError) as not_started:
        buy(scheduled)
    assert not_started.value.code == "flash_not_started"
    assert 290 <= not_started.value.details["starts_in"] <= 300
    assert code_of(lambda: buy(ended)) == "flash_ended"
    assert code_of(lambda: buy(hidden)) == "flash_item_not_found"
    assert Order.objects.count() == 0


def test_more_than_the_cap_in_one_order_is_refused_without_a_write():
    item = flash_item(stock=10, cap=2)
    customer, point = QuickCustomerFactory(), quick_pickup_point()
    before = db_snapshot()

    with pytest.raises(ApplicationError) as caught:
        buy(item, customer, quantity=3, point=point)

    assert caught.value.code == "purchase_limit_exceeded"
    assert caught.value.details == {"item_id": item.pk, "limit": 2, "requested": 3}
    assert db_snapshot() == before


def test_orders_of_one_customer_stay_within_the_cap_and_a_refused_one_leaves_nothing():
    item = flash_item(stock=10, cap=3)
    customer, point = QuickCustomerFactory(), quick_pickup_point()
    buy(item, customer, quantity=2, point=point)

    with pytest.raises(ApplicationError) as caught:
        buy(item, customer, quantity=2, point=point)

    assert caught.value.code == "purchase_limit_exceeded"
    assert caught.value.details["already_bought"] == 2
    assert Order.objects.filter(customer=customer).count() == 1
    assert remaining_of(item) == 8  # the refused order's decrement was rolled back
    assert quota_of(item, customer) == 2
    buy(item, customer, quantity=1, point=point)
    assert quota_of(item, customer) == 3


def test_the_products_own_purchase_limit_applies_too():
    item = flash_item(stock=10, cap=5, purchase_limit=2)
    customer = QuickCustomerFactory()
    buy(item, customer, quantity=2)

    with pytest.raises(ApplicationError) as caught:
        buy(item, customer, quantity=1)

    assert caught.value.code == "purchase_limit_exceeded"
    assert caught.value.details["product_id"] == item.sku.product_id


def test_sold_out_is_refused_without_a_write_and_then_without_a_query():
    item = flash_item(stock=1, cap=1)
    buy(item)
    customer, point = QuickCustomerFactory(), quick_pickup_point()
    before = db_snapshot()

    with CaptureQueriesContext(connection) as first, pytest.raises(ApplicationError) as caught:
        buy(item, customer, point=point)
    with CaptureQueriesContext(connection) as second:
        assert code_of(lambda: buy(item, customer, point=point)) == "out_of_stock"

    assert (caught.value.code, caught.value.details) == (
        "out_of_stock",
        {"item_id": item.pk, "available": 0},
    )
    assert writes(first.captured_queries) == []
    assert len(first.captured_queries) == 1  # the plain read of the item
    assert second.captured_queries == []  # refused from the short-stock memo
    assert db_snapshot() == before


def test_asking_for_more_than_is_left_is_refused_and_less_still_sells():
    item = flash_item(stock=3, cap=5)
    buy(item, quantity=2)

    assert code_of(lambda: buy(item, quantity=2)) == "out_of_stock"
    buy(item, quantity=1)
    assert remaining_of(item) == 0


def test_a_sku_price_dropped_below_the_flash_price_is_charged_instead():
    item = flash_item(price=1990, flash_price=990)
    item.sku.price = 800
    item.sku.save(update_fields=["price"])

    order = buy(item)

    assert order.lines.get().unit_price == 800


# --- release --------------------------------------------------------------------------------------
def test_cancelling_gives_units_back_to_flash_stock_and_quota_not_to_the_sku():
    item = flash_item(stock=2, cap=2)
    customer = QuickCustomerFactory()
    order = buy(item, customer, quantity=2)
    assert code_of(lambda: buy(item)) == "out_of_stock"  # remembered as sold out

    order_cancel(order_id=order.pk, customer=customer)

    assert remaining_of(item) == 2
    assert quota_of(item, customer) == 0
    assert sku_stock(item) == 50
    assert StockReservation.objects.get(order=order).status == StockReservation.Status.RELEASED
    buy(item, customer, quantity=2)  # the memo was forgotten: sells again at once


def test_an_unpaid_flash_order_expires_at_its_deadline_and_its_units_come_back():
    item = flash_item(stock=1, cap=1)
    customer = QuickCustomerFactory()
    order = buy(item, customer)

    with time_machine.travel(timezone.now() + timedelta(seconds=299)):
        assert orders_expire_due() == 0
    with time_machine.travel(timezone.now() + timedelta(seconds=301)):
        assert orders_expire_due() == 1

    order.refresh_from_db()
    assert (order.status, order.cancel_reason) == (Order.Status.CANCELLED, "expired")
    assert remaining_of(item) == 1
    assert quota_of(item, customer) == 0
    assert sku_stock(item) == 50


def test_a_paid_flash_order_keeps_its_units_and_quota():
    item = flash_item(stock=2, cap=1)
    customer = QuickCustomerFactory()
    order = buy(item, customer)

    pay(order)
    with time_machine.travel(timezone.now() + timedelta(seconds=400)):
        orders_expire_due()

    assert remaining_of(item) == 1
    assert quota_of(item, customer) == 1
    assert StockReservation.objects.get(order=order).status == StockReservation.Status.COMMITTED
    assert code_of(lambda: buy(item, customer)) == "purchase_limit_exceeded"


def test_an_items_cap_can_be_changed_and_unknown_items_are_not_found():
    item = flash_item(stock=5, cap=1)

    assert flash_item_update(item_id=item.pk, per_customer_limit=3).per_customer_limit == 3
    assert FlashItem.objects.get(pk=item.pk).per_customer_limit == 3
    assert flash_item_update(item_id=item.pk).per_customer_limit == 3  # None: unchanged
    assert code_of(lambda: flash_item_update(item_id=999_999, total_stock=1)) == (
        "flash_item_not_found"
    )


def test_an_item_of_a_started_session_cannot_be_removed():
    item = flash_item(stock=5)

    with pytest.raises(ApplicationError) as started:
        flash.flash_item_remove(item_id=item.pk)

    assert (started.value.code, started.value.details) == (
        "flash_session_started",
        {"session_id": item.session_id},
    )
    assert FlashItem.objects.filter(pk=item.pk).exists()


def test_flash_refusals_say_what_happened():
    item = flash_item(stock=3, cap=1)
    customer = QuickCustomerFactory()
    buy(item, customer)
    buy(item)

    with pytest.raises(ApplicationError) as held:
        flash_item_update(item_id=item.pk, total_stock=1)
    assert (held.value.message, held.value.details) == (
        "Buyers hold more units than that would leave.",
        {"item_id": item.pk, "held": 2},
    )
    with pytest.raises(ApplicationError) as over:
        buy(item, customer)
    assert over.value.message == "This exceeds the per-customer limit of this flash sale item."
    with pytest.raises(ApplicationError) as missing:
        flash.flash_session_update(session_id=999_999, title="x")
    assert (missing.value.code, missing.value.message) == (
        "flash_session_not_found",
        "Flash sale not found.",
    )


def _two_items_one_customer(cap: int = 2):
    """A customer holding 1 unit of item ``a`` (order ``first``) and 2 of item ``b``."""
    a, b = flash_item(stock=5, cap=cap), flash_item(stock=5, cap=cap)
    customer = QuickCustomerFactory()
    first = buy(a, customer)
    buy(b, customer, quantity=2)
    return a, b, customer, first


def test_releasing_gives_back_only_that_orders_units_of_that_item(caplog):
    a, b, customer, first = _two_items_one_customer()

    order_cancel(order_id=first.pk, customer=customer)

    assert (quota_of(a, customer), quota_of(b, customer)) == (0, 2)
    assert not [r for r in caplog.records if r.levelname == "ERROR"]


def test_release_counts_released_flash_reservations_only(caplog):
    a, _b, customer, first = _two_items_one_customer()
    normal = place(customer)

    flash.flash_release(order=first)  # its reservation is still active: nothing to give back
    assert quota_of(a, customer) == 1
    order_cancel(order_id=normal.pk, customer=customer)  # SKU reservations only
    assert quota_of(a, customer) == 1
    assert not [r for r in caplog.records if r.levelname == "ERROR"]


def test_a_quota_short_of_the_released_units_is_logged_and_left_alone(caplog):
    a, _b, customer, first = _two_items_one_customer()
    FlashQuota.objects.filter(item=a, customer=customer).update(units=0)

    order_cancel(order_id=first.pk, customer=customer)

    assert quota_of(a, customer) == 0
    assert remaining_of(a) == 5  # the units still went back to the item
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert errors == [f"flash quota of item {a.pk} short on releasing order {first.pk}"]


# --- staff helpers --------------------------------------------------------------------------------
def test_a_session_is_created_with_full_stock_and_validated():
    sku = SkuFactory(price=1990)
    now = timezone.now()

    session = flash_session_create(
        title="20:00",
        starts_at=now,
        ends_at=now + timedelta(hours=1),
        items=[FlashItemSpec(sku_id=sku.pk, flash_price=990, total_stock=7)],
    )

    item = session.items.get()
    assert (item.total_stock, item.remaining, item.per_customer_limit) == (7, 7, 1)
    assert session.payment_ttl == 300
    bad = [
        {"ends_at": now},
        {"payment_ttl": 10},
        {"items": [FlashItemSpec(sku_id=sku.pk, flash_price=1990, total_stock=1)]},
        {"items": [FlashItemSpec(sku_id=sku.pk, flash_price=0, total_stock=1)]},
        {"items": [FlashItemSpec(sku_id=sku.pk, flash_price=990, total_stock=0)]},
    ]
    for change in bad:
        fields = {"title": "x", "starts_at": now, "ends_at": now + timedelta(hours=1), **change}
        assert code_of(lambda f=fields: flash_session_create(**f)) == "flash_session_invalid"
    assert FlashSession.objects.count() == 1


def test_a_started_session_keeps_its_start_and_prices_but_stock_can_change():
    item = flash_item(stock=5)
    buy(item)
    session = item.session

    assert code_of(
        lambda: flash_session_update(
            session_id=session.pk, starts_at=session.starts_at + timedelta(minutes=1)
        )
    ) == ("flash_session_started")
    assert code_of(lambda: flash_item_update(item_id=item.pk, flash_price=890)) == (
        "flash_session_started"
    )
    updated = flash_item_update(item_id=item.pk, total_stock=8)
    assert (updated.total_stock, updated.remaining) == (8, 7)
    updated = flash_item_update(item_id=item.pk, total_stock=1)
    assert (updated.total_stock, updated.remaining) == (1, 0)
    assert code_of(lambda: flash_item_update(item_id=item.pk, total_stock=0)) == (
        "flash_session_invalid"
    )
    later = session.ends_at + timedelta(hours=1)
    flash_session_update(session_id=session.pk, ends_at=later)
    assert FlashSession.objects.get(pk=session.pk).ends_at == later


def test_stock_never_drops_below_what_buyers_hold():
    item = flash_item(stock=5, cap=5)
    buy(item, quantity=3)
    FlashItem.objects.filter(pk=item.pk).update(total_stock=5, remaining=2)

    with pytest.raises(ApplicationError) as caught:
        # 3 held: a total of 2 would leave -1
        flash_item_update(item_id=item.pk, total_stock=2)

    assert caught.value.code == "stock_would_go_negative"
    assert remaining_of(item) == 2


# --- HTTP API -------------------------------------------------------------------------------------
def test_the_session_list_is_public_with_prices_stock_limits_and_countdown(anon):
    live = flash_item(stock=4, cap=2, price=1990, flash_price=990)
    soon = flash_item(starts_in=timedelta(seconds=90))
    flash_item(starts_in=timedelta(hours=-3), lasts=timedelta(hours=1))  # ended: not listed

    response = anon.get(f"{API}/flash/sessions")

    assert response.status_code == 200
    body = response.json()
    assert [s["id"] for s in body] == [live.session_id, soon.session_id]
    first, second = body
    assert (first["status"], first["starts_in"], first["topic"]) == (
        "live",
        0,
        f"flash:{live.session_id}",
    )
    assert (second["status"], 85 <= second["starts_in"] <= 90) == ("scheduled", True)
    [row] = first["items"]
    assert {
        k: row[k]
        for k in (
            "id",
            "flash_price",
            "list_price",
            "remaining",
            "sold_out",
            "per_customer_limit",
        )
    } == {
        "id": live.pk,
        "flash_price": 990,
        "list_price": 1990,
        "remaining": 4,
        "sold_out": False,
        "per_customer_limit": 2,
    }


def test_a_session_snapshot_names_its_topic_seq(anon):
    item = flash_item(stock=1)
    buy(item)  # sells out: pushes flash_sold_out (seq 1) after commit

    body = anon.get(f"{API}/flash/sessions/{item.session_id}").json()

    assert body["seq"] == 0  # nothing was committed in this test's transaction
    assert body["items"][0]["sold_out"] is True
    missing = anon.get(f"{API}/flash/sessions/{item.session_id + 1000}")
    assert_documented(
        missing, "get", "/flash/sessions/{session_id}", 404, "flash_session_not_found"
    )


def _order_body(item, point, **extra):
    return {
        "item_id": item.pk,
        "quantity": 1,
        "delivery_mode": "pickup",
        "pickup_point_id": point.pk,
        **extra,
    }


def test_a_shopper_places_a_flash_order(shopper, customer):
    item = flash_item(stock=3)

    response = shopper.post(f"{API}/flash/orders", json=_order_body(item, quick_pickup_point()))

    assert response.status_code == 201, response.json()
    body = response.json()
    assert (body["source"], body["source_ref"], body["total"]) == (
        "flash_sale",
        item.session_id,
        990,
    )
    assert quota_of(item, customer) == 1


def test_a_flash_order_needs_a_login_and_strict_integers(anon, shopper):
    item = flash_item(stock=3)
    point = quick_pickup_point()

    assert anon.post(f"{API}/flash/orders", json=_order_body(item, point)).status_code == 401
    for bad in ({"quantity": "1"}, {"quantity": 1.0}, {"item_id": str(item.pk)}, {"quantity": 0}):
        response = shopper.post(f"{API}/flash/orders", json=_order_body(item, point, **bad))
        assert response.status_code == 422, bad
    assert Order.objects.count() == 0


def test_a_retried_flash_order_with_the_same_key_is_one_order(shopper):
    item = flash_item(stock=3, cap=3)
    body = _order_body(item, quick_pickup_point())
    headers = {"Idempotency-Key": "flash-1"}

    first = shopper.post(f"{API}/flash/orders", json=body, headers=headers)
    again = shopper.post(f"{API}/flash/orders", json=body, headers=headers)

    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert Order.objects.count() == 1
    assert remaining_of(item) == 2


@pytest.mark.parametrize(
    ("setup", "status", "code"),
    [
        (lambda: flash_item(stock=5, cap=1), 409, "purchase_limit_exceeded"),
        (lambda: flash_item(starts_in=timedelta(minutes=5)), 409, "flash_not_started"),
        (lambda: flash_item(starts_in=timedelta(hours=-2)), 409, "flash_ended"),
    ],
)
def test_flash_order_errors_are_documented(shopper, setup, status, code):
    item = setup()
    quantity = 2 if code == "purchase_limit_exceeded" else 1

    response = shopper.post(
        f"{API}/flash/orders", json=_order_body(item, quick_pickup_point(), quantity=quantity)
    )

    assert_documented(response, "post", "/flash/orders", status, code)


def test_sold_out_and_unknown_items_are_documented(shopper):
    item = flash_item(stock=1)
    buy(item)
    point = quick_pickup_point()

    sold_out = shopper.post(f"{API}/flash/orders", json=_order_body(item, point))
    unknown = shopper.post(
        f"{API}/flash/orders", json={**_order_body(item, point), "item_id": item.pk + 1000}
    )

    assert_documented(sold_out, "post", "/flash/orders", 409, "out_of_stock")
    assert_documented(unknown, "post", "/flash/orders", 404, "flash_item_not_found")


# --- admin ----------------------------------------------------------------------------------------
def test_an_operator_creates_a_session_with_items_in_yuan(client, staff):
    client.force_login(staff)
    sku = SkuFactory(price=1990)
    start = timezone.localtime() + timedelta(hours=1)  # the admin reads local time
    form = {
        "title": "14:00",
        "starts_at_0": start.strftime("%Y-%m-%d"),
        "starts_at_1": start.strftime("%H:%M:%S"),
        "ends_at_0": (start + timedelta(hours=1)).strftime("%Y-%m-%d"),
        "ends_at_1": (start + timedelta(hours=1)).strftime("%H:%M:%S"),
        "payment_ttl": "300",
        "is_published": "on",
        "items-TOTAL_FORMS": "1",
        "items-INITIAL_FORMS": "0",
        "items-0-sku": str(sku.pk),
        "items-0-flash_price": "9.90",
        "items-0-total_stock": "100",
        "items-0-per_customer_limit": "2",
        "items-0-sort_order": "0",
    }

    response = client.post(reverse("admin:shop_flashsession_add"), form)

    assert response.status_code == 302, response.content.decode()[:3000]
    item = FlashItem.objects.get()
    assert (item.flash_price, item.total_stock, item.remaining, item.per_customer_limit) == (
        990,
        100,
        100,
        2,
    )
    assert item.session.title == "14:00"
    listing = client.get(reverse("admin:shop_flashsession_changelist"))
    assert listing.status_code == 200
    assert (
        client.get(reverse("admin:shop_flashsession_change", args=[item.session_id])).status_code
        == 200
    )
    assert client.get(reverse("admin:shop_flashitem_changelist")).status_code == 200


def test_the_admin_refuses_a_flash_price_not_below_the_sku_price(client, staff):
    client.force_login(staff)
    sku = SkuFactory(price=1990)
    start = timezone.localtime() + timedelta(hours=1)  # the admin reads local time
    form = {
        "title": "14:00",
        "starts_at_0": start.strftime("%Y-%m-%d"),
        "starts_at_1": start.strftime("%H:%M:%S"),
        "ends_at_0": (start + timedelta(hours=1)).strftime("%Y-%m-%d"),
        "ends_at_1": (start + timedelta(hours=1)).strftime("%H:%M:%S"),
        "payment_ttl": "300",
        "items-TOTAL_FORMS": "1",
        "items-INITIAL_FORMS": "0",
        "items-0-sku": str(sku.pk),
        "items-0-flash_price": "19.90",
        "items-0-total_stock": "100",
        "items-0-per_customer_limit": "1",
        "items-0-sort_order": "0",
    }

    response = client.post(reverse("admin:shop_flashsession_add"), form)

    assert response.status_code == 200  # the form again, with the error
    assert "below the SKU" in response.content.decode()
    assert FlashSession.objects.count() == 0
    assert FlashQuota.objects.count() == 0


def test_the_reservation_is_one_statement_and_the_last_of_the_checkout():
    item = flash_item(stock=5)
    customer, point = QuickCustomerFactory(), quick_pickup_point()

    with CaptureQueriesContext(connection) as checkout:
        buy(item, customer, point=point)

    statements = [
        q["sql"]
        for q in checkout.captured_queries
        if not q["sql"].startswith(("SAVEPOINT", "RELEASE SAVEPOINT"))
    ]
    touching_item = [s for s in statements if "shop_flashitem" in s and "UPDATE" in s]
    assert len(touching_item) == 1
    assert statements[-1] == touching_item[0]  # the hot row is locked last, until the commit
    assert "INSERT INTO shop_flashquota" in touching_item[0]
    assert "INSERT INTO shop_stockreservation" in touching_item[0]
