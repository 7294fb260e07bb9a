"""The realtime stream: one WebSocket per client at ``/ws/stream/``.

Authenticate with the first message ``{"type": "auth", "token": "<access token>", "after": <id>}``
(preferred: browsers cannot set headers and query strings end up in access logs) or with
``?token=`` on the URL. Until authenticated nothing else is accepted; a socket that does not
authenticate within ``WS_AUTH_TIMEOUT_SECONDS`` is closed. After auth the socket receives the user's
notifications (and, with ``after``, the stored ones it missed), and may subscribe to topics.
"""

import asyncio
import logging
from typing import Any
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings

from core.errors import NotAuthenticated
from core.models import Notification
from core.notifications import notification_payload
from core.realtime import can_subscribe, session_group, topic_group, user_group
from core.tokens import access_token_authenticate

logger = logging.getLogger(__name__)

CLOSE_UNAUTHENTICATED = 4401
CATCH_UP_LIMIT = 200


@database_sync_to_async
def _authenticate(token: str):
    return access_token_authenticate(token)


@database_sync_to_async
def _missed(user_id: int, after: int) -> tuple[list[dict[str, Any]], bool]:
    """Up to CATCH_UP_LIMIT stored notifications after ``after``, and whether more remain."""
    rows = list(
        Notification.objects.filter(user_id=user_id, id__gt=after).order_by("id")[
            : CATCH_UP_LIMIT + 1
        ]
    )
    return [notification_payload(n) for n in rows[:CATCH_UP_LIMIT]], len(rows) > CATCH_UP_LIMIT


@database_sync_to_async
def _can_subscribe(user, topic: str) -> bool:
    return can_subscribe(user, topic)


class StreamConsumer(AsyncJsonWebsocketConsumer):
    user = None
    groups_joined: set[str]

    async def connect(self) -> None:
        self.groups_joined = set()
        await self.accept()
        token = parse_qs(self.scope.get("query_string", b"").decode()).get("token", [None])[0]
        if token:
            await self._login(token, after=None)
        else:
            self._auth_timer = asyncio.get_running_loop().call_later(
                settings.WS_AUTH_TIMEOUT_SECONDS,
                lambda: asyncio.ensure_future(self._auth_timeout()),
            )

    async def _auth_timeout(self) -> None:
        if self.user is None:
            await self._refuse("auth_timeout", "No auth message received in time.")

    async def _refuse(self, code: str, message: str) -> None:
        await self.send_json({"type": "error", "code": code, "message": message})
        await self.close(code=CLOSE_UNAUTHENTICATED)

    async def _login(self, token: str, after: int | None) -> None:
        try:
            user, session_id = await _authenticate(token)
        except NotAuthenticated as exc:
            await self._refuse(exc.code, exc.message)
            return
        self.user = user
        timer = getattr(self, "_auth_timer", None)
        if timer is not None:
            timer.cancel()
        await self._join(user_group(user.id))
        await self._join(session_group(session_id))
        await self.send_json({"type": "ready", "user_id": user.id})
        if after is not None:
            missed, truncated = await _missed(user.id, after)
            for payload in missed:
                await self.send_json(
                    {"type": "notification", "notification": payload, "replayed": True}
                )
            if truncated:
                # Too many to replay here: the client pages through GET /api/v1/notifications.
                await self.send_json(
                    {"type": "replay_truncated", "cursor": missed[-1]["id"], "has_more": True}
                )

    async def _join(self, group: str) -> None:
        await self.channel_layer.group_add(group, self.channel_name)
        self.groups_joined.add(group)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        if not isinstance(content, dict):
            await self.send_json(
                {"type": "error", "code": "bad_message", "message": "Send a JSON object."}
            )
            return
        kind = content.get("type")
        if self.user is None:
            if kind == "auth" and isinstance(content.get("token"), str):
                after = content.get("after")
                await self._login(
                    content["token"], after=after if isinstance(after, int) and after >= 0 else None
                )
            else:
                await self._refuse(
                    "not_authenticated", 'Authenticate first: {"type": "auth", "token": ...}.'
                )
            return
        if kind == "ping":
            await self.send_json({"type": "pong"})
        elif kind == "subscribe" and isinstance(content.get("topic"), str):
            topic = content["topic"]
            if await _can_subscribe(self.user, topic):
                await self._join(topic_group(topic))
                await self.send_json({"type": "subscribed", "topic": topic})
            else:
                await self.send_json(
                    {
                        "type": "error",
                        "code": "topic_forbidden",
                        "message": f"Cannot subscribe to {topic!r}.",
                        "topic": topic,
                    }
                )
        elif kind == "unsubscribe" and isinstance(content.get("topic"), str):
            group = topic_group(content["topic"])
            if group in self.groups_joined:
                await self.channel_layer.group_discard(group, self.channel_name)
                self.groups_joined.discard(group)
            await self.send_json({"type": "unsubscribed", "topic": content["topic"]})
        else:
            await self.send_json(
                {"type": "error", "code": "unknown_message", "message": "Unknown message type."}
            )

    async def decode_json(self, text_data: str) -> Any:
        try:
            return await super().decode_json(text_data)
        except ValueError:
            return None

    async def disconnect(self, code: int) -> None:
        timer = getattr(self, "_auth_timer", None)
        if timer is not None:
            timer.cancel()
        for group in self.groups_joined:
            await self.channel_layer.group_discard(group, self.channel_name)

    async def session_revoked(self, event: dict[str, Any]) -> None:
        await self._refuse("token_revoked", "This session was ended.")

    async def push_message(self, event: dict[str, Any]) -> None:
        await self.send_json(event["payload"])
