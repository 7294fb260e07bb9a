"""Reads for group-buy: the public campaign list and one campaign (with the open groups of the
viewer's community), a group's detail for its share page, and a customer's groups. Nothing here
writes or locks.

Derived fields, from the group's row and the clock:
- ``seats_left``: ``size - held_seats - paid_seats`` while the group is open and not past its
  expiry, else 0 (no seat can be taken).
- ``seconds_left``: whole seconds until ``expires_at``, rounded up, while the group is open; 0
  once it expired or finished.
"""

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import F, Prefetch, Q, QuerySet

from core.errors import NotFound
from core.realtime import topic_last_seq
from groupbuy.error_codes import GroupBuyErrorCode
from groupbuy.models import Group, GroupCampaign, GroupCampaignSku, GroupSeat
from groupbuy.realtime import group_topic
from shop.models import Customer

OPEN_GROUPS_LIMIT = 20
JOINABLE_FOR_AT_LEAST = timedelta(seconds=1)  # the service refuses a seat with less time to pay


# --- derived fields -------------------------------------------------------------------------------
def group_is_live(group: Group, now: datetime) -> bool:
    return group.status == Group.Status.OPEN and group.expires_at > now


def group_seats_left(group: Group, now: datetime) -> int:
    if not group_is_live(group, now):
        return 0
    return max(0, group.size - group.held_seats - group.paid_seats)


def group_seconds_left(group: Group, now: datetime) -> int:
    if group.status != Group.Status.OPEN:
        return 0
    return max(0, math.ceil((group.expires_at - now) / timedelta(seconds=1)))


def group_disclosure(group: Group) -> str | None:
    """What an auto-completed group tells everyone: how many seats real buyers paid for and how
    many the shop waived (never invented members)."""
    if not group.auto_completed:
        return None
    return (
        f"This group completed with {group.paid_seats} of {group.size} buyers: "
        f"{group.waived_seats} seat(s) were waived by the shop when it expired, "
        "not filled by other buyers."
    )


# --- campaigns ------------------------------------------------------------------------------------
def _with_skus(qs: QuerySet[GroupCampaign]) -> QuerySet[GroupCampaign]:
    return qs.select_related("product").prefetch_related(
        Prefetch("skus", queryset=GroupCampaignSku.objects.select_related("sku").order_by("pk"))
    )


def campaigns_running(*, now: datetime) -> QuerySet[GroupCampaign]:
    """Active campaigns open for new groups now (``starts_at <= now < ends_at``), soonest ending
    first, with their SKUs."""
    return _with_skus(
        GroupCampaign.objects.filter(
            status=GroupCampaign.Status.ACTIVE, starts_at__lte=now, ends_at__gt=now
        ).order_by("ends_at", "pk")
    )


@dataclass(frozen=True)
class GroupBrief:
    id: int
    seats_left: int
    expires_at: datetime
    leader_nickname: str


def open_groups_in_community(
    *, campaign: GroupCampaign, community_id: int | None, now: datetime
) -> list[GroupBrief]:
    """Up to ``OPEN_GROUPS_LIMIT`` groups of a ``community``-mode campaign that a buyer of
    ``community_id`` may join by id now: open, at least a second before expiry, someone in it
    and a seat free; soonest expiring first. None for other join modes or without a community."""
    if campaign.join_mode != GroupCampaign.JoinMode.COMMUNITY or community_id is None:
        return []
    groups = (
        Group.objects.filter(
            campaign=campaign,
            community_id=community_id,
            status=Group.Status.OPEN,
            expires_at__gte=now + JOINABLE_FOR_AT_LEAST,
            held_seats__lt=F("size") - F("paid_seats"),
        )
        .filter(Q(held_seats__gt=0) | Q(paid_seats__gt=0))  # someone is in it
        .select_related("leader")
        .order_by("expires_at", "pk")[:OPEN_GROUPS_LIMIT]
    )
    return [
        GroupBrief(
            id=group.pk,
            seats_left=group_seats_left(group, now),
            expires_at=group.expires_at,
            leader_nickname=group.leader.nickname,
        )
        for group in groups
    ]


