"""Reads for chain sign-up and the community feed: who may read what (``*_for_member``,
``post_for_manager``), a community's posts and announcements, a post's snapshot, the community
feed's snapshot and the pickup sheet. Nothing here writes or locks.

Who reads:
- A community's posts, announcements, feed and a post's snapshot: its members and operators
  (``is_staff``), as for the realtime topics ``community:<id>`` and ``post:<id>``; anyone else 403
  ``not_community_member``.
- The pickup sheet (names, phone numbers, pickup codes): the community's leader and operators
  with ``groupbuy.view_chainpost``; anyone else 403 ``not_community_leader``.

Derived fields, from the rows and the clock:
- An item's ``units_left``: ``max_units - units_taken`` (never below 0), null without a cap.
- A post's ``entries_left``: ``max_entries - live_entries``, null without a cap;
  ``seconds_left``: whole seconds until the deadline, rounded up, while open, else 0.
- A paid entry: a live entry with ``paid_at``. The pickup sheet counts each line net of refunds
  (units less refunded units, amount less refunded amount) and leaves out what nothing is left
  of.
"""

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Case, Count, F, IntegerField, Q, QuerySet, Value, When

from core.errors import Conflict, NotFound, PermissionDenied
from core.models import User
from core.realtime import topic_last_seq
from groupbuy.error_codes import ChainErrorCode
from groupbuy.models import (
    ChainEntry,
    ChainPost,
    ChainPostItem,
    CommunityAnnouncement,
    Group,
    GroupCampaign,
)
from groupbuy.realtime import community_topic, post_topic
from groupbuy.selectors.groups import JOINABLE_FOR_AT_LEAST, group_seats_left
from shop.error_codes import CommunityErrorCode
from shop.models import Community, CommunityMembership, PickupPoint

FEED_LIMIT = 20
SHEET_PERM = "groupbuy.view_chainpost"
PUBLISHED = CommunityAnnouncement.Status.PUBLISHED


# --- who may read ---------------------------------------------------------------------------------
def post_not_found() -> NotFound:
    return NotFound("Sign-up post not found.", code=ChainErrorCode.POST_NOT_FOUND)


def post_not_closed(post: ChainPost) -> Conflict:
    return Conflict(
        "This sign-up list has not closed yet.",
        code=ChainErrorCode.POST_NOT_CLOSED,
        details={"post_id": post.pk, "status": post.status},
    )


def _is_member(user: User, community_id: int) -> bool:
    return (
        user.is_staff
        or CommunityMembership.objects.filter(
            community_id=community_id, customer__user_id=user.pk
        ).exists()
    )


def _not_member(community_id: int) -> PermissionDenied:
    return PermissionDenied(
        "This is for the community's members.",
        code=ChainErrorCode.NOT_COMMUNITY_MEMBER,
        details={"community_id": community_id},
    )


def community_for_member(*, community_id: int, user: User) -> Community:
    """The community, for one of its members or an operator. 404 ``community_not_found``, 403
    ``not_community_member``."""
    community = Community.objects.filter(pk=community_id).first()
    if community is None:
        raise NotFound(
            "This community does not exist.", code=CommunityErrorCode.COMMUNITY_NOT_FOUND
        )
    if not _is_member(user, community.pk):
        raise _not_member(community.pk)
    return community


def post_for_member(*, post_id: int, user: User) -> ChainPost:
    """The post, for a member of its community or an operator. 404 ``post_not_found``, 403
    ``not_community_member``."""
    post = ChainPost.objects.filter(pk=post_id).first()
    if post is None:
        raise post_not_found()
    if not _is_member(user, post.community_id):
        raise _not_member(post.community_id)
    return post


def post_for_manager(*, post_id: int, user: User, perm: str) -> ChainPost:
    """The post, for its community's leader or an operator with ``perm``. 404
    ``post_not_found``, 403 ``not_community_leader``."""
    post = ChainPost.objects.select_related("community__leader", "pickup_point").filter(pk=post_id)
    found = post.first()
    if found is None:
        raise post_not_found()
    leader = found.community.leader
    if not (user.has_perm(perm) or (leader is not None and leader.user_id == user.pk)):
        raise PermissionDenied(
            "Only the community's leader (or an operator) may do this.",
            code=ChainErrorCode.NOT_COMMUNITY_LEADER,
            details={"community_id": found.community_id},
        )
    return found


