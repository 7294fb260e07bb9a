"""attribution: what an order's attribution costs, for a distributor with 10 vs 100,000
descendants.

Two trees in the same database, each ``root -> r1 -> r2 -> X`` (3 levels above X), X with 10
descendants in one (``small``) and 100,000 in the other (``large``), in two levels below X (a
few hundred direct downlines, the rest under them). Users and customers are bulk-created; the
descendant distributors and their closure-table rows are inserted with set-based SQL. For each
tree, ``ORDERS`` buyers each clicked X's link a day ago and have one paid order (real Order and
OrderLine rows); their ``order_paid`` payloads are built beforehand with the shop's own payload
builder. Then ``referral.services.attribution.order_attribute(order_paid=...)`` is called
directly, one order at a time, alternating the trees in rounds (small, large, large, small, ...)
so a drift over the run falls on both.

Reported: the queries of every attribution (``CaptureQueriesContext``: the transaction's BEGIN
and COMMIT, the fraud signals and the event insert included), which must be the same for both
trees and at most 12; the median time per attribution of each tree; ``ratio`` = time large /
time small (closure table lookups are index scans: it should stay near 1). Every attribution is
checked: X at level 1, r2 at level 2, ancestry ``[r2, r1, root]``. Everything created is
deleted at the end and the outbox kicks left in the broker are purged.
"""

import statistics
import time
import uuid
from datetime import timedelta
from typing import Any

from django.db import connection, connections, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

NAME = "attribution"
GOAL = (
    "order_attribute for a distributor with 10 vs 100,000 descendants (3 levels above): the same "
    "number of queries per attribution, at most 12; time ratio large / small reported"
)
SMALL = 10
LARGE = 100_000
QUICK_LARGE = 5_000
FAN_OUT = 300  # direct downlines of X in the large tree (the rest hang under them)
ORDERS = 200
QUICK_ORDERS = 40
ROUNDS = 4
MAX_QUERIES = 12
BATCH = 10_000

_DESCENDANTS_SQL = """
INSERT INTO referral_distributor (display_name, kind, channels, status, onboarding, depth,
    application_note, decision_reason, created_at, joined_at, customer_id, upline_id)
SELECT 'bench downline', 'koc', '[]'::jsonb, 'active', 'appointed', %(depth)s, '', '', now(),
       now(), c.customer_id, u.id
FROM (SELECT customer_id, (row_number() OVER (ORDER BY customer_id) - 1) %% %(uplines)s AS n
      FROM unnest(%(customers)s::bigint[]) AS customer_id) c
JOIN (SELECT id, row_number() OVER (ORDER BY id) - 1 AS n
      FROM unnest(%(upline_ids)s::bigint[]) AS id) u USING (n)
RETURNING id
"""

_CLOSURE_SQL = """
INSERT INTO referral_distributorancestry (ancestor_id, descendant_id, depth)
SELECT d.upline_id, d.id, 1 FROM referral_distributor d WHERE d.id = ANY(%(ids)s)
UNION ALL
SELECT a.ancestor_id, d.id, a.depth + 1
FROM referral_distributor d JOIN referral_distributorancestry a ON a.descendant_id = d.upline_id
WHERE d.id = ANY(%(ids)s)
"""


def _customers(tag: str, count: int) -> list[int]:
    from core.models import User
    from shop.models import Customer

    ids: list[int] = []
    for start in range(0, count, BATCH):
        users = User.objects.bulk_create(
            User(username=f"{tag}-{i}", password="!")
            for i in range(start, min(count, start + BATCH))
        )
        customers = Customer.objects.bulk_create(
            Customer(user=user, openid=user.username) for user in users
        )
        ids.extend(c.pk for c in customers)
    return ids


