"""Reads of coupons: the coupon centre, a customer's coupons by state, a price preview for a
cart (priced lines, the customer's coupons with what each would save, the best combination),
and the staff's template lists and usage stats."""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db.models import Count, Q, QuerySet, Sum
from django.utils import timezone

from core.errors import NotFound
from shop.error_codes import CouponErrorCode
from shop.models import (
    CommunityMembership,
    CouponCode,
    CouponIssuance,
    CouponTemplate,
    Customer,
    CustomerCoupon,
    Order,
)
from shop.services import coupons as services
from shop.services import orders as checkout
from shop.services import pricing
from shop.services.pricing import Offer, Pricing, PricingLine

T = CouponTemplate
CC = CustomerCoupon
STATES = ("available", "locked", "used", "expired")
MAX_PREVIEW_COUPONS = 100


# --- the coupon centre -------------------------------------------------------------------------
def coupon_centre(*, customer: Customer, now: datetime | None = None) -> list[CouponTemplate]:
    """Templates a customer may claim now, and fan-welfare drops still to come, each annotated
    with ``remaining`` (left in its batch, None: unlimited), ``held`` (how many the customer
    holds), ``can_claim`` and ``refusal`` (why not now: ``not_started``, ``sold_out``,
    ``limit_reached``)."""
    now = now or timezone.now()
    templates = list(
        CouponTemplate.objects.filter(
            Q(claim_ends_at__isnull=True) | Q(claim_ends_at__gt=now),
            Q(valid_until__isnull=True) | Q(valid_until__gt=now),
            Q(claim_starts_at__isnull=True)
            | Q(claim_starts_at__lte=now)
            | Q(channel=T.Channel.FAN_DROP),
            status=T.Status.ACTIVE,
            channel__in=services.CLAIM_CHANNELS,
        )
        .prefetch_related("communities")
        .order_by("claim_starts_at", "pk")
    )
    member_of = set(
        CommunityMembership.objects.filter(customer=customer).values_list("community_id", flat=True)
    )
    held = dict(
        CustomerCoupon.objects.filter(customer=customer, template__in=templates)
        .values("template_id")
        .annotate(n=Count("pk"))
        .values_list("template_id", "n")
    )
    found = []
    for template in templates:
        communities = {c.pk for c in template.communities.all()}
        if communities and not communities & member_of:
            continue
        remaining = (
            None
            if template.total_quantity is None
            else max(template.total_quantity - template.issued_count, 0)
        )
        mine = held.get(template.pk, 0)
        refusal = services.claim_refusal(template, now)
        if refusal is None and remaining == 0:
            refusal = "sold_out"
        if refusal is None and mine >= template.per_customer_limit:
            refusal = "limit_reached"
        template.remaining = remaining  # type: ignore[attr-defined]
        template.held = mine  # type: ignore[attr-defined]
        template.refusal = refusal  # type: ignore[attr-defined]
        template.can_claim = refusal is None  # type: ignore[attr-defined]
        found.append(template)
    return found


# --- a customer's coupons ----------------------------------------------------------------------
def coupon_state(coupon: CustomerCoupon, now: datetime) -> str:
    if coupon.status == CC.Status.AVAILABLE and coupon.valid_until <= now:
        return "expired"
    return coupon.status


def coupons_of_customer(
    *, customer: Customer, state: str | None = None, now: datetime | None = None
) -> QuerySet[CustomerCoupon]:
    """The customer's coupons (revoked ones left out), soonest to expire first; ``state``:
    available (usable now or later), locked, used, expired."""
    now = now or timezone.now()
    qs = CustomerCoupon.objects.filter(customer=customer).exclude(status=CC.Status.REVOKED)
    if state == "available":
        qs = qs.filter(status=CC.Status.AVAILABLE, valid_until__gt=now)
    elif state == "expired":
        qs = qs.filter(status=CC.Status.AVAILABLE, valid_until__lte=now)
    elif state in ("locked", "used"):
        qs = qs.filter(status=state)
    return services.with_template(qs).order_by("valid_until", "pk")


# --- price preview -----------------------------------------------------------------------------
@dataclass(frozen=True)
class CouponChoice:
    coupon: CustomerCoupon
    offer: Offer | None
    saves: int
    reason: str | None  # why it does not apply: scope, community, min_spend, not_yet_valid, ...


@dataclass(frozen=True)
class Preview:
    lines: tuple[PricingLine, ...]
    titles: dict[int, str]
    stock: dict[int, int]
    pricing: Pricing  # the chosen coupons, or the best combination when none were chosen
    best: Pricing
    coupons: list[CouponChoice]
    code_offer: Offer | None


def _choices(
    *,
    customer: Customer,
    community: Any,
    lines: Sequence[PricingLine],
    shipping_fee: int,
    now: datetime,
) -> list[CouponChoice]:
    held = services.with_template(
        CustomerCoupon.objects.filter(
            customer=customer, status=CC.Status.AVAILABLE, valid_until__gt=now
        )
    ).order_by("valid_until", "pk")[:MAX_PREVIEW_COUPONS]
    found = []
    for coupon in held:
        if coupon.valid_from > now:
            found.append(CouponChoice(coupon, None, 0, "not_yet_valid"))
            continue
        fit = services.template_fit(coupon.template, community=community, lines=lines)
        if fit.reason is not None:
            found.append(CouponChoice(coupon, None, 0, fit.reason))
            continue
        offer = services.coupon_offer(coupon, fit)
        saves = pricing.order_price(
            lines=lines,
            offers=[offer],
            shipping_fee=shipping_fee,
            min_payable=settings.MIN_PAYABLE,
        ).saved
        reason = None
        if not saves:
            reason = "no_shipping_fee" if offer.kind == pricing.FREE_SHIPPING else "min_spend"
        found.append(CouponChoice(coupon, offer if saves else None, saves, reason))
    return found


