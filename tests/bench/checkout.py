"""checkout: the whole ``order_create`` for 1 unit of one hot SKU with a coupon, 32 workers, vs a
hand-written SQL transaction doing the same writes with the hot-row UPDATE last, same run.

Paths (32 threads, each with its own database connection, each worker its own customer, address
and coupons; one SKU every worker buys):

- ``order_create`` (the headline): ``shop.services.orders.order_create`` of 1 unit, courier to the
  worker's address, with one of the worker's fixed-amount coupons (``coupon_ids``): validation
  reads, pricing with the coupon, the order, its line, its timeline row, the coupon lock and the
  stock reservation, in one transaction.
- ``raw_sql``: one transaction of hand-written statements doing the same writes: INSERT the
  order, the line and the timeline row, the conditional UPDATE of the coupon, then the stock
  UPDATE + reservation INSERT as one statement, last (so the hot row is locked for one round trip
  plus the commit).

Each phase places ``PER_WORKER`` orders per worker; each runs ``ROUNDS`` times, alternating, and
the median rate is reported. Counts are checked exactly (every order placed, stock down by the
orders, one reservation and one locked coupon per order). Where the time goes is measured on
one thread: queries per ``order_create`` and the split of its wall time into time inside the
database driver (``execute``) and the rest (Python).
"""

import statistics
import time
import uuid
from datetime import timedelta
from typing import Any

from django.db import connection, connections, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from tests.bench.threads import errors_of, run_threads

NAME = "checkout"
GOAL = (
    "order_create of 1 unit of a hot SKU with a coupon, 32 workers, >= 0.30 x a hand-written SQL "
    "transaction doing the same writes with the hot-row UPDATE last"
)
WORKERS = 32
GOAL_RATIO = 0.30
DISCOUNT = 100


class _Fixture:
    def __init__(self, per_worker: int, rounds: int) -> None:
        from core.models import User
        from shop.models import Address, CouponTemplate, Customer, CustomerCoupon, Product, Sku

        self.tag = f"bench-{uuid.uuid4().hex[:10]}"
        self.product = Product.objects.create(
            title=f"{self.tag} hot", status=Product.Status.ON_SALE
        )
        self.sku = Sku.objects.create(product=self.product, code=self.tag, price=1990, stock=10**8)
        self.template = CouponTemplate.objects.create(
            name=f"{self.tag} 1 yuan off",
            kind=CouponTemplate.Kind.FIXED,
            amount=DISCOUNT,
            channel=CouponTemplate.Channel.ISSUED,
            status=CouponTemplate.Status.ACTIVE,
            per_customer_limit=10**6,
        )
        now = timezone.now()
        self.customers, self.addresses, self.coupons = [], [], []
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
            # both paths, every round, and the one-thread profile use up coupons
            wanted = 2 * rounds * per_worker + 20
            made = CustomerCoupon.objects.bulk_create(
                CustomerCoupon(
                    template=self.template,
                    customer=customer,
                    source=CustomerCoupon.Source.ISSUE,
                    valid_from=now - timedelta(days=1),
                    valid_until=now + timedelta(days=30),
                )
                for _ in range(wanted)
            )
            self.coupons.append([c.pk for c in made])

    def next_coupon(self, i: int) -> int:
        return self.coupons[i].pop()

    def cleanup(self) -> None:
        from core.models import Notification, User
        from shop.models import (
            CouponTemplate,
            Customer,
            CustomerCoupon,
            Order,
            OrderEvent,
            OrderLine,
            Product,
            Sku,
            StockReservation,
        )

        customer_ids = [c.pk for c in self.customers]
        CustomerCoupon.objects.filter(template=self.template).delete()
        StockReservation.objects.filter(sku=self.sku).delete()
        OrderEvent.objects.filter(order__customer_id__in=customer_ids).delete()
        OrderLine.objects.filter(order__customer_id__in=customer_ids).delete()
        Order.objects.filter(customer_id__in=customer_ids).delete()
        CouponTemplate.objects.filter(pk=self.template.pk).delete()
        Sku.objects.filter(pk=self.sku.pk).delete()
        Product.objects.filter(pk=self.product.pk).delete()
        user_ids = [c.user_id for c in self.customers]
        Customer.objects.filter(pk__in=customer_ids).delete()
        Notification.objects.filter(user_id__in=user_ids).delete()
        User.objects.filter(pk__in=user_ids).delete()


