"""Coupons: templates, claiming, issuance, codes, and the checkout side (offers, lock, use,
release, return). Models: shop/models/promotions.py; pricing: shop/services/pricing.py (pure).

A customer's coupon (``CustomerCoupon``) moves through::

    available --coupons_lock (order placed)--> locked --coupons_use (order paid)--> used
    locked --coupons_release (order cancelled or expired)--> available
    used --coupons_return (order fully refunded, coupon still valid)--> available
    available past ``valid_until``: shown as expired (no row changes)

Where coupons come from (each counts against the template's ``total_quantity`` through one
conditional ``UPDATE`` of ``issued_count``, so the last coupon of a limited batch goes to exactly
one taker, and against ``per_customer_limit`` under the customer's row lock):
``coupon_claim`` (coupon centre: ``claimable`` templates, and ``fan_drop`` ones from their
``claim_starts_at``), ``coupon_issuance_create`` / ``coupon_issuance_run`` (an operator's batch
to a segment, run by a Celery task, resumable and safe to run twice: batches advance a cursor
under the issuance's lock and a customer gets at most one coupon per issuance),
``coupon_compensate`` (staff to one customer), ``coupons_gift_new_customer`` (first login), and
a ``CouponCode`` typed at checkout (the coupon is created, locked, at ``coupons_lock``).

The checkout calls, in order: ``checkout_offers`` (before the transaction: the coupons asked
for, as pricing ``Offer``s, or a refusal), then inside the order's transaction ``coupons_lock``
(each held coupon ``available -> locked`` by a conditional update; a code's redemption and the
template's ``issued_count`` counted the same way, the hot rows last); ``coupons_use`` when the
order is paid, ``coupons_release`` when it is cancelled or expires, ``coupons_return`` when it is
fully refunded. Refusals: unknown or another customer's coupon, unknown or inactive code: 422
``coupon_invalid``; outside its validity: 422 ``coupon_expired``; out of scope, not for the
order's community, minimum spend not reached, nothing to take off: 422 ``coupon_not_applicable``;
two of a slot or kind, or a non-stackable one with another: 422 ``coupon_not_stackable``; already
locked or used, a code used up, a batch sold out, or a race lost to another checkout: 409
``coupon_unavailable`` (``details.reason``).

Rules chosen where the issue left room:
- Stacking (declared on the template, applied by pricing): at most one coupon per slot
  (``platform``, ``exclusive`` for distributor codes, ``shipping`` for free shipping) and per
  kind; ``stackable=False`` stands alone; goods never go below ``MIN_PAYABLE`` (1 fen).
- A coupon a customer holds stays usable while valid even if its template is paused or ended
  (pausing stops new claims, issuance and code redemptions); staff void one by revoking it.
- A code-redeemed coupon released by a cancelled or expired order stays with the customer as
  available (the code's redemption is not given back); typing the code again uses it.
- A fully refunded order gives its coupons back while they are still valid (``returned_at``); a
  partial refund never does (the customer kept part of what the coupon paid for); shipping is
  never refunded.
- A coupon's ``discount`` is what it saved on its order: goods, or the waived shipping fee.
- Scope by category matches a product's own category (not its parent's); a template tied to
  communities applies only to orders of those communities, and is claimable in the coupon centre
  only by their members.
- Validity: ``valid_days`` after the coupon is issued (capped by ``valid_until`` when both are
  set), else the template's window ``valid_from`` .. ``valid_until``.
"""

import logging
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Any, cast

from django.db import IntegrityError, connection, transaction
from django.db.models import Count, F, ManyToManyField, Q, QuerySet
from django.utils import timezone

from core.errors import Conflict, InvalidInput, NotFound
from core.models import User
from core.rows import columns, instance_from, width
from core.side_effects import enqueue_on_commit
from shop import locks
from shop.error_codes import CouponErrorCode, OrderErrorCode
from shop.models import (
    Category,
    Community,
    CommunityMembership,
    CouponCode,
    CouponIssuance,
    CouponTemplate,
    Customer,
    CustomerCoupon,
    Order,
    OrderLine,
    Product,
    Sku,
)
from shop.services.pricing import Offer, Pricing, PricingLine

logger = logging.getLogger(__name__)

T = CouponTemplate
CC = CustomerCoupon
CLAIM_CHANNELS = (T.Channel.CLAIMABLE, T.Channel.FAN_DROP)
ISSUE_CHANNELS = (T.Channel.ISSUED, T.Channel.COMPENSATION)
CODE_PREFIX = "code:"
ISSUANCE_BATCH = 200
MAX_LISTED_CUSTOMERS = 1000
MAX_TIERS = 10
PAID_STATUSES = (
    Order.Status.PAID,
    Order.Status.FULFILLED,
    Order.Status.COMPLETED,
    Order.Status.PARTIALLY_REFUNDED,
)


# --- templates ---------------------------------------------------------------------------------
def _template_invalid(field: str, reason: str) -> InvalidInput:
    return InvalidInput(
        f"Invalid coupon template: {field}: {reason}",
        code=CouponErrorCode.TEMPLATE_INVALID,
        details={"field": field, "reason": reason},
    )