def price_preview(
    *,
    customer: Customer,
    lines: Sequence[tuple[int, int]],
    delivery_mode: str,
    community_id: int | None = None,
    pickup_point_id: int | None = None,
    address_id: int | None = None,
    coupon_ids: Sequence[int] | None = None,
    coupon_code: str = "",
) -> Preview:
    """Price a cart as ``POST /orders`` would, without writing anything: the same checks (lines,
    SKUs on sale, delivery, community) and refusals, except stock (each line says what is in
    stock). ``coupon_ids`` None: price with the best combination of the customer's coupons (and
    ``coupon_code``); a list (even empty): exactly those coupons (and the code), refused as the
    checkout would refuse them."""
    now = timezone.now()
    quantities = checkout._check_lines(lines)
    coupon_code = coupon_code.strip()
    skus = checkout._load_skus(quantities, check_stock=False)
    community, _, _ = checkout._resolve_delivery(
        customer=customer,
        delivery_mode=delivery_mode,
        community_id=community_id,
        pickup_point_id=pickup_point_id,
        address_id=address_id,
    )
    checkout._check_offered_in(skus, community)
    priced_lines = checkout._pricing_lines(skus, quantities, {})
    fee = checkout.shipping_fee(delivery_mode)
    choices = _choices(
        customer=customer, community=community, lines=priced_lines, shipping_fee=fee, now=now
    )
    code_offers = services.checkout_offers(
        customer=customer,
        community=community,
        lines=priced_lines,
        coupon_ids=(),
        coupon_code=coupon_code,
        now=now,
    )
    best = pricing.best_combination(
        lines=priced_lines,
        offers=[c.offer for c in choices if c.offer is not None] + code_offers,
        shipping_fee=fee,
        min_payable=settings.MIN_PAYABLE,
    )
    chosen = best
    if coupon_ids is not None:
        offers = services.checkout_offers(
            customer=customer,
            community=community,
            lines=priced_lines,
            coupon_ids=coupon_ids,
            coupon_code=coupon_code,
            now=now,
        )
        chosen = checkout._price(lines=priced_lines, offers=offers, delivery_mode=delivery_mode)
    return Preview(
        lines=priced_lines,
        titles={sku.pk: sku.product.title for sku in skus},
        stock={sku.pk: sku.stock for sku in skus},
        pricing=chosen,
        best=best,
        coupons=choices,
        code_offer=code_offers[0] if code_offers else None,
    )


# --- staff -------------------------------------------------------------------------------------
def templates_for_staff(
    *, status: str | None = None, channel: str | None = None
) -> QuerySet[CouponTemplate]:
    qs = CouponTemplate.objects.prefetch_related("categories", "products", "skus", "communities")
    if status:
        qs = qs.filter(status=status)
    if channel:
        qs = qs.filter(channel=channel)
    return qs.order_by("-created_at", "-pk")


def template_for_staff(*, template_id: int) -> CouponTemplate:
    template = templates_for_staff().filter(pk=template_id).first()
    if template is None:
        raise NotFound("Coupon template not found.", code=CouponErrorCode.TEMPLATE_NOT_FOUND)
    return template


def issuance_for_staff(*, issuance_id: int) -> CouponIssuance:
    issuance = CouponIssuance.objects.filter(pk=issuance_id).first()
    if issuance is None:
        raise NotFound("Issuance not found.", code=CouponErrorCode.ISSUANCE_NOT_FOUND)
    return issuance


def coupon_template_stats(*, template_id: int, now: datetime | None = None) -> dict[str, Any]:
    """Usage of a template: coupons issued (by status; ``expired`` are available ones past
    their validity; ``returned`` were given back by a full refund at least once), the discount
    given (what used coupons saved, goods and shipping), and the orders paid with one of its
    coupons and their GMV (``total``, before refunds) and refunds."""
    now = now or timezone.now()
    template = CouponTemplate.objects.filter(pk=template_id).first()
    if template is None:
        raise NotFound("Coupon template not found.", code=CouponErrorCode.TEMPLATE_NOT_FOUND)
    coupons = CustomerCoupon.objects.filter(template=template)
    available = Q(status=CC.Status.AVAILABLE)
    counts = coupons.aggregate(
        issued=Count("pk"),
        available=Count("pk", filter=available & Q(valid_until__gt=now)),
        expired=Count("pk", filter=available & Q(valid_until__lte=now)),
        locked=Count("pk", filter=Q(status=CC.Status.LOCKED)),
        used=Count("pk", filter=Q(status=CC.Status.USED)),
        revoked=Count("pk", filter=Q(status=CC.Status.REVOKED)),
        returned=Count("pk", filter=Q(returned_at__isnull=False)),
        discount_given=Sum("discount", filter=Q(status=CC.Status.USED), default=0),
    )
    orders = Order.objects.filter(
        pk__in=coupons.filter(status=CC.Status.USED).values("order_id")
    ).aggregate(
        orders=Count("pk"),
        gmv=Sum("total", default=0),
        refunded=Sum("refunded_amount", default=0),
    )
    return {
        "template_id": template.pk,
        "total_quantity": template.total_quantity,
        "issued_count": template.issued_count,
        **counts,
        **orders,
    }


def codes_for_staff(*, template_id: int) -> QuerySet[CouponCode]:
    """The codes of a template, newest first (404 for an unknown template)."""
    if not CouponTemplate.objects.filter(pk=template_id).exists():
        raise NotFound("Coupon template not found.", code=CouponErrorCode.TEMPLATE_NOT_FOUND)
    return CouponCode.objects.filter(template_id=template_id).order_by("-pk")