# --- derived fields -------------------------------------------------------------------------------
def units_left(item: ChainPostItem) -> int | None:
    return None if item.max_units is None else max(0, item.max_units - item.units_taken)


def post_seconds_left(post: ChainPost, now: datetime) -> int:
    if post.status != ChainPost.Status.OPEN:
        return 0
    return max(0, math.ceil((post.deadline - now) / timedelta(seconds=1)))


def entries_left(post: ChainPost) -> int | None:
    return None if post.max_entries is None else max(0, post.max_entries - post.live_entries)


# --- lists ----------------------------------------------------------------------------------------
def _briefs(qs: QuerySet[ChainPost]) -> QuerySet[ChainPost]:
    return qs.select_related("pickup_point", "author").annotate(items_count=Count("items"))


def posts_of_community(*, community: Community) -> QuerySet[ChainPost]:
    """The community's posts: open ones first, then the most recent."""
    return _briefs(ChainPost.objects.filter(community=community)).order_by(
        Case(
            When(status=ChainPost.Status.OPEN, then=Value(0)),
            default=Value(1),
            output_field=IntegerField(),
        ),
        "-created_at",
        "-pk",
    )


def announcements_of_community(*, community: Community) -> QuerySet[CommunityAnnouncement]:
    """The community's published announcements, newest first (hidden ones are left out)."""
    return (
        CommunityAnnouncement.objects.filter(community=community, status=PUBLISHED)
        .select_related("author")
        .order_by("-created_at", "-pk")
    )


# --- a post's snapshot ----------------------------------------------------------------------------
@dataclass(frozen=True)
class PickupPointBrief:
    id: int
    name: str
    address: str


@dataclass(frozen=True)
class PostItemView:
    sku_id: int
    sku_code: str
    title: str
    attributes: dict
    list_price: int
    price: int
    max_units: int | None
    units_taken: int
    units_left: int | None


@dataclass(frozen=True)
class EntryItem:
    sku_id: int
    title: str
    quantity: int


@dataclass(frozen=True)
class EntryView:
    seq: int
    nickname: str
    avatar_url: str
    items: list[EntryItem]
    paid: bool


@dataclass(frozen=True)
class MyEntry:
    seq: int
    order_id: int
    paid: bool


@dataclass(frozen=True)
class PostDetail:
    id: int
    community_id: int
    title: str
    body: str
    status: str
    author_nickname: str | None
    deadline: datetime
    seconds_left: int
    created_at: datetime
    closed_at: datetime | None
    arrived_at: datetime | None
    pickup_point: PickupPointBrief
    items: list[PostItemView]
    entries: list[EntryView]
    live_entries: int
    max_entries: int | None
    entries_left: int | None
    my_entry: MyEntry | None
    topic: str
    seq: int


def _point(point: PickupPoint) -> PickupPointBrief:
    return PickupPointBrief(id=point.pk, name=point.name, address=point.address)


def entry_items(entry: ChainEntry) -> list[EntryItem]:
    """What the entry signed up for: its order's lines (prefetch ``order__lines``)."""
    return [
        EntryItem(sku_id=line.sku_id, title=line.product_title, quantity=line.quantity)
        for line in entry.order.lines.all()
    ]


