"""Row locks: every ``select_for_update`` lives in a lock module, and each helper really locks what
it says (checked from a second connection on real PostgreSQL), in pk order."""

import re
import threading
from pathlib import Path

import pytest
from django.db import OperationalError, connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from core import locks as core_locks
from core.models import Announcement, AuthSession, RefreshToken
from core.tokens import _hash, session_start
from shop import locks
from shop.models import (
    Community,
    Customer,
    Order,
    Payment,
    PickupPoint,
    Product,
    Refund,
    Sku,
    StockReservation,
)
from tests.factories import PickupPointFactory, ProductFactory, SkuFactory, UserFactory
from tests.shop.factories_payments import PaymentFactory, payable_order

ROOT = Path(__file__).resolve().parents[2]


def first_party_packages() -> list[Path]:
    return sorted(
        p.parent for p in ROOT.glob("*/__init__.py") if p.parent.name not in ("tests", ".venv")
    )


# --- the rule --------------------------------------------------------------------------------
def test_select_for_update_is_only_written_in_lock_modules():
    # given: the project's own packages (core, shop, and every app added later)
    packages = first_party_packages()
    assert {"core", "shop", "config"} <= {p.name for p in packages}
    offenders = []
    # when: their source is searched
    for package in packages:
        for path in sorted(package.rglob("*.py")):
            if path.relative_to(package).as_posix() == "locks.py":
                continue
            for number, line in enumerate(path.read_text().splitlines(), start=1):
                if "select_for_update" in line:
                    offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    # then: nothing outside <app>/locks.py takes a row lock by itself
    assert offenders == [], (
        "Row locks go through the app's locks.py (shop/locks.py documents the lock order):\n"
        + "\n".join(offenders)
    )


def test_the_lock_order_is_written_down_where_the_locks_are():
    doc = locks.__doc__
    steps = [
        "groupbuy rows",
        "-> payment or refund",
        "-> order",
        "-> customer",
        "-> stock reservations",
        "-> SKU and flash stock",
        "-> wallet accounts",
    ]
    positions = [doc.index(step) for step in steps]
    assert positions == sorted(positions)
    assert "payment -> order" in doc and "refund -> order" in doc


# --- pk order --------------------------------------------------------------------------------
@pytest.mark.django_db
def test_skus_are_locked_in_pk_order_whatever_order_they_are_asked_in():
    a, b, c = SkuFactory(), SkuFactory(), SkuFactory()

    with transaction.atomic(), CaptureQueriesContext(connection) as queries:
        locked = locks.lock_skus([c.pk, a.pk, b.pk, a.pk])

    assert [sku.pk for sku in locked] == [a.pk, b.pk, c.pk]
    (sql,) = [q["sql"] for q in queries.captured_queries if "FOR UPDATE" in q["sql"]]
    assert re.search(r'ORDER BY "shop_sku"\."id" ASC FOR UPDATE OF "shop_sku"$', sql), sql


@pytest.mark.django_db
def test_reservations_are_locked_in_sku_then_pk_order():
    order = payable_order()
    first = StockReservation.objects.get(order=order)
    low_sku = SkuFactory()
    assert low_sku.pk > first.sku_id
    second = StockReservation.objects.create(
        sku=low_sku, order=order, quantity=1, expires_at=order.payment_deadline
    )
    third = StockReservation.objects.create(
        sku_id=first.sku_id, order=order, quantity=3, expires_at=order.payment_deadline
    )
    StockReservation.objects.create(
        sku=low_sku,
        order=order,
        quantity=5,
        expires_at=order.payment_deadline,
        status=StockReservation.Status.RELEASED,
    )

    with transaction.atomic(), CaptureQueriesContext(connection) as queries:
        held = locks.lock_active_reservations(order_id=order.pk)

    assert held == [
        (first.pk, first.sku_id, 2, None),
        (third.pk, first.sku_id, 3, None),
        (second.pk, low_sku.pk, 1, None),
    ]
    (sql,) = [q["sql"] for q in queries.captured_queries if "FOR UPDATE" in q["sql"]]
    assert sql.endswith("ORDER BY 2 ASC, 1 ASC FOR UPDATE"), sql  # (sku_id, id)


@pytest.mark.django_db
def test_a_missing_row_is_none():
    with transaction.atomic():
        assert locks.lock_order(10**9) is None
        assert locks.lock_refund(10**9) is None
        assert locks.lock_community(10**9) is None
        assert locks.lock_pickup_point(10**9) is None
        assert locks.lock_product(10**9) is None
        assert locks.lock_customer(10**9) is False
        assert locks.lock_skus([10**9]) == []
        assert core_locks.lock_refresh_token(token_hash="nope") is None
        assert core_locks.lock_due_announcement(pk=10**9, now=timezone.now()) is None


