"""hot_sku: the last units of one SKU under 32 concurrent buyers, through our service layer vs a
bare conditional UPDATE, on the same PostgreSQL in the same run.

Paths measured (32 threads, each with its own database connection, released together):

- ``raw_reserve``: ``UPDATE shop_sku SET stock = stock - 1 WHERE id = %s AND stock >= 1`` in
  autocommit until it matches no row (the baseline).
- ``service_reserve`` (the headline): ``shop.services.stock.stock_reserve`` of 1 unit (decrement
  AND the reservation row, i.e. all the write work of a checkout on the contended row) for a
  pending order per worker, until it raises ``out_of_stock``.
- ``order_create`` (information only): the whole checkout service ``order_create`` (validation
  reads, order, line, reservation, one transaction) of 1 unit.
- sold out: ``order_create`` of a sold-out SKU vs the raw UPDATE on a sold-out SKU. The service
  refuses from the process-local short-stock memo once a read has seen the SKU sold out; the same
  path with the memo switched off (refused by the plain ORM read, no write transaction) is
  measured too, for information (``sold_out_db_read_*``).

Each reserve phase sells a fixed stock of N units, so overselling is checked exactly: N
successes, stock 0, N reservation rows. Rates are units (or rejections) per second of wall time
from the release of the threads to the last one finishing; each phase runs ``ROUNDS`` times,
alternating raw and service, and the median is reported. Everything created is deleted at the end.
"""

import statistics
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.db import connection, connections
from django.utils import timezone

from tests.bench.threads import errors_of, run_threads

NAME = "hot_sku"
GOAL = (
    "stock_reserve of 1 unit of one hot SKU with 32 workers >= 0.40 x a raw conditional UPDATE, "
    "0 oversold; sold-out rejections through order_create >= 1.0 x the raw UPDATE"
)
WORKERS = 32
GOAL_RESERVE = 0.40
GOAL_SOLD_OUT = 1.0


class _Fixture:
    def __init__(self) -> None:
        from core.models import User
        from shop.models import Address, Customer, Order, Product

        self.tag = f"bench-{uuid.uuid4().hex[:10]}"
        self.product = Product.objects.create(
            title=f"{self.tag} hot", status=Product.Status.ON_SALE
        )
        self.customers, self.addresses, self.orders = [], [], []
        deadline = timezone.now() + timedelta(hours=1)
        for i in range(WORKERS):
            user = User.objects.create(username=f"{self.tag}-{i}")
            customer = Customer.objects.create(user=user, openid=f"{self.tag}-{i}")
            self.customers.append(customer)
            self.addresses.append(
                Address.objects.create(
                    customer=customer,
                    recipient_name="Bench",
                    phone="1",
                    province="P",
                    city="C",
                    detail="D",
                )
            )
            self.orders.append(
                Order.objects.create(
                    number=f"{self.tag}-{i}"[:32],
                    customer=customer,
                    delivery_mode="courier",
                    subtotal=0,
                    total=0,
                    payment_deadline=deadline,
                )
            )
        self.skus: list = []

    def sku(self, stock: int):
        from shop.models import Sku

        sku = Sku.objects.create(
            product=self.product, code=f"{self.tag}-{len(self.skus)}", price=100, stock=stock
        )
        self.skus.append(sku)
        return sku

    def cleanup(self) -> None:
        from core.models import IdempotencyRecord, Notification, User
        from shop.models import Customer, Order, OrderLine, Product, Sku, StockReservation

        customer_ids = [c.pk for c in self.customers]
        StockReservation.objects.filter(sku__product=self.product).delete()
        OrderLine.objects.filter(order__customer_id__in=customer_ids).delete()
        Order.objects.filter(customer_id__in=customer_ids).delete()
        Sku.objects.filter(product=self.product).delete()
        Product.objects.filter(pk=self.product.pk).delete()
        user_ids = [c.user_id for c in self.customers]
        Customer.objects.filter(pk__in=customer_ids).delete()
        Notification.objects.filter(user_id__in=user_ids).delete()
        IdempotencyRecord.objects.filter(user_id__in=user_ids).delete()
        User.objects.filter(pk__in=user_ids).delete()


RAW_SQL = "UPDATE shop_sku SET stock = stock - 1 WHERE id = %s AND stock >= 1"


def _raw_until_sold_out(sku_id: int) -> Callable[[int], int]:
    def work(_: int) -> int:
        won = 0
        with connection.cursor() as cursor:
            while True:
                cursor.execute(RAW_SQL, [sku_id])
                if cursor.rowcount != 1:
                    return won
                won += 1

    return work


def _service_reserve_until_sold_out(fx: _Fixture, sku) -> Callable[[int], int]:
    from core.errors import ApplicationError
    from shop.services.stock import stock_reserve

    expires_at = timezone.now() + timedelta(hours=1)

    def work(i: int) -> int:
        won = 0
        order = fx.orders[i]
        while True:
            try:
                stock_reserve(order=order, lines=[(sku, 1)], expires_at=expires_at)
            except ApplicationError as exc:
                if exc.code != "out_of_stock":
                    raise
                return won
            won += 1

    return work


def _order_create_until_sold_out(fx: _Fixture, sku) -> Callable[[int], int]:
    from core.errors import ApplicationError
    from shop.services.orders import order_create

    def work(i: int) -> int:
        won = 0
        while True:
            try:
                order_create(
                    customer=fx.customers[i],
                    lines=[(sku.pk, 1)],
                    delivery_mode="courier",
                    address_id=fx.addresses[i].pk,
                )
            except ApplicationError as exc:
                if exc.code != "out_of_stock":
                    raise
                return won
            won += 1

    return work


