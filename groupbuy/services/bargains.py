"""Bargain (砍价): starting a bargain, friends' helps that cut its price, buying it, and what its
purchase order being paid or cancelled does to it.

A bargain's states (each change under the bargain's row lock, groupbuy/locks.py)::

    active --the N-th help (bargain_help)--> floor_reached
    active, floor_reached --its order is paid (bargain_order_paid)--> purchased
    active, floor_reached --past expires_at (bargains_expire_due, every 30 s)--> expired, or
        purchased (its order was paid in time; its order_paid is on its way)

The cut plan is drawn when the bargain starts (groupbuy/cuts.py): ``seed = new_seed()``, then
``cut_plan(seed, start, floor, helps_needed, first-cut bounds)`` gives the initiator's first cut
and one cut per help, each at least 1 fen, summing exactly to ``start - floor``. Both are stored
with the seed and a snapshot of the campaign's prices and ``helps_needed``, so an operator can
replay the plan later and a change to the campaign never reprices a running bargain. Help ``n``
takes ``cuts[n - 1]`` under the bargain's row lock: concurrent helps are counted one after the
other, the N-th lands exactly on the floor, and a help beyond it is ``bargain_closed`` (the
bargain is no longer ``active``). Check constraints back this (price within floor and start,
``helps_done <= helps_needed``, ``floor_reached`` only at the floor; one help per helper and per
seq).

The shop never calls into groupbuy: order-paid and order-cancelled are outbox subscribers
(groupbuy/subscribers.py, order source ``bargain``, ``source_ref`` the bargain), delivered at
least once after the shop's commit, and idempotent here.

Rules chosen where the brief was silent:
- A campaign takes new bargains while it is ``active`` and ``starts_at <= now < ends_at``.
  Bargains already started run until their own ``expires_at`` (``min(now +
  bargain_ttl_seconds, ends_at)``), even once the campaign is ended by an operator; helps and
  purchases check the bargain, not the campaign.
- ``max_bargains_per_customer`` counts the customer's bargains of the campaign that are
  ``purchased`` or live (``active`` / ``floor_reached``), except a live one past its
  ``expires_at`` without an order (it can only expire now, like a group past its expiry); a
  live one past its expiry whose order may still be paid counts. It is checked under the
  customer's row lock, so two concurrent starts by one customer are counted one after the other.
- The product must be on sale when a bargain starts (409 ``product_unavailable``, the shop's
  code); the checkout checks it again when the bargain is bought.
- Help refusals come in this order: 404 ``bargain_not_found``, 409 ``cannot_help_own_bargain``,
  then under the bargain's lock 409 ``bargain_closed`` (not ``active``, past ``expires_at``, or
  a purchase order pending: the price must not move under an order), ``already_helped``,
  ``helper_not_new`` (with ``helpers_must_be_new``: any order of the helper ever paid, whatever
  its source, even if refunded since), then under the helper's customer row lock
  ``help_limit_reached`` (helps on bargains of this campaign since local midnight, ``TIME_ZONE``,
  at least ``helps_per_helper_per_day``) and ``device_help_limit_reached``.
- The device limit (helps from one ``X-Device-Id`` in this campaign since local midnight, at
  least ``helps_per_device_per_day``) is a signal that slows farming, not a guarantee: helps are
  serialised per bargain and per helper, not per device, so two helpers on one device helping
  two bargains at the very same instant can both pass. A help without a device id is not
  counted per device. The device id and a keyed hash of the client IP are stored on every help
  for the operators' farming review (admin), never shown to shoppers.
- Reaching the floor gives the initiator ``payment_ttl_seconds`` from that moment to buy (the
  bargain's ``expires_at`` becomes that deadline, even past the campaign's end).
- Buying: only the initiator (anyone else: 404 ``bargain_not_found``, so ids are not probed);
  then under the bargain's lock 409 ``bargain_closed`` (expired or purchased),
  ``bargain_order_pending`` (``details.order_id``: pay or cancel it first),
  ``bargain_not_at_floor`` (still ``active`` and the campaign is not ``buy_at_any_price``),
  ``bargain_closed`` (less than a second left), then the checkout's own errors. One unit of the
  campaign's SKU at ``min(current_price, SKU price)``; coupons do not apply (the bargain price is
  the price). Its payment time is whole seconds: at the floor, the seconds left until
  ``expires_at``; before it (``buy_at_any_price``), ``min(STOCK_RESERVATION_TTL, seconds left)``,
  so an order's deadline is never past the bargain's. While an order is pending nobody can help;
  if it is cancelled or expires unpaid the bargain drops it (``bargain_order_cancelled``) and the
  initiator may buy again, and helps resume while ``active``.
- A payment lands while the bargain is live, even past ``expires_at`` if the sweep has not run
  (the order's deadline was within the bargain's life; the sweep, which locks the bargain too,
  decides once). A payment of an order that is not the bargain's, or of a bargain no longer
  live, changes nothing and is logged as an error: the sweep cancels a pending order before it
  expires a bargain, and the shop refunds payments of cancelled orders itself.
- The expiry sweep closes each live bargain with ``expires_at <= now`` once: its pending order
  is locked; paid already, the bargain is ``purchased`` (``purchased_at`` the payment's time);
  unpaid, the order is cancelled (reason ``bargain_expired``: stock back) and the bargain
  ``expired``. The cancelled order stays linked to the expired bargain (the audit of why). It
  also warns each initiator once per bargain (``expiry_warned_at``) when it is live and expires
  within ``BARGAIN_EXPIRING_SOON``; a warning sent before the floor is not repeated for the
  payment deadline (the floor's own notification names it).
- The initiator is notified (stored, once per key) of each cut (``bargain:<id>:help:<seq>``),
  of the floor (``bargain:<id>:floor``), of the coming expiry (``bargain:<id>:expiring``) and of
  the expiry (``bargain:<id>:expired``). The topic ``bargain:<id>`` (its initiator, helpers and
  operators, groupbuy/realtime.py) gets, after each commit and with the topic's ``seq``:
  ``bargain_cut`` (with ``seq`` of the help as ``help_seq`` and its ``cut``),
  ``bargain_floor_reached``, ``bargain_purchased``, ``bargain_expiring_soon``,
  ``bargain_expired``, each with the bargain's ``status``, ``current_price``, ``helps_done``,
  ``helps_needed``, ``helps_left`` and ``expires_at``. ``GET /bargains/{id}`` is the snapshot.
- Sharing is never required: nothing is gated on it.

Operators (the admin, groupbuy/admin/bargains.py): ``check_bargain_campaign`` (422
``bargain_campaign_invalid``, ``details.field`` and ``reason``) and ``bargain_campaign_end`` (no
new bargains; started ones run until they expire).

Lock order (groupbuy/locks.py, shop/locks.py): bargain -> (shop) customer -> order ->
SKU stock. Placing the purchase order, the checkout locks the customer (purchase limits) and
the hot stock row last.
"""

