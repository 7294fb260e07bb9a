"""What groupbuy announces to a community: its leader's announcements, and the community feed's
realtime messages on the shop's ``community:<id>`` topic (authorised in shop/realtime.py for the
community's members and operators; ``GET /communities/{id}/feed`` is its snapshot).

Messages (each with the topic's ``seq``, pushed after the commit of the change):
``announcement`` (id, body, author's nickname and avatar, created_at), ``announcement_hidden``
(id), ``post_published`` and ``pickup_ready`` (groupbuy/services/chains.py), ``group_opened``
(a group-buy group opened in the community: group_id, campaign_id, campaign_title, size,
seats_left, expires_at, leader_nickname).

Rules chosen where the brief was silent:
- Only the community's leader posts announcements (403 ``not_community_leader``); the body is
  stripped and must keep 1..1000 characters (422 ``announcement_invalid``, ``details.field``).
  The API limits how often one user posts (``ANNOUNCEMENT_RATE``); the service does not.
- Staff hide an announcement (moderation) with a reason of 1..200 characters: it leaves every
  feed and list at once (``announcement_hidden`` tells the clients holding it). Hiding a hidden
  one changes nothing; hidden is final (there is no un-hide).
- ``group_opened`` is pushed only for campaigns in join mode ``community``, the groups a
  neighbour may join by id from the feed: in mode ``share_token`` a group is joined through its
  share link only, so announcing it to the community would offer what cannot be taken. The feed
  lists the same groups. Nothing is conditional on sharing.
"""

from typing import Any

from django.db import transaction
from django.utils import timezone

from core.errors import InvalidInput, NotFound, PermissionDenied
from core.models import User
from core.side_effects import topic_push_on_commit
from groupbuy import locks
from groupbuy.error_codes import ChainErrorCode
from groupbuy.models import CommunityAnnouncement, Group, GroupCampaign
from groupbuy.realtime import community_topic
from shop.error_codes import CommunityErrorCode
from shop.models import Community, Customer

BODY_MAX = 1000
REASON_MAX = 200


def push_to_community(community_id: int, kind: str, **fields: Any) -> None:
    """``kind`` to ``community:<id>`` once the current transaction commits."""
    topic_push_on_commit(
        community_topic(community_id), {"type": kind, "community_id": community_id, **fields}
    )


def _invalid(field: str, reason: str) -> InvalidInput:
    return InvalidInput(
        f"Invalid announcement: {reason}.",
        code=ChainErrorCode.ANNOUNCEMENT_INVALID,
        details={"field": field, "reason": reason},
    )


def announcement_post(*, author: Customer, community_id: int, body: str) -> CommunityAnnouncement:
    """The community's leader posts ``body`` to their community: stored and pushed
    (``announcement``). 404 ``community_not_found``; 403 ``not_community_leader``; 422
    ``announcement_invalid``."""
    community = Community.objects.filter(pk=community_id).first()
    if community is None:
        raise NotFound(
            "This community does not exist.", code=CommunityErrorCode.COMMUNITY_NOT_FOUND
        )
    if community.leader_id != author.pk:
        raise PermissionDenied(
            "Only the community's leader may post announcements here.",
            code=ChainErrorCode.NOT_COMMUNITY_LEADER,
            details={"community_id": community.pk},
        )
    body = body.strip()
    if not 1 <= len(body) <= BODY_MAX:
        raise _invalid("body", f"1 to {BODY_MAX} characters")
    with transaction.atomic():
        announcement = CommunityAnnouncement.objects.create(
            community=community, author=author, body=body
        )
        push_to_community(
            community.pk,
            "announcement",
            announcement_id=announcement.pk,
            body=announcement.body,
            author_nickname=author.nickname,
            author_avatar_url=author.avatar_url,
            created_at=announcement.created_at.isoformat(),
        )
    return announcement


def announcement_hide(*, announcement_id: int, staff: User, reason: str) -> CommunityAnnouncement:
    """Moderation: an operator hides an announcement (``hidden_by``, ``hidden_at``,
    ``hidden_reason``) and it leaves every feed (``announcement_hidden``). Idempotent: a hidden
    one is returned as it is. 404 ``announcement_not_found``; 422 ``announcement_invalid`` (the
    reason, 1..200 characters). The caller authorises ``staff``."""
    reason = reason.strip()
    if not 1 <= len(reason) <= REASON_MAX:
        raise _invalid("reason", f"1 to {REASON_MAX} characters")
    with transaction.atomic():
        announcement = locks.lock_announcement(announcement_id)
        if announcement is None:
            raise NotFound("Announcement not found.", code=ChainErrorCode.ANNOUNCEMENT_NOT_FOUND)
        if announcement.status == CommunityAnnouncement.Status.HIDDEN:
            return announcement
        announcement.status = CommunityAnnouncement.Status.HIDDEN
        announcement.hidden_by = staff
        announcement.hidden_at = timezone.now()
        announcement.hidden_reason = reason
        announcement.save(update_fields=["status", "hidden_by", "hidden_at", "hidden_reason"])
        push_to_community(
            announcement.community_id, "announcement_hidden", announcement_id=announcement.pk
        )
        return announcement


def push_group_opened(group: Group) -> None:
    """A group-buy group was just opened in its community (called inside the opening's
    transaction, groupbuy/services/groups.py): ``group_opened`` to the community's topic after
    commit, for campaigns in join mode ``community`` only (module docstring)."""
    campaign = group.campaign
    if group.community_id is None or campaign.join_mode != GroupCampaign.JoinMode.COMMUNITY:
        return
    push_to_community(
        group.community_id,
        "group_opened",
        group_id=group.pk,
        campaign_id=campaign.pk,
        campaign_title=campaign.title,
        size=group.size,
        seats_left=max(0, group.size - group.held_seats - group.paid_seats),
        expires_at=group.expires_at.isoformat(),
        leader_nickname=group.leader.nickname,
    )
