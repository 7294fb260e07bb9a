"""A test-only URLconf: its own NinjaAPI, with the production error handlers, serving endpoints
that the real API does not have: an ``@idempotent`` POST that writes a row, one that raises a
domain conflict, and one that crashes. Use with ``@pytest.mark.urls("tests.core.idem_urls")``."""

from datetime import UTC, datetime

from django.http import HttpRequest
from django.urls import path
from ninja import Field, NinjaAPI, Schema
from ninja.responses import Status

from core.errors import Conflict
from core.http import bearer_auth, idempotent, install_error_handlers
from core.models import Announcement
from core.schemas import AnnouncementOut

api = NinjaAPI(title="test-only API", version="test", urls_namespace="tests-core-idem")
install_error_handlers(api)

SECRET_IN_CRASH = "db-password-hunter2"


class ItemIn(Schema):
    title: str = Field(..., min_length=1, max_length=200)
    body: str = ""


@api.post("/items", response={201: AnnouncementOut}, auth=bearer_auth, summary="Create a row")
@idempotent
def item_create(request: HttpRequest, payload: ItemIn):
    if Announcement.objects.filter(title=payload.title).exists():
        raise Conflict("An item with this title exists.", code="title_taken")
    created = Announcement.objects.create(
        title=payload.title, body=payload.body, send_at=datetime(2030, 1, 1, tzinfo=UTC)
    )
    return Status(201, AnnouncementOut.from_orm(created))


@api.post("/conflict", summary="Always a domain conflict")
def conflict(request: HttpRequest):
    raise Conflict(
        "The order is already paid.", code="illegal_transition", details={"state": "paid"}
    )


@api.get("/crash", summary="Always an unexpected exception")
def crash(request: HttpRequest):
    raise RuntimeError(f"connection to {SECRET_IN_CRASH}@db failed")


urlpatterns = [path("api/test/", api.urls)]
