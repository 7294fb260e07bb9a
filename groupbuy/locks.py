"""Every row lock groupbuy takes, in one place (like shop/locks.py, which writes down the lock order
of the whole project).

Group-buy rows come first in that order, before any shop row::

    campaign -> group -> seat -> (shop) order -> customer -> SKU stock

A join locks its group, then places the order through the shop's checkout, which locks the
customer (purchase limits) and the hot stock row last; the order-paid and order-cancelled
subscribers lock the group, then the seat, then (releasing held orders) the orders. Rows of one
table are locked in pk order. Helpers lock the model's own rows only (``of=("self",)``), return
``None`` when the row does not exist and must be called inside ``transaction.atomic()``; after
taking a lock, re-read and re-check state.
"""

from groupbuy.models import Group, GroupCampaign, GroupSeat


def lock_campaign(pk: int) -> GroupCampaign | None:
    """For writers that change a campaign (an operator ending it, the expiry sweep)."""
    return GroupCampaign.objects.select_for_update(of=("self",)).filter(pk=pk).first()


def lock_group(pk: int) -> Group | None:
    """The group (with its campaign, read but not locked)."""
    return (
        Group.objects.select_for_update(of=("self",))
        .select_related("campaign")
        .filter(pk=pk)
        .first()
    )


def lock_seat_by_order(order_id: int) -> GroupSeat | None:
    """The seat that ``order_id`` pays for. Lock its group first."""
    return GroupSeat.objects.select_for_update(of=("self",)).filter(order_id=order_id).first()
