"""Staff announcements: the API (create, paginated list, permissions) and the periodic job that
delivers due ones as notifications to connected sockets, once."""

from datetime import timedelta

import pytest
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings as django_settings
from django.contrib.auth.models import Permission
from django.utils import timezone

from core import services
from core.models import Announcement, Notification
from core.tasks import announcements_send_due
from tests.conftest import token_for
from tests.core.utils import assert_error
from tests.core.ws import connect_and_auth, receive
from tests.factories import StaffFactory, UserFactory

URL = "/api/v1/staff/announcements"


def _run_sweep() -> int:
    return announcements_send_due.delay().get(disable_sync_subtasks=False)


def _due(**kw) -> Announcement:
    kw.setdefault("title", "Market day")
    kw.setdefault("body", "Fresh vegetables at 9:00")
    return services.announcement_create(send_at=timezone.now() - timedelta(seconds=1), **kw)


# --- periodic job -> socket ---------------------------------------------------------------
@pytest.mark.django_db(transaction=True)
async def test_due_announcement_reaches_a_connected_socket_once(customer):
    announcement = await database_sync_to_async(_due)()
    comm = await connect_and_auth(await database_sync_to_async(token_for)(customer.user))

    assert await database_sync_to_async(_run_sweep)() == 1

    message = await receive(comm)
    assert message["type"] == "notification"
    notification = message["notification"]
    assert notification["kind"] == "announcement"
    assert (notification["title"], notification["body"]) == (
        "Market day",
        "Fresh vegetables at 9:00",
    )
    assert notification["data"] == {"announcement_id": announcement.id, "is_advertisement": False}

    assert await database_sync_to_async(_run_sweep)() == 0
    assert await comm.receive_nothing(timeout=0.3)
    await comm.disconnect()
    assert (
        await database_sync_to_async(Notification.objects.filter(user=customer.user).count)() == 1
    )


@pytest.mark.django_db(transaction=True)
async def test_advertisement_is_labelled(customer):
    await database_sync_to_async(_due)(title="Half-price durian", is_advertisement=True)
    comm = await connect_and_auth(await database_sync_to_async(token_for)(customer.user))

    await database_sync_to_async(_run_sweep)()

    notification = (await receive(comm))["notification"]
    assert notification["title"] == "[Ad] Half-price durian"
    assert notification["data"]["is_advertisement"] is True
    await comm.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_staff_audience_reaches_only_staff(customer):
    operator = await database_sync_to_async(StaffFactory)()
    await database_sync_to_async(_due)(title="Stocktake tonight", audience="staff")
    shopper_socket = await connect_and_auth(await database_sync_to_async(token_for)(customer.user))
    staff_socket = await connect_and_auth(await database_sync_to_async(token_for)(operator))

    assert await database_sync_to_async(_run_sweep)() == 1

    assert (await receive(staff_socket))["notification"]["title"] == "Stocktake tonight"
    assert await shopper_socket.receive_nothing(timeout=0.3)
    await shopper_socket.disconnect()
    await staff_socket.disconnect()
    recipients = await database_sync_to_async(
        lambda: list(Notification.objects.values_list("user_id", flat=True))
    )()
    assert recipients == [operator.id]


@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
async def test_due_announcement_reaches_a_socket_over_the_redis_channel_layer(customer):
    assert type(get_channel_layer()).__name__ == "RedisChannelLayer"
    assert (
        django_settings.CHANNEL_LAYERS["default"]["CONFIG"]["hosts"][0]["max_connections"] == 1000
    )
    announcement = await database_sync_to_async(_due)()
    comm = await connect_and_auth(await database_sync_to_async(token_for)(customer.user))

    assert await database_sync_to_async(_run_sweep)() == 1

    notification = (await receive(comm))["notification"]
    assert notification["data"]["announcement_id"] == announcement.id
    assert await database_sync_to_async(_run_sweep)() == 0
    assert await comm.receive_nothing(timeout=0.3)
    await comm.disconnect()


