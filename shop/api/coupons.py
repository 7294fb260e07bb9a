"""Coupons over HTTP: the coupon centre and claiming, my coupons, the checkout price preview,
and the staff's templates, issuance, compensation and stats. Parse, call one service or
selector, answer."""

from collections.abc import Callable
from typing import Any, TypeVar

from django.conf import settings
from django.http import HttpRequest
from django_ratelimit import ALL as ALL_METHODS
from django_ratelimit.core import get_usage
from ninja import Query, Router
from ninja.pagination import paginate
from ninja.responses import Status

from core.errors import ApplicationError
from core.http import bearer_auth, errors, examples, idempotent, require_perm, staff_auth
from shop.error_codes import (
    DELIVERY_ERROR_CODES,
    CouponErrorCode,
    CustomerErrorCode,
    OrderErrorCode,
)
from shop.models import CustomerCoupon
from shop.schemas.coupons import (
    CentreCouponOut,
    CodesCreateIn,
    CompensateIn,
    CouponCodeOut,
    CouponState,
    IssuanceCreateIn,
    IssuanceOut,
    MyCouponOut,
    PreviewIn,
    PreviewOut,
    StaffCouponOut,
    TemplateCreateIn,
    TemplateFilter,
    TemplateOut,
    TemplateStatsOut,
    TemplateStatusIn,
)
from shop.selectors import coupons as selectors
from shop.selectors.customers import customer_of
from shop.services import coupons as services
from shop.services.pricing import Pricing

router = Router(tags=["coupons"])
R = TypeVar("R")

# What a price preview (like placing an order) can refuse about a coupon.
CHECKOUT_COUPON_CODES = (
    OrderErrorCode.COUPON_INVALID,
    OrderErrorCode.COUPON_EXPIRED,
    OrderErrorCode.COUPON_UNAVAILABLE,
    OrderErrorCode.COUPON_NOT_APPLICABLE,
    OrderErrorCode.COUPON_NOT_STACKABLE,
    CouponErrorCode.COUPON_CODE_RATE_LIMITED,
)


# --- guessing codes --------------------------------------------------------------------------
def _code_buckets() -> tuple[tuple[str, str, str], ...]:
    return (
        ("coupon-code-user", settings.COUPON_CODE_RATE, "user"),
        ("coupon-code-ip", settings.COUPON_CODE_IP_RATE, "ip"),
    )


def guard_code_guesses(request: HttpRequest, coupon_code: str, call: Callable[[], R]) -> R:
    """Run ``call`` (a checkout or preview with ``coupon_code``), counting a refused code
    (``coupon_invalid``) against the shopper's and the client IP's buckets
    (``COUPON_CODE_RATE``, ``COUPON_CODE_IP_RATE``); a full bucket refuses any code with 429
    ``coupon_code_rate_limited`` before it is looked up. Valid codes are never counted."""
    if not coupon_code.strip():
        return call()
    for group, rate, key in _code_buckets():
        usage = get_usage(
            request, group=group, key=key, rate=rate, method=ALL_METHODS, increment=False
        )
        if usage and usage["count"] >= usage["limit"]:
            retry_after = str(max(1, int(usage["time_left"])))
            raise ApplicationError(
                "Too many wrong coupon codes; retry later.",
                code=CouponErrorCode.COUPON_CODE_RATE_LIMITED,
                status=429,
                details={"retry_after": int(retry_after)},
                headers={"Retry-After": retry_after},
            )
    try:
        return call()
    except ApplicationError as exc:
        if exc.code == OrderErrorCode.COUPON_INVALID and "coupon_code" in exc.details:
            for group, rate, key in _code_buckets():
                get_usage(
                    request, group=group, key=key, rate=rate, method=ALL_METHODS, increment=True
                )
        raise