def _place(fx: _Fixture, i: int):
    from shop.services.orders import order_create

    return order_create(
        customer=fx.customers[i],
        lines=[(fx.sku.pk, 1)],
        delivery_mode="courier",
        address_id=fx.addresses[i].pk,
        coupon_ids=[fx.next_coupon(i)],
    )


def _service(fx: _Fixture, per_worker: int):
    def work(i: int) -> int:
        for _ in range(per_worker):
            _place(fx, i)
        return per_worker

    return work


_ORDER_SQL = """
INSERT INTO shop_order (number, customer_id, source, fulfilment_held, status, delivery_mode,
    shipping_address, currency, subtotal, discount, shipping_fee, total, refunded_amount,
    coupon_code, note, cancel_reason, created_at, payment_deadline)
VALUES (%(number)s, %(customer_id)s, 'normal', false, 'pending_payment', 'courier',
    %(address)s, 'CNY', 1990, %(discount)s, 0, %(total)s, 0, '', '', '', %(now)s, %(deadline)s)
RETURNING id
"""
_LINE_SQL = """
INSERT INTO shop_orderline (order_id, sku_id, product_title, sku_code, sku_attributes,
    list_unit_price, unit_price, quantity, discount, line_total, refunded_quantity,
    refunded_amount)
VALUES (%(order_id)s, %(sku_id)s, 'hot', 'hot', '{}', 1990, 1990, 1, %(discount)s, %(total)s,
    0, 0)
"""
_EVENT_SQL = """
INSERT INTO shop_orderevent (order_id, kind, actor_id, actor_kind, from_status, to_status, reason,
    created_at)
VALUES (%(order_id)s, 'placed', %(user_id)s, 'customer', '', 'pending_payment', '', %(now)s)
"""
_COUPON_SQL = """
UPDATE shop_customercoupon SET status = 'locked', order_id = %(order_id)s, locked_at = %(now)s,
    discount = %(discount)s
WHERE id = %(coupon_id)s AND customer_id = %(customer_id)s AND status = 'available'
"""
_RESERVE_SQL = """
WITH s AS (
    UPDATE shop_sku SET stock = stock - 1 WHERE id = %(sku_id)s AND stock >= 1 RETURNING id
)
INSERT INTO shop_stockreservation (sku_id, order_id, quantity, status, expires_at, created_at)
SELECT s.id, %(order_id)s, 1, 'active', %(deadline)s, %(now)s FROM s
"""


def _raw(fx: _Fixture, per_worker: int):
    def work(i: int) -> int:
        customer = fx.customers[i]
        placed = 0
        for n in range(per_worker):
            now = timezone.now()
            params: dict[str, Any] = {
                "number": f"{fx.tag}{i:02d}{n:06d}{uuid.uuid4().hex[:6]}"[:32],
                "customer_id": customer.pk,
                "user_id": customer.user_id,
                "address": '{"city": "C"}',
                "discount": DISCOUNT,
                "total": 1990 - DISCOUNT,
                "now": now,
                "deadline": now + timedelta(minutes=15),
                "sku_id": fx.sku.pk,
                "coupon_id": fx.next_coupon(i),
            }
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute(_ORDER_SQL, params)
                params["order_id"] = cursor.fetchone()[0]
                cursor.execute(_LINE_SQL, params)
                cursor.execute(_EVENT_SQL, params)
                cursor.execute(_COUPON_SQL, params)
                if cursor.rowcount != 1:
                    raise AssertionError("coupon not locked")
                cursor.execute(_RESERVE_SQL, params)
                if cursor.rowcount != 1:
                    raise AssertionError("stock not reserved")
            placed += 1
        return placed

    return work


