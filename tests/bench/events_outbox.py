"""events_outbox: what the transactional outbox costs the paying transaction.

Orders marked paid per second through ``shop.services.orders.order_mark_paid`` (32 threads, each
with its own database connection, each paying its own distinct orders), in two alternating phases
of the same run on the same PostgreSQL:

- ``outbox`` (the headline): ``order_paid`` has three registered no-op subscribers, so each payment
  writes one ``OutboxEvent`` row (payload with its lines, the three subscriber names pending) in
  its transaction and, after commit, kicks ``core.tasks.outbox_dispatch`` through the real broker
  (Redis when the runner found one; Celery's eager mode is switched off as in production).
- ``off`` (the baseline): the same path with event recording switched off: ``order_paid`` has no
  subscribers, so nothing is built, written or kicked.

Each phase runs 4 times, alternating which goes first in a round (off, outbox, outbox, off, ...),
and the median is reported; ``overhead`` is
``1 - outbox / off``. Counts are checked exactly: every order paid once, one event per order paid
with the outbox on, none with it off. Afterwards, for information, concurrent sweeps deliver every
recorded event to its three subscribers (``sweep_deliveries_per_s``), checked to run each delivery
exactly once. Everything created is deleted and the kicks left in the broker are purged.
"""

import statistics
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.db import connections
from django.utils import timezone

from tests.bench.threads import errors_of, run_threads

NAME = "events_outbox"
GOAL = (
    "order_mark_paid with the outbox and 3 no-op order_paid subscribers, 32 workers, distinct "
    "orders: at most 20 % slower than with event recording off"
)
WORKERS = 32
SWEEPERS = 4
GOAL_OVERHEAD = 0.20

_delivered: Counter = Counter()
_delivered_lock = threading.Lock()


def _noop(name: str) -> Callable[..., None]:
    def handler(**payload: Any) -> None:
        with _delivered_lock:
            _delivered[(name, payload["order_id"])] += 1

    handler.__qualname__ = f"noop_{name}"
    return handler


SUBSCRIBERS = [_noop(name) for name in ("a", "b", "c")]


class _Fixture:
    """Per worker a customer; per phase and worker ``per_worker`` unpaid courier orders of one
    line, each with a succeeded sandbox payment waiting to be applied."""

    def __init__(self) -> None:
        from core.models import User
        from shop.models import Customer, Product, Sku

        self.tag = f"bench-{uuid.uuid4().hex[:10]}"
        self.product = Product.objects.create(
            title=f"{self.tag} paid", status=Product.Status.ON_SALE
        )
        self.sku = Sku.objects.create(product=self.product, code=self.tag, price=1990, stock=0)
        self.customers = []
        for i in range(WORKERS):
            user = User.objects.create(username=f"{self.tag}-{i}")
            self.customers.append(Customer.objects.create(user=user, openid=f"{self.tag}-{i}"))
        self.phases = 0

    def orders(self, per_worker: int) -> list[list[tuple[int, int]]]:
        """``[(order_id, payment_id), ...]`` per worker, fresh for one phase."""
        from shop.models import Order, OrderLine, Payment

        self.phases += 1
        deadline = timezone.now() + timedelta(hours=1)
        orders = Order.objects.bulk_create(
            Order(
                number=f"{self.tag}-{self.phases}-{i}-{n}"[:32],
                customer=customer,
                delivery_mode=Order.DeliveryMode.COURIER,
                subtotal=1990,
                total=1990,
                payment_deadline=deadline,
            )
            for i, customer in enumerate(self.customers)
            for n in range(per_worker)
        )
        OrderLine.objects.bulk_create(
            OrderLine(
                order=order,
                sku=self.sku,
                product_title=self.product.title,
                sku_code=self.sku.code,
                list_unit_price=1990,
                unit_price=1990,
                quantity=1,
                line_total=1990,
            )
            for order in orders
        )
        payments = Payment.objects.bulk_create(
            Payment(
                order=order,
                provider=Payment.Provider.SANDBOX,
                status=Payment.Status.SUCCEEDED,
                amount=order.total,
                succeeded_at=timezone.now(),
            )
            for order in orders
        )
        pairs = [(o.pk, p.pk) for o, p in zip(orders, payments, strict=True)]
        return [pairs[i * per_worker : (i + 1) * per_worker] for i in range(WORKERS)]

    def cleanup(self, first_event_id: int) -> None:
        from core.models import Notification, OutboxEvent, User
        from shop.models import Customer, Order, OrderLine, Payment, Product, Sku

        OutboxEvent.objects.filter(pk__gte=first_event_id, name="order_paid").delete()
        customer_ids = [c.pk for c in self.customers]
        orders = Order.objects.filter(customer_id__in=customer_ids)
        orders.update(paid_payment=None)
        Payment.objects.filter(order__customer_id__in=customer_ids).delete()
        OrderLine.objects.filter(order__customer_id__in=customer_ids).delete()
        orders.delete()
        Sku.objects.filter(pk=self.sku.pk).delete()
        Product.objects.filter(pk=self.product.pk).delete()
        user_ids = [c.user_id for c in self.customers]
        Customer.objects.filter(pk__in=customer_ids).delete()
        Notification.objects.filter(user_id__in=user_ids).delete()
        User.objects.filter(pk__in=user_ids).delete()


def _pay(batches: list[list[tuple[int, int]]]) -> Callable[[int], int]:
    from shop.services.orders import order_mark_paid

    def work(i: int) -> int:
        paid = 0
        for order_id, payment_id in batches[i]:
            if not order_mark_paid(order_id=order_id, payment_id=payment_id):
                raise AssertionError(f"order {order_id} refused its payment")
            paid += 1
        return paid

    return work


