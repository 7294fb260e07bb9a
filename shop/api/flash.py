"""Flash sales over HTTP: the public session list and snapshot, and placing a flash order."""

from django.http import HttpRequest
from django.utils import timezone
from ninja import Router
from ninja.decorators import decorate_view
from ninja.responses import Status

from core.http import bearer_auth, errors, examples, idempotent, micro_cache
from shop.api import examples as response_examples
from shop.error_codes import (
    DELIVERY_ERROR_CODES,
    CatalogErrorCode,
    CustomerErrorCode,
    FlashErrorCode,
    OrderErrorCode,
)
from shop.schemas.flash import FlashOrderIn, FlashSessionDetailOut, FlashSessionOut
from shop.schemas.orders import OrderOut
from shop.selectors import flash as selectors
from shop.selectors.customers import customer_of
from shop.selectors.orders import order_of_customer
from shop.services import flash as services

router = Router(tags=["flash sales"])

FLASH_ORDER_PLACED = {
    **response_examples.ORDER_PLACED,
    "source": "flash_sale",
    "source_ref": 3,
    "lines": [
        {**line, "unit_price": 990, "discount": 0, "line_total": 990 * line["quantity"]}
        for line in response_examples.ORDER_PLACED["lines"]
    ],
    "coupons": [],
}
FLASH_ORDER_PLACED.update(
    discount=0,
    subtotal=sum(line["line_total"] for line in FLASH_ORDER_PLACED["lines"]),
    total=sum(line["line_total"] for line in FLASH_ORDER_PLACED["lines"]),
)


@router.get(
    "/flash/sessions",
    response=list[FlashSessionOut],
    summary="Upcoming and live flash sales with their items",
    description=(
        "Published flash sale sessions that have not ended, soonest first, with each item's "
        "flash price, list price, flash stock left and per-customer limit, the session's status "
        "and `starts_in` seconds. Public (no login); cached for `FLASH_LIST_CACHE_SECONDS` "
        "(default 1 s): count down from `starts_at` against `server_time`, and follow the "
        "session topic for live stock."
    ),
)
@decorate_view(micro_cache("FLASH_LIST_CACHE_SECONDS"))
def flash_session_list(request: HttpRequest):
    return selectors.sessions_public(now=timezone.now())


@router.get(
    "/flash/sessions/{session_id}",
    response=FlashSessionDetailOut,
    summary="One flash sale: the snapshot of its topic",
    description=(
        "One published flash sale session (ended ones too) with its items and live flash stock: "
        "the snapshot of the WebSocket topic `flash:<id>`, current to its `seq`. Public (no "
        "login). Unknown or unpublished: 404 `flash_session_not_found`."
    ),
)
@errors(FlashErrorCode.FLASH_SESSION_NOT_FOUND)
def flash_session_detail(request: HttpRequest, session_id: int):
    return selectors.session_public(session_id=session_id, now=timezone.now())


@router.post(
    "/flash/orders",
    response={201: OrderOut},
    auth=bearer_auth,
    summary="Buy a flash sale item: an order at the flash price, held for the session's TTL",
    description=(
        "Place an order for units of one flash sale item at its flash price, taken from the "
        "item's own stock and held until `payment_deadline` (the session's `payment_ttl`, 5 "
        "minutes by default; unpaid units then go back on sale). Shopper (bearer token of a "
        "customer; `not_a_customer` otherwise). Idempotent with `Idempotency-Key`: a retry "
        "replays the first 201. Main errors: 409 `out_of_stock` (`details.item_id`, "
        "`details.available`), 409 `purchase_limit_exceeded` (the item's per-customer limit: "
        "`details.limit`, `details.already_bought`; or the product's purchase limit), 409 "
        "`flash_not_started` (`details.starts_in`) / `flash_ended`, 404 `flash_item_not_found`, "
        "422 delivery errors as for a normal order."
    ),
)
@examples(
    request={"item_id": 7, "quantity": 1, "delivery_mode": "pickup", "pickup_point_id": 1},
    response=FLASH_ORDER_PLACED,
)
@errors(
    CustomerErrorCode.NOT_A_CUSTOMER,
    FlashErrorCode.FLASH_ITEM_NOT_FOUND,
    FlashErrorCode.FLASH_NOT_STARTED,
    FlashErrorCode.FLASH_ENDED,
    CatalogErrorCode.OUT_OF_STOCK,
    OrderErrorCode.PURCHASE_LIMIT_EXCEEDED,
    OrderErrorCode.INVALID_QUANTITY,
    OrderErrorCode.PRODUCT_UNAVAILABLE,
    *DELIVERY_ERROR_CODES,
)
@idempotent
def flash_order_create(request: HttpRequest, payload: FlashOrderIn):
    customer = customer_of(request.auth)
    order = services.flash_order_create(
        customer=customer,
        item_id=payload.item_id,
        quantity=payload.quantity,
        delivery_mode=payload.delivery_mode,
        community_id=payload.community_id,
        pickup_point_id=payload.pickup_point_id,
        address_id=payload.address_id,
        note=payload.note,
    )
    return Status(201, OrderOut.from_orm(order_of_customer(order_id=order.pk, customer=customer)))
