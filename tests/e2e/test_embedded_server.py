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