def template_check(template: CouponTemplate) -> None:
    """The rules a template's own fields must keep (422 ``coupon_template_invalid`` naming the
    field); the admin form and the staff API both call it."""
    kind = template.kind
    if kind not in T.Kind.values:
        raise _template_invalid("kind", "unknown kind")
    if kind == T.Kind.FIXED and template.amount < 1:
        raise _template_invalid("amount", "a fixed coupon takes at least 1 fen off")
    if kind == T.Kind.PERCENT:
        if not 1 <= template.percent_bps <= 10_000:
            raise _template_invalid("percent_bps", "between 1 and 10000 basis points")
        if template.max_discount is not None and template.max_discount < 1:
            raise _template_invalid("max_discount", "at least 1 fen, or empty for no cap")
    if kind == T.Kind.THRESHOLD:
        tiers = _tiers(template)
        if tiers is None or not tiers:
            raise _template_invalid("tiers", 'a list of {"threshold": fen, "off": fen}')
        if len(tiers) > MAX_TIERS:
            raise _template_invalid("tiers", f"at most {MAX_TIERS} tiers")
        thresholds = [threshold for threshold, _ in tiers]
        if thresholds != sorted(set(thresholds)):
            raise _template_invalid("tiers", "thresholds rise strictly")
        for threshold, off in tiers:
            if not 1 <= off <= threshold:
                raise _template_invalid("tiers", "each tier takes 1 fen up to its threshold off")
        offs = [off for _, off in tiers]
        if offs != sorted(offs):
            raise _template_invalid("tiers", "a higher threshold never takes less off")
    if template.min_spend < 0:
        raise _template_invalid("min_spend", "not negative")
    if template.valid_days is None and template.valid_until is None:
        raise _template_invalid("valid_until", "give a validity window or valid_days")
    if template.valid_days is not None and template.valid_days < 1:
        raise _template_invalid("valid_days", "at least 1")
    if (
        template.valid_from is not None
        and template.valid_until is not None
        and template.valid_from >= template.valid_until
    ):
        raise _template_invalid("valid_until", "after valid_from")
    if (
        template.claim_starts_at is not None
        and template.claim_ends_at is not None
        and template.claim_starts_at >= template.claim_ends_at
    ):
        raise _template_invalid("claim_ends_at", "after claim_starts_at")
    if template.channel == T.Channel.FAN_DROP and template.claim_starts_at is None:
        raise _template_invalid("claim_starts_at", "a fan-welfare drop starts at a set time")
    if template.per_customer_limit < 1:
        raise _template_invalid("per_customer_limit", "at least 1")
    if template.total_quantity is not None and template.total_quantity < template.issued_count:
        raise _template_invalid("total_quantity", "not below the coupons already issued")
    if template.is_exclusive and kind == T.Kind.FREE_SHIPPING:
        raise _template_invalid("is_exclusive", "free shipping has its own slot")


def _tiers(template: CouponTemplate) -> list[tuple[int, int]] | None:
    """The tiers as ``(threshold, off)`` integer pairs; None when malformed."""
    if not isinstance(template.tiers, list):
        return None
    found = []
    for tier in template.tiers:
        if not isinstance(tier, dict) or set(tier) != {"threshold", "off"}:
            return None
        threshold, off = tier["threshold"], tier["off"]
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in (threshold, off)):
            return None
        found.append((threshold, off))
    return found


def _check_scope_lists(template: CouponTemplate) -> None:
    lists = {
        T.Scope.CATEGORIES: ("category_ids", template.categories),
        T.Scope.PRODUCTS: ("product_ids", template.products),
        T.Scope.SKUS: ("sku_ids", template.skus),
    }
    if template.scope in lists:
        field, related = lists[T.Scope(template.scope)]
        if not related.exists():
            raise _template_invalid(field, f"scope {template.scope} needs at least one")


def _existing(model: Any, ids: Sequence[int], field: str) -> list[int]:
    wanted = set(ids)
    found = set(model.objects.filter(pk__in=wanted).values_list("pk", flat=True))
    if found != wanted:
        raise _template_invalid(field, f"unknown ids {sorted(wanted - found)}")
    return sorted(found)


def coupon_template_create(
    *,
    staff: User | None,
    category_ids: Sequence[int] = (),
    product_ids: Sequence[int] = (),
    sku_ids: Sequence[int] = (),
    community_ids: Sequence[int] = (),
    activate: bool = False,
    **fields: Any,
) -> CouponTemplate:
    """A new template (draft, or active with ``activate``); ``fields`` are the model's own
    (name, kind, amounts, validity, channel, limits, ...). 422 ``coupon_template_invalid``."""
    template = CouponTemplate(created_by=staff, status=T.Status.DRAFT, **fields)
    template_check(template)
    scope_lists = {
        "categories": _existing(Category, category_ids, "category_ids"),
        "products": _existing(Product, product_ids, "product_ids"),
        "skus": _existing(Sku, sku_ids, "sku_ids"),
        "communities": _existing(Community, community_ids, "community_ids"),
    }
    with transaction.atomic():
        template.save()
        for name, ids in scope_lists.items():
            getattr(template, name).set(ids)
        if activate:
            _check_scope_lists(template)
            template.status = T.Status.ACTIVE
            template.save(update_fields=["status"])
    return template


_TRANSITIONS = {
    T.Status.ACTIVE: (T.Status.DRAFT, T.Status.PAUSED),
    T.Status.PAUSED: (T.Status.ACTIVE,),
    T.Status.ENDED: (T.Status.DRAFT, T.Status.ACTIVE, T.Status.PAUSED),
}


def coupon_template_set_status(*, template_id: int, status: str) -> CouponTemplate:
    """Activate (from draft or paused; the template is checked first), pause (active), or end
    (for good). Repeating the current status returns the template; any other move is 409
    ``illegal_transition``. Coupons customers hold are not touched."""
    with transaction.atomic():
        template = locks.lock_coupon_template(template_id)
        if template is None:
            raise NotFound("Coupon template not found.", code=CouponErrorCode.TEMPLATE_NOT_FOUND)
        if template.status == status:
            return template
        if template.status not in _TRANSITIONS.get(T.Status(status), ()):
            raise Conflict(
                f"A {template.status} coupon template cannot become {status}.",
                code=CouponErrorCode.ILLEGAL_TRANSITION,
                details={"from": template.status, "to": status},
            )
        if status == T.Status.ACTIVE:
            template_check(template)
            _check_scope_lists(template)
        template.status = status
        template.save(update_fields=["status", "updated_at"])
        return template