def _phase(fx: _Fixture, make_work, per_worker: int) -> dict[str, Any]:
    from shop.models import CustomerCoupon, Order, Sku, StockReservation

    before = (
        Order.objects.filter(customer__in=fx.customers).count(),
        Sku.objects.get(pk=fx.sku.pk).stock,
        StockReservation.objects.filter(sku=fx.sku).count(),
        CustomerCoupon.objects.filter(template=fx.template, status="locked").count(),
    )
    seconds, results = run_threads(WORKERS, make_work(fx, per_worker))
    placed = sum(r for r in results if isinstance(r, int))
    after = (
        Order.objects.filter(customer__in=fx.customers).count(),
        Sku.objects.get(pk=fx.sku.pk).stock,
        StockReservation.objects.filter(sku=fx.sku).count(),
        CustomerCoupon.objects.filter(template=fx.template, status="locked").count(),
    )
    exact = (
        placed == WORKERS * per_worker
        and after[0] - before[0] == placed
        and before[1] - after[1] == placed
        and after[2] - before[2] == placed
        and after[3] - before[3] == placed
    )
    return {
        "rate": placed / seconds,
        "placed": placed,
        "exact": exact,
        "errors": errors_of(results),
    }


def _where_the_time_goes(fx: _Fixture, samples: int) -> dict[str, Any]:
    """One thread, no contention: queries per order_create and its wall time split into time in
    the database driver and the rest."""
    in_db = 0.0

    def timed(execute, sql, params, many, context):
        nonlocal in_db
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            in_db += time.perf_counter() - started

    _place(fx, 0)  # warm caches and the connection
    with CaptureQueriesContext(connection) as captured:
        _place(fx, 0)
    queries = [q["sql"].split()[0].upper() for q in captured.captured_queries]
    started = time.perf_counter()
    with connection.execute_wrapper(timed):
        for _ in range(samples):
            _place(fx, 0)
    wall = time.perf_counter() - started
    return {
        "queries_per_order": len(queries),
        "statements": {kind: queries.count(kind) for kind in sorted(set(queries))},
        "one_thread_ms_per_order": round(wall / samples * 1000, 2),
        "one_thread_db_ms": round(in_db / samples * 1000, 2),
        "one_thread_python_ms": round((wall - in_db) / samples * 1000, 2),
    }


def run(quick: bool = False) -> dict:
    per_worker = 10 if quick else 40
    rounds = 1 if quick else 3
    fx = _Fixture(per_worker, rounds)
    try:
        profile = _where_the_time_goes(fx, 5 if quick else 15)
        service, raw = [], []
        for _ in range(rounds):
            raw.append(_phase(fx, _raw, per_worker))
            service.append(_phase(fx, _service, per_worker))
    finally:
        for alias in connections:
            connections[alias].close()
        fx.cleanup()

    def median(phase: list[dict]) -> float:
        return statistics.median(p["rate"] for p in phase)

    ratio = median(service) / median(raw)
    errors = [e for p in service + raw for e in p["errors"]]
    exact = all(p["exact"] for p in service + raw)
    metrics = {
        "workers": WORKERS,
        "rounds": rounds,
        "orders_per_phase": WORKERS * per_worker,
        "raw_sql_orders_per_s": round(median(raw), 1),
        "order_create_orders_per_s": round(median(service), 1),
        "raw_rounds_per_s": [round(p["rate"], 1) for p in raw],
        "order_create_rounds_per_s": [round(p["rate"], 1) for p in service],
        **profile,
        "exact_counts": exact,
        "errors": errors[:5],
    }
    return {
        "metrics": metrics,
        "ratio": round(ratio, 3),
        "goal": {"ratio_at_least": GOAL_RATIO},
        "ok": ratio >= GOAL_RATIO and exact and not errors,
    }