def post_detail(*, post_id: int, viewer: User, now: datetime) -> PostDetail:
    """The post as ``viewer`` sees it (the caller authorises): its items with what is left, its
    live entries in ``seq`` order, the viewer's own live entry, and the topic's ``seq`` read
    before the rows (a message published meanwhile is seen again). 404 ``post_not_found``."""
    if not ChainPost.objects.filter(pk=post_id).exists():
        raise post_not_found()
    topic = post_topic(post_id)
    seq = topic_last_seq(topic)
    post = ChainPost.objects.select_related("pickup_point", "author").get(pk=post_id)
    items = ChainPostItem.objects.filter(post=post).select_related("sku__product").order_by("pk")
    entries = list(
        ChainEntry.objects.filter(post=post, status=ChainEntry.Status.LIVE)
        .select_related("customer", "order")
        .prefetch_related("order__lines")
        .order_by("seq")
    )
    mine = next((entry for entry in entries if entry.customer.user_id == viewer.pk), None)
    return PostDetail(
        id=post.pk,
        community_id=post.community_id,
        title=post.title,
        body=post.body,
        status=post.status,
        author_nickname=post.author.nickname if post.author else None,
        deadline=post.deadline,
        seconds_left=post_seconds_left(post, now),
        created_at=post.created_at,
        closed_at=post.closed_at,
        arrived_at=post.arrived_at,
        pickup_point=_point(post.pickup_point),
        items=[
            PostItemView(
                sku_id=item.sku_id,
                sku_code=item.sku.code,
                title=item.sku.product.title,
                attributes=item.sku.attributes,
                list_price=item.sku.price,
                price=min(item.price, item.sku.price),  # as the checkout charges it
                max_units=item.max_units,
                units_taken=item.units_taken,
                units_left=units_left(item),
            )
            for item in items
        ],
        entries=[
            EntryView(
                seq=entry.seq,
                nickname=entry.customer.nickname,
                avatar_url=entry.customer.avatar_url,
                items=entry_items(entry),
                paid=entry.paid_at is not None,
            )
            for entry in entries
        ],
        live_entries=post.live_entries,
        max_entries=post.max_entries,
        entries_left=entries_left(post),
        my_entry=(
            None
            if mine is None
            else MyEntry(seq=mine.seq, order_id=mine.order_id, paid=mine.paid_at is not None)
        ),
        topic=topic,
        seq=seq,
    )


@dataclass(frozen=True)
class EntryDetail:
    post_id: int
    seq: int
    status: str
    order_id: int
    paid: bool
    items: list[EntryItem]
    created_at: datetime
    paid_at: datetime | None
    dropped_at: datetime | None
    drop_reason: str


def entry_detail(*, entry_id: int) -> EntryDetail:
    """One entry as its member sees it, with what it signed up for."""
    entry = (
        ChainEntry.objects.select_related("order").prefetch_related("order__lines").get(pk=entry_id)
    )
    return EntryDetail(
        post_id=entry.post_id,
        seq=entry.seq,
        status=entry.status,
        order_id=entry.order_id,
        paid=entry.paid_at is not None,
        items=entry_items(entry),
        created_at=entry.created_at,
        paid_at=entry.paid_at,
        dropped_at=entry.dropped_at,
        drop_reason=entry.drop_reason,
    )


# --- the community feed ---------------------------------------------------------------------------
@dataclass(frozen=True)
class FeedGroup:
    id: int
    campaign_id: int
    campaign_title: str
    size: int
    seats_left: int
    expires_at: datetime
    leader_nickname: str


@dataclass(frozen=True)
class CommunityFeed:
    community_id: int
    topic: str
    seq: int
    announcements: list[CommunityAnnouncement]
    posts: list[ChainPost]
    groups: list[FeedGroup]


def community_feed(*, community: Community, now: datetime) -> CommunityFeed:
    """The snapshot of ``community:<id>`` (the caller authorises): the topic's ``seq`` read
    first, the latest published announcements, the open posts soonest closing first, and the
    open groups of community-mode campaigns a neighbour may join by id now (open, at least a
    second before expiry, someone in it, a seat free), soonest expiring first; up to
    ``FEED_LIMIT`` of each."""
    topic = community_topic(community.pk)
    seq = topic_last_seq(topic)
    posts = _briefs(
        ChainPost.objects.filter(
            community=community, status=ChainPost.Status.OPEN, deadline__gt=now
        )
    ).order_by("deadline", "pk")
    groups = (
        Group.objects.filter(
            community=community,
            campaign__join_mode=GroupCampaign.JoinMode.COMMUNITY,
            status=Group.Status.OPEN,
            expires_at__gte=now + JOINABLE_FOR_AT_LEAST,
            held_seats__lt=F("size") - F("paid_seats"),
        )
        .filter(Q(held_seats__gt=0) | Q(paid_seats__gt=0))
        .select_related("campaign", "leader")
        .order_by("expires_at", "pk")
    )
    return CommunityFeed(
        community_id=community.pk,
        topic=topic,
        seq=seq,
        announcements=list(announcements_of_community(community=community)[:FEED_LIMIT]),
        posts=list(posts[:FEED_LIMIT]),
        groups=[
            FeedGroup(
                id=group.pk,
                campaign_id=group.campaign_id,
                campaign_title=group.campaign.title,
                size=group.size,
                seats_left=group_seats_left(group, now),
                expires_at=group.expires_at,
                leader_nickname=group.leader.nickname,
            )
            for group in groups[:FEED_LIMIT]
        ],
    )


