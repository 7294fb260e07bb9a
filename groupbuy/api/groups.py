"""Group-buy (拼团) over HTTP: the public campaign list and detail, a group's share page (by id
or by share token), opening and joining a group (each a seat held by an unpaid order), and my
groups. Parse, call one service or selector, answer (rules: groupbuy/services/groups.py)."""

from typing import Any, cast

from django.http import HttpRequest
from django.utils import timezone
from ninja import Path, Query, Router
from ninja.pagination import paginate
from ninja.responses import Status

from core.http import bearer_auth, errors, examples, idempotent, request_user
from groupbuy.error_codes import GroupBuyErrorCode
from groupbuy.models import Group
from groupbuy.schemas.groups import (
    CampaignDetailOut,
    CampaignOut,
    GroupDetailOut,
    GroupOrderIn,
    GroupOrderOut,
    MyGroupOut,
)
from groupbuy.selectors import groups as selectors
from groupbuy.services import groups as services
from shop.api import examples as response_examples
from shop.error_codes import (
    DELIVERY_ERROR_CODES,
    CatalogErrorCode,
    CustomerErrorCode,
    OrderErrorCode,
)
from shop.models import Customer, Order
from shop.schemas.orders import OrderOut
from shop.selectors.customers import customer_of
from shop.selectors.orders import order_of_customer

router = Router(tags=["group-buy"])

MAX_ID = 2**63 - 1
SHARE_TOKEN = r"^[A-Za-z0-9_-]{1,32}$"

# What the shop's checkout can refuse about a seat's order (as for a flash order).
CHECKOUT_CODES = (
    CatalogErrorCode.OUT_OF_STOCK,
    OrderErrorCode.PURCHASE_LIMIT_EXCEEDED,
    OrderErrorCode.INVALID_QUANTITY,
    OrderErrorCode.PRODUCT_UNAVAILABLE,
    *DELIVERY_ERROR_CODES,
)
JOIN_CODES = (
    CustomerErrorCode.NOT_A_CUSTOMER,
    GroupBuyErrorCode.GROUP_NOT_FOUND,
    GroupBuyErrorCode.CAMPAIGN_SKU_NOT_FOUND,
    GroupBuyErrorCode.QUANTITY_OVER_LIMIT,
    GroupBuyErrorCode.GROUP_CLOSED,
    GroupBuyErrorCode.ALREADY_JOINED,
    GroupBuyErrorCode.GROUP_FULL,
    *CHECKOUT_CODES,
)

# --- examples -------------------------------------------------------------------------------------
_SKU = {"sku_id": 1, "sku_code": "TOM-500G", "list_price": 1990, "group_price": 990}
CAMPAIGN = {
    "id": 3,
    "title": "Two buy cheaper: organic tomatoes",
    "status": "active",
    "product": {"id": 5, "title": "Organic tomatoes"},
    "starts_at": "2025-06-01T00:00:00Z",
    "ends_at": "2025-06-08T00:00:00Z",
    "group_size": 3,
    "group_ttl_seconds": 86400,
    "max_quantity_per_order": 2,
    "join_mode": "community",
    "auto_complete": True,
    "auto_complete_min_fill_bps": 6667,
    "skus": [{**_SKU, "leader_price": 890}],
}
GROUP: dict[str, Any] = {
    "id": 17,
    "campaign_id": 3,
    "status": "open",
    "size": 3,
    "paid_seats": 1,
    "held_seats": 1,
    "seats_left": 1,
    "expires_at": "2025-06-02T09:30:00Z",
    "seconds_left": 84600,
    "succeeded_at": None,
    "failed_at": None,
    "auto_completed": False,
    "waived_seats": 0,
    "disclosure": None,
    "members": [
        {
            "nickname": "Ming",
            "avatar_url": "https://img.example/m.png",
            "is_leader": True,
            "paid": True,
        },
        {"nickname": "Lan", "avatar_url": "", "is_leader": False, "paid": False},
    ],
    "is_member": True,
    "share_token": "Zq3v8mK1xR0bT7cY2nH5wA",
    "topic": "group:17",
    "seq": 3,
}
_GROUP_ORDER_LINE: dict[str, Any] = {
    **cast(list[dict[str, Any]], response_examples.ORDER_PLACED["lines"])[0],
    "list_unit_price": 1990,
    "unit_price": 990,
    "quantity": 1,
    "discount": 0,
    "line_total": 990,
}
GROUP_ORDER: dict[str, Any] = {
    **response_examples.ORDER_PLACED,
    "source": "group_buy",
    "source_ref": 17,
    "fulfilment_held": True,
    "lines": [_GROUP_ORDER_LINE],
    "coupons": [],
    "coupon_code": "",
    "note": "",
    "subtotal": 990,
    "discount": 0,
    "total": 990,
}
JOINED = {"group": GROUP, "order": GROUP_ORDER}
OPENED = {
    "group": {
        **GROUP,
        "paid_seats": 0,
        "seats_left": 2,
        "seconds_left": 86400,
        "members": [{**GROUP["members"][0], "paid": False}],
    },
    "order": {
        **GROUP_ORDER,
        "lines": [{**_GROUP_ORDER_LINE, "unit_price": 890, "line_total": 890}],
        "subtotal": 890,
        "total": 890,
    },
}
ORDER_REQUEST = {"sku_id": 1, "quantity": 1, "delivery_mode": "pickup", "pickup_point_id": 1}