def coupon_validity(template: CouponTemplate, issued_at: datetime) -> tuple[datetime, datetime]:
    """``(valid_from, valid_until)`` of a coupon of ``template`` issued at ``issued_at``."""
    if template.valid_days:
        until = issued_at + timedelta(days=template.valid_days)
        if template.valid_until is not None:
            until = min(until, template.valid_until)
        return issued_at, until
    if template.valid_until is None:
        raise _template_invalid("valid_until", "give a validity window or valid_days")
    return template.valid_from or issued_at, template.valid_until


# --- where a coupon applies (shared by checkout, preview and the coupon list) -----------------
@dataclass(frozen=True)
class Fit:
    """Whether a template reaches this cart: the SKUs it applies to (None: all), or why not."""

    eligible: frozenset[int] | None
    reason: str | None  # "scope", "community", "min_spend", or None when it fits


def _ids(related: Any) -> set[int]:
    return {obj.pk for obj in related.all()}  # served from prefetch_related when prefetched


SCOPE_RELATIONS = ("communities", "categories", "products", "skus")


# The four scope tables in one round trip (the checkout's path: instead of four prefetches).
def _scope(template: CouponTemplate, relation: str) -> set[int]:
    attached = getattr(template, "_scope_ids", None)
    if attached is not None:
        return attached[relation]
    return _ids(getattr(template, relation))


def template_fit(
    template: CouponTemplate, *, community: Community | None, lines: Sequence[PricingLine]
) -> Fit:
    communities = _scope(template, "communities")
    if communities and (community is None or community.pk not in communities):
        return Fit(frozenset(), "community")
    eligible: frozenset[int] | None = None
    if template.scope == T.Scope.CATEGORIES:
        categories = _scope(template, "categories")
        eligible = frozenset(line.sku_id for line in lines if line.category_id in categories)
    elif template.scope == T.Scope.PRODUCTS:
        products = _scope(template, "products")
        eligible = frozenset(line.sku_id for line in lines if line.product_id in products)
    elif template.scope == T.Scope.SKUS:
        skus = _scope(template, "skus")
        eligible = frozenset(line.sku_id for line in lines if line.sku_id in skus)
    if eligible is not None and not eligible:
        return Fit(eligible, "scope")
    base = sum(line.subtotal for line in lines if eligible is None or line.sku_id in eligible)
    needed = template.min_spend
    if template.kind == T.Kind.THRESHOLD:
        needed = max(needed, min((threshold for threshold, _ in _tiers(template) or []), default=0))
    if base < needed:
        return Fit(eligible, "min_spend")
    return Fit(eligible, None)


def template_offer(
    template: CouponTemplate, *, key: object, eligible: frozenset[int] | None, rank: tuple
) -> Offer:
    return Offer(
        key=key,
        kind=template.kind,
        slot=template.slot,
        stackable=template.stackable,
        amount=template.amount if template.kind == T.Kind.FIXED else 0,
        bps=template.percent_bps if template.kind == T.Kind.PERCENT else 0,
        cap=template.max_discount if template.kind == T.Kind.PERCENT else None,
        min_spend=template.min_spend,
        tiers=tuple(_tiers(template) or ()) if template.kind == T.Kind.THRESHOLD else (),
        eligible=eligible,
        rank=rank,
    )


def coupon_offer(coupon: CustomerCoupon, fit: Fit) -> Offer:
    return template_offer(
        coupon.template, key=coupon.pk, eligible=fit.eligible, rank=(coupon.valid_until, coupon.pk)
    )


def with_template(qs: QuerySet[CustomerCoupon]) -> QuerySet[CustomerCoupon]:
    return qs.select_related("template", "code").prefetch_related(
        "template__categories", "template__products", "template__skus", "template__communities"
    )


# --- checkout ----------------------------------------------------------------------------------
def _not_applicable(reason: str, **details: Any) -> InvalidInput:
    return InvalidInput(
        "This coupon does not apply to this order.",
        code=OrderErrorCode.COUPON_NOT_APPLICABLE,
        details={**details, "reason": reason},
    )


def _unavailable(reason: str, **details: Any) -> Conflict:
    messages = {
        "used": "This coupon was already used.",
        "locked": "This coupon is held by another unpaid order.",
        "code_used_up": "This code has been used up.",
        "already_redeemed": "You already redeemed this code.",
        "sold_out": "These coupons are all gone.",
        "limit_reached": "You hold as many of these coupons as allowed.",
        "race_lost": "This coupon was just taken by another order.",
    }
    return Conflict(
        messages[reason],
        code=OrderErrorCode.COUPON_UNAVAILABLE,
        details={**details, "reason": reason},
    )


def _expired(valid_from: datetime, valid_until: datetime, **details: Any) -> InvalidInput:
    return InvalidInput(
        "This coupon is not valid at this time.",
        code=OrderErrorCode.COUPON_EXPIRED,
        details={
            **details,
            "valid_from": valid_from.isoformat(),
            "valid_until": valid_until.isoformat(),
        },
    )


def _invalid_code(code: str) -> InvalidInput:
    return InvalidInput(
        "This coupon code is not valid.",
        code=OrderErrorCode.COUPON_INVALID,
        details={"coupon_code": code},
    )


def _check_fit(fit: Fit, template: CouponTemplate, lines: Sequence[PricingLine], **ref: Any):
    if fit.reason is None:
        return
    details: dict[str, Any] = dict(ref)
    if fit.reason == "min_spend":
        details["min_spend"] = template.min_spend
        details["eligible_amount"] = sum(
            line.subtotal for line in lines if fit.eligible is None or line.sku_id in fit.eligible
        )
    raise _not_applicable(fit.reason, **details)