def campaign_public(*, campaign_id: int, community_id: int | None, now: datetime) -> GroupCampaign:
    """A campaign that is not a draft (running, not started or ended), with ``open_groups``.
    404 ``campaign_not_found`` otherwise."""
    campaign = (
        _with_skus(GroupCampaign.objects.filter(pk=campaign_id))
        .exclude(status=GroupCampaign.Status.DRAFT)
        .first()
    )
    if campaign is None:
        raise NotFound("Group-buy campaign not found.", code=GroupBuyErrorCode.CAMPAIGN_NOT_FOUND)
    campaign.open_groups = open_groups_in_community(  # type: ignore[attr-defined]
        campaign=campaign, community_id=community_id, now=now
    )
    return campaign


# --- one group ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Member:
    nickname: str
    avatar_url: str
    is_leader: bool
    paid: bool


@dataclass(frozen=True)
class GroupDetail:
    id: int
    campaign_id: int
    status: str
    size: int
    paid_seats: int
    held_seats: int
    seats_left: int
    expires_at: datetime
    seconds_left: int
    succeeded_at: datetime | None
    failed_at: datetime | None
    auto_completed: bool
    waived_seats: int
    disclosure: str | None
    members: list[Member]
    is_member: bool
    share_token: str | None
    topic: str
    seq: int


def group_detail(
    *,
    viewer: Customer,
    now: datetime,
    group_id: int | None = None,
    share_token: str | None = None,
) -> GroupDetail:
    """A group found by id or by share token (exactly one), as ``viewer`` sees it: its live
    seats (held and paid) in seat order, and its share token only if the viewer holds one of
    them. 404 ``group_not_found``."""
    if (group_id is None) == (share_token is None):
        raise ValueError("find a group by group_id or by share_token")
    found = Group.objects.all()
    found = (
        found.filter(pk=group_id) if group_id is not None else found.filter(share_token=share_token)
    )
    pk = found.values_list("pk", flat=True).first()
    if pk is None:
        raise NotFound("Group not found.", code=GroupBuyErrorCode.GROUP_NOT_FOUND)
    topic = group_topic(pk)
    seq = topic_last_seq(topic)  # before the rows: a message published meanwhile is seen again
    group = Group.objects.get(pk=pk)
    seats = list(
        GroupSeat.objects.filter(group=group, status__in=GroupSeat.LIVE)
        .select_related("customer")
        .order_by("created_at", "pk")
    )
    is_member = any(seat.customer_id == viewer.pk for seat in seats)
    return GroupDetail(
        id=group.pk,
        campaign_id=group.campaign_id,
        status=group.status,
        size=group.size,
        paid_seats=group.paid_seats,
        held_seats=group.held_seats,
        seats_left=group_seats_left(group, now),
        expires_at=group.expires_at,
        seconds_left=group_seconds_left(group, now),
        succeeded_at=group.succeeded_at,
        failed_at=group.failed_at,
        auto_completed=group.auto_completed,
        waived_seats=group.waived_seats,
        disclosure=group_disclosure(group),
        members=[
            Member(
                nickname=seat.customer.nickname,
                avatar_url=seat.customer.avatar_url,
                is_leader=seat.is_leader,
                paid=seat.status == GroupSeat.Status.PAID,
            )
            for seat in seats
        ],
        is_member=is_member,
        share_token=group.share_token if is_member else None,
        topic=topic,
        seq=seq,
    )


# --- my groups ------------------------------------------------------------------------------------
def seats_of_customer(*, customer: Customer) -> QuerySet[GroupSeat]:
    """The customer's live seats (held or paid), one per group, newest first, with their group,
    its campaign and leader."""
    return (
        GroupSeat.objects.filter(customer=customer, status__in=GroupSeat.LIVE)
        .select_related("group__campaign", "group__leader")
        .order_by("-created_at", "-pk")
    )