# --- shoppers ----------------------------------------------------------------------------------
@router.get(
    "/coupons/centre",
    response=list[CentreCouponOut],
    auth=bearer_auth,
    summary="Coupon centre: coupons I can claim now, and fan-welfare drops to come",
    description=(
        "Active claimable coupons (and fan-welfare drops, also before their start time), each "
        "with `remaining` in its batch (null: unlimited), how many I hold, `can_claim` and the "
        "`refusal` when I cannot (`not_started`, `sold_out`, `limit_reached`). Coupons tied to "
        "communities are shown to their members only. Shopper (bearer token of a customer; "
        "`not_a_customer` otherwise)."
    ),
)
@errors(CustomerErrorCode.NOT_A_CUSTOMER)
def coupon_centre(request: HttpRequest):
    return selectors.coupon_centre(customer=customer_of(request.auth))


@router.post(
    "/coupons/templates/{template_id}/claim",
    response={201: MyCouponOut},
    auth=bearer_auth,
    summary="Claim a coupon from the coupon centre",
    description=(
        "Claim one coupon of a claimable template (or of a fan-welfare drop from its start "
        "time); the last coupon of a limited batch goes to exactly one claimer. Shopper (bearer "
        "token of a customer). Idempotent with `Idempotency-Key`. 409 `coupon_not_claimable` "
        "(`details.reason`: `not_claimable`, `not_started`, `ended`, `community`), 409 "
        "`coupon_sold_out`, 409 `coupon_limit_reached` (`details.limit`)."
    ),
)
@examples(response={"id": 31, "state": "available", "source": "claim"})
@errors(
    CustomerErrorCode.NOT_A_CUSTOMER,
    CouponErrorCode.TEMPLATE_NOT_FOUND,
    CouponErrorCode.COUPON_NOT_CLAIMABLE,
    CouponErrorCode.COUPON_SOLD_OUT,
    CouponErrorCode.COUPON_LIMIT_REACHED,
)
@idempotent
def coupon_claim(request: HttpRequest, template_id: int):
    coupon = services.coupon_claim(customer=customer_of(request.auth), template_id=template_id)
    return Status(201, MyCouponOut.from_orm(_mine(coupon.pk, coupon.customer_id)))


def _mine(coupon_id: int, customer_id: int) -> Any:
    return services.with_template(
        CustomerCoupon.objects.filter(pk=coupon_id, customer_id=customer_id)
    ).get()


@router.get(
    "/coupons/mine",
    response=list[MyCouponOut],
    auth=bearer_auth,
    summary="My coupons, by state",
    description=(
        "My coupons, soonest to expire first, paginated; `state`: `available`, `locked` (held by "
        "an unpaid order), `used`, `expired`. Shopper (bearer token of a customer)."
    ),
)
@errors(CustomerErrorCode.NOT_A_CUSTOMER)
@paginate
def my_coupons(request: HttpRequest, state: CouponState | None = None):
    return selectors.coupons_of_customer(customer=customer_of(request.auth), state=state)


def _priced(preview: selectors.Preview, priced: Pricing) -> dict[str, Any]:
    coupon_ids, code = [], None
    applied = []
    for a in priced.applied:
        is_code = isinstance(a.key, str)
        key = str(a.key)[len(services.CODE_PREFIX) :] if is_code else None
        if is_code:
            code = key
        else:
            coupon_ids.append(a.key)
        applied.append(
            {
                "coupon_id": None if is_code else a.key,
                "coupon_code": key,
                "kind": a.kind,
                "discount": a.discount,
                "shipping_waived": a.shipping_waived,
            }
        )
    return {
        "list_subtotal": priced.list_subtotal,
        "subtotal": priced.subtotal,
        "discount": priced.discount,
        "shipping_fee": priced.shipping_fee,
        "total": priced.total,
        "saved": priced.saved,
        "coupon_ids": coupon_ids,
        "coupon_code": code,
        "applied": applied,
        "lines": [
            {
                "sku_id": line.sku_id,
                "product_id": line.product_id,
                "product_title": preview.titles[line.sku_id],
                "quantity": line.quantity,
                "list_unit_price": line.list_unit_price,
                "unit_price": line.unit_price,
                "discount": discount,
                "paid_amount": paid,
                "in_stock": preview.stock[line.sku_id] >= line.quantity,
            }
            for line, discount, paid in zip(
                preview.lines, priced.line_discounts, priced.line_totals, strict=True
            )
        ],
    }