@cache
def _held_sql() -> str:
    """The customer's coupons with their templates, codes and the templates' scope ids, in one
    query (it runs in every checkout with a coupon; see core/rows.py)."""
    scopes = []
    for relation in SCOPE_RELATIONS:
        field = cast(ManyToManyField, T._meta.get_field(relation))
        through, target, source = (
            field.m2m_db_table(),
            field.m2m_reverse_name(),
            field.m2m_column_name(),
        )
        scopes.append(f"ARRAY(SELECT {target} FROM {through} WHERE {source} = t.id)")  # noqa: S608
    return (
        f"SELECT {columns(CC, 'c')}, {columns(T, 't')}, {columns(CouponCode, 'k')}, "  # noqa: S608
        f"{', '.join(scopes)} FROM {CC._meta.db_table} c "
        f"JOIN {T._meta.db_table} t ON t.id = c.template_id "
        f"LEFT JOIN {CouponCode._meta.db_table} k ON k.id = c.code_id "
        "WHERE c.id = ANY(%s) AND c.customer_id = %s"
    )


def _held_coupons(*, customer_id: int, coupon_ids: set[int]) -> dict[int, CustomerCoupon]:
    """``coupon_ids`` of the customer's coupons, by pk, each with its template (its scope ids
    kept on it for ``template_fit``) and code."""
    if not coupon_ids:
        return {}
    with connection.cursor() as cursor:
        cursor.execute(_held_sql(), [list(coupon_ids), customer_id])
        rows = cursor.fetchall()
    a, b = width(CC), width(CC) + width(T)
    c = b + width(CouponCode)
    found = {}
    for row in rows:
        coupon = instance_from(CC, row[:a])
        template = instance_from(T, row[a:b])
        template._scope_ids = {  # type: ignore[attr-defined]
            relation: set(ids) for relation, ids in zip(SCOPE_RELATIONS, row[c:], strict=True)
        }
        CC.template.field.set_cached_value(coupon, template)
        code = None if row[b] is None else instance_from(CouponCode, row[b:c])
        CC.code.field.set_cached_value(coupon, code)
        found[coupon.pk] = coupon
    return found


def _held_offers(
    *,
    customer: Customer,
    community: Community | None,
    lines: Sequence[PricingLine],
    coupon_ids: Sequence[int],
    now: datetime,
) -> list[Offer]:
    found = _held_coupons(customer_id=customer.pk, coupon_ids=set(coupon_ids))
    missing = sorted(set(coupon_ids) - set(found))
    revoked = sorted(pk for pk, c in found.items() if c.status == CC.Status.REVOKED)
    if missing or revoked:
        raise InvalidInput(
            "This coupon is not valid.",
            code=OrderErrorCode.COUPON_INVALID,
            details={"coupon_ids": missing + revoked},
        )
    offers = []
    for pk in coupon_ids:
        coupon = found[pk]
        if coupon.status != CC.Status.AVAILABLE:
            raise _unavailable(coupon.status, coupon_id=pk)
        if not coupon.valid_from <= now < coupon.valid_until:
            raise _expired(coupon.valid_from, coupon.valid_until, coupon_id=pk)
        fit = template_fit(coupon.template, community=community, lines=lines)
        _check_fit(fit, coupon.template, lines, coupon_id=pk)
        offers.append(coupon_offer(coupon, fit))
    return offers


def find_code(code: str) -> CouponCode | None:
    return (
        CouponCode.objects.select_related("template")
        .prefetch_related(
            "template__categories", "template__products", "template__skus", "template__communities"
        )
        .filter(code__iexact=code)
        .first()
    )


def _code_offer(
    *,
    customer: Customer,
    community: Community | None,
    lines: Sequence[PricingLine],
    code_text: str,
    now: datetime,
) -> Offer:
    code = find_code(code_text)
    if code is None or not code.is_active:
        raise _invalid_code(code_text)
    template = code.template
    mine = CustomerCoupon.objects.filter(code=code, customer=customer).first()
    if mine is not None:  # redeemed before: that coupon is the one this code gives
        if mine.status == CC.Status.REVOKED:
            raise _invalid_code(code_text)
        if mine.status != CC.Status.AVAILABLE:
            raise _unavailable("already_redeemed", coupon_code=code.code)
        start, until = mine.valid_from, mine.valid_until
    else:
        if template.status != T.Status.ACTIVE:
            raise _invalid_code(code_text)
        start, until = coupon_validity(template, now)
        claim_open = (template.claim_starts_at is None or template.claim_starts_at <= now) and (
            template.claim_ends_at is None or now < template.claim_ends_at
        )
        if not claim_open:
            raise _expired(template.claim_starts_at or start, template.claim_ends_at or until)
        if not _code_has_room(code):
            raise _unavailable("code_used_up", coupon_code=code.code)
        if template.total_quantity is not None and template.issued_count >= template.total_quantity:
            raise _unavailable("sold_out", coupon_code=code.code)
    if not start <= now < until:
        raise _expired(start, until, coupon_code=code.code)
    fit = template_fit(template, community=community, lines=lines)
    _check_fit(fit, template, lines, coupon_code=code.code)
    return template_offer(
        template, key=f"{CODE_PREFIX}{code.code}", eligible=fit.eligible, rank=(until, 0)
    )


def _code_has_room(code: CouponCode) -> bool:
    if code.kind == CouponCode.Kind.SINGLE_USE:
        return code.redemptions < 1
    return code.max_redemptions is None or code.redemptions < code.max_redemptions