SEAT_ORDER_TEXT = (
    "The seat is held by an unpaid order (`order`, source `group_buy`, `source_ref` the group) "
    "until its `payment_deadline`: the campaign's seat payment time, never past the group's "
    "expiry; unpaid, the order expires and frees the seat. Paid orders are held "
    "(`fulfilment_held`: no pickup code, nothing handed over) until the group's last seat is "
    "paid, when the group succeeds and every order is released. Coupons do not apply. Shopper "
    "(bearer token of a customer; `not_a_customer` otherwise). Idempotent with "
    "`Idempotency-Key`: a retry replays the first 201 (one order)."
)

JOIN_ERRORS_TEXT = (
    " Main errors: 404 `group_not_found` / `campaign_sku_not_found`, 422 "
    "`quantity_over_limit`, 409 `group_closed` (finished, expired or under a second left), "
    "409 `already_joined`, 409 `group_full` (seats free up when unpaid orders expire), 409 "
    "`out_of_stock`, 409 `purchase_limit_exceeded`, 422 delivery errors."
)


def _placed(customer: Customer, group: Group, order: Order) -> Status:
    detail = selectors.group_detail(viewer=customer, now=timezone.now(), group_id=group.pk)
    return Status(
        201,
        GroupOrderOut(
            group=GroupDetailOut.from_orm(detail),
            order=OrderOut.from_orm(order_of_customer(order_id=order.pk, customer=customer)),
        ),
    )


# --- campaigns (public) ---------------------------------------------------------------------------
@router.get(
    "/group-campaigns",
    response=list[CampaignOut],
    summary="Group-buy campaigns running now",
    description=(
        "Active group-buy campaigns open for new groups now (`starts_at <= now < ends_at`), "
        "soonest ending first, paginated: the product, each SKU's list, group and leader price "
        "(fen), the group size and time to fill, the join mode, and whether (and from what fill, "
        "in basis points) an expired group completes anyway. Public (no login); read-only."
    ),
)
@examples(response={"items": [CAMPAIGN], "count": 1, "limit": 20, "offset": 0})
@paginate
def campaign_list(request: HttpRequest):
    return selectors.campaigns_running(now=timezone.now())


