"""Realtime topics owned by groupbuy (INTERFACES.md, "Realtime topics"). Sharing only makes
joining possible: nothing is gated on it, and no topic is needed to proceed.

- ``group:<id>``: followed by the group's members and by any customer viewing its share page.
  Messages (each with the topic's ``seq``, core/realtime.py): ``group_seat_taken``,
  ``group_seat_paid``, ``group_seat_released``, ``group_succeeded`` and ``group_failed``, each
  with the group's ``status``, ``size``, ``paid_seats``, ``held_seats`` and ``seats_left``,
  pushed after the commit of the change. ``GET /groups/{id}`` is the snapshot, current to the
  ``seq`` it names.
- ``bargain:<id>``: its initiator and its helpers (and operators). Messages and snapshot:
  groupbuy/services/bargains.py, ``GET /bargains/{id}``.
- ``post:<id>``: members of the post's community (and operators). Messages and snapshot:
  groupbuy/services/chains.py, ``GET /posts/{id}``.
- The shop's ``community:<id>`` topic (shop/realtime.py) carries what groupbuy announces to a
  community: groupbuy/services/community.py.
"""

from typing import Any

from core.realtime import register_topic
from core.side_effects import topic_push_on_commit


def group_topic(group_id: int) -> str:
    return f"group:{group_id}"


def bargain_topic(bargain_id: int) -> str:
    return f"bargain:{bargain_id}"


def post_topic(post_id: int) -> str:
    return f"post:{post_id}"


def community_topic(community_id: int) -> str:
    """The shop's community topic (shop/realtime.py authorises it: the community's members)."""
    return f"community:{community_id}"


def _customer_id(user: Any) -> int | None:
    from shop.models import Customer

    return Customer.objects.filter(user=user).values_list("pk", flat=True).first()


def _may_follow_group(user: Any, ident: str) -> bool:
    """Any logged-in customer (or operator) may follow an existing group."""
    from groupbuy.models import Group

    if not (user.is_staff or _customer_id(user) is not None):
        return False
    return Group.objects.filter(pk=int(ident)).exists()


def _may_follow_bargain(user: Any, ident: str) -> bool:
    """The bargain's initiator and helpers (and operators)."""
    from groupbuy.models import Bargain, BargainHelp

    if user.is_staff:
        return Bargain.objects.filter(pk=int(ident)).exists()
    customer_id = _customer_id(user)
    if customer_id is None:
        return False
    return (
        Bargain.objects.filter(pk=int(ident), initiator_id=customer_id).exists()
        or BargainHelp.objects.filter(bargain_id=int(ident), helper_id=customer_id).exists()
    )


def _may_follow_post(user: Any, ident: str) -> bool:
    """Members of the post's community (and operators)."""
    from groupbuy.models import ChainPost
    from shop.models import CommunityMembership

    post = ChainPost.objects.filter(pk=int(ident)).values_list("community_id", flat=True).first()
    if post is None:
        return False
    if user.is_staff:
        return True
    return CommunityMembership.objects.filter(community_id=post, customer__user=user).exists()


def register() -> None:
    register_topic("group", _may_follow_group)
    register_topic("bargain", _may_follow_bargain)
    register_topic("post", _may_follow_post)


def push_group(group: Any, kind: str) -> None:
    """``kind`` with the group's counters, to its topic once the current transaction commits."""
    open_ = group.status == "open"
    seats_left = max(group.size - group.paid_seats - group.held_seats, 0) if open_ else 0
    topic_push_on_commit(
        group_topic(group.pk),
        {
            "type": kind,
            "group_id": group.pk,
            "status": group.status,
            "size": group.size,
            "paid_seats": group.paid_seats,
            "held_seats": group.held_seats,
            "seats_left": seats_left,
        },
    )
