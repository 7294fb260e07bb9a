"""Notifications: stored, pushed after commit, replayed after a reconnect, listed and marked read
over HTTP; nobody sees another user's."""

import pytest
from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from django.db import transaction

from core.models import Notification
from core.notifications import notify
from tests.conftest import ApiClient, token_for
from tests.core.utils import assert_error
from tests.core.ws import connect_and_auth, receive
from tests.factories import CustomerFactory


def _notify_committed(user_id: int, title: str, **kw) -> int:
    with transaction.atomic():
        notification = notify(user_id=user_id, kind="test", title=title, **kw)
    return notification.id


@pytest.mark.django_db(transaction=True)
async def test_reconnecting_socket_replays_exactly_what_it_missed(customer):
    token = await database_sync_to_async(token_for)(customer.user)
    other = await database_sync_to_async(CustomerFactory)()

    # online: the first notification arrives live
    comm = await connect_and_auth(token)
    first_id = await database_sync_to_async(_notify_committed)(customer.user_id, "first")
    live = await receive(comm)
    assert live["type"] == "notification"
    assert "replayed" not in live
    assert (live["notification"]["id"], live["notification"]["title"]) == (first_id, "first")
    await comm.disconnect()

    # offline: two more for us, one for someone else
    missed = [
        await database_sync_to_async(_notify_committed)(customer.user_id, title)
        for title in ("second", "third")
    ]
    await database_sync_to_async(_notify_committed)(other.user_id, "not yours")

    # back online, resuming after the last id seen
    comm = await connect_and_auth(token, after=live["notification"]["id"])
    replayed = [await receive(comm), await receive(comm)]
    assert await comm.receive_nothing(timeout=0.2)
    await comm.disconnect()

    assert [m["notification"]["id"] for m in replayed] == missed
    assert [m["notification"]["title"] for m in replayed] == ["second", "third"]
    assert all(m["type"] == "notification" and m["replayed"] is True for m in replayed)

    # the HTTP catch-up feed agrees
    page = await sync_to_async(ApiClient(token).get)("/api/v1/notifications", {"after": first_id})
    assert page.status_code == 200
    body = page.json()
    assert [n["id"] for n in body["items"]] == missed
    assert body["cursor"] == missed[-1]
    assert body["has_more"] is False
    assert body["unread_count"] == 3


@pytest.mark.django_db(transaction=True)
async def test_auth_without_after_replays_nothing(customer):
    token = await database_sync_to_async(token_for)(customer.user)
    await database_sync_to_async(_notify_committed)(customer.user_id, "old news")

    comm = await connect_and_auth(token)

    assert await comm.receive_nothing(timeout=0.2)
    await comm.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_rolled_back_notification_is_neither_stored_nor_pushed(customer):
    token = await database_sync_to_async(token_for)(customer.user)
    comm = await connect_and_auth(token)

    def notify_then_fail() -> None:
        with transaction.atomic():
            notify(user_id=customer.user_id, kind="test", title="never")
            raise RuntimeError("rollback")

    with pytest.raises(RuntimeError):
        await database_sync_to_async(notify_then_fail)()

    assert await comm.receive_nothing(timeout=0.2)
    assert await database_sync_to_async(Notification.objects.count)() == 0
    await comm.disconnect()