@router.get(
    "/group-campaigns/{campaign_id}",
    response=CampaignDetailOut,
    summary="One group-buy campaign, with open groups of my community to join",
    description=(
        "A campaign (running, not started yet or ended) with its SKUs and prices. In join mode "
        f"`community`, `open_groups` lists up to {selectors.OPEN_GROUPS_LIMIT} groups of the "
        "community `community_id` with a seat free, soonest expiring first (join one with `POST "
        "/groups/{group_id}/join`); without `community_id`, or in mode `share_token`, none. "
        "Public (no login); read-only. Unknown or draft: 404 `campaign_not_found`."
    ),
)
@examples(
    response={
        **CAMPAIGN,
        "open_groups": [
            {
                "id": 17,
                "seats_left": 1,
                "expires_at": "2025-06-02T09:30:00Z",
                "leader_nickname": "Ming",
            }
        ],
    }
)
@errors(GroupBuyErrorCode.CAMPAIGN_NOT_FOUND)
def campaign_detail(
    request: HttpRequest,
    campaign_id: int,
    community_id: int | None = Query(
        None, ge=1, le=MAX_ID, description="The viewer's community, for `open_groups`."
    ),
):
    return selectors.campaign_public(
        campaign_id=campaign_id, community_id=community_id, now=timezone.now()
    )


# --- a group (share pages) ------------------------------------------------------------------------
GROUP_DETAIL_TEXT = (
    "status, seats (`paid_seats`, `held_seats` awaiting payment, `seats_left`), `expires_at` and "
    "`seconds_left`, and its members: the held and paid seats in seat order with nickname, "
    "avatar, leader and paid flags. An auto-completed group says so in `disclosure` (how many "
    "seats real buyers paid, how many were waived). `share_token` only for members (else "
    "null). It is the snapshot of the WebSocket topic `topic` (`group:<id>`, which any "
    "logged-in customer may follow: `group_seat_taken`, `group_seat_paid`, "
    "`group_seat_released`, `group_succeeded`, `group_failed`), current to `seq`: on a gap in "
    "the topic's `seq`, fetch it again. Any shopper may read it (bearer token of a customer; "
    "`not_a_customer` otherwise); read-only. Unknown: 404 `group_not_found`."
)


@router.get(
    "/groups/{group_id}",
    response=GroupDetailOut,
    auth=bearer_auth,
    summary="A group: its seats, time left and members",
    description="A group-buy group: its " + GROUP_DETAIL_TEXT,
)
@examples(response=GROUP)
@errors(CustomerErrorCode.NOT_A_CUSTOMER, GroupBuyErrorCode.GROUP_NOT_FOUND)
def group_get(request: HttpRequest, group_id: int):
    customer = customer_of(request_user(request))
    return selectors.group_detail(viewer=customer, now=timezone.now(), group_id=group_id)


@router.get(
    "/groups/by-token/{share_token}",
    response=GroupDetailOut,
    auth=bearer_auth,
    summary="A group found by its share link",
    description="The group a share link's token names (the page a shared link opens): its "
    + GROUP_DETAIL_TEXT,
)
@examples(response={**GROUP, "is_member": False, "share_token": None})
@errors(CustomerErrorCode.NOT_A_CUSTOMER, GroupBuyErrorCode.GROUP_NOT_FOUND)
def group_get_by_token(request: HttpRequest, share_token: str = Path(..., pattern=SHARE_TOKEN)):
    customer = customer_of(request_user(request))
    return selectors.group_detail(viewer=customer, now=timezone.now(), share_token=share_token)


# --- opening and joining --------------------------------------------------------------------------
@router.post(
    "/group-campaigns/{campaign_id}/groups",
    response={201: GroupOrderOut},
    auth=bearer_auth,
    summary="Open a group: lead it with a seat held by my order at the leader price",
    description=(
        "Open a group of a running campaign and take its first seat, at the SKU's leader price "
        "(or group price), never above its list price. The group runs for the campaign's "
        "`group_ttl_seconds`; share `group.share_token` to fill it. "
        + SEAT_ORDER_TEXT
        + " Main errors: 404 `campaign_not_found` / `campaign_sku_not_found`, 422 "
        "`quantity_over_limit` (`details.max`), 409 `campaign_not_active` (not running), 409 "
        "`too_many_open_groups` (`details.limit`: groups of this campaign I may lead at once), "
        "409 `out_of_stock`, 409 `purchase_limit_exceeded`, 422 delivery errors as for a normal "
        "order."
    ),
)
@examples(request=ORDER_REQUEST, response=OPENED)
@errors(
    CustomerErrorCode.NOT_A_CUSTOMER,
    GroupBuyErrorCode.CAMPAIGN_NOT_FOUND,
    GroupBuyErrorCode.CAMPAIGN_SKU_NOT_FOUND,
    GroupBuyErrorCode.QUANTITY_OVER_LIMIT,
    GroupBuyErrorCode.CAMPAIGN_NOT_ACTIVE,
    GroupBuyErrorCode.TOO_MANY_OPEN_GROUPS,
    *CHECKOUT_CODES,
)
@idempotent
def group_open(request: HttpRequest, campaign_id: int, payload: GroupOrderIn):
    customer = customer_of(request_user(request))
    group, order = services.group_open(
        campaign_id=campaign_id,
        customer=customer,
        **payload.dict(),  # the seat's order: SKU, quantity, delivery
    )
    return _placed(customer, group, order)