@router.post(
    "/checkout/preview",
    response=PreviewOut,
    auth=bearer_auth,
    summary="Price a cart: priced lines, my applicable coupons, the best combination",
    description=(
        "Price a cart as placing the order would (same body as `POST /orders`, without writing "
        "anything): each line with its list and unit price, coupon discount and paid amount, "
        "the shipping fee and total; every coupon I hold with what it alone would save on this "
        "cart (or why it does not apply); and the combination that saves most. Without "
        "`coupon_ids` `priced` is that best combination; with `coupon_ids` (even `[]`) and/or "
        "`coupon_code` it is exactly those, refused as the checkout would refuse them. Wrong "
        "codes count against `COUPON_CODE_RATE` (per shopper) and `COUPON_CODE_IP_RATE`. "
        "Shopper (bearer token of a customer)."
    ),
)
@examples(
    request={
        "lines": [{"sku_id": 1, "quantity": 2}],
        "delivery_mode": "pickup",
        "pickup_point_id": 1,
    }
)
@errors(
    CustomerErrorCode.NOT_A_CUSTOMER,
    OrderErrorCode.NO_LINES,
    OrderErrorCode.TOO_MANY_LINES,
    OrderErrorCode.INVALID_QUANTITY,
    OrderErrorCode.SKU_NOT_FOUND,
    OrderErrorCode.PRODUCT_UNAVAILABLE,
    *CHECKOUT_COUPON_CODES,
    *DELIVERY_ERROR_CODES,
)
def checkout_preview(request: HttpRequest, payload: PreviewIn):
    customer = customer_of(request.auth)
    preview = guard_code_guesses(
        request,
        payload.coupon_code,
        lambda: selectors.price_preview(
            customer=customer,
            lines=[(line.sku_id, line.quantity) for line in payload.lines],
            delivery_mode=payload.delivery_mode,
            community_id=payload.community_id,
            pickup_point_id=payload.pickup_point_id,
            address_id=payload.address_id,
            coupon_ids=payload.coupon_ids,
            coupon_code=payload.coupon_code,
        ),
    )
    return {
        "priced": _priced(preview, preview.pricing),
        "best": _priced(preview, preview.best),
        "coupons": [
            {
                "coupon": choice.coupon,
                "applicable": choice.offer is not None,
                "saves": choice.saves,
                "reason": choice.reason,
            }
            for choice in preview.coupons
        ],
    }


# --- staff -------------------------------------------------------------------------------------
STAFF_TAGS = ["staff: coupons"]


@router.get(
    "/staff/coupon-templates",
    response=list[TemplateOut],
    auth=staff_auth,
    summary="Staff: coupon templates",
    tags=STAFF_TAGS,
    description=(
        "Coupon templates, newest first, paginated, filtered by status and channel. Operators "
        "(staff bearer token) with `shop.view_coupontemplate`."
    ),
)
@paginate
def staff_template_list(request: HttpRequest, filters: Query[TemplateFilter]):
    require_perm(request, "shop.view_coupontemplate")
    return selectors.templates_for_staff(**filters.dict())


@router.post(
    "/staff/coupon-templates",
    response={201: TemplateOut},
    auth=staff_auth,
    summary="Staff: create a coupon template",
    tags=STAFF_TAGS,
    description=(
        "Create a coupon template (draft, or active with `activate`): fixed amount, percentage "
        "with a cap, threshold tiers (spend X, get Y off) or free shipping; scope; validity (a "
        "window, or `valid_days` after claiming); channel; total and per-customer limits; "
        "stacking (`stackable`, `is_exclusive`). Operators with `shop.add_coupontemplate`. A "
        "rule broken: 422 `coupon_template_invalid` (`details.field`, `details.reason`)."
    ),
)
@examples(
    request={
        "name": "Spend 99, save 10",
        "kind": "threshold",
        "tiers": [{"threshold": 9900, "off": 1000}, {"threshold": 19900, "off": 2500}],
        "valid_days": 7,
        "channel": "claimable",
        "total_quantity": 500,
        "activate": True,
    }
)
@errors(CouponErrorCode.TEMPLATE_INVALID)
def staff_template_create(request: HttpRequest, payload: TemplateCreateIn):
    require_perm(request, "shop.add_coupontemplate")
    data = payload.dict()
    data["tiers"] = [dict(tier) for tier in data["tiers"]]
    template = services.coupon_template_create(staff=request.auth, **data)
    return Status(201, selectors.template_for_staff(template_id=template.pk))