@pytest.mark.django_db
def test_notify_pushes_only_after_commit(customer, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        notification = notify(user_id=customer.user_id, kind="test", title="t")

    assert len(callbacks) == 1
    assert Notification.objects.get() == notification


@pytest.mark.django_db
def test_dedupe_key_stores_once(customer, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks:
        first = notify(user_id=customer.user_id, kind="k", title="t", dedupe_key="order:1:paid")
        second = notify(user_id=customer.user_id, kind="k", title="t", dedupe_key="order:1:paid")

    assert first is not None
    assert second is None
    assert Notification.objects.count() == 1
    assert len(callbacks) == 1


# --- HTTP feed ---------------------------------------------------------------------------
@pytest.fixture
def feed(customer):
    """Four notifications for ``customer`` and two for someone else, interleaved."""
    other = CustomerFactory()
    mine = []
    for i in range(4):
        mine.append(_notify_committed(customer.user_id, f"mine {i}"))
        if i % 2:
            _notify_committed(other.user_id, f"theirs {i}")
    return {"mine": mine, "other": other}


@pytest.mark.django_db
def test_feed_pages_with_a_cursor(shopper, feed):
    ids = feed["mine"]

    first = shopper.get("/api/v1/notifications", {"limit": 3}).json()
    second = shopper.get("/api/v1/notifications", {"after": first["cursor"], "limit": 3}).json()
    empty = shopper.get("/api/v1/notifications", {"after": second["cursor"]}).json()

    assert [n["id"] for n in first["items"]] == ids[:3]
    assert (first["cursor"], first["has_more"]) == (ids[2], True)
    assert [n["id"] for n in second["items"]] == ids[3:]
    assert (second["cursor"], second["has_more"]) == (ids[3], False)
    assert (empty["items"], empty["cursor"], empty["has_more"]) == ([], ids[3], False)
    assert first["items"][0] == {
        "id": ids[0],
        "kind": "test",
        "title": "mine 0",
        "body": "",
        "data": {},
        "created_at": first["items"][0]["created_at"],
        "read_at": None,
    }


@pytest.mark.django_db
def test_feed_never_shows_another_users_notifications(shopper, client_for, feed):
    mine = shopper.get("/api/v1/notifications").json()
    theirs = client_for(feed["other"].user).get("/api/v1/notifications").json()

    assert [n["id"] for n in mine["items"]] == feed["mine"]
    assert all(n["title"].startswith("theirs") for n in theirs["items"])
    assert len(theirs["items"]) == 2
    assert theirs["unread_count"] == 2


@pytest.mark.django_db
def test_mark_read_up_to_an_id(shopper, client_for, feed):
    ids = feed["mine"]

    response = shopper.post("/api/v1/notifications/read", json={"up_to": ids[1]})

    assert response.status_code == 200
    assert response.json() == {"marked": 2}
    page = shopper.get("/api/v1/notifications").json()
    assert page["unread_count"] == 2
    assert [n["read_at"] is not None for n in page["items"]] == [True, True, False, False]
    # everything of ours, and nothing of theirs, even with an id range covering theirs
    assert shopper.post("/api/v1/notifications/read", json={"up_to": 10**9}).json() == {"marked": 2}
    assert shopper.get("/api/v1/notifications").json()["unread_count"] == 0
    assert client_for(feed["other"].user).get("/api/v1/notifications").json()["unread_count"] == 2


@pytest.mark.django_db
def test_mark_read_by_ids_ignores_other_users_ids(shopper, feed):
    theirs = list(Notification.objects.filter(user=feed["other"].user).values_list("id", flat=True))

    response = shopper.post("/api/v1/notifications/read", json={"ids": [feed["mine"][0], *theirs]})

    assert response.json() == {"marked": 1}
    assert Notification.objects.filter(user=feed["other"].user, read_at__isnull=True).count() == 2


@pytest.mark.django_db
def test_mark_read_needs_ids_or_up_to(shopper):
    assert_error(shopper.post("/api/v1/notifications/read", json={}), 422, "nothing_to_mark")


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("params", "path"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": 201}, "limit"),
        ({"after": -1}, "after"),
    ],
)
def test_feed_rejects_bad_paging(shopper, params, path):
    error = assert_error(shopper.get("/api/v1/notifications", params), 422, "validation_error")
    assert [f["path"] for f in error["details"]["fields"]] == [path]


@pytest.mark.django_db
def test_feed_needs_a_token(anon):
    assert_error(anon.get("/api/v1/notifications"), 401, "not_authenticated")


@pytest.mark.django_db(transaction=True)
async def test_replay_beyond_the_limit_says_so_and_http_continues(customer, monkeypatch):
    monkeypatch.setattr("core.consumers.CATCH_UP_LIMIT", 2)
    token = await database_sync_to_async(token_for)(customer.user)
    ids = [
        await database_sync_to_async(_notify_committed)(customer.user_id, f"n{i}") for i in range(3)
    ]

    comm = await connect_and_auth(token, after=0)
    replayed = [await receive(comm), await receive(comm)]
    marker = await receive(comm)
    await comm.disconnect()

    assert [m["notification"]["id"] for m in replayed] == ids[:2]
    assert marker == {"type": "replay_truncated", "cursor": ids[1], "has_more": True}
    page = await sync_to_async(ApiClient(token).get)("/api/v1/notifications", {"after": ids[1]})
    assert [n["id"] for n in page.json()["items"]] == [ids[2]]