import logging
import math
import uuid
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from core.errors import Conflict, InvalidInput, NotFound
from core.money import BPS_DENOMINATOR, format_minor
from core.notifications import notify
from core.side_effects import topic_push_on_commit
from groupbuy import locks
from groupbuy.cuts import cut_plan, new_seed, price_after
from groupbuy.error_codes import BargainErrorCode
from groupbuy.models import Bargain, BargainCampaign, BargainHelp
from groupbuy.realtime import bargain_topic
from groupbuy.selectors.bargains import bargain_closed, bargain_not_found, purchase_refusal
from groupbuy.services.sweeps import close_each
from shop import locks as shop_locks
from shop.error_codes import OrderErrorCode
from shop.models import Customer, Order, Product, Sku
from shop.services import orders

logger = logging.getLogger(__name__)

ACTIVE = Bargain.Status.ACTIVE
LIVE = Bargain.LIVE
HELP_ONCE = "bargain_help_once"  # the unique (bargain, helper) constraint


# --- errors and small rules -----------------------------------------------------------------------
def _already_helped(bargain: Bargain) -> Conflict:
    return Conflict(
        "You already helped this bargain.",
        code=BargainErrorCode.ALREADY_HELPED,
        details={"bargain_id": bargain.pk},
    )


def _refuse_off_sale(sku: Sku) -> None:
    """The same rule and code as the shop's checkout (it checks again at purchase)."""
    if not sku.is_active or sku.product.status != Product.Status.ON_SALE:
        raise Conflict(
            "This item is not on sale.",
            code=OrderErrorCode.PRODUCT_UNAVAILABLE,
            details={"sku_id": sku.pk, "product_id": sku.product_id},
        )


