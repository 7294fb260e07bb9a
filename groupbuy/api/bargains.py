"""Bargain (砍价) over HTTP: the public campaign list and detail, starting a bargain, a bargain's
share page (the snapshot of its topic), friends' helps, buying it, and my bargains. Parse, call
one service or selector, answer (rules: groupbuy/services/bargains.py)."""

from typing import Any

from django.conf import settings
from django.http import HttpRequest
from django.utils import timezone
from ninja import Path, Router
from ninja.pagination import paginate
from ninja.responses import Status

from core.error_codes import CoreErrorCode
from core.http import (
    bearer_auth,
    device_id,
    errors,
    examples,
    idempotent,
    ip_hash,
    rate_limit,
    request_user,
)
from groupbuy.api.groups import CHECKOUT_CODES, GROUP_ORDER, MAX_ID
from groupbuy.error_codes import BargainErrorCode
from groupbuy.schemas.bargains import (
    BargainCampaignOut,
    BargainDetailOut,
    BargainHelpedOut,
    BargainHelpResultOut,
    BargainPurchasedOut,
    BargainPurchaseIn,
    MyBargainOut,
)
from groupbuy.selectors import bargains as selectors
from groupbuy.services import bargains as services
from shop.error_codes import CustomerErrorCode, OrderErrorCode
from shop.models import Customer
from shop.schemas.orders import OrderOut
from shop.selectors.customers import customer_of
from shop.selectors.orders import order_of_customer

router = Router(tags=["bargain"])

# --- examples -------------------------------------------------------------------------------------
CAMPAIGN = {
    "id": 4,
    "title": "Cut it to 9.90: organic tomatoes",
    "status": "active",
    "product": {"id": 5, "title": "Organic tomatoes"},
    "sku": {"sku_id": 1, "sku_code": "TOM-500G", "list_price": 1990},
    "starts_at": "2025-06-01T00:00:00Z",
    "ends_at": "2025-06-08T00:00:00Z",
    "start_price": 1990,
    "floor_price": 990,
    "helps_needed": 5,
    "bargain_ttl_seconds": 86400,
    "payment_ttl_seconds": 3600,
    "buy_at_any_price": False,
    "max_bargains_per_customer": 1,
    "helps_per_helper_per_day": 3,
    "helpers_must_be_new": False,
}
BARGAIN: dict[str, Any] = {
    "id": 21,
    "campaign": {
        "id": 4,
        "title": "Cut it to 9.90: organic tomatoes",
        "product_title": "Organic tomatoes",
        "sku_id": 1,
    },
    "status": "active",
    "start_price": 1990,
    "floor_price": 990,
    "current_price": 1312,
    "helps_needed": 5,
    "helps_done": 2,
    "helps_left": 3,
    "first_cut": 251,
    "expires_at": "2025-06-02T09:30:00Z",
    "seconds_left": 84600,
    "floor_reached_at": None,
    "purchased_at": None,
    "buy_at_any_price": False,
    "can_buy": False,
    "is_initiator": True,
    "has_helped": False,
    "helps": [
        {
            "seq": 1,
            "nickname": "Lan",
            "avatar_url": "https://img.example/l.png",
            "cut": 226,
            "price_after": 1513,
            "created_at": "2025-06-01T09:41:00Z",
        },
        {
            "seq": 2,
            "nickname": "Wei",
            "avatar_url": "",
            "cut": 201,
            "price_after": 1312,
            "created_at": "2025-06-01T10:02:00Z",
        },
    ],
    "order_id": None,
    "seed": None,
    "topic": "bargain:21",
    "seq": 2,
}
STARTED = {
    **BARGAIN,
    "current_price": 1739,
    "helps_done": 0,
    "helps_left": 5,
    "seconds_left": 86400,
    "helps": [],
    "seq": 0,
}
HELPED = {
    "help": {"seq": 2, "cut": 201, "price_after": 1312},
    "bargain": {**BARGAIN, "is_initiator": False, "has_helped": True},
}
PURCHASED = {
    "bargain": {
        **BARGAIN,
        "status": "floor_reached",
        "current_price": 990,
        "helps_done": 5,
        "helps_left": 0,
        "expires_at": "2025-06-01T13:10:00Z",
        "seconds_left": 3540,
        "floor_reached_at": "2025-06-01T12:10:00Z",
        "order_id": 42,
        "seed": "4821957730119826435",
        "seq": 6,
    },
    "order": {
        **GROUP_ORDER,
        "source": "bargain",
        "source_ref": 21,
        "fulfilment_held": False,
        "payment_deadline": "2025-06-01T13:10:00Z",
    },
}
PURCHASE_REQUEST = {"delivery_mode": "pickup", "pickup_point_id": 1}