class _Tree:
    """``root -> r1 -> r2 -> X``, ``descendants`` below X, ``orders`` paid orders whose buyers
    clicked X's link."""

    def __init__(self, label: str, descendants: int, orders: int, product, sku) -> None:
        from referral.locks import tree_lock
        from referral.models import Distributor, ShareLink
        from referral.services.tree import tree_attach

        self.label = label
        self.tag = f"attr-{label}-{uuid.uuid4().hex[:8]}"
        top = _customers(f"{self.tag}-top", 4)
        chain: list[Distributor] = []
        with transaction.atomic():
            tree_lock()
            for customer_id in top:
                made = Distributor.objects.create(
                    customer_id=customer_id,
                    display_name=f"{self.tag} chain",
                    status=Distributor.Status.ACTIVE,
                    onboarding=Distributor.Onboarding.APPOINTED,
                    joined_at=timezone.now(),
                )
                tree_attach(distributor=made, upline=chain[-1] if chain else None)
                chain.append(made)
        self.root, self.r1, self.r2, self.x = chain
        self.descendant_ids = self._downline(descendants)
        self.link = ShareLink.objects.create(
            distributor=self.x, short_code=self.tag[-12:], target_kind="shop"
        )
        self.buyer_ids = _customers(f"{self.tag}-buyer", orders)
        self.payloads = self._paid_orders(product, sku)

    def _downline(self, count: int) -> list[int]:
        fan_out = max(1, min(FAN_OUT, count // 3))
        customers = _customers(f"{self.tag}-down", count)
        created: list[int] = []
        uplines = [self.x.pk]
        for depth, level in (
            (self.x.depth + 1, customers[:fan_out]),
            (self.x.depth + 2, customers[fan_out:]),
        ):
            if not level:
                break
            with connection.cursor() as cursor:
                cursor.execute(
                    _DESCENDANTS_SQL,
                    {
                        "depth": depth,
                        "uplines": len(uplines),
                        "customers": level,
                        "upline_ids": uplines,
                    },
                )
                ids = [row[0] for row in cursor.fetchall()]
                cursor.execute(_CLOSURE_SQL, {"ids": ids})
            created.extend(ids)
            uplines = ids
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE referral_distributor")
            cursor.execute("ANALYZE referral_distributorancestry")
        return created

    def _paid_orders(self, product, sku) -> list[dict[str, Any]]:
        from referral.models import Click
        from shop.events import order_paid_payload
        from shop.models import Order, OrderLine

        now = timezone.now()
        Click.objects.bulk_create(
            Click(
                link=self.link,
                distributor=self.x,
                status=Click.Status.COUNTED,
                occurred_at=now - timedelta(days=1),
                customer_id=customer_id,
                visitor_key=f"c:{customer_id}",
            )
            for customer_id in self.buyer_ids
        )
        orders = Order.objects.bulk_create(
            Order(
                number=f"{self.tag}-{i}"[:32],
                customer_id=customer_id,
                status=Order.Status.PAID,
                delivery_mode=Order.DeliveryMode.COURIER,
                subtotal=1990,
                total=1990,
                payment_deadline=now + timedelta(hours=1),
                paid_at=now - timedelta(minutes=1),
            )
            for i, customer_id in enumerate(self.buyer_ids)
        )
        OrderLine.objects.bulk_create(
            OrderLine(
                order=order,
                sku=sku,
                product_title=product.title,
                sku_code=sku.code,
                list_unit_price=1990,
                unit_price=1990,
                quantity=1,
                line_total=1990,
            )
            for order in orders
        )
        fresh = Order.objects.select_related("customer").filter(pk__in=[o.pk for o in orders])
        return sorted((order_paid_payload(o) for o in fresh), key=lambda p: p["order_id"])

    def expected(self) -> tuple[list[tuple[int, int]], list[int]]:
        return [(1, self.x.pk), (2, self.r2.pk)], [self.r2.pk, self.r1.pk, self.root.pk]

    def cleanup(self) -> None:
        order_ids = [p["order_id"] for p in self.payloads]
        distributor_ids = [
            self.root.pk,
            self.r1.pk,
            self.r2.pk,
            self.x.pk,
            *self.descendant_ids,
        ]
        customer_ids = [
            *self.buyer_ids,
            *_customer_ids_of(distributor_ids),
        ]
        params = {
            "orders": order_ids,
            "customers": customer_ids,
            "distributors": distributor_ids,
            "users": _user_ids_of(customer_ids),
            "link": self.link.pk,
        }
        attributions = "SELECT id FROM referral_attribution WHERE order_id = ANY(%(orders)s)"
        statements = [
            f"DELETE FROM referral_fraudflag WHERE attribution_id IN ({attributions})",
            "DELETE FROM core_outboxevent WHERE name = 'order_attributed' "
            "AND (payload->>'order_id')::bigint = ANY(%(orders)s)",
            f"DELETE FROM referral_attributionlevel WHERE attribution_id IN ({attributions})",
            "DELETE FROM referral_attribution WHERE order_id = ANY(%(orders)s)",
            "DELETE FROM referral_binding WHERE customer_id = ANY(%(customers)s)",
            "DELETE FROM referral_click WHERE link_id = %(link)s",
            "DELETE FROM referral_sharelink WHERE id = %(link)s",
            "DELETE FROM shop_orderline WHERE order_id = ANY(%(orders)s)",
            "DELETE FROM shop_order WHERE id = ANY(%(orders)s)",
            "DELETE FROM referral_distributorancestry WHERE descendant_id = ANY(%(distributors)s)",
            "DELETE FROM referral_distributor WHERE id = ANY(%(distributors)s)",
            "DELETE FROM shop_customer WHERE id = ANY(%(customers)s)",
            "DELETE FROM core_user WHERE id = ANY(%(users)s)",
        ]
        with transaction.atomic(), connection.cursor() as cursor:
            for sql in statements:
                cursor.execute(sql, params)


def _customer_ids_of(distributor_ids: list[int]) -> list[int]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT customer_id FROM referral_distributor WHERE id = ANY(%s)", [distributor_ids]
        )
        return [row[0] for row in cursor.fetchall()]


def _user_ids_of(customer_ids: list[int]) -> list[int]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT user_id FROM shop_customer WHERE id = ANY(%s)", [customer_ids])
        return [row[0] for row in cursor.fetchall()]


def _attribute(tree: _Tree, payloads: list[dict[str, Any]]) -> dict[str, Any]:
    from referral.services.attribution import order_attribute

    expected_levels, expected_ancestry = tree.expected()
    seconds, queries, statements, wrong = [], [], [], 0
    for payload in payloads:
        with CaptureQueriesContext(connection) as captured:
            started = time.perf_counter()
            attribution = order_attribute(order_paid=payload)
            seconds.append(time.perf_counter() - started)
        queries.append(len(captured))
        statements.append(
            sum(1 for q in captured.captured_queries if q["sql"] not in ("BEGIN", "COMMIT"))
        )
        levels = list(attribution.levels.values_list("level", "distributor_id"))
        if (
            attribution.distributor_id != tree.x.pk
            or sorted(levels) != expected_levels
            or attribution.ancestry != expected_ancestry
        ):
            wrong += 1
    return {"seconds": seconds, "queries": queries, "statements": statements, "wrong": wrong}


def run(quick: bool = False) -> dict:
    from config.celery import app as celery_app
    from referral.services.rules_admin import rule_current
    from shop.models import Product, Sku

    large_size = QUICK_LARGE if quick else LARGE
    orders = QUICK_ORDERS if quick else ORDERS
    rounds = 2 if quick else ROUNDS
    rule = rule_current()
    tag = f"attr-{uuid.uuid4().hex[:8]}"
    product = Product.objects.create(title=f"{tag} bench", status=Product.Status.ON_SALE)
    sku = Sku.objects.create(product=product, code=tag, price=1990, stock=0)
    eager = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = False  # kicks go to the broker, as in production
    trees: list[_Tree] = []
    started = time.perf_counter()
    try:
        small = _Tree("small", SMALL, orders, product, sku)
        trees.append(small)
        large = _Tree("large", large_size, orders, product, sku)
        trees.append(large)
        setup_s = time.perf_counter() - started
        results: dict[str, list[dict[str, Any]]] = {"small": [], "large": []}
        per_round = orders // rounds
        for r in range(rounds):
            chunk = slice(r * per_round, (r + 1) * per_round)
            for tree in (small, large) if r % 2 == 0 else (large, small):
                results[tree.label].append(_attribute(tree, tree.payloads[chunk]))
    finally:
        celery_app.conf.task_always_eager = eager
        try:
            purged = celery_app.control.purge()
        except Exception:  # the broker being gone must not hide the figures
            purged = None
        for tree in trees:
            tree.cleanup()
        Sku.objects.filter(pk=sku.pk).delete()
        Product.objects.filter(pk=product.pk).delete()
        for alias in connections:
            connections[alias].close()

    def merged(label: str, key: str) -> list:
        return [value for part in results[label] for value in part[key]]

    small_s, large_s = merged("small", "seconds"), merged("large", "seconds")
    small_q, large_q = merged("small", "queries"), merged("large", "queries")
    wrong = sum(part["wrong"] for parts in results.values() for part in parts)
    small_ms = statistics.median(small_s) * 1000
    large_ms = statistics.median(large_s) * 1000
    ratio = large_ms / small_ms
    same_queries = set(small_q) == set(large_q) and len(set(small_q)) == 1
    metrics = {
        "descendants_small": SMALL,
        "descendants_large": large_size,
        "levels_above": 3,
        "orders_per_tree": orders,
        "rounds": rounds,
        "rule": f"v{rule.version} {rule.model}",
        "queries_small": max(small_q),
        "queries_large": max(large_q),
        "queries_seen": sorted(set(small_q) | set(large_q)),
        "statements_besides_begin_commit": sorted(
            set(merged("small", "statements")) | set(merged("large", "statements"))
        ),
        "ms_per_attribution_small": round(small_ms, 3),
        "ms_per_attribution_large": round(large_ms, 3),
        "p90_ms_small": round(statistics.quantiles(small_s, n=10)[-1] * 1000, 3),
        "p90_ms_large": round(statistics.quantiles(large_s, n=10)[-1] * 1000, 3),
        "wrong_attributions": wrong,
        "setup_s": round(setup_s, 1),
        "kicks_purged": purged,
    }
    return {
        "metrics": metrics,
        "ratio": round(ratio, 3),
        "goal": {"queries_equal": True, "queries_at_most": MAX_QUERIES},
        "ok": same_queries and max(small_q + large_q) <= MAX_QUERIES and wrong == 0,
    }