def _start_of_today(now: datetime) -> datetime:
    """Local midnight (``TIME_ZONE``) of ``now``'s day: daily help limits reset then."""
    return timezone.localtime(now).replace(hour=0, minute=0, second=0, microsecond=0)


def _push(bargain: Bargain, kind: str, **extra: int) -> None:
    """``kind`` with the bargain's counters, to its topic once the transaction commits."""
    topic_push_on_commit(
        bargain_topic(bargain.pk),
        {
            "type": kind,
            "bargain_id": bargain.pk,
            "status": bargain.status,
            "current_price": bargain.current_price,
            "helps_done": bargain.helps_done,
            "helps_needed": bargain.helps_needed,
            "helps_left": bargain.helps_needed - bargain.helps_done,
            "expires_at": bargain.expires_at.isoformat(),
            **extra,
        },
    )


def _tell(bargain: Bargain, *, kind: str, key: str, title: str, body: str) -> None:
    """Notify the initiator, once per bargain and ``key``."""
    notify(
        user_id=bargain.initiator.user_id,
        kind=kind,
        title=title,
        body=body,
        data={
            "bargain_id": bargain.pk,
            "current_price": bargain.current_price,
            "expires_at": bargain.expires_at.isoformat(),
        },
        dedupe_key=f"bargain:{bargain.pk}:{key}",
    )


def _yuan(fen: int) -> str:
    return format_minor(fen, settings.CURRENCY)


# --- start ----------------------------------------------------------------------------------------
def bargain_start(*, campaign_id: int, customer: Customer) -> Bargain:
    """Start a bargain of the campaign for ``customer``: its cut plan drawn from a fresh seed,
    the initiator's first cut made at once.

    404 ``bargain_campaign_not_found``; 409 ``bargain_campaign_not_active`` (not active or outside
    its window), ``product_unavailable`` (SKU inactive or product not on sale),
    ``too_many_bargains`` (``details.limit``).
    """
    now = timezone.now()
    campaign = BargainCampaign.objects.select_related("sku__product").filter(pk=campaign_id).first()
    if campaign is None:
        raise NotFound(
            "Bargain campaign not found.", code=BargainErrorCode.BARGAIN_CAMPAIGN_NOT_FOUND
        )
    active = campaign.status == BargainCampaign.Status.ACTIVE
    if not (active and campaign.starts_at <= now < campaign.ends_at):
        raise Conflict(
            "This bargain campaign is not running.",
            code=BargainErrorCode.BARGAIN_CAMPAIGN_NOT_ACTIVE,
            details={"campaign_id": campaign.pk, "status": campaign.status},
        )
    _refuse_off_sale(campaign.sku)
    seed = new_seed()
    first_cut, cuts = cut_plan(
        seed=seed,
        start_price=campaign.start_price,
        floor_price=campaign.floor_price,
        helps=campaign.helps_needed,
        first_cut_min_bps=campaign.first_cut_min_bps,
        first_cut_max_bps=campaign.first_cut_max_bps,
    )
    with transaction.atomic():
        shop_locks.lock_customer(customer.pk)
        counted = (
            Bargain.objects.filter(campaign=campaign, initiator=customer)
            .filter(
                Q(status=Bargain.Status.PURCHASED)
                | Q(status__in=LIVE, expires_at__gt=now)
                | Q(status__in=LIVE, order__isnull=False)  # past its expiry, may still be paid
            )
            .count()
        )
        if counted >= campaign.max_bargains_per_customer:
            raise Conflict(
                "You already started as many bargains of this campaign as allowed.",
                code=BargainErrorCode.TOO_MANY_BARGAINS,
                details={"limit": campaign.max_bargains_per_customer, "started": counted},
            )
        return Bargain.objects.create(
            campaign=campaign,
            initiator=customer,
            seed=seed,
            start_price=campaign.start_price,
            floor_price=campaign.floor_price,
            helps_needed=campaign.helps_needed,
            first_cut=first_cut,
            cuts=list(cuts),
            current_price=campaign.start_price - first_cut,
            expires_at=min(now + timedelta(seconds=campaign.bargain_ttl_seconds), campaign.ends_at),
        )