DETAIL_TEXT = (
    "status (`active` → `floor_reached` → `purchased`, or `expired`), prices (`start_price`, "
    "`current_price`, `floor_price`, fen), `helps_done` of `helps_needed`, `expires_at` (while "
    "active the bargain's end; at the floor the deadline to buy) and `seconds_left`, and the "
    "helps in order (nickname, avatar, cut, price after). For its initiator: `can_buy` and "
    "`order_id`. `seed` (the cut plan's, to audit it) once it is no longer active. It is the "
    "snapshot of the WebSocket topic `topic` (`bargain:<id>`, which its initiator and helpers "
    "may follow: `bargain_cut`, `bargain_floor_reached`, `bargain_purchased`, "
    "`bargain_expiring_soon`, `bargain_expired`), current to `seq`: on a gap in the topic's "
    "`seq`, fetch it again."
)


def _detail(bargain_id: int, viewer: Customer | None) -> BargainDetailOut:
    detail = selectors.bargain_detail(bargain_id=bargain_id, viewer=viewer, now=timezone.now())
    return BargainDetailOut.from_orm(detail)


# --- campaigns (public) ---------------------------------------------------------------------------
@router.get(
    "/bargain-campaigns",
    response=list[BargainCampaignOut],
    summary="Bargain campaigns running now",
    description=(
        "Active bargain campaigns taking new bargains now (`starts_at <= now < ends_at`), soonest "
        "ending first, paginated: the product and SKU, the start and floor price (fen), how many "
        "friends' helps reach the floor, how long a bargain runs and how long the initiator has "
        "to buy once at the floor, and the helping limits. Public (no login); read-only."
    ),
)
@examples(response={"items": [CAMPAIGN], "count": 1, "limit": 20, "offset": 0})
@paginate
def campaign_list(request: HttpRequest):
    return selectors.campaigns_running(now=timezone.now())


@router.get(
    "/bargain-campaigns/{bargain_campaign_id}",
    response=BargainCampaignOut,
    summary="One bargain campaign",
    description=(
        "A bargain campaign (running, not started yet or ended). Public (no login); read-only. "
        "Unknown or draft: 404 `bargain_campaign_not_found`."
    ),
)
@examples(response=CAMPAIGN)
@errors(BargainErrorCode.BARGAIN_CAMPAIGN_NOT_FOUND)
def campaign_detail(request: HttpRequest, bargain_campaign_id: int = Path(..., ge=1, le=MAX_ID)):
    return selectors.campaign_public(campaign_id=bargain_campaign_id)


