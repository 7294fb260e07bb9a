"""End to end over a real server: HTTP + WebSocket + the periodic job, as ``make run`` serves."""

import asyncio
import json

import pytest
import websockets

pytestmark = pytest.mark.e2e


def test_docs_admin_and_readiness_are_served(live_server_embedded):
    status, body = live_server_embedded.request("GET", "/health/ready")
    assert status == 200 and body["status"] == "ok"
    status, spec = live_server_embedded.request("GET", "/api/v1/openapi.json")
    assert status == 200 and spec["info"]["title"]


def test_periodic_job_notification_reaches_a_connected_socket(live_server_embedded):
    server = live_server_embedded
    status, login = server.request("POST", "/api/v1/auth/wechat", {"code": "demo-shopper"})
    assert status == 200
    status, staff = server.request(
        "POST", "/api/v1/auth/staff", {"username": "operator", "password": "operator-demo-pass"}
    )
    assert status == 200

    async def scenario():
        async with websockets.connect(server.ws + "/ws/stream/") as ws:
            await ws.send(json.dumps({"type": "auth", "token": login["access_token"]}))
            assert json.loads(await ws.recv())["type"] == "ready"
            status, created = server.request(
                "POST",
                "/api/v1/staff/announcements",
                {"title": "e2e hello", "body": "from beat"},
                token=staff["access_token"],
            )
            assert status == 201
            while True:  # the demo announcement may arrive first
                message = json.loads(await asyncio.wait_for(ws.recv(), timeout=20))
                if (
                    message.get("type") == "notification"
                    and message["notification"]["title"] == "e2e hello"
                ):
                    return message, created

    message, created = asyncio.run(scenario())
    assert message["notification"]["kind"] == "announcement"
    assert message["notification"]["data"]["announcement_id"] == created["id"]
    # the socket is the fast path; the stored row is the truth
    status, page = server.request("GET", "/api/v1/notifications", token=login["access_token"])
    assert status == 200
    assert message["notification"]["id"] in [n["id"] for n in page["items"]]


def test_browse_order_pay_and_pick_up_as_a_new_user_would(live_server_embedded):
    """The demo journey over HTTP + WebSocket: browse, order (idempotently), pay in the sandbox,
    get the pickup code, and have the community leader verify it."""
    server = live_server_embedded
    _, shopper = server.request("POST", "/api/v1/auth/wechat", {"code": "demo-shopper"})
    _, leader = server.request("POST", "/api/v1/auth/wechat", {"code": "demo-leader"})
    token = shopper["access_token"]

    status, communities = server.request("GET", "/api/v1/communities")
    assert status == 200
    community = next(c for c in communities["items"] if c["name"] == "Sunny Garden Community")
    _, detail = server.request("GET", f"/api/v1/communities/{community['id']}")
    pickup_point = detail["pickup_points"][0]
    _, products = server.request("GET", f"/api/v1/products?community={community['id']}")
    product = next(p for p in products["items"] if not p["sold_out"])
    _, product_detail = server.request("GET", f"/api/v1/products/{product['id']}")
    sku = next(s for s in product_detail["skus"] if s["available"] >= 2)

    async def scenario():
        async with websockets.connect(server.ws + "/ws/stream/") as ws:
            await ws.send(json.dumps({"type": "auth", "token": token}))
            assert json.loads(await ws.recv())["type"] == "ready"

            body = {
                "lines": [{"sku_id": sku["id"], "quantity": 2}],
                "delivery_mode": "pickup",
                "pickup_point_id": pickup_point["id"],
            }
            key = {"Idempotency-Key": "e2e-order-1"}
            status, order = server.request("POST", "/api/v1/orders", body, token, key)
            assert status == 201, order
            status, again = server.request("POST", "/api/v1/orders", body, token, key)
            assert (status, again["id"]) == (201, order["id"])
            assert order["total"] == 2 * sku["price"]

            status, payment = server.request(
                "POST", f"/api/v1/orders/{order['id']}/pay", None, token
            )
            assert (status, payment["provider"], payment["status"]) == (200, "sandbox", "pending")
            status, payment = server.request(
                "POST", f"/api/v1/payments/{payment['id']}/confirm", None, token
            )
            assert (status, payment["status"]) == (200, "succeeded")
            kinds = await _kinds_until(ws, "order_paid")

            status, paid = server.request("GET", f"/api/v1/orders/{order['id']}", token=token)
            assert (paid["status"], len(paid["pickup_code"])) == ("paid", 8)
            status, verified = server.request(
                "POST",
                "/api/v1/pickup/verify",
                {"code": paid["pickup_code"]},
                leader["access_token"],
            )
            assert status == 200, verified
            kinds += await _kinds_until(ws, "order_fulfilled")
            return order, kinds

    order, kinds = asyncio.run(scenario())
    assert "order_paid" in kinds and "order_fulfilled" in kinds
    _, final = server.request("GET", f"/api/v1/orders/{order['id']}", token=token)
    assert final["status"] == "fulfilled"


async def _kinds_until(ws, kind: str) -> list[str]:
    seen = []
    while kind not in seen:
        message = json.loads(await asyncio.wait_for(ws.recv(), timeout=20))
        if message.get("type") == "notification":
            seen.append(message["notification"]["kind"])
    return seen