def _phase(fx: _Fixture, per_worker: int, *, outbox_on: bool) -> dict[str, Any]:
    from core import outbox
    from core.models import OutboxEvent
    from shop import events

    batches = fx.orders(per_worker)
    order_ids = [order_id for batch in batches for order_id, _ in batch]
    registered = outbox.subscribers(events.ORDER_PAID)
    for handler in registered.values():
        outbox.unsubscribe(events.ORDER_PAID, handler)
    if outbox_on:
        for handler in SUBSCRIBERS:
            outbox.subscribe(events.ORDER_PAID, handler)
    try:
        seconds, results = run_threads(WORKERS, _pay(batches))
    finally:
        for handler in SUBSCRIBERS:
            outbox.unsubscribe(events.ORDER_PAID, handler)
        for handler in registered.values():
            outbox.subscribe(events.ORDER_PAID, handler)
    paid = sum(r for r in results if isinstance(r, int))
    recorded = OutboxEvent.objects.filter(
        name=events.ORDER_PAID, payload__order_id__in=order_ids
    ).values_list("pending_subscribers", flat=True)
    return {
        "rate": paid / seconds,
        "paid": paid,
        "expected": len(order_ids),
        "events": len(recorded),
        "pending_names": {len(names) for names in recorded},
        "errors": errors_of(results),
    }


def _sweep_all(first_event_id: int) -> dict[str, Any]:
    """Deliver every event recorded by the outbox phases with concurrent sweeps."""
    from core import outbox
    from core.models import OutboxDelivery
    from shop import events

    _delivered.clear()
    for handler in SUBSCRIBERS:
        outbox.subscribe(events.ORDER_PAID, handler)
    try:
        done = 0
        started = time.perf_counter()
        while True:
            _, results = run_threads(SWEEPERS, lambda _: outbox.outbox_sweep())
            if any(isinstance(r, Exception) for r in results):
                return {"rate": 0.0, "done": done, "errors": errors_of(results)}
            done += sum(results)
            if not any(results):
                break
        seconds = time.perf_counter() - started
    finally:
        for handler in SUBSCRIBERS:
            outbox.unsubscribe(events.ORDER_PAID, handler)
    not_done = (
        OutboxDelivery.objects.filter(event_id__gte=first_event_id)
        .exclude(status=OutboxDelivery.Status.DONE)
        .count()
    )
    return {
        "rate": done / seconds,
        "done": done,
        "not_done": not_done,
        "ran_twice": sum(1 for n in _delivered.values() if n != 1),
        "errors": [],
    }


def run(quick: bool = False) -> dict:
    from config.celery import app as celery_app
    from core.models import OutboxEvent

    per_worker = 20 if quick else 100
    rounds = 1 if quick else 4
    last = OutboxEvent.objects.order_by("-pk").values_list("pk", flat=True).first()
    first_event_id = (last or 0) + 1
    eager = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = False  # kicks go through the broker, as in production
    fx = _Fixture()
    try:
        with_outbox, off = [], []
        for r in range(rounds):
            # ABBA: the phase that goes first alternates, so a drift over the run (tables
            # growing, the machine warming) does not always fall on the same phase
            for outbox_on in (False, True) if r % 2 == 0 else (True, False):
                (with_outbox if outbox_on else off).append(
                    _phase(fx, per_worker, outbox_on=outbox_on)
                )
        sweep = _sweep_all(first_event_id)
    finally:
        celery_app.conf.task_always_eager = eager
        try:
            purged = celery_app.control.purge()
        except Exception:  # the broker being gone must not hide the figures
            purged = None
        for alias in connections:
            connections[alias].close()
        fx.cleanup(first_event_id)

    def median(phase: list[dict]) -> float:
        return statistics.median(p["rate"] for p in phase)

    exact = (
        all(p["paid"] == p["expected"] for p in with_outbox + off)
        and all(p["events"] == p["expected"] and p["pending_names"] == {3} for p in with_outbox)
        and all(p["events"] == 0 for p in off)
        and sweep["done"] == 3 * sum(p["events"] for p in with_outbox)
        and sweep.get("not_done") == 0
        and sweep.get("ran_twice") == 0
    )
    errors = [e for p in with_outbox + off for e in p["errors"]] + sweep["errors"]
    outbox_rate, off_rate = median(with_outbox), median(off)
    ratio = outbox_rate / off_rate
    overhead = 1 - ratio
    metrics = {
        "workers": WORKERS,
        "rounds": rounds,
        "orders_per_phase": WORKERS * per_worker,
        "subscribers": len(SUBSCRIBERS),
        "kick": "broker" if celery_app.conf.broker_url.startswith("redis") else "memory broker",
        "off_paid_per_s": round(off_rate, 1),
        "outbox_paid_per_s": round(outbox_rate, 1),
        "overhead": round(overhead, 3),
        "off_rounds_per_s": [round(p["rate"], 1) for p in off],
        "outbox_rounds_per_s": [round(p["rate"], 1) for p in with_outbox],
        "sweepers": SWEEPERS,
        "sweep_deliveries": sweep["done"],
        "sweep_deliveries_per_s": round(sweep["rate"], 1),
        "kicks_purged": purged,
        "exact_counts": exact,
        "errors": errors[:5],
    }
    return {
        "metrics": metrics,
        "ratio": round(ratio, 3),
        "goal": {"overhead_at_most": GOAL_OVERHEAD},
        "ok": overhead <= GOAL_OVERHEAD and exact and not errors,
    }