# --- starting -------------------------------------------------------------------------------------
@router.post(
    "/bargain-campaigns/{bargain_campaign_id}/bargains",
    response={201: BargainDetailOut},
    auth=bearer_auth,
    summary="Start a bargain: my own first cut, then friends cut the rest",
    description=(
        "Start a bargain of a running campaign. Its cuts are drawn at once from a stored seed "
        "(revealed as `seed` once the bargain is no longer active): my own first cut lowers the "
        "price now, and exactly `helps_needed` friends' helps bring it to the floor. Share it "
        "(`GET /bargains/{bargain_id}` is its page); sharing is never required. No body. "
        "Shopper (bearer token of a customer; `not_a_customer` otherwise). Idempotent with "
        "`Idempotency-Key`: a retry replays the first 201 (one bargain). Errors: 404 "
        "`bargain_campaign_not_found`, 409 `bargain_campaign_not_active` (not running), 409 "
        "`product_unavailable` (not on sale), 409 `too_many_bargains` (`details.limit`: "
        "bargains of this campaign I may have live or bought)."
    ),
)
@examples(response=STARTED)
@errors(
    CustomerErrorCode.NOT_A_CUSTOMER,
    BargainErrorCode.BARGAIN_CAMPAIGN_NOT_FOUND,
    BargainErrorCode.BARGAIN_CAMPAIGN_NOT_ACTIVE,
    OrderErrorCode.PRODUCT_UNAVAILABLE,
    BargainErrorCode.TOO_MANY_BARGAINS,
)
@idempotent
def bargain_start(request: HttpRequest, bargain_campaign_id: int = Path(..., ge=1, le=MAX_ID)):
    customer = customer_of(request_user(request))
    bargain = services.bargain_start(campaign_id=bargain_campaign_id, customer=customer)
    return Status(201, _detail(bargain.pk, customer))


# --- a bargain (its share page) -------------------------------------------------------------------
@router.get(
    "/bargains/{bargain_id}",
    response=BargainDetailOut,
    auth=bearer_auth,
    summary="A bargain: its price, helps and time left (the page a friend opens)",
    description="A bargain's "
    + DETAIL_TEXT
    + " Any logged-in customer, or an operator, may read it (bearer token; a user who is "
    "neither: `not_a_customer`); read-only. Unknown: 404 `bargain_not_found`.",
)
@examples(response=BARGAIN)
@errors(CustomerErrorCode.NOT_A_CUSTOMER, BargainErrorCode.BARGAIN_NOT_FOUND)
def bargain_get(request: HttpRequest, bargain_id: int = Path(..., ge=1, le=MAX_ID)):
    return _detail(bargain_id, selectors.bargain_viewer(request_user(request)))


# --- helping --------------------------------------------------------------------------------------
@router.post(
    "/bargains/{bargain_id}/helps",
    response={201: BargainHelpedOut},
    auth=bearer_auth,
    summary="Help a friend's bargain: make its next cut",
    description=(
        "Make the bargain's next cut (drawn when it started); the last help lands exactly on "
        "the floor, and the initiator then has the campaign's `payment_ttl_seconds` to buy. "
        "Send the device's `X-Device-Id` (a UUID; 400 `invalid_device_id` when malformed): "
        "helps per device per day are limited, and it is kept (with a hash of the IP) for "
        "fraud review, never shown. No body. Shopper (bearer token of a customer; "
        "`not_a_customer` otherwise); rate-limited per client IP (`BARGAIN_HELP_IP_RATE`, 429 "
        "`rate_limited`). Idempotent with `Idempotency-Key`. Errors: 404 `bargain_not_found`, "
        "409 `cannot_help_own_bargain`, 409 `bargain_closed` (not active: at the floor, bought "
        "or expired, or an order is awaiting payment), 409 `already_helped`, 409 "
        "`helper_not_new` (the campaign is for new customers' helps), 409 `help_limit_reached` "
        "(bargains of this campaign I may help per day), 409 `device_help_limit_reached`."
    ),
)
@examples(response=HELPED)
@errors(
    CustomerErrorCode.NOT_A_CUSTOMER,
    CoreErrorCode.INVALID_DEVICE_ID,
    CoreErrorCode.RATE_LIMITED,
    BargainErrorCode.BARGAIN_NOT_FOUND,
    BargainErrorCode.CANNOT_HELP_OWN_BARGAIN,
    BargainErrorCode.BARGAIN_CLOSED,
    BargainErrorCode.ALREADY_HELPED,
    BargainErrorCode.HELPER_NOT_NEW,
    BargainErrorCode.HELP_LIMIT_REACHED,
    BargainErrorCode.DEVICE_HELP_LIMIT_REACHED,
)
@idempotent
def bargain_help(request: HttpRequest, bargain_id: int = Path(..., ge=1, le=MAX_ID)):
    customer = customer_of(request_user(request))
    device = device_id(request)
    rate_limit(request, group="bargain-help-ip", rate=settings.BARGAIN_HELP_IP_RATE)
    help_ = services.bargain_help(
        bargain_id=bargain_id, helper=customer, device_id=device, ip_hash=ip_hash(request)
    )
    return Status(
        201,
        BargainHelpedOut(
            help=BargainHelpResultOut.from_orm(help_), bargain=_detail(bargain_id, customer)
        ),
    )