@pytest.mark.django_db
def test_sweep_skips_future_sent_and_inactive(customer, time_machine):
    now = timezone.now()
    time_machine.move_to(now, tick=False)
    inactive = UserFactory(is_active=False)
    due = _due(title="due")
    future = services.announcement_create(
        title="later", body="", send_at=now + timedelta(minutes=5)
    )

    assert _run_sweep() == 1

    due.refresh_from_db()
    assert due.sent_at == now
    assert due.recipients_count == 1
    assert list(Notification.objects.values_list("user_id", flat=True)) == [customer.user_id]
    assert not Notification.objects.filter(user=inactive).exists()
    future.refresh_from_db()
    assert future.sent_at is None

    time_machine.move_to(now + timedelta(minutes=5), tick=False)
    assert _run_sweep() == 1
    assert Notification.objects.filter(user=customer.user).count() == 2


@pytest.mark.django_db
def test_sending_one_announcement_twice_notifies_once(customer):
    announcement = _due()

    assert services.announcement_send(announcement_id=announcement.id) == 1
    assert services.announcement_send(announcement_id=announcement.id) == 0
    assert Notification.objects.count() == 1


# --- staff API ---------------------------------------------------------------------------
@pytest.mark.django_db
def test_operator_schedules_an_announcement(operator, staff, time_machine):
    now = timezone.now()
    time_machine.move_to(now, tick=False)

    response = operator.post(
        URL, json={"title": "Sale", "body": "Friday", "audience": "staff", "is_advertisement": True}
    )

    assert response.status_code == 201
    body = response.json()
    announcement = Announcement.objects.get()
    assert body == {
        "id": announcement.id,
        "title": "Sale",
        "body": "Friday",
        "audience": "staff",
        "is_advertisement": True,
        "send_at": body["send_at"],
        "sent_at": None,
        "recipients_count": 0,
    }
    assert announcement.send_at == now
    assert announcement.created_by == staff


@pytest.mark.django_db
def test_created_announcement_is_delivered_by_the_sweep(operator, customer):
    operator.post(URL, json={"title": "Welcome"})

    assert _run_sweep() == 2  # the shopper and the operator
    assert Notification.objects.get(user=customer.user).title == "Welcome"


@pytest.mark.django_db
def test_list_is_paginated_newest_first(operator):
    now = timezone.now()
    for i in range(5):
        services.announcement_create(title=f"a{i}", body="", send_at=now + timedelta(minutes=i))

    first = operator.get(URL, {"limit": 2}).json()
    last = operator.get(URL, {"limit": 2, "offset": 4}).json()
    default = operator.get(URL).json()

    assert (first["count"], first["limit"], first["offset"]) == (5, 2, 0)
    assert [a["title"] for a in first["items"]] == ["a4", "a3"]
    assert (last["count"], last["limit"], last["offset"]) == (5, 2, 4)
    assert [a["title"] for a in last["items"]] == ["a0"]
    assert set(default) == {"items", "count", "limit", "offset"}
    assert (default["limit"], default["offset"], len(default["items"])) == (20, 0, 5)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("params", "field"),
    [({"limit": 101}, "limit"), ({"limit": 0}, "limit"), ({"offset": -1}, "offset")],
)
def test_pagination_rejects_out_of_range_values(operator, params, field):
    response = operator.get(URL, params)

    error = assert_error(response, 422, "validation_error")
    assert [f["path"] for f in error["details"]["fields"]] == [field]


@pytest.mark.django_db
def test_pagination_accepts_the_maximum_limit(operator):
    assert operator.get(URL, {"limit": 100}).json()["limit"] == 100


@pytest.mark.django_db
def test_permissions_are_checked_per_action(client_for):
    viewer = StaffFactory(is_superuser=False)
    viewer.user_permissions.add(Permission.objects.get(codename="view_announcement"))
    client = client_for(viewer)

    assert client.get(URL).status_code == 200
    error = assert_error(client.post(URL, json={"title": "x"}), 403, "permission_denied")
    assert error["details"] == {"permission": "core.add_announcement"}
    assert Announcement.objects.count() == 0


@pytest.mark.django_db
def test_shopper_cannot_list_announcements(shopper):
    assert_error(shopper.get(URL), 403, "staff_only")


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "path"),
    [
        ({"title": ""}, "title"),
        ({"title": "x" * 201}, "title"),
        ({"title": "ok", "audience": "everyone"}, "audience"),
        ({"title": "ok", "send_at": "tomorrow"}, "send_at"),
    ],
)
def test_create_rejects_invalid_fields(operator, body, path):
    error = assert_error(operator.post(URL, json=body), 422, "validation_error")

    assert [f["path"] for f in error["details"]["fields"]] == [path]
    assert Announcement.objects.count() == 0
