"""ASGI entry point: WebSockets under ``/ws/`` (and, in the embedded default, HTTP too)."""

import os

from channels.routing import ProtocolTypeRouter, URLRouter
from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django_asgi_app = get_asgi_application()

from core.routing import origin_checked, websocket_urlpatterns  # noqa: E402  (needs apps loaded)

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": origin_checked(URLRouter(websocket_urlpatterns)),
    }
)
