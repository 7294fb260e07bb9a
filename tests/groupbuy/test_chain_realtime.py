"""The post topic ``post:<id>`` and what groupbuy says on the community topic
``community:<id>``, over the real ASGI app: who may follow them, and each change pushed after
commit with the topic's seq, which the snapshots (``GET /posts/{id}``, ``GET
/communities/{id}/feed``) name."""

from datetime import timedelta

import pytest
from channels.db import database_sync_to_async

from groupbuy.models import GroupCampaign
from groupbuy.services.chains import entry_cancel, post_mark_arrived, posts_close_due
from groupbuy.services.community import announcement_post
from tests.conftest import ApiClient, token_for
from tests.core.ws import connect_and_auth, receive
from tests.factories import SkuFactory
from tests.groupbuy.factories import campaign, open_group
from tests.groupbuy.factories_chains import (
    board,
    community_with_leader,
    member_of,
    publish,
    sign_up,
    unwrapped,
)
from tests.shop.factories_orders import QuickCustomerFactory, pay

pytestmark = pytest.mark.django_db(transaction=True)


async def _follow(token: str, topic: str):
    comm = await connect_and_auth(token)
    await comm.send_json_to({"type": "subscribe", "topic": topic})
    assert await receive(comm) == {"type": "subscribed", "topic": topic}
    return comm


async def _next_on(comm, topic: str) -> dict:
    """The next change on ``topic`` (the socket also gets its user's notifications; with no push
    window in tests, each ``post_updates`` message carries one change)."""
    while True:
        message = await receive(comm)
        if message.get("topic") == topic:
            [change] = unwrapped(message)
            return change


@database_sync_to_async
def _member(made, **fields):
    customer = member_of(made.community, **fields)
    return customer, token_for(customer.user)


async def test_a_member_follows_the_post_and_sees_each_entry_with_the_topics_seq():
    made = await database_sync_to_async(board)(max_entries=3)
    _, token = await _member(made)
    lan, _ = await _member(made, nickname="Lan")
    topic = f"post:{made.post.pk}"
    comm = await _follow(token, topic)

    _, order = await database_sync_to_async(sign_up)(made, lan, [(made.skus[0], 2)])
    added = await _next_on(comm, topic)
    assert (added["type"], added["live_entries"], added["max_entries"]) == (
        "post_entry_added",
        1,
        3,
    )
    assert (added["entry"]["seq"], added["entry"]["nickname"], added["entry"]["paid"]) == (
        1,
        "Lan",
        False,
    )
    assert added["entry"]["items"][0]["quantity"] == 2

    await database_sync_to_async(pay)(order)
    paid = await _next_on(comm, topic)
    assert (paid["type"], paid["seq"], paid["entry_seq"]) == (
        "post_entry_paid",
        added["seq"] + 1,
        1,
    )
    snapshot = await database_sync_to_async(
        lambda: ApiClient(token).get(f"/api/v1/posts/{made.post.pk}").json()
    )()
    assert (snapshot["topic"], snapshot["seq"]) == (topic, paid["seq"])
    assert snapshot["entries"][0]["paid"] is True

    await database_sync_to_async(posts_close_due)(now=made.post.deadline + timedelta(seconds=1))
    done = await _next_on(comm, topic)
    assert (done["type"], done["status"], done["live_entries"], done["seq"]) == (
        "post_closed",
        "closed",
        1,
        paid["seq"] + 1,
    )
    await comm.disconnect()


async def test_a_dropped_entry_is_pushed_with_the_places_left():
    made = await database_sync_to_async(board)(max_units=4)
    member, token = await _member(made)
    topic = f"post:{made.post.pk}"
    comm = await _follow(token, topic)
    await database_sync_to_async(sign_up)(made, member, [(made.skus[0], 3)])
    await _next_on(comm, topic)

    await database_sync_to_async(entry_cancel)(post_id=made.post.pk, customer=member)
    dropped = await _next_on(comm, topic)

    assert (dropped["type"], dropped["live_entries"], dropped["reason"]) == (
        "post_entry_dropped",
        0,
        "entry_cancelled",
    )
    assert dropped["items"] == [{"sku_id": made.skus[0].pk, "units_left": 4}]
    await comm.disconnect()


