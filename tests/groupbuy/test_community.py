"""A community's announcements (leader only, moderation by staff), the "group opened nearby"
push, and the community feed's snapshot (on PostgreSQL)."""

from datetime import timedelta

import pytest
from django.utils import timezone

from core import side_effects
from core.errors import ApplicationError
from groupbuy.models import ChainPost, CommunityAnnouncement, GroupCampaign
from groupbuy.selectors.chains import FEED_LIMIT, announcements_of_community, community_feed
from groupbuy.services.chains import posts_close_due
from groupbuy.services.community import announcement_hide, announcement_post
from tests.db_snapshot import db_snapshot
from tests.factories import AddressFactory, StaffFactory
from tests.groupbuy.factories import campaign, join, open_group
from tests.groupbuy.factories_chains import Pushes, board, community_with_leader, member_of
from tests.shop.factories_orders import QuickCustomerFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def pushed(monkeypatch) -> Pushes:
    pushes = Pushes()
    monkeypatch.setattr(side_effects, "push_now", pushes.record)
    return pushes


def refused_without_a_write(call) -> ApplicationError:
    before = db_snapshot()
    with pytest.raises(ApplicationError) as caught:
        call()
    assert db_snapshot() == before
    return caught.value


# --- announcements --------------------------------------------------------------------------------
def test_the_leader_posts_an_announcement_stored_and_pushed_to_the_community(committed, pushed):
    community, leader, _ = community_with_leader(nickname="Ming")

    announcement = committed(
        announcement_post, author=leader, community_id=community.pk, body="  Truck at 5 pm.  "
    )

    stored = CommunityAnnouncement.objects.get()
    assert (stored.pk, stored.community, stored.author, stored.body, stored.status) == (
        announcement.pk,
        community,
        leader,
        "Truck at 5 pm.",
        "published",
    )
    [message] = pushed.to(f"community:{community.pk}")
    assert message == {
        "type": "announcement",
        "community_id": community.pk,
        "announcement_id": stored.pk,
        "body": "Truck at 5 pm.",
        "author_nickname": "Ming",
        "author_avatar_url": "",
        "created_at": stored.created_at.isoformat(),
        "topic": f"community:{community.pk}",
        "seq": message["seq"],
    }


def test_only_the_communitys_leader_posts_announcements_there():
    community, _, _ = community_with_leader()
    member = member_of(community)
    _, other_leader, _ = community_with_leader()

    for author in (member, other_leader):
        error = refused_without_a_write(
            lambda author=author: announcement_post(
                author=author, community_id=community.pk, body="Hello"
            )
        )
        assert (error.code, error.status) == ("not_community_leader", 403)
    error = refused_without_a_write(
        lambda: announcement_post(author=member, community_id=community.pk + 1000, body="Hi")
    )
    assert (error.code, error.status) == ("community_not_found", 404)


@pytest.mark.parametrize("body", ["", "   \n ", "x" * 1001])
def test_an_announcement_has_1_to_1000_characters_once_stripped(body):
    community, leader, _ = community_with_leader()

    error = refused_without_a_write(
        lambda: announcement_post(author=leader, community_id=community.pk, body=body)
    )

    assert (error.code, error.status, error.details["field"]) == (
        "announcement_invalid",
        422,
        "body",
    )


def test_1000_characters_are_allowed():
    community, leader, _ = community_with_leader()

    made = announcement_post(author=leader, community_id=community.pk, body=" " + "x" * 1000)

    assert len(made.body) == 1000


def test_staff_hide_an_announcement_once_and_it_leaves_every_list(committed, pushed):
    community, leader, _ = community_with_leader()
    kept = announcement_post(author=leader, community_id=community.pk, body="Truck at 5")
    spam = announcement_post(author=leader, community_id=community.pk, body="Buy elsewhere")
    staff = StaffFactory()

    hidden = committed(
        announcement_hide, announcement_id=spam.pk, staff=staff, reason="  Advertising "
    )

    spam.refresh_from_db()
    assert (spam.status, spam.hidden_by, spam.hidden_reason) == ("hidden", staff, "Advertising")
    assert spam.hidden_at is not None and hidden.pk == spam.pk
    assert [m["type"] for m in pushed.to(f"community:{community.pk}")] == ["announcement_hidden"]
    assert pushed.to(f"community:{community.pk}")[0]["announcement_id"] == spam.pk
    assert list(announcements_of_community(community=community)) == [kept]
    assert community_feed(community=community, now=timezone.now()).announcements == [kept]
    other = StaffFactory()
    before = db_snapshot()

    again = committed(announcement_hide, announcement_id=spam.pk, staff=other, reason="x")

    assert again.hidden_by == staff
    assert db_snapshot() == before
    assert len(pushed.to(f"community:{community.pk}")) == 1


