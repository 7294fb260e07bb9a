"""Communities with a leader and members, and chain sign-up posts and entries for the chain
tests, made through the services (communities and memberships, which the shop makes through its
own services, as rows)."""

from dataclasses import dataclass
from datetime import timedelta

from django.utils import timezone

from core.realtime import topic_group
from groupbuy.models import ChainEntry, ChainPost
from groupbuy.services.chains import entry_create, post_publish
from shop.models import Community, CommunityMembership, Customer, Order, PickupPoint, Sku
from tests.factories import PickupPointFactory, SkuFactory
from tests.shop.factories_orders import QuickCustomerFactory


@dataclass(frozen=True)
class Board:
    """A community led by ``leader`` (a member), its pickup point, and a post with ``skus``."""

    community: Community
    leader: Customer
    point: PickupPoint
    post: ChainPost
    skus: list[Sku]


def community_with_leader(**leader_fields) -> tuple[Community, Customer, PickupPoint]:
    leader = QuickCustomerFactory(**leader_fields)
    point = PickupPointFactory(community__leader=leader)
    CommunityMembership.objects.create(community=point.community, customer=leader)
    return point.community, leader, point


def member_of(community: Community, **fields) -> Customer:
    customer = QuickCustomerFactory(**fields)
    CommunityMembership.objects.create(community=community, customer=customer)
    return customer


def publish(
    community: Community,
    leader: Customer | None,
    point: PickupPoint,
    items: list[tuple[Sku, int, int | None]],
    *,
    deadline_in: timedelta = timedelta(hours=2),
    max_entries: int | None = None,
    title: str = "Friday lychees",
    body: str = "",
    created_by=None,
) -> ChainPost:
    return post_publish(
        created_by=created_by or leader.user,
        author=leader,
        community_id=community.pk,
        pickup_point_id=point.pk,
        title=title,
        body=body,
        deadline=timezone.now() + deadline_in,
        max_entries=max_entries,
        items=[(sku.pk, price, max_units) for sku, price, max_units in items],
    )


def board(
    *,
    prices: tuple[tuple[int, int], ...] = ((1990, 990),),
    stock: int = 100,
    max_units: int | None = None,
    **post_fields,
) -> Board:
    """A post by the community's leader of one SKU per ``(list price, community price)``."""
    community, leader, point = community_with_leader()
    skus = [SkuFactory(price=price, stock=stock) for price, _ in prices]
    items = [(sku, community_price, max_units) for sku, (_, community_price) in zip(skus, prices)]
    made = publish(community, leader, point, items, **post_fields)
    return Board(community=community, leader=leader, point=point, post=made, skus=skus)


def sign_up(
    made: Board, customer: Customer | None = None, lines: list[tuple[Sku, int]] | None = None
) -> tuple[ChainEntry, Order]:
    """``customer`` (default: a new member) signs up for ``lines`` (default: one of the first
    SKU)."""
    return entry_create(
        post_id=made.post.pk,
        customer=customer or member_of(made.community),
        lines=[(sku.pk, quantity) for sku, quantity in (lines or [(made.skus[0], 1)])],
    )


def unwrapped(message: dict) -> list[dict]:
    """A post topic's ``post_updates`` message as its changes (each with its ``topic`` and
    ``seq``); any other message as itself."""
    if message.get("type") != "post_updates":
        return [message]
    where = {"topic": message["topic"], "seq": message["seq"]}
    return [{**item, **where} for item in message["items"]]


class Pushes:
    """Records what would be sent to sockets (``core.side_effects.push_now``, patched by a test's
    fixture), by Channels group."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, dict]] = []

    def record(self, group: str, message: dict, handler: str = "push.message") -> bool:
        self.sent.append((group, message))
        return True

    def to(self, topic: str) -> list[dict]:
        """The topic's messages; a coalesced ``post_updates`` counts as its items, each with the
        message's ``topic`` and ``seq``."""
        return [
            one
            for group, message in self.sent
            if group == topic_group(topic)
            for one in unwrapped(message)
        ]

    def types(self, topic: str) -> list[str]:
        return [message["type"] for message in self.to(topic)]