# --- the pickup sheet -----------------------------------------------------------------------------
@dataclass(frozen=True)
class SheetLine:
    sku_id: int
    sku_code: str
    title: str
    quantity: int
    amount: int


@dataclass(frozen=True)
class SheetMember:
    seq: int
    nickname: str
    phone: str
    pickup_code: str | None
    order_id: int
    items: list[SheetLine]
    total: int


@dataclass(frozen=True)
class SheetSku:
    sku_id: int
    sku_code: str
    title: str
    units: int
    amount: int


@dataclass(frozen=True)
class PickupSheet:
    post_id: int
    title: str
    status: str
    closed_at: datetime | None
    arrived_at: datetime | None
    pickup_point: PickupPointBrief
    members: list[SheetMember]
    skus: list[SheetSku]
    total_units: int
    total_amount: int


def paid_entries(post: ChainPost) -> list[ChainEntry]:
    """The post's paid live entries in ``seq`` order, with their customer and order (and its
    lines)."""
    return list(
        ChainEntry.objects.filter(post=post, status=ChainEntry.Status.LIVE, paid_at__isnull=False)
        .select_related("customer", "order")
        .prefetch_related("order__lines")
        .order_by("seq")
    )


def _sheet_member(entry: ChainEntry) -> SheetMember | None:
    lines = [
        SheetLine(
            sku_id=line.sku_id,
            sku_code=line.sku_code,
            title=line.product_title,
            quantity=line.quantity - line.refunded_quantity,
            amount=line.line_total - line.refunded_amount,
        )
        for line in entry.order.lines.all()
        if line.quantity > line.refunded_quantity
    ]
    if not lines:
        return None  # everything was refunded: nothing to hand over
    return SheetMember(
        seq=entry.seq,
        nickname=entry.customer.nickname,
        phone=entry.customer.phone,
        pickup_code=entry.order.pickup_code,
        order_id=entry.order_id,
        items=lines,
        total=sum(line.amount for line in lines),
    )


def pickup_sheet(*, post_id: int, viewer_user: User) -> PickupSheet:
    """What the leader hands over once the list closed: per member (paid live entries, by
    ``seq``) their lines, total and pickup code; per SKU of the post the units and amount; and
    the grand totals, all in fen. 404 ``post_not_found``, 403 ``not_community_leader``, 409
    ``post_not_closed``."""
    post = post_for_manager(post_id=post_id, user=viewer_user, perm=SHEET_PERM)
    if post.status != ChainPost.Status.CLOSED:
        raise post_not_closed(post)
    members = [m for m in map(_sheet_member, paid_entries(post)) if m is not None]
    units: dict[int, int] = {}
    amounts: dict[int, int] = {}
    for member in members:
        for line in member.items:
            units[line.sku_id] = units.get(line.sku_id, 0) + line.quantity
            amounts[line.sku_id] = amounts.get(line.sku_id, 0) + line.amount
    skus = [
        SheetSku(
            sku_id=item.sku_id,
            sku_code=item.sku.code,
            title=item.sku.product.title,
            units=units.get(item.sku_id, 0),
            amount=amounts.get(item.sku_id, 0),
        )
        for item in ChainPostItem.objects.filter(post=post)
        .select_related("sku__product")
        .order_by("pk")
    ]
    return PickupSheet(
        post_id=post.pk,
        title=post.title,
        status=post.status,
        closed_at=post.closed_at,
        arrived_at=post.arrived_at,
        pickup_point=_point(post.pickup_point),
        members=members,
        skus=skus,
        total_units=sum(units.values()),
        total_amount=sum(amounts.values()),
    )