# --- buying ---------------------------------------------------------------------------------------
@router.post(
    "/bargains/{bargain_id}/purchase",
    response={201: BargainPurchasedOut},
    auth=bearer_auth,
    summary="Buy my bargain at its price",
    description=(
        "Place the order for one unit at the bargain's current price (never above the SKU's "
        "list price): at the floor, or before it if the campaign is `buy_at_any_price`. The "
        "order (source `bargain`, `source_ref` the bargain) is to be paid by its "
        "`payment_deadline`: at the floor, the bargain's deadline to buy; before it, the "
        "shop's usual payment time, never past the bargain's end. Unpaid, it expires and I may "
        "buy again; paid, the bargain is purchased. While it awaits payment nobody can help. "
        "Coupons do not apply. Only the bargain's initiator (anyone else: 404). Idempotent "
        "with `Idempotency-Key`: a retry replays the first 201 (one order). Errors: 404 "
        "`bargain_not_found`, 409 `bargain_closed` (expired, bought, or under a second left), "
        "409 `bargain_order_pending` (`details.order_id`: pay or cancel it), 409 "
        "`bargain_not_at_floor`, 409 `out_of_stock`, 409 `product_unavailable`, 409 "
        "`purchase_limit_exceeded`, 422 delivery errors as for a normal order."
    ),
)
@examples(request=PURCHASE_REQUEST, response=PURCHASED)
@errors(
    CustomerErrorCode.NOT_A_CUSTOMER,
    BargainErrorCode.BARGAIN_NOT_FOUND,
    BargainErrorCode.BARGAIN_CLOSED,
    BargainErrorCode.BARGAIN_ORDER_PENDING,
    BargainErrorCode.BARGAIN_NOT_AT_FLOOR,
    *CHECKOUT_CODES,
)
@idempotent
def bargain_purchase(
    request: HttpRequest, payload: BargainPurchaseIn, bargain_id: int = Path(..., ge=1, le=MAX_ID)
):
    customer = customer_of(request_user(request))
    order = services.bargain_purchase(bargain_id=bargain_id, customer=customer, **payload.dict())
    return Status(
        201,
        BargainPurchasedOut(
            bargain=_detail(bargain_id, customer),
            order=OrderOut.from_orm(order_of_customer(order_id=order.pk, customer=customer)),
        ),
    )


# --- my bargains ----------------------------------------------------------------------------------
@router.get(
    "/me/bargains",
    response=list[MyBargainOut],
    auth=bearer_auth,
    summary="My bargains: those I started",
    description=(
        "The bargains I started (any status), newest first, paginated, each with its campaign, "
        "status, prices, helps and time left, and my purchase order if any. Shopper (bearer "
        "token of a customer; `not_a_customer` otherwise)."
    ),
)
@examples(
    response={
        "items": [
            {
                "id": 21,
                "campaign_id": 4,
                "campaign_title": "Cut it to 9.90: organic tomatoes",
                "status": "active",
                "start_price": 1990,
                "floor_price": 990,
                "current_price": 1312,
                "helps_needed": 5,
                "helps_done": 2,
                "helps_left": 3,
                "expires_at": "2025-06-02T09:30:00Z",
                "seconds_left": 84600,
                "order_id": None,
            }
        ],
        "count": 1,
        "limit": 20,
        "offset": 0,
    }
)
@errors(CustomerErrorCode.NOT_A_CUSTOMER)
@paginate
def my_bargains(request: HttpRequest):
    return selectors.bargains_of_customer(customer=customer_of(request_user(request)))
