"""Realtime topics owned by groupbuy: ``group:<id>``, followed by the group's members and by any
customer viewing its share page (sharing only makes joining possible: nothing is gated on it).

Messages (each with the topic's ``seq``, core/realtime.py): ``group_seat_taken``,
``group_seat_paid``, ``group_seat_released``, ``group_succeeded`` and ``group_failed``, each with
the group's ``status``, ``size``, ``paid_seats``, ``held_seats`` and ``seats_left``, pushed after
the commit of the change. ``GET /groups/{id}`` is the snapshot, current to the ``seq`` it names.
"""

from typing import Any

from core.realtime import register_topic
from core.side_effects import topic_push_on_commit


def group_topic(group_id: int) -> str:
    return f"group:{group_id}"


def _may_follow_group(user: Any, ident: str) -> bool:
    """Any logged-in customer (or operator) may follow an existing group."""
    from groupbuy.models import Group
    from shop.models import Customer

    if not (user.is_staff or Customer.objects.filter(user=user).exists()):
        return False
    return Group.objects.filter(pk=int(ident)).exists()


def register() -> None:
    register_topic("group", _may_follow_group)


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