def checkout_offers(
    *,
    customer: Customer,
    community: Community | None,
    lines: Sequence[PricingLine],
    coupon_ids: Sequence[int],
    coupon_code: str,
    now: datetime,
) -> list[Offer]:
    """The offers this checkout asked for (``coupon_ids`` of the customer's coupons, and a
    ``coupon_code``), checked against the cart; a plain read before the order's transaction
    (``coupons_lock`` repeats the guards that races can break)."""
    offers = _held_offers(
        customer=customer, community=community, lines=lines, coupon_ids=coupon_ids, now=now
    )
    if coupon_code:
        offers.append(
            _code_offer(
                customer=customer, community=community, lines=lines, code_text=coupon_code, now=now
            )
        )
    return offers


_LOCK_HELD_SQL = """
UPDATE shop_customercoupon SET status = %(locked)s, order_id = %(order_id)s, locked_at = %(now)s,
    discount = %(saved)s
WHERE id = %(coupon_id)s AND customer_id = %(customer_id)s AND status = %(available)s
    AND valid_from <= %(now)s AND valid_until > %(now)s
"""


def _lock_held(*, order: Order, coupon_id: int, saved: int, now: datetime) -> None:
    # one conditional UPDATE, written by hand: it runs in every checkout with a coupon
    with connection.cursor() as cursor:
        cursor.execute(
            _LOCK_HELD_SQL,
            {
                "locked": CC.Status.LOCKED,
                "available": CC.Status.AVAILABLE,
                "order_id": order.pk,
                "now": now,
                "saved": saved,
                "coupon_id": coupon_id,
                "customer_id": order.customer_id,
            },
        )
        taken = cursor.rowcount
    if not taken:
        raise _unavailable("race_lost", coupon_id=coupon_id)


def _lock_code(*, order: Order, code_text: str, saved: int, now: datetime) -> None:
    code = find_code(code_text)
    if code is None:
        raise _invalid_code(code_text)
    locks.lock_customer(order.customer_id)  # one redemption of a code per customer at a time
    mine = CustomerCoupon.objects.filter(code=code, customer_id=order.customer_id).first()
    if mine is not None:
        _lock_held(order=order, coupon_id=mine.pk, saved=saved, now=now)
        return
    template = code.template
    held = CustomerCoupon.objects.filter(template=template, customer_id=order.customer_id).count()
    if held >= template.per_customer_limit:
        raise _unavailable("limit_reached", coupon_code=code.code)
    start, until = coupon_validity(template, now)
    CustomerCoupon.objects.create(
        template=template,
        customer_id=order.customer_id,
        status=CC.Status.LOCKED,
        source=CC.Source.CODE,
        code=code,
        valid_from=start,
        valid_until=until,
        order=order,
        discount=saved,
        locked_at=now,
    )
    # the contended counters last: their row locks are held only until the commit
    room = Q(kind=CouponCode.Kind.SINGLE_USE, redemptions__lt=1) | Q(
        Q(max_redemptions__isnull=True) | Q(redemptions__lt=F("max_redemptions")),
        kind=CouponCode.Kind.SHARED,
    )
    if not CouponCode.objects.filter(room, pk=code.pk, is_active=True).update(
        redemptions=F("redemptions") + 1
    ):
        raise _unavailable("code_used_up", coupon_code=code.code)
    if not _take_from_batch(template.pk, 1):
        raise _unavailable("sold_out", coupon_code=code.code)


def _take_from_batch(template_id: int, count: int) -> bool:
    """Count ``count`` more coupons of an active template, if the batch has room: one
    conditional UPDATE (the last coupon goes to exactly one taker)."""
    room = Q(total_quantity__isnull=True) | Q(issued_count__lte=F("total_quantity") - count)
    return bool(
        CouponTemplate.objects.filter(room, pk=template_id, status=T.Status.ACTIVE).update(
            issued_count=F("issued_count") + count
        )
    )


def coupons_lock(*, order: Order, pricing: Pricing, offers: Sequence[Offer]) -> None:
    """Inside the order's transaction: lock the coupons ``pricing`` applied to ``order`` (409
    ``coupon_unavailable`` when another checkout took one first: the order is rolled back)."""
    now = order.created_at or timezone.now()
    for applied in pricing.applied:
        saved = applied.discount + applied.shipping_waived
        if isinstance(applied.key, str) and applied.key.startswith(CODE_PREFIX):
            _lock_code(order=order, code_text=applied.key[len(CODE_PREFIX) :], saved=saved, now=now)
        elif isinstance(applied.key, int):
            _lock_held(order=order, coupon_id=applied.key, saved=saved, now=now)
        else:
            raise ValueError(f"unknown offer key {applied.key!r}")


def coupons_use(*, order: Order) -> int:
    """The order was paid: its locked coupons are used."""
    return CustomerCoupon.objects.filter(order=order, status=CC.Status.LOCKED).update(
        status=CC.Status.USED, used_at=timezone.now()
    )


def coupons_release(*, order: Order) -> int:
    """The order was cancelled or expired: its locked coupons are available again (a
    code-redeemed one stays with the customer)."""
    return CustomerCoupon.objects.filter(order=order, status=CC.Status.LOCKED).update(
        status=CC.Status.AVAILABLE, order=None, locked_at=None, discount=0
    )


def coupons_return(*, order: Order) -> int:
    """The order was fully refunded: its used coupons come back while still valid (never on a
    partial refund)."""
    now = timezone.now()
    return CustomerCoupon.objects.filter(
        order=order, status=CC.Status.USED, valid_until__gt=now
    ).update(
        status=CC.Status.AVAILABLE,
        order=None,
        locked_at=None,
        used_at=None,
        discount=0,
        returned_at=now,
    )