# --- help -----------------------------------------------------------------------------------------
def bargain_help(
    *,
    bargain_id: int,
    helper: Customer,
    device_id: uuid.UUID | None = None,
    ip_hash: str = "",
) -> BargainHelp:
    """``helper`` makes the bargain's next cut (``cuts[helps_done]``); the N-th reaches the floor
    (``floor_reached``, ``payment_ttl_seconds`` to buy). ``device_id`` (the ``X-Device-Id``
    UUID) and ``ip_hash`` are stored for farming review.

    404 ``bargain_not_found``; 409 ``cannot_help_own_bargain``, ``bargain_closed``,
    ``already_helped``, ``helper_not_new``, ``help_limit_reached``,
    ``device_help_limit_reached`` (in this order; see the module's rules).
    """
    initiator = Bargain.objects.filter(pk=bargain_id).values_list("initiator_id", flat=True)
    initiator_id = initiator.first()
    if initiator_id is None:
        raise bargain_not_found()
    if initiator_id == helper.pk:
        raise Conflict(
            "You cannot help your own bargain: share it with friends.",
            code=BargainErrorCode.CANNOT_HELP_OWN_BARGAIN,
            details={"bargain_id": bargain_id},
        )
    with transaction.atomic():
        bargain = locks.lock_bargain(bargain_id)
        if bargain is None:
            raise bargain_not_found()
        now = timezone.now()
        if bargain.status != ACTIVE or bargain.expires_at <= now or bargain.order_id is not None:
            raise bargain_closed(bargain)
        if BargainHelp.objects.filter(bargain=bargain, helper=helper).exists():
            raise _already_helped(bargain)
        campaign = bargain.campaign
        if campaign.helpers_must_be_new and _ever_paid(helper):
            raise Conflict(
                "Only customers who have never placed a paid order may help this bargain.",
                code=BargainErrorCode.HELPER_NOT_NEW,
                details={"bargain_id": bargain.pk},
            )
        shop_locks.lock_customer(helper.pk)
        today = BargainHelp.objects.filter(
            bargain__campaign=campaign, created_at__gte=_start_of_today(now)
        )
        helped = today.filter(helper=helper).count()
        if helped >= campaign.helps_per_helper_per_day:
            raise Conflict(
                "You helped as many bargains of this campaign today as allowed.",
                code=BargainErrorCode.HELP_LIMIT_REACHED,
                details={"limit": campaign.helps_per_helper_per_day, "helped": helped},
            )
        if device_id is not None:
            from_device = today.filter(device_id=device_id).count()
            if from_device >= campaign.helps_per_device_per_day:
                raise Conflict(
                    "This device helped as many bargains of this campaign today as allowed.",
                    code=BargainErrorCode.DEVICE_HELP_LIMIT_REACHED,
                    details={"limit": campaign.helps_per_device_per_day},
                )
        return _cut(bargain, helper=helper, device_id=device_id, ip_hash=ip_hash, now=now)


def _ever_paid(customer: Customer) -> bool:
    return Order.objects.filter(customer=customer, paid_at__isnull=False).exists()