@router.get(
    "/staff/coupon-templates/{template_id}",
    response=TemplateOut,
    auth=staff_auth,
    summary="Staff: one coupon template",
    tags=STAFF_TAGS,
    description="One coupon template. Operators with `shop.view_coupontemplate`.",
)
@errors(CouponErrorCode.TEMPLATE_NOT_FOUND)
def staff_template_detail(request: HttpRequest, template_id: int):
    require_perm(request, "shop.view_coupontemplate")
    return selectors.template_for_staff(template_id=template_id)


@router.post(
    "/staff/coupon-templates/{template_id}/status",
    response=TemplateOut,
    auth=staff_auth,
    summary="Staff: activate, pause or end a coupon template",
    tags=STAFF_TAGS,
    description=(
        "Activate (from draft or paused), pause (from active) or end a template for good. "
        "Pausing stops claims, issuance and code redemptions; coupons customers hold stay "
        "usable while valid. Operators with `shop.change_coupontemplate`. Any other move: 409 "
        "`illegal_transition`; an invalid template cannot be activated (422)."
    ),
)
@examples(request={"status": "paused"})
@errors(
    CouponErrorCode.TEMPLATE_NOT_FOUND,
    CouponErrorCode.ILLEGAL_TRANSITION,
    CouponErrorCode.TEMPLATE_INVALID,
)
def staff_template_status(request: HttpRequest, template_id: int, payload: TemplateStatusIn):
    require_perm(request, "shop.change_coupontemplate")
    services.coupon_template_set_status(template_id=template_id, status=payload.status)
    return selectors.template_for_staff(template_id=template_id)


@router.get(
    "/staff/coupon-templates/{template_id}/stats",
    response=TemplateStatsOut,
    auth=staff_auth,
    summary="Staff: usage of a coupon template",
    tags=STAFF_TAGS,
    description=(
        "Coupons of a template by state (available, expired, locked, used, revoked, returned), "
        "the discount they gave, and the orders paid with them and their GMV. Operators with "
        "`shop.view_coupontemplate`."
    ),
)
@errors(CouponErrorCode.TEMPLATE_NOT_FOUND)
def staff_template_stats(request: HttpRequest, template_id: int):
    require_perm(request, "shop.view_coupontemplate")
    return selectors.coupon_template_stats(template_id=template_id)


@router.post(
    "/staff/coupon-templates/{template_id}/issuances",
    response={202: IssuanceOut},
    auth=staff_auth,
    summary="Staff: issue a coupon template to a segment (background job)",
    tags=STAFF_TAGS,
    description=(
        "Issue coupons of an active `issued` or `compensation` template to a segment: "
        "`community` (`community_id`: its members), `bought_product` (`product_id`: customers "
        "with a paid order of it), `new_customers` (no paid order yet), `customers` "
        "(`customer_ids`, up to 1000). Runs in the background; poll the issuance for `issued` and "
        "`skipped` (at their per-customer limit, or the batch ran out). Operators with "
        "`shop.add_couponissuance`. 409 `coupon_not_issuable`, 422 `coupon_segment_invalid`."
    ),
)
@examples(request={"segment": "community", "community_id": 1, "reason": "Mid-autumn thanks"})
@errors(
    CouponErrorCode.TEMPLATE_NOT_FOUND,
    CouponErrorCode.NOT_ISSUABLE,
    CouponErrorCode.SEGMENT_INVALID,
)
def staff_issuance_create(request: HttpRequest, template_id: int, payload: IssuanceCreateIn):
    require_perm(request, "shop.add_couponissuance")
    params = {
        name: value
        for name in ("community_id", "product_id", "customer_ids")
        if (value := getattr(payload, name)) is not None
    }
    issuance = services.coupon_issuance_create(
        template_id=template_id,
        segment=payload.segment,
        params=params,
        staff=request.auth,
        reason=payload.reason,
    )
    return Status(202, selectors.issuance_for_staff(issuance_id=issuance.pk))


