"""flash_burst: a flash sale's opening second through the HTTP API on the production server.

Two phases against gunicorn (gthread workers, as in production; see api_read) on the same
PostgreSQL in the same run:

- ``burst`` (the exactness check): 1,000 buyers, each with a token minted here (``session_start``:
  the per-IP login limit would refuse 1,000 logins from one loopback address), post
  ``POST /api/v1/flash/orders`` for 1 unit of an item with 100 flash units and a cap of 1, all
  released together over 64 keep-alive connections. Expected: exactly 100 reservations (201),
  900 clear refusals (409 ``out_of_stock`` / ``purchase_limit_exceeded``), 0 server errors; the
  item's ``remaining`` 0, 100 reservation rows, the SKU's own stock untouched. p50 / p99 are of
  all 1,000 requests, from sending to the end of the answer.
- ``throughput`` (the ratio): the same HTTP path for ``SECONDS`` on an item with 100,000 flash
  units (128 buyers, cap 999, wrk with 32 connections when installed, else Python threads),
  against a raw ``UPDATE shop_flashitem SET remaining = remaining - 1 WHERE id = %s AND
  remaining >= 1`` in autocommit from 32 threads for as long, both counted as units reserved per
  second. The counts are checked exactly afterwards (units gone = orders = reservations).

The load generator runs on the same cores as the server and the database, so absolute figures
are lower bounds; the ratio is what compares runs. Everything created is deleted at the end.
"""

import http.client
import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
import uuid
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import connection, connections
from django.utils import timezone

from tests.bench import api_read, loadgen
from tests.bench.threads import errors_of, run_threads

NAME = "flash_burst"
GOAL = (
    "1,000 concurrent buyers for 100 flash units over HTTP: exactly 100 reserved, 900 clear "
    "409s, 0 server errors; throughput on 100,000 units reported against a raw UPDATE"
)
BUYERS = 1000
BURST_UNITS = 100
BURST_CONNECTIONS = 64
THROUGHPUT_UNITS = 100_000
THROUGHPUT_BUYERS = 128
CONNECTIONS = 32
SECONDS = 20
PATH = "/api/v1/flash/orders"
CLEAR_CODES = {"out_of_stock", "purchase_limit_exceeded"}


class _Fixture:
    def __init__(self, buyers: int) -> None:
        from core.models import User
        from core.tokens import session_start
        from shop.models import (
            Community,
            Customer,
            FlashItem,
            FlashSession,
            PickupPoint,
            Product,
            Sku,
        )

        self.tag = f"flash-{uuid.uuid4().hex[:10]}"
        users = User.objects.bulk_create(
            User(username=f"{self.tag}-{i}", password="!") for i in range(buyers + 1)
        )
        self.customers = Customer.objects.bulk_create(
            Customer(user=user, openid=f"{self.tag}-{i}") for i, user in enumerate(users)
        )
        leader, self.buyers = self.customers[0], self.customers[1:]
        self.tokens = [session_start(user=c.user).access_token for c in self.buyers]
        community = Community.objects.create(name=self.tag, leader=leader)
        self.point = PickupPoint.objects.create(
            community=community, name=self.tag, address="1 Bench Road"
        )
        self.product = Product.objects.create(title=self.tag, status=Product.Status.ON_SALE)
        now = timezone.now()
        self.session = FlashSession.objects.create(
            title=self.tag, starts_at=now - timedelta(minutes=1), ends_at=now + timedelta(hours=2)
        )
        self.items: list[FlashItem] = []
        self._sku = lambda n: Sku.objects.create(
            product=self.product, code=f"{self.tag}-{n}", price=1990, stock=7
        )

    def item(self, units: int, cap: int):
        from shop.models import FlashItem

        item = FlashItem.objects.create(
            session=self.session,
            sku=self._sku(len(self.items)),
            flash_price=990,
            total_stock=units,
            remaining=units,
            per_customer_limit=cap,
        )
        self.items.append(item)
        return item

    def body(self, item) -> bytes:
        return json.dumps(
            {
                "item_id": item.pk,
                "quantity": 1,
                "delivery_mode": "pickup",
                "pickup_point_id": self.point.pk,
            }
        ).encode()

    def cleanup(self) -> None:
        from core.models import IdempotencyRecord, Notification, TopicSequence, User
        from shop.models import Community, Customer, FlashSession, Order, Product

        customer_ids = [c.pk for c in self.customers]
        user_ids = [c.user_id for c in self.customers]
        Order.objects.filter(customer_id__in=customer_ids).delete()
        FlashSession.objects.filter(pk=self.session.pk).delete()
        TopicSequence.objects.filter(topic=f"flash:{self.session.pk}").delete()
        Product.objects.filter(pk=self.product.pk).delete()  # its SKUs with it
        Community.objects.filter(name=self.tag).delete()
        Customer.objects.filter(pk__in=customer_ids).delete()
        Notification.objects.filter(user_id__in=user_ids).delete()
        IdempotencyRecord.objects.filter(user_id__in=user_ids).delete()
        User.objects.filter(pk__in=user_ids).delete()