def _cut(
    bargain: Bargain, *, helper: Customer, device_id: uuid.UUID | None, ip_hash: str, now: datetime
) -> BargainHelp:
    """The next help on the locked, ``active`` bargain; the N-th reaches the floor."""
    seq = bargain.helps_done + 1
    cuts = bargain.cuts
    price = price_after(
        start_price=bargain.start_price, first_cut=bargain.first_cut, help_cuts=cuts, helped=seq
    )
    try:
        with transaction.atomic():
            help_ = BargainHelp.objects.create(
                bargain=bargain,
                helper=helper,
                seq=seq,
                cut=cuts[seq - 1],
                price_after=price,
                device_id=device_id,
                ip_hash=ip_hash,
            )
    except IntegrityError as exc:
        if getattr(getattr(exc.__cause__, "diag", None), "constraint_name", None) == HELP_ONCE:
            raise _already_helped(bargain) from None
        raise
    bargain.helps_done = seq
    bargain.current_price = price
    fields = ["helps_done", "current_price"]
    at_floor = seq == bargain.helps_needed
    if at_floor:
        bargain.status = Bargain.Status.FLOOR_REACHED
        bargain.floor_reached_at = now
        bargain.expires_at = now + timedelta(seconds=bargain.campaign.payment_ttl_seconds)
        fields += ["status", "floor_reached_at", "expires_at"]
    bargain.save(update_fields=fields)
    _push(bargain, "bargain_cut", help_seq=seq, cut=help_.cut)
    _tell(
        bargain,
        kind="bargain_cut",
        key=f"help:{seq}",
        title="A friend cut your price",
        body=f"{helper.nickname or 'A friend'} cut {_yuan(help_.cut)}: now {_yuan(price)}.",
    )
    if at_floor:
        _push(bargain, "bargain_floor_reached")
        _tell(
            bargain,
            kind="bargain_floor_reached",
            key="floor",
            title="Your bargain reached its lowest price",
            body=f"Buy it now for {_yuan(price)} before "
            f"{timezone.localtime(bargain.expires_at):%Y-%m-%d %H:%M}.",
        )
    return help_


# --- purchase -------------------------------------------------------------------------------------
def bargain_purchase(
    *,
    bargain_id: int,
    customer: Customer,
    delivery_mode: str,
    pickup_point_id: int | None = None,
    address_id: int | None = None,
    community_id: int | None = None,
) -> Order:
    """The initiator buys one unit at the bargain's price: an unpaid order (source ``bargain``,
    ``source_ref`` the bargain) through the shop's checkout, linked to the bargain until it is
    paid (``purchased``) or cancelled (dropped).

    404 ``bargain_not_found`` (also for anyone but the initiator); 409 ``bargain_closed``,
    ``bargain_order_pending``, ``bargain_not_at_floor``; otherwise the checkout's errors
    (delivery details, product not on sale, out of stock, purchase limit).
    """
    if not Bargain.objects.filter(pk=bargain_id, initiator=customer).exists():
        raise bargain_not_found()
    with transaction.atomic():
        bargain = locks.lock_bargain(bargain_id)
        if bargain is None:
            raise bargain_not_found()
        now = timezone.now()
        refusal = purchase_refusal(bargain, now)
        if refusal is not None:
            raise refusal
        left = math.floor((bargain.expires_at - now).total_seconds())
        if bargain.status == Bargain.Status.FLOOR_REACHED:
            payment_ttl = left
        else:
            payment_ttl = min(int(settings.STOCK_RESERVATION_TTL.total_seconds()), left)
        campaign = bargain.campaign
        list_price = Sku.objects.values_list("price", flat=True).get(pk=campaign.sku_id)
        order = orders.order_create(
            customer=customer,
            lines=[(campaign.sku_id, 1)],
            delivery_mode=delivery_mode,
            community_id=community_id,
            pickup_point_id=pickup_point_id,
            address_id=address_id,
            source=Order.Source.BARGAIN,
            source_ref=bargain.pk,
            unit_prices={campaign.sku_id: min(bargain.current_price, list_price)},
            payment_ttl=payment_ttl,
        )
        bargain.order = order
        bargain.save(update_fields=["order"])
    return order