# --- claiming ----------------------------------------------------------------------------------
def claim_refusal(template: CouponTemplate, now: datetime) -> str | None:
    """Why ``template`` cannot be claimed in the coupon centre now, or None."""
    if template.channel not in CLAIM_CHANNELS or template.status != T.Status.ACTIVE:
        return "not_claimable"
    if template.claim_starts_at is not None and now < template.claim_starts_at:
        return "not_started"
    if template.claim_ends_at is not None and now >= template.claim_ends_at:
        return "ended"
    if template.valid_until is not None and now >= template.valid_until:
        return "ended"
    return None


def _template_or_404(template_id: int) -> CouponTemplate:
    template = CouponTemplate.objects.prefetch_related("communities").filter(pk=template_id).first()
    if template is None:
        raise NotFound("Coupon template not found.", code=CouponErrorCode.TEMPLATE_NOT_FOUND)
    return template


def _sold_out() -> Conflict:
    return Conflict("These coupons are all gone.", code=CouponErrorCode.COUPON_SOLD_OUT)


def _issue_one(
    *,
    template: CouponTemplate,
    customer_id: int,
    source: str,
    now: datetime,
    staff: User | None = None,
) -> CustomerCoupon:
    """Inside a transaction: one coupon of ``template`` for the customer, within the
    per-customer limit (counted under the customer's lock) and the batch (conditional update,
    last: the template's row is held only until the commit)."""
    locks.lock_customer(customer_id)
    held = CustomerCoupon.objects.filter(template=template, customer_id=customer_id).count()
    if held >= template.per_customer_limit:
        raise Conflict(
            "You hold as many of these coupons as allowed.",
            code=CouponErrorCode.COUPON_LIMIT_REACHED,
            details={"limit": template.per_customer_limit, "held": held},
        )
    start, until = coupon_validity(template, now)
    coupon = CustomerCoupon.objects.create(
        template=template,
        customer_id=customer_id,
        source=source,
        issued_by=staff,
        valid_from=start,
        valid_until=until,
    )
    if not _take_from_batch(template.pk, 1):
        raise _sold_out()
    return coupon


def coupon_claim(
    *, customer: Customer, template_id: int, now: datetime | None = None
) -> CustomerCoupon:
    """Claim a coupon in the coupon centre. 404 ``coupon_template_not_found``; not a claimable
    or fan-drop template, not active, before its start or after its end, or tied to communities
    the customer is not a member of: 409 ``coupon_not_claimable`` (``details.reason``); all gone:
    409 ``coupon_sold_out``; at the per-customer limit: 409 ``coupon_limit_reached``."""
    now = now or timezone.now()
    template = _template_or_404(template_id)
    reason = claim_refusal(template, now)
    communities = _ids(template.communities)
    if reason is None and communities:
        member = CommunityMembership.objects.filter(
            customer=customer, community_id__in=communities
        ).exists()
        reason = None if member else "community"
    if reason is not None:
        details: dict[str, Any] = {"reason": reason}
        if reason == "not_started" and template.claim_starts_at is not None:
            details["claim_starts_at"] = template.claim_starts_at.isoformat()
        raise Conflict(
            "This coupon cannot be claimed now.",
            code=CouponErrorCode.COUPON_NOT_CLAIMABLE,
            details=details,
        )
    if template.total_quantity is not None and template.issued_count >= template.total_quantity:
        raise _sold_out()  # a plain read first: a sold-out batch opens no transaction
    source = CC.Source.DROP if template.channel == T.Channel.FAN_DROP else CC.Source.CLAIM
    with transaction.atomic():
        return _issue_one(template=template, customer_id=customer.pk, source=source, now=now)


def coupon_compensate(
    *, template_id: int, customer_id: int, staff: User | None, reason: str = ""
) -> CustomerCoupon:
    """Staff give one customer a coupon (e.g. for a late delivery), within the template's
    limits. The template must be an active ``issued`` or ``compensation`` one."""
    template = _issuable(template_id)
    if not Customer.objects.filter(pk=customer_id).exists():
        raise NotFound("Customer not found.", code=CouponErrorCode.CUSTOMER_NOT_FOUND)
    with transaction.atomic():
        coupon = _issue_one(
            template=template,
            customer_id=customer_id,
            source=CC.Source.COMPENSATION,
            now=timezone.now(),
            staff=staff,
        )
    logger.info("coupon %s given to customer %s by %s: %s", coupon.pk, customer_id, staff, reason)
    return coupon


def coupons_gift_new_customer(*, customer: Customer, now: datetime | None = None) -> int:
    """Inside the transaction that creates ``customer``: one coupon of every active
    new-customer template in its window (a batch that ran out gives nothing). The customer is
    new and unseen by anyone else, so no lock is needed for the per-customer limit."""
    now = now or timezone.now()
    templates = CouponTemplate.objects.filter(
        Q(claim_starts_at__isnull=True) | Q(claim_starts_at__lte=now),
        Q(claim_ends_at__isnull=True) | Q(claim_ends_at__gt=now),
        Q(valid_until__isnull=True) | Q(valid_until__gt=now),
        status=T.Status.ACTIVE,
        channel=T.Channel.NEW_CUSTOMER,
    ).order_by("pk")
    given = 0
    for template in templates:
        if not _take_from_batch(template.pk, 1):
            continue
        start, until = coupon_validity(template, now)
        CustomerCoupon.objects.create(
            template=template,
            customer=customer,
            source=CC.Source.GIFT,
            valid_from=start,
            valid_until=until,
        )
        given += 1
    return given


# --- issuance to a segment ---------------------------------------------------------------------
def _issuable(template_id: int) -> CouponTemplate:
    template = _template_or_404(template_id)
    if template.channel not in ISSUE_CHANNELS or template.status != T.Status.ACTIVE:
        raise Conflict(
            "Only active templates of the issued or compensation channel are issued by staff.",
            code=CouponErrorCode.NOT_ISSUABLE,
            details={"channel": template.channel, "status": template.status},
        )
    return template