def _burst(port: int, fx: _Fixture, item) -> dict[str, Any]:
    """Every buyer posts once; requests spread over BURST_CONNECTIONS released together."""
    body = fx.body(item)
    answers, wall = loadgen.post_burst(
        port, [(PATH, token, body) for token in fx.tokens], connections=BURST_CONNECTIONS
    )
    latencies = [a[2] for a in answers]
    codes: dict[str, int] = {}
    for status, code, _ in answers:
        if status >= 400:
            codes[code] = codes.get(code, 0) + 1
    return {
        "requests": len(answers),
        "reserved": sum(1 for s, _, _ in answers if s == 201),
        "clear_errors": sum(1 for s, c, _ in answers if s == 409 and c in CLEAR_CODES),
        "server_errors": sum(1 for s, _, _ in answers if s >= 500),
        "other": sum(1 for s, c, _ in answers if s != 201 and not (s == 409 and c in CLEAR_CODES)),
        "codes": codes,
        "p50_ms": loadgen.percentile(latencies, 0.50),
        "p99_ms": loadgen.percentile(latencies, 0.99),
        "max_ms": round(max(latencies), 1),
        "wall_s": round(wall, 2),
    }


_WRK_SCRIPT = """
local tokens = {%(tokens)s}
local body = '%(body)s'
local n = 0
request = function()
  n = n + 1
  local token = tokens[(n %% #tokens) + 1]
  return wrk.format("POST", "%(path)s", {
    ["Authorization"] = "Bearer " .. token, ["Content-Type"] = "application/json"}, body)
end
"""


def _throughput_http(port: int, fx: _Fixture, item, seconds: float) -> dict[str, Any]:
    tokens = fx.tokens[:THROUGHPUT_BUYERS]
    body = fx.body(item)
    if shutil.which("wrk"):
        with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
            script.write(
                _WRK_SCRIPT
                % {
                    "tokens": ", ".join(f'"{t}"' for t in tokens),
                    "body": body.decode(),
                    "path": PATH,
                }
            )
        try:
            out = subprocess.run(
                [
                    "wrk",
                    "-t2",
                    f"-c{CONNECTIONS}",
                    f"-d{int(seconds)}s",
                    "--latency",
                    "-s",
                    script.name,
                    f"http://127.0.0.1:{port}{PATH}",
                ],
                capture_output=True,
                text=True,
                timeout=seconds + 60,
                check=True,
            ).stdout
        finally:
            os.unlink(script.name)
        return {**_parse_wrk(out), "tool": "wrk"}
    return _throughput_threads(port, tokens, body, seconds)


def _parse_wrk(out: str) -> dict[str, Any]:
    total = re.search(r"(\d+) requests in ([\d.]+)(m?s)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    p50 = re.search(r"50%\s+([\d.]+)(us|ms|s)", out)
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}
    return {
        "requests": int(total.group(1)) if total else 0,
        "non_2xx": int(non2xx.group(1)) if non2xx else 0,
        "p50_ms": round(float(p50.group(1)) * scale[p50.group(2)], 1) if p50 else None,
        "p99_ms": round(float(p99.group(1)) * scale[p99.group(2)], 1) if p99 else None,
        "socket_errors": (re.search(r"Socket errors:.*", out) or [""])[0],
    }