# --- reactions to the shop's order events ---------------------------------------------------------
def bargain_order_paid(*, order_id: int, bargain_id: int | None) -> None:
    """The bargain's purchase order was paid: the bargain is ``purchased``. Idempotent (a
    purchased bargain is left as it is). A payment of an order that is not the bargain's, or of
    a bargain no longer live, changes nothing and is logged (the shop refunds payments of
    cancelled orders itself)."""
    with transaction.atomic():
        bargain = locks.lock_bargain(bargain_id) if bargain_id is not None else None
        if bargain is None or bargain.order_id != order_id:
            logger.error("bargain order %s is not the order of bargain %s", order_id, bargain_id)
            return
        if bargain.status == Bargain.Status.PURCHASED:
            return
        if bargain.status not in LIVE:
            logger.error(
                "bargain order %s was paid for bargain %s, which is %s",
                order_id,
                bargain.pk,
                bargain.status,
            )
            return
        _purchased(bargain, timezone.now())


def _purchased(bargain: Bargain, paid_at: datetime) -> None:
    bargain.status = Bargain.Status.PURCHASED
    bargain.purchased_at = paid_at
    bargain.save(update_fields=["status", "purchased_at"])
    _push(bargain, "bargain_purchased")


def bargain_order_cancelled(*, order_id: int, bargain_id: int | None) -> None:
    """The bargain's pending order was cancelled or expired unpaid: a live bargain drops it, so
    the initiator may buy again (and, while ``active``, friends may help again). Idempotent; the
    cancel of an order the bargain no longer holds (the sweep's own, a replay) changes
    nothing."""
    with transaction.atomic():
        bargain = locks.lock_bargain(bargain_id) if bargain_id is not None else None
        if bargain is None:
            logger.error("cancelled bargain order %s has no bargain %s", order_id, bargain_id)
            return
        if bargain.order_id != order_id or bargain.status not in LIVE:
            return
        bargain.order = None
        bargain.save(update_fields=["order"])


