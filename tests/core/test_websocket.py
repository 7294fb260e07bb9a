"""/ws/stream/: origin check, token auth (first message or query string), topics, ping."""

import pytest
from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async

from core.models import AuthSession
from core.realtime import topic_group, user_group
from core.side_effects import push_now
from core.tokens import session_revoke
from shop.models import CommunityMembership
from tests.conftest import ApiClient, token_for
from tests.core.ws import (
    STREAM,
    assert_closed,
    communicator,
    connect_and_auth,
    receive,
)
from tests.factories import CommunityFactory, CustomerFactory

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def token(customer) -> str:
    return token_for(customer.user)


async def test_message_before_auth_is_refused_and_closed():
    comm = communicator()
    connected, _ = await comm.connect()
    assert connected

    await comm.send_json_to({"type": "ping"})

    error = await receive(comm)
    assert (error["type"], error["code"]) == ("error", "not_authenticated")
    await assert_closed(comm, 4401)


async def test_socket_that_never_authenticates_is_closed(settings):
    settings.WS_AUTH_TIMEOUT_SECONDS = 0.1
    comm = communicator()
    connected, _ = await comm.connect()
    assert connected

    error = await receive(comm)

    assert (error["type"], error["code"]) == ("error", "auth_timeout")
    await assert_closed(comm, 4401)


async def test_authenticated_socket_is_not_closed_by_the_auth_timer(settings, token):
    settings.WS_AUTH_TIMEOUT_SECONDS = 0.1
    comm = await connect_and_auth(token)

    assert await comm.receive_nothing(timeout=0.3)
    await comm.send_json_to({"type": "ping"})
    assert await receive(comm) == {"type": "pong"}
    await comm.disconnect()


async def test_foreign_origin_is_refused_and_logged(caplog):
    comm = communicator(origin=b"http://evil.example")

    connected, _ = await comm.connect()

    assert connected is False
    assert "origin http://evil.example not allowed" in caplog.text


async def test_missing_origin_may_authenticate(token, customer):
    comm = communicator(origin=None)
    connected, _ = await comm.connect()
    assert connected

    await comm.send_json_to({"type": "auth", "token": token})

    assert await receive(comm) == {"type": "ready", "user_id": customer.user_id}
    await comm.disconnect()


async def test_token_in_first_message_authenticates(token, customer):
    comm = communicator()
    await comm.connect()

    await comm.send_json_to({"type": "auth", "token": token})

    assert await receive(comm) == {"type": "ready", "user_id": customer.user_id}
    await comm.disconnect()


async def test_token_in_query_string_authenticates(token, customer):
    comm = communicator(f"{STREAM}?token={token}")
    connected, _ = await comm.connect()
    assert connected

    assert await receive(comm) == {"type": "ready", "user_id": customer.user_id}
    await comm.disconnect()


@pytest.mark.parametrize("how", ["message", "query"])
async def test_revoked_token_is_refused_and_closed(token, how):
    await database_sync_to_async(lambda: session_revoke(session_id=AuthSession.objects.get().id))()
    if how == "query":
        comm = communicator(f"{STREAM}?token={token}")
        await comm.connect()
    else:
        comm = communicator()
        await comm.connect()
        await comm.send_json_to({"type": "auth", "token": token})

    error = await receive(comm)

    assert (error["type"], error["code"]) == ("error", "token_revoked")
    await assert_closed(comm, 4401)


async def test_garbage_token_is_refused_and_closed():
    comm = communicator()
    await comm.connect()

    await comm.send_json_to({"type": "auth", "token": "garbage"})

    assert (await receive(comm))["code"] == "token_invalid"
    await assert_closed(comm, 4401)


async def test_ping_pong_and_unknown_messages(token):
    comm = await connect_and_auth(token)

    await comm.send_json_to({"type": "ping"})
    assert await receive(comm) == {"type": "pong"}
    await comm.send_json_to({"type": "dance"})
    assert (await receive(comm))["code"] == "unknown_message"
    await comm.send_json_to([1, 2])
    assert (await receive(comm))["code"] == "bad_message"
    await comm.send_to(text_data="{not json")
    assert (await receive(comm))["code"] == "bad_message"
    await comm.disconnect()


@database_sync_to_async
def _community_with_member(customer) -> int:
    community = CommunityFactory()
    CommunityMembership.objects.create(community=community, customer=customer)
    return community.id


async def test_member_subscribes_to_its_community_and_receives_its_pushes(token, customer):
    community_id = await _community_with_member(customer)
    topic = f"community:{community_id}"
    comm = await connect_and_auth(token)

    await comm.send_json_to({"type": "subscribe", "topic": topic})
    assert await receive(comm) == {"type": "subscribed", "topic": topic}

    delivered = await sync_to_async(push_now)(topic_group(topic), {"type": "chain", "n": 1})
    assert delivered is True
    assert await receive(comm) == {"type": "chain", "n": 1}

    await comm.send_json_to({"type": "unsubscribe", "topic": topic})
    assert await receive(comm) == {"type": "unsubscribed", "topic": topic}
    await sync_to_async(push_now)(topic_group(topic), {"type": "chain", "n": 2})
    assert await comm.receive_nothing(timeout=0.2)
    await comm.disconnect()


@pytest.mark.parametrize(
    "topic",
    ["community:{other}", "x", "community:", "community:abc", "nosuchkind:1", "community:-1"],
)
async def test_forbidden_or_junk_topics_are_refused(token, customer, topic):
    other_id = await database_sync_to_async(lambda: CommunityFactory().id)()
    await _community_with_member(customer)
    topic = topic.format(other=other_id)
    comm = await connect_and_auth(token)

    await comm.send_json_to({"type": "subscribe", "topic": topic})

    error = await receive(comm)
    assert (error["type"], error["code"], error["topic"]) == ("error", "topic_forbidden", topic)
    await sync_to_async(push_now)(topic_group(f"community:{other_id}"), {"type": "leak"})
    assert await comm.receive_nothing(timeout=0.2)
    await comm.disconnect()


async def test_user_pushes_reach_only_that_users_sockets(token, customer):
    other = await database_sync_to_async(CustomerFactory)()
    other_token = await database_sync_to_async(token_for)(other.user)
    mine, theirs = await connect_and_auth(token), await connect_and_auth(other_token)

    await sync_to_async(push_now)(user_group(customer.user_id), {"type": "hello"})

    assert await receive(mine) == {"type": "hello"}
    assert await theirs.receive_nothing(timeout=0.2)
    await mine.disconnect()
    await theirs.disconnect()


async def test_logout_closes_the_sessions_open_sockets(customer):
    from core.tokens import session_start

    pair = await database_sync_to_async(session_start)(user=customer.user)
    other_session = await database_sync_to_async(token_for)(customer.user)
    comm = await connect_and_auth(pair.access_token)
    other = await connect_and_auth(other_session)

    response = await sync_to_async(ApiClient(pair.access_token).post)("/api/v1/auth/logout")
    assert response.status_code == 204

    error = await receive(comm)
    assert (error["type"], error["code"]) == ("error", "token_revoked")
    await assert_closed(comm, 4401)
    # another login of the same user is not affected
    assert await other.receive_nothing(timeout=0.2)
    await other.send_json_to({"type": "ping"})
    assert (await receive(other))["type"] == "pong"
    await other.disconnect()
