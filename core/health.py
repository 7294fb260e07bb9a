"""``/health`` (liveness: the process answers) and ``/health/ready`` (database, cache, channel
layer and Celery broker answer), built on django-health-check."""

import asyncio
import dataclasses
import uuid

from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.http import HttpRequest, JsonResponse
from health_check import Cache, Database, HealthCheck
from health_check.exceptions import ServiceUnavailable
from health_check.views import HealthCheckView


@dataclasses.dataclass
class ChannelLayerCheck(HealthCheck):
    """Send a message to a fresh channel and read it back."""

    async def run(self) -> None:
        layer = get_channel_layer()
        if layer is None:
            raise ServiceUnavailable("No channel layer configured")
        try:
            channel = await layer.new_channel()
            token = uuid.uuid4().hex
            await layer.send(channel, {"type": "health.ping", "token": token})
            message = await layer.receive(channel)
        except Exception as exc:
            raise ServiceUnavailable("Channel layer unreachable") from exc
        if message.get("token") != token:
            raise ServiceUnavailable("Channel layer returned the wrong message")


@dataclasses.dataclass
class BrokerCheck(HealthCheck):
    """Open a connection to the Celery broker (no worker needed)."""

    async def run(self) -> None:
        from config.celery import app

        if app.conf.task_always_eager:
            return

        def _connect() -> None:
            with app.connection_for_write() as conn:
                conn.ensure_connection(max_retries=1, timeout=2)

        try:
            await sync_to_async(_connect, thread_sensitive=False)()
        except Exception as exc:
            raise ServiceUnavailable("Broker unreachable") from exc


class ReadinessView(HealthCheckView):
    checks = (Database, Cache, ChannelLayerCheck, BrokerCheck)

    async def get(self, request, *args, **kwargs):
        with self.get_executor() as executor:
            results = await asyncio.gather(*(c.get_result(executor) for c in self.get_checks()))
        ok = not any(r.error for r in results)
        return JsonResponse(
            {
                "status": "ok" if ok else "unavailable",
                "checks": {
                    type(r.check).__name__: str(r.error) if r.error else "ok" for r in results
                },
            },
            status=200 if ok else 503,
        )


def liveness(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})
