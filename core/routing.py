import logging

from channels.security.websocket import OriginValidator
from django.conf import settings
from django.urls import path

from core.consumers import StreamConsumer

logger = logging.getLogger(__name__)

websocket_urlpatterns = [path("ws/stream/", StreamConsumer.as_asgi())]


class LoggingOriginValidator(OriginValidator):
    """Channels' origin check, with two changes: a handshake without an Origin header (WeChat
    mini-programs, native apps: clients a hostile web page cannot impersonate) proceeds to token
    auth, and every refusal is logged (Channels refuses silently, channels#2062)."""

    def valid_origin(self, parsed_origin) -> bool:
        if parsed_origin is None:
            return True
        ok = self.validate_origin(parsed_origin)
        if not ok:
            logger.warning("websocket refused: origin %s not allowed", parsed_origin.geturl())
        return ok


def origin_checked(application):
    return LoggingOriginValidator(application, settings.WS_ALLOWED_ORIGINS)
