"""Reads for bargains: the public campaign list and one campaign, a bargain's share page (the
snapshot of its topic), and a customer's own bargains; and the purchase rule that both the page
(``can_buy``) and the service (groupbuy/services/bargains.py) apply. Nothing here writes or
locks.

Derived fields, from the bargain's row and the clock:
- ``helps_left``: ``helps_needed - helps_done``.
- ``seconds_left``: whole seconds until ``expires_at``, rounded up, while the bargain is live
  (``active`` or ``floor_reached``); 0 once it expired or was purchased.
- ``seed``: only once the bargain is no longer ``active`` (every cut it will ever have is made,
  so the plan can be audited without anyone predicting a cut early); as a string of digits,
  since a 63-bit integer does not survive a JavaScript number.
"""

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.contrib.auth.base_user import AbstractBaseUser
from django.db.models import QuerySet

from core.errors import Conflict, NotFound
from core.realtime import topic_last_seq
from groupbuy.error_codes import BargainErrorCode
from groupbuy.models import Bargain, BargainCampaign, BargainHelp
from groupbuy.realtime import bargain_topic
from shop.models import Customer
from shop.selectors.customers import customer_of


# --- the rules the page and the service share -----------------------------------------------------
def bargain_not_found() -> NotFound:
    return NotFound("Bargain not found.", code=BargainErrorCode.BARGAIN_NOT_FOUND)


def bargain_closed(bargain: Bargain) -> Conflict:
    return Conflict(
        "This bargain is closed.",
        code=BargainErrorCode.BARGAIN_CLOSED,
        details={"bargain_id": bargain.pk, "status": bargain.status},
    )


def purchase_refusal(bargain: Bargain, now: datetime) -> Conflict | None:
    """Why the initiator cannot buy the bargain now (None: they can, as far as the bargain goes;
    the checkout has its own refusals), in the order the purchase checks: closed (expired or
    purchased), an order pending, not at the floor (without ``buy_at_any_price``), less than a
    second left."""
    if bargain.status not in Bargain.LIVE:
        return bargain_closed(bargain)
    if bargain.order_id is not None:
        return Conflict(
            "This bargain already has an order awaiting payment: pay or cancel it first.",
            code=BargainErrorCode.BARGAIN_ORDER_PENDING,
            details={"bargain_id": bargain.pk, "order_id": bargain.order_id},
        )
    if bargain.status == Bargain.Status.ACTIVE and not bargain.campaign.buy_at_any_price:
        return Conflict(
            "This bargain can be bought once friends have cut it to its lowest price.",
            code=BargainErrorCode.BARGAIN_NOT_AT_FLOOR,
            details={
                "bargain_id": bargain.pk,
                "current_price": bargain.current_price,
                "floor_price": bargain.floor_price,
                "helps_left": bargain.helps_needed - bargain.helps_done,
            },
        )
    if math.floor((bargain.expires_at - now).total_seconds()) < 1:
        return bargain_closed(bargain)
    return None


def bargain_seconds_left(bargain: Bargain, now: datetime) -> int:
    if bargain.status not in Bargain.LIVE:
        return 0
    return max(0, math.ceil((bargain.expires_at - now) / timedelta(seconds=1)))


# --- campaigns ------------------------------------------------------------------------------------
def _with_sku(qs: QuerySet[BargainCampaign]) -> QuerySet[BargainCampaign]:
    return qs.select_related("product", "sku")


def campaigns_running(*, now: datetime) -> QuerySet[BargainCampaign]:
    """Active campaigns taking new bargains now (``starts_at <= now < ends_at``), soonest ending
    first."""
    return _with_sku(
        BargainCampaign.objects.filter(
            status=BargainCampaign.Status.ACTIVE, starts_at__lte=now, ends_at__gt=now
        ).order_by("ends_at", "pk")
    )


def campaign_public(*, campaign_id: int) -> BargainCampaign:
    """A campaign that is not a draft (running, not started or ended); 404
    ``bargain_campaign_not_found`` otherwise."""
    campaign = (
        _with_sku(BargainCampaign.objects.filter(pk=campaign_id))
        .exclude(status=BargainCampaign.Status.DRAFT)
        .first()
    )
    if campaign is None:
        raise NotFound(
            "Bargain campaign not found.", code=BargainErrorCode.BARGAIN_CAMPAIGN_NOT_FOUND
        )
    return campaign


