"""last_seat: 200 buyers race for a group-buy group's last free seat over HTTP on the production
server (gunicorn, gthread workers, as in production; see api_read).

A group of 3 has its leader's seat and one member's seat held (their orders unpaid), so one
seat is left. 200 buyers, each with a token minted here (``session_start``: the per-IP login
limit would refuse 200 logins from one loopback address), post ``POST
/api/v1/groups/by-token/{share_token}/join`` once, over 200 connections opened first and released
together. Expected: exactly 1 winner (201), 199 ``group_full`` (409), 0 server errors; afterwards
the group holds 3 seats (3 held, 0 paid), 3 orders exist for it and the SKU's stock is down by 3.
p50 / p99 are of all 200 requests, from sending to the end of the answer. The round is repeated
``ROUNDS`` times on fresh groups; every round must be exact.

The load generator shares the machine's cores with the server and PostgreSQL: latencies are
upper bounds. Everything created is deleted at the end.
"""

import json
import subprocess
import uuid
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import connections
from django.utils import timezone

from tests.bench import api_read, loadgen

NAME = "last_seat"
GOAL = (
    "200 concurrent joins over HTTP on a group with 1 seat left: 1 winner, 199 group_full, "
    "0 server errors"
)
BUYERS = 200
SIZE = 3
ROUNDS = 3
STOCK = 10_000


class _Fixture:
    def __init__(self) -> None:
        from core.models import User
        from core.tokens import session_start
        from groupbuy.models import GroupCampaign, GroupCampaignSku
        from shop.models import Community, Customer, PickupPoint, Product, Sku

        self.tag = f"seat-{uuid.uuid4().hex[:10]}"
        users = User.objects.bulk_create(
            User(username=f"{self.tag}-{i}", password="!") for i in range(BUYERS + 2 * ROUNDS)
        )
        self.customers = Customer.objects.bulk_create(
            Customer(user=user, openid=f"{self.tag}-{i}") for i, user in enumerate(users)
        )
        self.buyers = self.customers[:BUYERS]
        self.openers = self.customers[BUYERS:]
        self.tokens = [session_start(user=c.user).access_token for c in self.buyers]
        community = Community.objects.create(name=self.tag)
        self.point = PickupPoint.objects.create(
            community=community, name=self.tag, address="1 Bench Road"
        )
        self.product = Product.objects.create(title=self.tag, status=Product.Status.ON_SALE)
        self.sku = Sku.objects.create(product=self.product, code=self.tag, price=1990, stock=STOCK)
        now = timezone.now()
        self.campaign = GroupCampaign.objects.create(
            title=self.tag,
            product=self.product,
            status=GroupCampaign.Status.ACTIVE,
            starts_at=now - timedelta(minutes=1),
            ends_at=now + timedelta(days=1),
            group_size=SIZE,
        )
        GroupCampaignSku.objects.create(campaign=self.campaign, sku=self.sku, group_price=990)

    def group_with_one_seat_left(self, round_: int):
        """The leader opens, one member joins (both through the services): one seat left."""
        from groupbuy.services.groups import group_join, group_open

        pickup = {"delivery_mode": "pickup", "pickup_point_id": self.point.pk}
        leader, member = self.openers[2 * round_], self.openers[2 * round_ + 1]
        group, _ = group_open(
            campaign_id=self.campaign.pk, customer=leader, sku_id=self.sku.pk, quantity=1, **pickup
        )
        group_join(
            share_token=group.share_token, customer=member, sku_id=self.sku.pk, quantity=1, **pickup
        )
        return group

    def body(self) -> bytes:
        return json.dumps(
            {
                "sku_id": self.sku.pk,
                "quantity": 1,
                "delivery_mode": "pickup",
                "pickup_point_id": self.point.pk,
            }
        ).encode()

    def cleanup(self) -> None:
        from core.models import (
            IdempotencyRecord,
            Notification,
            OutboxEvent,
            TopicSequence,
            User,
        )
        from groupbuy.models import Group, GroupCampaign, GroupSeat
        from shop.models import Community, Customer, Order, Product

        customer_ids = [c.pk for c in self.customers]
        user_ids = [c.user_id for c in self.customers]
        groups = list(Group.objects.filter(campaign=self.campaign).values_list("pk", flat=True))
        GroupSeat.objects.filter(group_id__in=groups).delete()
        Group.objects.filter(pk__in=groups).delete()
        GroupCampaign.objects.filter(pk=self.campaign.pk).delete()
        order_ids = list(
            Order.objects.filter(customer_id__in=customer_ids).values_list("pk", flat=True)
        )
        OutboxEvent.objects.filter(payload__order_id__in=order_ids).delete()
        Order.objects.filter(pk__in=order_ids).delete()
        TopicSequence.objects.filter(topic__in=[f"group:{pk}" for pk in groups]).delete()
        Product.objects.filter(pk=self.product.pk).delete()  # its SKU with it
        Community.objects.filter(name=self.tag).delete()
        Customer.objects.filter(pk__in=customer_ids).delete()
        Notification.objects.filter(user_id__in=user_ids).delete()
        IdempotencyRecord.objects.filter(user_id__in=user_ids).delete()
        User.objects.filter(pk__in=user_ids).delete()