def test_hiding_needs_an_existing_announcement_and_a_reason():
    community, leader, _ = community_with_leader()
    made = announcement_post(author=leader, community_id=community.pk, body="Hi")
    staff = StaffFactory()

    missing = refused_without_a_write(
        lambda: announcement_hide(announcement_id=made.pk + 1000, staff=staff, reason="spam")
    )
    for reason in ("  ", "x" * 201):
        blank = refused_without_a_write(
            lambda reason=reason: announcement_hide(
                announcement_id=made.pk, staff=staff, reason=reason
            )
        )
        assert (blank.code, blank.details["field"]) == ("announcement_invalid", "reason")
    assert (missing.code, missing.status) == ("announcement_not_found", 404)


# --- a group opened nearby ------------------------------------------------------------------------
def test_a_group_opened_in_a_community_is_pushed_to_it(committed, pushed):
    made = campaign(size=3, join_mode=GroupCampaign.JoinMode.COMMUNITY)
    community, _, point = community_with_leader()
    leader = QuickCustomerFactory(nickname="Hua")

    group, _ = committed(open_group, made, leader, point=point)

    [message] = pushed.to(f"community:{community.pk}")
    assert message == {
        "type": "group_opened",
        "community_id": community.pk,
        "group_id": group.pk,
        "campaign_id": made.pk,
        "campaign_title": made.title,
        "size": 3,
        "seats_left": 2,
        "expires_at": group.expires_at.isoformat(),
        "leader_nickname": "Hua",
        "topic": f"community:{community.pk}",
        "seq": message["seq"],
    }
    committed(join, group, point=point)
    assert len(pushed.to(f"community:{community.pk}")) == 1  # joining opens nothing


def test_a_share_link_only_group_or_one_outside_a_community_is_not_pushed(committed, pushed):
    _, _, point = community_with_leader()
    leader = QuickCustomerFactory()

    committed(open_group, campaign(size=3), point=point)  # join mode share_token
    committed(
        open_group,
        campaign(size=3, join_mode=GroupCampaign.JoinMode.COMMUNITY),
        leader,
        delivery_mode="courier",
        address_id=AddressFactory(customer=leader).pk,
    )

    assert [group for group, _ in pushed.sent if group.startswith("topic.community.")] == []


# --- the feed -------------------------------------------------------------------------------------
def test_the_feed_lists_announcements_open_posts_and_joinable_groups_of_the_community():
    made = board(deadline_in=timedelta(hours=5))
    community, leader, point = made.community, made.leader, made.point
    soon = board(deadline_in=timedelta(hours=1))
    ChainPost.objects.filter(pk=soon.post.pk).update(community=community, pickup_point=point)
    closed = board(deadline_in=timedelta(minutes=2))
    ChainPost.objects.filter(pk=closed.post.pk).update(community=community, pickup_point=point)
    posts_close_due(now=timezone.now() + timedelta(minutes=3))
    for n in range(FEED_LIMIT + 2):
        announcement_post(author=leader, community_id=community.pk, body=f"note {n}")
    mode = GroupCampaign.JoinMode.COMMUNITY
    joinable, _ = open_group(campaign(size=3, join_mode=mode), point=point)
    full, _ = open_group(campaign(size=2, join_mode=mode), point=point)
    join(full, point=point)
    open_group(campaign(size=3), point=point)  # share link only
    open_group(campaign(size=3, join_mode=mode))  # another community

    feed = community_feed(community=community, now=timezone.now())

    assert (feed.community_id, feed.topic, feed.seq) == (
        community.pk,
        f"community:{community.pk}",
        0,
    )
    assert [a.body for a in feed.announcements] == [
        f"note {n}" for n in reversed(range(2, FEED_LIMIT + 2))
    ]
    assert [p.pk for p in feed.posts] == [soon.post.pk, made.post.pk]
    assert [(g.id, g.seats_left, g.size) for g in feed.groups] == [(joinable.pk, 2, 3)]
    assert feed.groups[0].campaign_title == joinable.campaign.title