# --- the expiry sweep -----------------------------------------------------------------------------
def bargains_expire_due(*, now: datetime | None = None) -> int:
    """Periodic: close every live bargain past its ``expires_at``, one at a time in pk order,
    each in its own transaction with the bargain locked and re-checked (another sweep or a
    payment may have closed it meanwhile); then warn the initiators of live bargains expiring
    within ``BARGAIN_EXPIRING_SOON``, once per bargain. Returns how many bargains this run
    expired.

    A pending order is locked: paid already, the bargain is ``purchased`` (its ``order_paid``
    is on its way and will find it so); unpaid, it is cancelled (reason ``bargain_expired``) and
    the bargain ``expired``; the initiator is told. A bargain that cannot be closed or warned
    (an error) is logged and retried by the next run."""
    now = now or timezone.now()
    due = list(
        Bargain.objects.filter(status__in=LIVE, expires_at__lte=now)
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    expired = close_each(due, lambda pk: _expire(pk, now), what="expired bargain")
    soon = list(
        Bargain.objects.filter(
            status__in=LIVE,
            expiry_warned_at__isnull=True,
            expires_at__gt=now,
            expires_at__lte=now + settings.BARGAIN_EXPIRING_SOON,
        )
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    for bargain_id in soon:
        try:
            _warn(bargain_id, now)
        except Exception:  # as above: retried by the next run
            logger.exception("warning of bargain %s expiring failed", bargain_id)
    return expired


def _expire(bargain_id: int, now: datetime) -> bool:
    with transaction.atomic():
        bargain = locks.lock_bargain(bargain_id)
        if bargain is None or bargain.status not in LIVE or bargain.expires_at > now:
            return False  # closed by another run, or by its payment, meanwhile
        cancelled = False
        if bargain.order_id is not None:
            order = orders.lock_order(order_id=bargain.order_id)
            if order.paid_at is not None:
                _purchased(bargain, order.paid_at)
                return False
            if order.status == Order.Status.PENDING_PAYMENT:
                orders.order_cancel(order_id=order.pk, reason="bargain_expired")
                cancelled = True
        bargain.status = Bargain.Status.EXPIRED
        bargain.expired_at = now
        bargain.save(update_fields=["status", "expired_at"])
        _push(bargain, "bargain_expired")
        _tell(
            bargain,
            kind="bargain_expired",
            key="expired",
            title="Your bargain expired",
            body="Your bargain ran out of time"
            + (" and its unpaid order was cancelled." if cancelled else "."),
        )
        return True


def _warn(bargain_id: int, now: datetime) -> None:
    with transaction.atomic():
        bargain = locks.lock_bargain(bargain_id)
        if (
            bargain is None
            or bargain.status not in LIVE
            or bargain.expiry_warned_at is not None
            or not now < bargain.expires_at <= now + settings.BARGAIN_EXPIRING_SOON
        ):
            return  # closed, warned or given more time meanwhile
        bargain.expiry_warned_at = now
        bargain.save(update_fields=["expiry_warned_at"])
        _push(bargain, "bargain_expiring_soon")
        if bargain.order_id is not None:
            ask = "Pay your order before "
        elif bargain.status == Bargain.Status.FLOOR_REACHED:
            ask = f"Buy it for {_yuan(bargain.current_price)} before "
        else:
            ask = "Ask friends to help before "
        _tell(
            bargain,
            kind="bargain_expiring_soon",
            key="expiring",
            title="Your bargain expires soon",
            body=f"{ask}{timezone.localtime(bargain.expires_at):%Y-%m-%d %H:%M}.",
        )


# --- operators ------------------------------------------------------------------------------------
def check_bargain_campaign(
    *,
    product_id: int,
    sku: Sku,
    start_price: int,
    floor_price: int,
    helps_needed: int,
    first_cut_min_bps: int,
    first_cut_max_bps: int,
) -> None:
    """A bargain campaign's SKU must be of its product and its prices leave a cut plan: 422
    ``bargain_campaign_invalid`` (``details.field``, ``details.reason``) otherwise."""

    def invalid(field: str, reason: str) -> InvalidInput:
        return InvalidInput(
            f"Invalid bargain campaign: {reason}",
            code=BargainErrorCode.BARGAIN_CAMPAIGN_INVALID,
            details={"field": field, "reason": reason},
        )

    if sku.product_id != product_id:
        raise invalid("sku", "the SKU is not of the campaign's product")
    if start_price > sku.price:
        raise invalid("start_price", "at most the SKU's price")
    if floor_price < 1:
        raise invalid("floor_price", "at least 1 fen")
    if helps_needed < 2:
        raise invalid("helps_needed", "at least 2 helps")
    if start_price - floor_price < helps_needed + 1:
        raise invalid(
            "floor_price", "at least 1 fen below the start price for the first cut and each help"
        )
    if not 1 <= first_cut_min_bps <= first_cut_max_bps:
        raise invalid("first_cut_min_bps", "at least 1 and at most the first cut's maximum")
    if first_cut_max_bps >= BPS_DENOMINATOR:
        raise invalid("first_cut_max_bps", "below 10000 (the whole way)")


def bargain_campaign_end(*, campaign_id: int) -> BargainCampaign:
    """An operator ends a campaign: no new bargains; bargains already started run until they
    expire. Idempotent."""
    with transaction.atomic():
        campaign = locks.lock_bargain_campaign(campaign_id)
        if campaign is None:
            raise NotFound(
                "Bargain campaign not found.", code=BargainErrorCode.BARGAIN_CAMPAIGN_NOT_FOUND
            )
        if campaign.status != BargainCampaign.Status.ENDED:
            campaign.status = BargainCampaign.Status.ENDED
            campaign.save(update_fields=["status"])
        return campaign