def _raw_sold_out(sku_id: int, attempts: int) -> Callable[[int], int]:
    def work(_: int) -> int:
        refused = 0
        with connection.cursor() as cursor:
            for _ in range(attempts):
                cursor.execute(RAW_SQL, [sku_id])
                refused += cursor.rowcount == 0
        return refused

    return work


def _service_sold_out(fx: _Fixture, sku, attempts: int) -> Callable[[int], int]:
    from core.errors import ApplicationError
    from shop.services.orders import order_create

    def work(i: int) -> int:
        refused = 0
        for _ in range(attempts):
            try:
                order_create(
                    customer=fx.customers[i],
                    lines=[(sku.pk, 1)],
                    delivery_mode="courier",
                    address_id=fx.addresses[i].pk,
                )
            except ApplicationError as exc:
                if exc.code != "out_of_stock":
                    raise
                refused += 1
        return refused

    return work


def _sell_out(fx: _Fixture, stock: int, make_work) -> dict[str, Any]:
    from shop.models import Sku, StockReservation

    sku = fx.sku(stock)
    seconds, results = run_threads(WORKERS, make_work(sku))
    errors = errors_of(results)
    sold = sum(r for r in results if isinstance(r, int))
    final = Sku.objects.get(pk=sku.pk).stock
    reserved = sum(StockReservation.objects.filter(sku=sku).values_list("quantity", flat=True))
    return {
        "rate": sold / seconds,
        "sold": sold,
        "final_stock": final,
        "reserved_units": reserved,
        "errors": errors,
    }


def _reject(fx: _Fixture, attempts: int, make_work) -> dict[str, Any]:
    sku = fx.sku(0)
    seconds, results = run_threads(WORKERS, make_work(sku))
    refused = sum(r for r in results if isinstance(r, int))
    return {"rate": refused / seconds, "refused": refused, "errors": errors_of(results)}


def run(quick: bool = False) -> dict:
    stock = 400 if quick else 3000
    checkout_stock = 200 if quick else 1000
    attempts = 100 if quick else 500
    rounds = 1 if quick else 3

    from shop.services import stock as stock_service

    fx = _Fixture()
    try:
        raw, service, checkout, raw_refusals, service_refusals, db_read_refusals = (
            [],
            [],
            [],
            [],
            [],
            [],
        )
        for _ in range(rounds):
            raw.append(_sell_out(fx, stock, lambda sku: _raw_until_sold_out(sku.pk)))
            service.append(
                _sell_out(fx, stock, lambda sku: _service_reserve_until_sold_out(fx, sku))
            )
            checkout.append(
                _sell_out(fx, checkout_stock, lambda sku: _order_create_until_sold_out(fx, sku))
            )
            raw_refusals.append(_reject(fx, attempts, lambda sku: _raw_sold_out(sku.pk, attempts)))
            service_refusals.append(
                _reject(fx, attempts, lambda sku: _service_sold_out(fx, sku, attempts))
            )
            memo, stock_service.SHORT_MEMO_SECONDS = stock_service.SHORT_MEMO_SECONDS, 0
            try:
                db_read_refusals.append(
                    _reject(fx, attempts, lambda sku: _service_sold_out(fx, sku, attempts))
                )
            finally:
                stock_service.SHORT_MEMO_SECONDS = memo
    finally:
        for alias in connections:
            connections[alias].close()
        fx.cleanup()

    def median(phase: list[dict]) -> float:
        return statistics.median(p["rate"] for p in phase)

    oversold = sum(max(0, p["sold"] - stock) for p in service + raw) + sum(
        max(0, p["sold"] - checkout_stock) for p in checkout
    )
    exact = all(
        p["sold"] == n and p["final_stock"] == 0
        for phase, n in ((raw, stock), (service, stock), (checkout, checkout_stock))
        for p in phase
    ) and all(
        p["reserved_units"] == n
        for phase, n in ((service, stock), (checkout, checkout_stock))
        for p in phase
    )
    errors = [
        e
        for phase in (raw, service, checkout, raw_refusals, service_refusals, db_read_refusals)
        for p in phase
        for e in p["errors"]
    ]
    raw_rate, service_rate, checkout_rate = median(raw), median(service), median(checkout)
    raw_refusal_rate, service_refusal_rate = median(raw_refusals), median(service_refusals)
    ratio = service_rate / raw_rate
    sold_out_ratio = service_refusal_rate / raw_refusal_rate
    ok = (
        ratio >= GOAL_RESERVE
        and sold_out_ratio >= GOAL_SOLD_OUT
        and oversold == 0
        and exact
        and not errors
    )
    metrics = {
        "workers": WORKERS,
        "rounds": rounds,
        "units_per_phase": stock,
        "raw_update_per_s": round(raw_rate, 1),
        "service_reserve_per_s": round(service_rate, 1),
        "service_reserve_ratio": round(ratio, 3),
        "order_create_per_s": round(checkout_rate, 1),
        "order_create_ratio": round(checkout_rate / raw_rate, 3),
        "raw_sold_out_per_s": round(raw_refusal_rate, 1),
        "service_sold_out_per_s": round(service_refusal_rate, 1),
        "sold_out_ratio": round(sold_out_ratio, 3),
        "sold_out_db_read_per_s": round(median(db_read_refusals), 1),
        "sold_out_db_read_ratio": round(median(db_read_refusals) / raw_refusal_rate, 3),
        "oversold": oversold,
        "exact_counts": exact,
        "errors": errors[:5],
    }
    return {
        "metrics": metrics,
        "ratio": round(ratio, 3),
        "goal": {
            "service_reserve_ratio_at_least": GOAL_RESERVE,
            "sold_out_ratio_at_least": GOAL_SOLD_OUT,
            "oversold": 0,
        },
        "ok": ok,
    }