# --- one bargain ----------------------------------------------------------------------------------
def bargain_viewer(user: AbstractBaseUser) -> Customer | None:
    """Who reads a bargain's page: a customer, or an operator (who may have no customer
    profile: None). Anyone else: 403 ``not_a_customer``."""
    if getattr(user, "is_staff", False):
        return Customer.objects.filter(user_id=user.pk).first()
    return customer_of(user)


@dataclass(frozen=True)
class CampaignBrief:
    id: int
    title: str
    product_title: str
    sku_id: int


@dataclass(frozen=True)
class HelpView:
    seq: int
    nickname: str
    avatar_url: str
    cut: int
    price_after: int
    created_at: datetime


@dataclass(frozen=True)
class BargainDetail:
    id: int
    campaign: CampaignBrief
    status: str
    start_price: int
    floor_price: int
    current_price: int
    helps_needed: int
    helps_done: int
    helps_left: int
    first_cut: int
    expires_at: datetime
    seconds_left: int
    floor_reached_at: datetime | None
    purchased_at: datetime | None
    buy_at_any_price: bool
    can_buy: bool
    is_initiator: bool
    has_helped: bool
    helps: list[HelpView]
    order_id: int | None
    seed: str | None
    topic: str
    seq: int


def bargain_detail(*, bargain_id: int, viewer: Customer | None, now: datetime) -> BargainDetail:
    """A bargain as ``viewer`` (a customer, or None for an operator without one) sees it: its
    prices and counters, its helps in order (nickname, avatar, cut; never a device or an IP
    hash), ``can_buy`` and ``order_id`` for its initiator only, and the topic's ``seq`` read
    before the rows. 404 ``bargain_not_found``."""
    if not Bargain.objects.filter(pk=bargain_id).exists():
        raise bargain_not_found()
    topic = bargain_topic(bargain_id)
    seq = topic_last_seq(topic)  # before the rows: a message published meanwhile is seen again
    bargain = Bargain.objects.select_related("campaign__product").get(pk=bargain_id)
    helps = list(
        BargainHelp.objects.filter(bargain=bargain).select_related("helper").order_by("seq")
    )
    viewer_id = viewer.pk if viewer is not None else None
    is_initiator = bargain.initiator_id == viewer_id
    campaign = bargain.campaign
    return BargainDetail(
        id=bargain.pk,
        campaign=CampaignBrief(
            id=campaign.pk,
            title=campaign.title,
            product_title=campaign.product.title,
            sku_id=campaign.sku_id,
        ),
        status=bargain.status,
        start_price=bargain.start_price,
        floor_price=bargain.floor_price,
        current_price=bargain.current_price,
        helps_needed=bargain.helps_needed,
        helps_done=bargain.helps_done,
        helps_left=bargain.helps_needed - bargain.helps_done,
        first_cut=bargain.first_cut,
        expires_at=bargain.expires_at,
        seconds_left=bargain_seconds_left(bargain, now),
        floor_reached_at=bargain.floor_reached_at,
        purchased_at=bargain.purchased_at,
        buy_at_any_price=campaign.buy_at_any_price,
        can_buy=is_initiator and purchase_refusal(bargain, now) is None,
        is_initiator=is_initiator,
        has_helped=any(help_.helper_id == viewer_id for help_ in helps),
        helps=[
            HelpView(
                seq=help_.seq,
                nickname=help_.helper.nickname,
                avatar_url=help_.helper.avatar_url,
                cut=help_.cut,
                price_after=help_.price_after,
                created_at=help_.created_at,
            )
            for help_ in helps
        ],
        order_id=bargain.order_id if is_initiator else None,
        seed=None if bargain.status == Bargain.Status.ACTIVE else str(bargain.seed),
        topic=topic,
        seq=seq,
    )


# --- my bargains ----------------------------------------------------------------------------------
def bargains_of_customer(*, customer: Customer) -> QuerySet[Bargain]:
    """The bargains the customer started (any status), newest first, with their campaign."""
    return (
        Bargain.objects.filter(initiator=customer)
        .select_related("campaign")
        .order_by("-created_at", "-pk")
    )