def _round(port: int, fx: _Fixture, round_: int) -> dict[str, Any]:
    from groupbuy.models import Group, GroupSeat
    from shop.models import Order

    group = fx.group_with_one_seat_left(round_)
    stock_before = type(fx.sku).objects.get(pk=fx.sku.pk).stock
    connections.close_all()
    path = f"/api/v1/groups/by-token/{group.share_token}/join"
    body = fx.body()
    answers, wall = loadgen.post_burst(
        port, [(path, token, body) for token in fx.tokens], connections=BUYERS
    )
    fresh = Group.objects.get(pk=group.pk)
    codes: dict[str, int] = {}
    for status, code, _ in answers:
        if status >= 400:
            codes[code] = codes.get(code, 0) + 1
    latencies = [elapsed for _, _, elapsed in answers]
    return {
        "winners": sum(1 for status, _, _ in answers if status == 201),
        "full_errors": sum(1 for s, c, _ in answers if s == 409 and c == "group_full"),
        "server_errors": sum(1 for status, _, _ in answers if status >= 500),
        "codes": codes,
        "p50_ms": loadgen.percentile(latencies, 0.50),
        "p99_ms": loadgen.percentile(latencies, 0.99),
        "max_ms": round(max(latencies), 1),
        "wall_s": round(wall, 2),
        "seats": (fresh.held_seats, fresh.paid_seats),
        "live_seat_rows": GroupSeat.objects.filter(group=group, status="held").count(),
        "orders": Order.objects.filter(source="group_buy", source_ref=group.pk).count(),
        "stock_taken": stock_before - type(fx.sku).objects.get(pk=fx.sku.pk).stock,
    }


def run(quick: bool = False) -> dict:
    rounds = 1 if quick else ROUNDS
    fx = _Fixture()
    results: list[dict[str, Any]] = []
    try:
        connections.close_all()
        port = api_read._free_port()
        proc = api_read.production_server(port, settings.JWT_SIGNING_KEY)
        try:
            api_read._wait_ready(f"http://127.0.0.1:{port}", proc)
            for round_ in range(rounds):
                results.append(_round(port, fx, round_))
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
    finally:
        connections.close_all()
        fx.cleanup()

    def exact(r: dict[str, Any]) -> bool:
        return (
            r["winners"] == 1
            and r["full_errors"] == BUYERS - 1
            and r["server_errors"] == 0
            and r["seats"] == (SIZE, 0)
            and r["live_seat_rows"] == SIZE
            and r["orders"] == SIZE
            and r["stock_taken"] == 1
        )

    last = results[-1]
    metrics = {
        "buyers": BUYERS,
        "group_size": SIZE,
        "rounds": rounds,
        "winners": last["winners"],
        "full_errors": last["full_errors"],
        "server_errors": max(r["server_errors"] for r in results),
        "error_codes": last["codes"],
        "p50_ms": last["p50_ms"],
        "p99_ms": last["p99_ms"],
        "max_ms": last["max_ms"],
        "wall_s": last["wall_s"],
        "rounds_p99_ms": [r["p99_ms"] for r in results],
        "rounds_winners": [r["winners"] for r in results],
        "rounds_full_errors": [r["full_errors"] for r in results],
        "seats_held_paid_after": list(last["seats"]),
        "orders_for_group": last["orders"],
        "every_round_exact": all(exact(r) for r in results),
        "server": f"gunicorn gthread, {api_read.WORKERS} workers x 4 threads",
        "note": "load generator, server and PostgreSQL share the machine's cores",
    }
    return {
        "metrics": metrics,
        "ratio": float(last["winners"]),
        "goal": {"winners": 1, "full_errors": BUYERS - 1, "server_errors": 0},
        "ok": all(exact(r) for r in results),
    }