def _throughput_threads(port: int, tokens: list[str], body: bytes, seconds: float) -> dict:
    counts, bad = [0] * CONNECTIONS, [0] * CONNECTIONS
    deadline = time.monotonic() + seconds

    def worker(i: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        n = i
        while time.monotonic() < deadline:
            token = tokens[n % len(tokens)]
            n += CONNECTIONS
            conn.request(
                "POST",
                PATH,
                body=body,
                headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
            )
            response = conn.getresponse()
            response.read()
            counts[i] += 1
            bad[i] += response.status != 201
        conn.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(CONNECTIONS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {"requests": sum(counts), "non_2xx": sum(bad), "tool": "python-threads"}


RAW_SQL = "UPDATE shop_flashitem SET remaining = remaining - 1 WHERE id = %s AND remaining >= 1"


def _raw(item_id: int, seconds: float) -> dict[str, Any]:
    def work(_: int) -> int:
        won = 0
        deadline = time.monotonic() + seconds
        with connection.cursor() as cursor:
            while time.monotonic() < deadline:
                cursor.execute(RAW_SQL, [item_id])
                won += cursor.rowcount
        return won

    wall, results = run_threads(CONNECTIONS, work)
    units = sum(r for r in results if isinstance(r, int))
    return {"units": units, "rate": units / wall, "errors": errors_of(results)}


def _counts(item) -> dict[str, int]:
    from shop.models import FlashItem, Order, Sku, StockReservation

    fresh = FlashItem.objects.get(pk=item.pk)
    return {
        "taken": fresh.total_stock - fresh.remaining,
        "remaining": fresh.remaining,
        "reservations": StockReservation.objects.filter(flash_item=item).count(),
        "orders": Order.objects.filter(lines__sku_id=item.sku_id).count(),
        "sku_stock": Sku.objects.get(pk=item.sku_id).stock,
    }


def run(quick: bool = False) -> dict:
    seconds = 5 if quick else SECONDS
    fx = _Fixture(BUYERS)
    try:
        burst_item = fx.item(BURST_UNITS, cap=1)
        throughput_item = fx.item(THROUGHPUT_UNITS, cap=999)
        raw_item = fx.item(10_000_000, cap=1)
        connections.close_all()
        raw = _raw(raw_item.pk, seconds)
        connections.close_all()
        port = api_read._free_port()
        proc = api_read.production_server(port, settings.JWT_SIGNING_KEY)
        try:
            api_read._wait_ready(f"http://127.0.0.1:{port}", proc)
            burst = _burst(port, fx, burst_item)
            http_run = _throughput_http(port, fx, throughput_item, seconds)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
        burst_counts = _counts(burst_item)
        throughput_counts = _counts(throughput_item)
    finally:
        connections.close_all()
        fx.cleanup()

    http_rate = throughput_counts["taken"] / seconds
    ratio = http_rate / raw["rate"] if raw["rate"] else 0.0
    burst_exact = (
        burst["reserved"] == BURST_UNITS
        and burst["clear_errors"] == BUYERS - BURST_UNITS
        and burst["server_errors"] == 0
        and burst_counts["remaining"] == 0
        and burst_counts["reservations"] == burst_counts["orders"] == BURST_UNITS
        and burst_counts["sku_stock"] == 7
    )
    throughput_exact = (
        throughput_counts["taken"]
        == throughput_counts["reservations"]
        == throughput_counts["orders"]
        and http_run["non_2xx"] == 0
        and throughput_counts["sku_stock"] == 7
    )
    metrics = {
        "buyers": BUYERS,
        "flash_units": BURST_UNITS,
        "connections": BURST_CONNECTIONS,
        "reserved": burst["reserved"],
        "clear_errors": burst["clear_errors"],
        "error_codes": burst["codes"],
        "server_errors": burst["server_errors"],
        "other_answers": burst["other"],
        "p50_ms": burst["p50_ms"],
        "p99_ms": burst["p99_ms"],
        "max_ms": burst["max_ms"],
        "burst_wall_s": burst["wall_s"],
        "burst_remaining_after": burst_counts["remaining"],
        "burst_exact": burst_exact,
        "throughput_seconds": seconds,
        "throughput_connections": CONNECTIONS,
        "throughput_tool": http_run["tool"],
        "http_reserved_per_s": round(http_rate, 1),
        "http_requests": http_run["requests"],
        "http_non_2xx": http_run["non_2xx"],
        "http_p50_ms": http_run.get("p50_ms"),
        "http_p99_ms": http_run.get("p99_ms"),
        "raw_update_per_s": round(raw["rate"], 1),
        "raw_errors": raw["errors"][:3],
        "throughput_exact": throughput_exact,
        "server": f"gunicorn gthread, {api_read.WORKERS} workers x 4 threads",
        "note": "load generator, server and PostgreSQL share the machine's cores",
    }
    return {
        "metrics": metrics,
        "ratio": round(ratio, 3),
        "goal": {
            "reserved": BURST_UNITS,
            "clear_errors": BUYERS - BURST_UNITS,
            "server_errors": 0,
            "throughput_exact": True,
        },
        "ok": burst_exact and throughput_exact and not raw["errors"],
    }
