"""Every row lock groupbuy takes, in one place (like shop/locks.py, which writes down the lock order
of the whole project).

Group-buy rows come first in that order, before any shop row::

    campaign -> group -> seat -> (shop) order -> customer -> SKU stock
    bargain campaign (operators ending it, alone)
    bargain -> (shop) customer -> order -> SKU stock
    post -> entry -> (shop) order -> customer -> SKU stock
    announcement (alone)

A join locks its group, then places the order through the shop's checkout, which locks the
customer (purchase limits) and the hot stock row last; the order-paid and order-cancelled
subscribers lock the group, then the seat, then (releasing held orders) the orders.

A help locks its bargain, then the helper's customer row (daily limits); a purchase locks its
bargain, then places the order through the checkout; the order-paid and order-cancelled
subscribers and the expiry sweep lock the bargain, then (the sweep) its pending order.

A post's row lock serialises everything that changes the post, its items' ``units_taken`` and its
entries: a sign-up, a payment or cancellation reaching an entry, a member's cancellation, the
deadline sweep and marking the delivery arrived all lock the post first, so items and entries are
only ever written with their post locked; the entry lock is taken only to follow the order
(post -> entry -> order) when an entry is changed. The deadline sweep and a member's cancellation
lock the post, then the entry's order (cancelling or refunding it).

Rows of one table are locked in pk order. Helpers lock the model's own rows only
(``of=("self",)``), return ``None`` when the row does not exist and must be called inside
``transaction.atomic()``; after taking a lock, re-read and re-check state.
"""

from groupbuy.models import (
    Bargain,
    BargainCampaign,
    ChainEntry,
    ChainPost,
    CommunityAnnouncement,
    Group,
    GroupCampaign,
    GroupSeat,
)


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


# --- bargains ---------------------------------------------------------------------------------
def lock_bargain_campaign(pk: int) -> BargainCampaign | None:
    """For an operator ending the campaign."""
    return BargainCampaign.objects.select_for_update(of=("self",)).filter(pk=pk).first()


def lock_bargain(pk: int) -> Bargain | None:
    """The bargain (with its campaign and initiator, read but not locked)."""
    return (
        Bargain.objects.select_for_update(of=("self",))
        .select_related("campaign", "initiator")
        .filter(pk=pk)
        .first()
    )


# --- chain sign-up posts and announcements -------------------------------------------------
def lock_post(pk: int) -> ChainPost | None:
    """The post (with its community and pickup point, read but not locked)."""
    return (
        ChainPost.objects.select_for_update(of=("self",))
        .select_related("community", "pickup_point")
        .filter(pk=pk)
        .first()
    )


def lock_entry_by_order(order_id: int) -> ChainEntry | None:
    """The entry that ``order_id`` pays for. Lock its post first."""
    return ChainEntry.objects.select_for_update(of=("self",)).filter(order_id=order_id).first()


def lock_live_entry(*, post_id: int, customer_id: int) -> ChainEntry | None:
    """The customer's live entry on the post (at most one). Lock the post first."""
    return (
        ChainEntry.objects.select_for_update(of=("self",))
        .filter(post_id=post_id, customer_id=customer_id, status=ChainEntry.Status.LIVE)
        .first()
    )


def lock_announcement(pk: int) -> CommunityAnnouncement | None:
    return CommunityAnnouncement.objects.select_for_update(of=("self",)).filter(pk=pk).first()