@pytest.mark.django_db
def test_a_missing_payment_is_an_error():
    with transaction.atomic(), pytest.raises(Payment.DoesNotExist):
        locks.lock_payment(10**9)


@pytest.mark.django_db
def test_an_order_of_another_customer_is_none():
    order = payable_order()
    stranger = Customer.objects.create(user=UserFactory(), openid="stranger")

    with transaction.atomic():
        assert locks.lock_order(order.pk, customer=stranger) is None
        assert locks.lock_order(order.pk, customer=order.customer) == order


# --- each helper locks (seen from another connection) ------------------------------------------
def from_another_connection(work):
    """Run ``work()`` in a transaction on a second connection; its result or its exception."""
    outcome: list = []

    def run() -> None:
        try:
            with transaction.atomic():
                with connection.cursor() as cursor:  # a lock that is never released: fail, not hang
                    cursor.execute("SET LOCAL lock_timeout = '3s'")
                outcome.append(work())
        except Exception as exc:  # handed back to the test
            outcome.append(exc)
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    return outcome[0]


def is_locked(model, pk) -> bool:
    result = from_another_connection(
        lambda: list(model.objects.select_for_update(nowait=True).filter(pk=pk))
    )
    if isinstance(result, OperationalError):
        return True
    assert result, f"{model.__name__} {pk} is not visible to the other connection"
    return False


def make_rows():
    order = payable_order()
    payment = PaymentFactory(order=order)
    refund = Refund.objects.create(order=order, payment=payment, amount=1)
    point = PickupPointFactory()
    return {
        "order": order,
        "payment": payment,
        "refund": refund,
        "community": point.community,
        "pickup_point": point,
        "product": ProductFactory(),
        "customer": order.customer,
        "reservation": StockReservation.objects.get(order=order),
    }


LOCKS = [
    ("order", Order, lambda row: locks.lock_order(row.pk)),
    ("payment", Payment, lambda row: locks.lock_payment(row.pk)),
    ("refund", Refund, lambda row: locks.lock_refund(row.pk)),
    ("community", Community, lambda row: locks.lock_community(row.pk)),
    ("pickup_point", PickupPoint, lambda row: locks.lock_pickup_point(row.pk)),
    ("product", Product, lambda row: locks.lock_product(row.pk)),
    ("customer", Customer, lambda row: locks.lock_customer(row.pk)),
    (
        "reservation",
        StockReservation,
        lambda row: locks.lock_active_reservations(order_id=row.order_id),
    ),
]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(("name", "model", "take"), LOCKS, ids=[name for name, *_ in LOCKS])
def test_each_helper_holds_its_row_until_commit(name, model, take):
    row = make_rows()[name]
    assert not is_locked(model, row.pk)

    with transaction.atomic():
        assert take(row)
        assert is_locked(model, row.pk)

    assert not is_locked(model, row.pk)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_an_order_lock_leaves_its_customer_unlocked():
    order = payable_order()

    with transaction.atomic():
        locked = locks.lock_order(order.pk)
        assert locked.customer == order.customer  # read with the order...
        assert is_locked(Order, order.pk)
        assert not is_locked(Customer, order.customer_id)  # ...but not locked


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_skus_stay_locked_until_commit():
    a, b = SkuFactory(), SkuFactory()

    with transaction.atomic():
        locks.lock_skus([b.pk, a.pk])
        assert is_locked(Sku, a.pk) and is_locked(Sku, b.pk)

    assert not is_locked(Sku, a.pk)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_sweep_skips_orders_another_worker_holds():
    held, free = payable_order(), payable_order()
    sweep = Order.objects.filter(pk__in=[held.pk, free.pk]).order_by("pk")

    with transaction.atomic():
        locks.lock_order(held.pk)
        swept = from_another_connection(
            lambda: [o.pk for o in locks.lock_orders_skip_locked(sweep)]
        )

    assert swept == [free.pk]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_refresh_token_is_locked_with_its_session():
    pair = session_start(user=UserFactory())
    token = RefreshToken.objects.get(token_hash=_hash(pair.refresh_token))

    with transaction.atomic():
        assert core_locks.lock_refresh_token(token_hash=token.token_hash) == token
        assert is_locked(RefreshToken, token.pk)
        assert is_locked(AuthSession, token.session_id)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_due_announcement_held_by_one_worker_is_skipped_by_another():
    now = timezone.now()
    announcement = Announcement.objects.create(title="Hi", body="", send_at=now)

    with transaction.atomic():
        assert core_locks.lock_due_announcement(pk=announcement.pk, now=now) == announcement
        other = from_another_connection(
            lambda: core_locks.lock_due_announcement(pk=announcement.pk, now=now)
        )

    assert other is None
    assert is_locked(Announcement, announcement.pk) is False