@router.post(
    "/groups/{group_id}/join",
    response={201: GroupOrderOut},
    auth=bearer_auth,
    summary="Join a group of my community by its id",
    description=(
        "Take a seat in an open group at the group price, found by id: only for campaigns in "
        "join mode `community`, and only with an order placed in the group's own community (its "
        "pickup point's, or `community_id`); else 409 `group_not_joinable` (join through the "
        "share link instead). " + SEAT_ORDER_TEXT + JOIN_ERRORS_TEXT
    ),
)
@examples(request=ORDER_REQUEST, response=JOINED)
@errors(*JOIN_CODES, GroupBuyErrorCode.GROUP_NOT_JOINABLE)
@idempotent
def group_join(request: HttpRequest, group_id: int, payload: GroupOrderIn):
    customer = customer_of(request_user(request))
    group, order = services.group_join(
        group_id=group_id,
        customer=customer,
        **payload.dict(),  # the seat's order: SKU, quantity, delivery
    )
    return _placed(customer, group, order)


@router.post(
    "/groups/by-token/{share_token}/join",
    response={201: GroupOrderOut},
    auth=bearer_auth,
    summary="Join a group through its share link",
    description=(
        "Take a seat in an open group at the group price, found by the token of a share link "
        "(any join mode, any community: the link was shared with me). "
        + SEAT_ORDER_TEXT
        + JOIN_ERRORS_TEXT
    ),
)
@examples(request=ORDER_REQUEST, response=JOINED)
@errors(*JOIN_CODES)
@idempotent
def group_join_by_token(
    request: HttpRequest, payload: GroupOrderIn, share_token: str = Path(..., pattern=SHARE_TOKEN)
):
    customer = customer_of(request_user(request))
    group, order = services.group_join(
        share_token=share_token,
        customer=customer,
        **payload.dict(),  # the seat's order: SKU, quantity, delivery
    )
    return _placed(customer, group, order)


# --- my groups ------------------------------------------------------------------------------------
@router.get(
    "/me/groups",
    response=list[MyGroupOut],
    auth=bearer_auth,
    summary="My groups: those I hold a seat in",
    description=(
        "The groups I hold a seat in (held while its order awaits payment, or paid), newest "
        "seat first, paginated, each with its campaign, status, `seats_left`, leader and my "
        "seat (`seat_status`, `is_leader`, `order_id`). A seat whose order was cancelled or "
        "expired is not listed. Shopper (bearer token of a customer; `not_a_customer` "
        "otherwise)."
    ),
)
@examples(
    response={
        "items": [
            {
                "id": 17,
                "campaign_id": 3,
                "campaign_title": "Two buy cheaper: organic tomatoes",
                "status": "open",
                "size": 3,
                "seats_left": 1,
                "expires_at": "2025-06-02T09:30:00Z",
                "leader_nickname": "Ming",
                "seat_status": "paid",
                "is_leader": True,
                "order_id": 42,
            }
        ],
        "count": 1,
        "limit": 20,
        "offset": 0,
    }
)
@errors(CustomerErrorCode.NOT_A_CUSTOMER)
@paginate
def my_groups(request: HttpRequest):
    return selectors.seats_of_customer(customer=customer_of(request_user(request)))