def _segment_invalid(reason: str) -> InvalidInput:
    return InvalidInput(
        f"Invalid segment: {reason}",
        code=CouponErrorCode.SEGMENT_INVALID,
        details={"reason": reason},
    )


def _segment_params(segment: str, params: dict[str, Any]) -> dict[str, Any]:
    """The parameters a segment needs, checked (422 ``coupon_segment_invalid``)."""
    S = CouponIssuance.Segment
    needs = {
        S.COMMUNITY: ("community_id", Community),
        S.BOUGHT_PRODUCT: ("product_id", Product),
    }
    if segment in needs:
        name, model = needs[S(segment)]
        value = params.get(name)
        if not isinstance(value, int) or isinstance(value, bool):
            raise _segment_invalid(f"{segment} needs {name}")
        if not model._default_manager.filter(pk=value).exists():
            raise _segment_invalid(f"unknown {name} {value}")
        return {name: value}
    if segment == S.CUSTOMERS:
        ids = params.get("customer_ids")
        if (
            not isinstance(ids, list)
            or not 1 <= len(ids) <= MAX_LISTED_CUSTOMERS
            or not all(isinstance(pk, int) and not isinstance(pk, bool) for pk in ids)
        ):
            raise _segment_invalid(f"customers needs customer_ids (1 to {MAX_LISTED_CUSTOMERS})")
        return {"customer_ids": sorted(set(ids))}
    if segment == S.NEW_CUSTOMERS:
        return {}
    raise _segment_invalid(f"unknown segment {segment!r}")


def segment_customers(segment: str, params: dict[str, Any]) -> QuerySet[Customer]:
    """The active customers of a segment."""
    S = CouponIssuance.Segment
    customers = Customer.objects.filter(user__is_active=True)
    if segment == S.COMMUNITY:
        return customers.filter(
            pk__in=CommunityMembership.objects.filter(community_id=params["community_id"]).values(
                "customer_id"
            )
        )
    if segment == S.BOUGHT_PRODUCT:
        return customers.filter(
            pk__in=OrderLine.objects.filter(
                sku__product_id=params["product_id"], order__status__in=PAID_STATUSES
            ).values("order__customer_id")
        )
    if segment == S.NEW_CUSTOMERS:
        return customers.exclude(
            pk__in=Order.objects.filter(paid_at__isnull=False).values("customer_id")
        )
    if segment == S.CUSTOMERS:
        return customers.filter(pk__in=params["customer_ids"])
    raise ValueError(f"unknown segment {segment!r}")


def coupon_issuance_create(
    *,
    template_id: int,
    segment: str,
    params: dict[str, Any],
    staff: User | None,
    reason: str = "",
) -> CouponIssuance:
    """Issue ``template`` to a segment in the background: the issuance is created ``pending``
    with the segment's size as ``total``, and ``shop.tasks.coupon_issuance_run`` runs it after
    commit (poll ``issued`` / ``skipped``)."""
    from shop import tasks

    template = _issuable(template_id)
    checked = _segment_params(segment, params)
    with transaction.atomic():
        issuance = CouponIssuance.objects.create(
            template=template,
            segment=segment,
            params=checked,
            reason=reason,
            created_by=staff,
            total=segment_customers(segment, checked).count(),
        )
        enqueue_on_commit(tasks.coupon_issuance_run, issuance.pk)
    return issuance


def coupon_issuance_resume(*, issuance_id: int) -> CouponIssuance:
    """Run a pending, stuck or failed issuance again (from where it stopped)."""
    from shop import tasks

    with transaction.atomic():
        issuance = locks.lock_coupon_issuance(issuance_id)
        if issuance is None:
            raise NotFound("Issuance not found.", code=CouponErrorCode.ISSUANCE_NOT_FOUND)
        if issuance.status == CouponIssuance.Status.FAILED:
            issuance.status = CouponIssuance.Status.PENDING
            issuance.last_error = ""
            issuance.save(update_fields=["status", "last_error"])
        if issuance.status != CouponIssuance.Status.DONE:
            enqueue_on_commit(tasks.coupon_issuance_run, issuance.pk)
        return issuance


class _StopIssuance(Exception):
    pass


def _issue_batch(
    issuance: CouponIssuance, customer_ids: list[int], now: datetime
) -> tuple[int, int]:
    """Coupons for the customers of one batch still under the per-customer limit, as many as
    the batch has left: ``(given, seen before)``, the latter those who already got one from this
    issuance (only after a cursor was reset by hand: they are not counted again)."""
    locked = locks.lock_customers(customer_ids)
    template = locks.lock_coupon_template(issuance.template_id)
    if template is None or template.status != T.Status.ACTIVE:
        raise _StopIssuance("The coupon template is no longer active.")
    seen = set(
        CustomerCoupon.objects.filter(issuance=issuance, customer_id__in=locked).values_list(
            "customer_id", flat=True
        )
    )
    locked = [pk for pk in locked if pk not in seen]
    held = dict(
        CustomerCoupon.objects.filter(template=template, customer_id__in=locked)
        .values("customer_id")
        .annotate(n=Count("pk"))
        .values_list("customer_id", "n")
    )
    eligible = [pk for pk in locked if held.get(pk, 0) < template.per_customer_limit]
    if template.total_quantity is not None:
        eligible = eligible[: max(template.total_quantity - template.issued_count, 0)]
    if not eligible:
        return 0, len(seen)
    start, until = coupon_validity(template, now)
    CustomerCoupon.objects.bulk_create(
        CustomerCoupon(
            template=template,
            customer_id=pk,
            source=CC.Source.ISSUE,
            issuance=issuance,
            issued_by=issuance.created_by,
            valid_from=start,
            valid_until=until,
        )
        for pk in eligible
    )
    CouponTemplate.objects.filter(pk=template.pk).update(
        issued_count=F("issued_count") + len(eligible)
    )
    return len(eligible), len(seen)