@router.post(
    "/staff/coupon-templates/{template_id}/codes",
    response={201: list[CouponCodeOut]},
    auth=staff_auth,
    summary="Staff: make codes for a coupon template",
    tags=STAFF_TAGS,
    description=(
        "Codes shoppers type at checkout (`coupon_code`) to get a coupon of a `code`-channel "
        "template that has not ended: one code of your choosing (`code`, e.g. `SPRING20`), or "
        "`count` generated ones (12 characters without look-alikes, up to 1000 at a time, to "
        "print or send). `single_use` codes are redeemed once in all; `shared` codes once per "
        "customer, up to `max_redemptions`. The template's total and per-customer limits still "
        "apply. Operators with `shop.add_couponcode`. 409 `coupon_code_taken` (the code exists, "
        "whatever its case), 409 `coupon_not_issuable` (another channel, or ended)."
    ),
)
@examples(request={"kind": "shared", "code": "SPRING20", "max_redemptions": 500})
@errors(
    CouponErrorCode.TEMPLATE_NOT_FOUND,
    CouponErrorCode.NOT_ISSUABLE,
    CouponErrorCode.CODE_TAKEN,
)
def staff_codes_create(request: HttpRequest, template_id: int, payload: CodesCreateIn):
    require_perm(request, "shop.add_couponcode")
    codes = services.coupon_codes_create(
        template_id=template_id,
        kind=payload.kind,
        code=payload.code,
        count=payload.count,
        max_redemptions=payload.max_redemptions,
    )
    return Status(201, codes)


@router.get(
    "/staff/coupon-templates/{template_id}/codes",
    response=list[CouponCodeOut],
    auth=staff_auth,
    summary="Staff: the codes of a coupon template",
    tags=STAFF_TAGS,
    description=(
        "The template's codes, newest first, paginated, with their redemptions so far. "
        "Operators with `shop.view_couponcode`."
    ),
)
@errors(CouponErrorCode.TEMPLATE_NOT_FOUND)
@paginate
def staff_codes_list(request: HttpRequest, template_id: int):
    require_perm(request, "shop.view_couponcode")
    return selectors.codes_for_staff(template_id=template_id)


@router.get(
    "/staff/coupon-issuances/{issuance_id}",
    response=IssuanceOut,
    auth=staff_auth,
    summary="Staff: an issuance and its progress",
    tags=STAFF_TAGS,
    description=(
        "An issuance with its progress (`status`, `total`, `issued`, `skipped`, `last_error`). "
        "Operators with `shop.view_couponissuance`."
    ),
)
@errors(CouponErrorCode.ISSUANCE_NOT_FOUND)
def staff_issuance_detail(request: HttpRequest, issuance_id: int):
    require_perm(request, "shop.view_couponissuance")
    return selectors.issuance_for_staff(issuance_id=issuance_id)


@router.post(
    "/staff/customers/{customer_id}/coupons",
    response={201: StaffCouponOut},
    auth=staff_auth,
    summary="Staff: give a customer a compensation coupon",
    tags=STAFF_TAGS,
    description=(
        "Give one customer a coupon of an active `compensation` (or `issued`) template, within "
        "its total and per-customer limits. Operators with `shop.add_customercoupon`. "
        "Idempotent with `Idempotency-Key`."
    ),
)
@examples(request={"template_id": 3, "reason": "Order 2301 arrived late"})
@errors(
    CouponErrorCode.TEMPLATE_NOT_FOUND,
    CouponErrorCode.CUSTOMER_NOT_FOUND,
    CouponErrorCode.NOT_ISSUABLE,
    CouponErrorCode.COUPON_SOLD_OUT,
    CouponErrorCode.COUPON_LIMIT_REACHED,
)
@idempotent
def staff_compensate(request: HttpRequest, customer_id: int, payload: CompensateIn):
    require_perm(request, "shop.add_customercoupon")
    coupon = services.coupon_compensate(
        template_id=payload.template_id,
        customer_id=customer_id,
        staff=request.auth,
        reason=payload.reason,
    )
    return Status(201, StaffCouponOut.from_orm(coupon))