async def test_only_members_of_the_posts_community_follow_it():
    made = await database_sync_to_async(board)()
    stranger = await database_sync_to_async(lambda: token_for(QuickCustomerFactory().user))()
    _, member = await _member(made)
    for token, topic in (
        (stranger, f"post:{made.post.pk}"),
        (member, "post:999999999"),
        (stranger, f"community:{made.community.pk}"),
    ):
        comm = await connect_and_auth(token)
        await comm.send_json_to({"type": "subscribe", "topic": topic})
        assert (await receive(comm))["code"] == "topic_forbidden"
        await comm.disconnect()
    await _follow(member, f"post:{made.post.pk}")


async def test_the_community_topic_carries_posts_announcements_pickup_and_groups():
    community, leader, point = await database_sync_to_async(community_with_leader)()
    token = await database_sync_to_async(lambda: token_for(member_of(community).user))()
    topic = f"community:{community.pk}"
    comm = await _follow(token, topic)
    sku = await database_sync_to_async(SkuFactory)()

    post = await database_sync_to_async(publish)(community, leader, point, [(sku, 990, None)])
    published = await _next_on(comm, topic)
    assert (published["type"], published["post_id"], published["items_count"]) == (
        "post_published",
        post.pk,
        1,
    )

    await database_sync_to_async(announcement_post)(
        author=leader, community_id=community.pk, body="Truck at 5"
    )
    said = await _next_on(comm, topic)
    assert (said["type"], said["body"], said["seq"]) == (
        "announcement",
        "Truck at 5",
        published["seq"] + 1,
    )

    made = await database_sync_to_async(campaign)(
        size=2, join_mode=GroupCampaign.JoinMode.COMMUNITY
    )
    group, _ = await database_sync_to_async(open_group)(made, point=point)
    opened = await _next_on(comm, topic)
    assert (opened["type"], opened["group_id"], opened["seats_left"]) == (
        "group_opened",
        group.pk,
        1,
    )

    await database_sync_to_async(posts_close_due)(now=post.deadline + timedelta(seconds=1))
    await database_sync_to_async(post_mark_arrived)(post_id=post.pk, viewer_user=leader.user)
    ready = await _next_on(comm, topic)
    assert (ready["type"], ready["post_id"], ready["pickup_point"]["id"]) == (
        "pickup_ready",
        post.pk,
        point.pk,
    )
    feed = await database_sync_to_async(
        lambda: ApiClient(token).get(f"/api/v1/communities/{community.pk}/feed").json()
    )()
    assert (feed["topic"], feed["seq"]) == (topic, ready["seq"])
    assert [g["id"] for g in feed["groups"]] == [group.pk]
    await comm.disconnect()


async def test_a_burst_of_sign_ups_reaches_the_socket_coalesced_in_order(settings):
    settings.POST_PUSH_WINDOW_SECONDS = 1.0
    made = await database_sync_to_async(board)()
    _, token = await _member(made)
    members = [(await _member(made))[0] for _ in range(6)]
    topic = f"post:{made.post.pk}"
    comm = await _follow(token, topic)

    for member in members:  # six sign-ups well inside one window
        await database_sync_to_async(sign_up)(made, member, [(made.skus[0], 1)])
    messages = [await _message_on(comm, topic), await _message_on(comm, topic)]

    # the first at once, alone; the other five together when the window ends
    assert [m["type"] for m in messages] == ["post_updates", "post_updates"]
    assert [[c["entry"]["seq"] for c in m["items"]] for m in messages] == [[1], [2, 3, 4, 5, 6]]
    assert messages[1]["seq"] == messages[0]["seq"] + 1
    assert messages[1]["items"][-1]["live_entries"] == 6
    await comm.disconnect()


async def _message_on(comm, topic: str) -> dict:
    while True:
        message = await receive(comm)
        if message.get("topic") == topic:
            return message
