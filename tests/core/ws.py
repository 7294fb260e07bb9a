"""Helpers for WebSocket tests against the real ASGI application (config.asgi).

``channels.testing`` cannot be imported here: its package imports ``daphne`` (for the live server
test case), which is not installed. ``WebsocketCommunicator`` below is the same small wrapper over
asgiref's ``ApplicationCommunicator`` with the methods these tests use.
"""

import json
from typing import Any
from urllib.parse import unquote, urlparse

from asgiref.testing import ApplicationCommunicator

from config.asgi import application

STREAM = "/ws/stream/"
GOOD_ORIGIN = b"http://localhost:5173"
TIMEOUT = 3


class WebsocketCommunicator(ApplicationCommunicator):
    def __init__(self, app, path: str, headers: list[tuple[bytes, bytes]] | None = None) -> None:
        parsed = urlparse(path)
        scope = {
            "type": "websocket",
            "path": unquote(parsed.path),
            "query_string": parsed.query.encode(),
            "headers": headers or [],
            "subprotocols": [],
        }
        super().__init__(app, scope)

    async def connect(self, timeout: float = TIMEOUT) -> tuple[bool, Any]:
        """(True, subprotocol) when accepted, (False, close code) when refused."""
        await self.send_input({"type": "websocket.connect"})
        response = await self.receive_output(timeout)
        if response["type"] == "websocket.close":
            return False, response.get("code", 1000)
        assert response["type"] == "websocket.accept", response
        return True, response.get("subprotocol")

    async def send_to(self, text_data: str) -> None:
        await self.send_input({"type": "websocket.receive", "text": text_data})

    async def send_json_to(self, data: Any) -> None:
        await self.send_to(json.dumps(data))

    async def receive_json_from(self, timeout: float = TIMEOUT) -> Any:
        response = await self.receive_output(timeout)
        assert response["type"] == "websocket.send", response
        return json.loads(response["text"])

    async def disconnect(self, code: int = 1000, timeout: float = TIMEOUT) -> None:
        await self.send_input({"type": "websocket.disconnect", "code": code})
        await self.wait(timeout)


def communicator(path: str = STREAM, origin: bytes | None = GOOD_ORIGIN) -> WebsocketCommunicator:
    headers = [(b"origin", origin)] if origin is not None else []
    return WebsocketCommunicator(application, path, headers=headers)


async def receive(comm: WebsocketCommunicator) -> dict[str, Any]:
    return await comm.receive_json_from(timeout=TIMEOUT)


async def assert_closed(comm: WebsocketCommunicator, code: int = 4401) -> None:
    """The next thing the server does is close the socket with ``code``."""
    output = await comm.receive_output(timeout=TIMEOUT)
    assert output == {"type": "websocket.close", "code": code}, output


async def connect_and_auth(token: str, after: int | None = None) -> WebsocketCommunicator:
    """An open socket, authenticated with the first message; the ``ready`` reply is consumed."""
    comm = communicator()
    connected, _ = await comm.connect(timeout=TIMEOUT)
    assert connected
    message: dict[str, Any] = {"type": "auth", "token": token}
    if after is not None:
        message["after"] = after
    await comm.send_json_to(message)
    ready = await receive(comm)
    assert ready["type"] == "ready", ready
    return comm