def coupon_issuance_run(*, issuance_id: int, batch_size: int = ISSUANCE_BATCH) -> CouponIssuance:
    """Run an issuance batch by batch, each in its own transaction under the issuance's lock:
    the batch's coupons, the counters (``issued``, ``skipped``: at their limit or the batch ran
    out) and the cursor commit together, so a rerun or a second worker resumes after the last
    committed batch and nobody gets a coupon twice. A template paused meanwhile stops it
    (``failed``, resumable)."""
    S = CouponIssuance.Status
    while True:
        with transaction.atomic():
            issuance = locks.lock_coupon_issuance(issuance_id)
            if issuance is None:
                raise NotFound("Issuance not found.", code=CouponErrorCode.ISSUANCE_NOT_FOUND)
            if issuance.status in (S.DONE, S.FAILED):
                return issuance
            now = timezone.now()
            batch = list(
                segment_customers(issuance.segment, issuance.params)
                .filter(pk__gt=issuance.cursor)
                .order_by("pk")
                .values_list("pk", flat=True)[:batch_size]
            )
            fields = ["status", "issued", "skipped", "cursor"]
            if batch:
                try:
                    with transaction.atomic():
                        given, seen = _issue_batch(issuance, batch, now)
                except _StopIssuance as exc:
                    issuance.status, issuance.last_error = S.FAILED, str(exc)
                    issuance.save(update_fields=["status", "last_error"])
                    return issuance
                issuance.status = S.RUNNING
                issuance.issued += given
                issuance.skipped += len(batch) - given - seen
                issuance.cursor = batch[-1]
            if len(batch) < batch_size:
                issuance.status, issuance.finished_at = S.DONE, now
                fields.append("finished_at")
            issuance.save(update_fields=fields)
            if issuance.status == S.DONE:
                return issuance


def coupon_issuance_fail(*, issuance_id: int, error: str) -> None:
    """Record an unexpected error of a run (the task calls it; a resume starts again)."""
    CouponIssuance.objects.filter(pk=issuance_id).exclude(status=CouponIssuance.Status.DONE).update(
        status=CouponIssuance.Status.FAILED, last_error=error[:2000]
    )


def coupon_issuances_resume_stuck(*, older_than: timedelta = timedelta(minutes=5)) -> int:
    """Periodic: start again issuances left pending or running (a lost task message, a worker
    that died); harmless when one is still running, since batches take the issuance's lock."""
    from shop import tasks

    stuck = list(
        CouponIssuance.objects.filter(
            status__in=(CouponIssuance.Status.PENDING, CouponIssuance.Status.RUNNING),
            created_at__lte=timezone.now() - older_than,
        ).values_list("pk", flat=True)
    )
    for pk in stuck:
        tasks.coupon_issuance_run.delay(pk)
    return len(stuck)


def coupon_revoke(*, coupon_ids: Iterable[int]) -> int:
    """Staff void available coupons (e.g. issued by mistake); locked or used ones are kept."""
    return CustomerCoupon.objects.filter(pk__in=set(coupon_ids), status=CC.Status.AVAILABLE).update(
        status=CC.Status.REVOKED
    )


# --- codes -------------------------------------------------------------------------------------
CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no I, O, 0, 1: read out and typed by hand
GENERATED_CODE_LENGTH = 12  # 32^12 = 2^60 codes: guessing one is hopeless within the rate limit
MAX_CODES_PER_BATCH = 1000


def _generated_code() -> str:
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(GENERATED_CODE_LENGTH))


def _code_taken(text: str) -> Conflict:
    return Conflict(
        "This code is already in use.",
        code=CouponErrorCode.CODE_TAKEN,
        details={"code": text},
    )


def coupon_codes_create(
    *,
    template_id: int,
    kind: str,
    code: str = "",
    count: int = 1,
    max_redemptions: int | None = None,
) -> list[CouponCode]:
    """Codes that grant a coupon of a ``code``-channel template that has not ended: one code of
    the chosen text ``code`` (e.g. ``SPRING20``; unique whatever the case: 409
    ``coupon_code_taken``), or ``count`` generated ones (12 characters, no look-alikes).
    ``single_use`` codes are redeemed once in all; ``shared`` ones once per customer, up to
    ``max_redemptions`` (none: the template's own limits). 409 ``coupon_not_issuable`` for
    another channel or an ended template."""
    if kind not in CouponCode.Kind.values:
        raise ValueError(f"unknown code kind {kind!r}")
    if code and count != 1:
        raise ValueError("a chosen code is one code")
    if not 1 <= count <= MAX_CODES_PER_BATCH:
        raise ValueError(f"count {count}: 1..{MAX_CODES_PER_BATCH}")
    template = _template_or_404(template_id)
    if template.channel != T.Channel.CODE or template.status == T.Status.ENDED:
        raise Conflict(
            "Codes are made for templates of the code channel that have not ended.",
            code=CouponErrorCode.NOT_ISSUABLE,
            details={"channel": template.channel, "status": template.status},
        )
    limit = max_redemptions if kind == CouponCode.Kind.SHARED else None
    for _attempt in range(3):
        texts = [code] if code else list({_generated_code() for _ in range(count)})
        if len(texts) < count:
            continue  # two generated codes alike: draw again (practically never)
        try:
            with transaction.atomic():
                return CouponCode.objects.bulk_create(
                    CouponCode(template=template, code=text, kind=kind, max_redemptions=limit)
                    for text in texts
                )
        except IntegrityError as exc:
            if code:
                raise _code_taken(code) from exc
    raise RuntimeError("could not draw free codes")  # 2^60 codes: practically unreachable
