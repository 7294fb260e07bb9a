"""Orders, pickup and refunds over HTTP: parse, call one service or selector, answer."""

import segno
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from ninja import Query, Router
from ninja.pagination import paginate
from ninja.responses import Status

from core.error_codes import CoreErrorCode
from core.errors import Conflict
from core.http import (
    bearer_auth,
    device_id,
    errors,
    examples,
    idempotent,
    ip_hash,
    rate_limit,
    require_perm,
    staff_auth,
)
from shop.api import examples as response_examples
from shop.api.coupons import CHECKOUT_COUPON_CODES, guard_code_guesses
from shop.error_codes import (
    DELIVERY_ERROR_CODES,
    CatalogErrorCode,
    CustomerErrorCode,
    OrderErrorCode,
    PickupErrorCode,
    RefundErrorCode,
)
from shop.models import Customer
from shop.schemas.orders import (
    OrderCreateIn,
    OrderOut,
    OrderStatus,
    PickupVerifyIn,
    RefundIssueIn,
    RefundOut,
    RefundRejectIn,
    RefundRequestIn,
    RefundStatus,
    StaffOrderFilter,
    StaffOrderOut,
)
from shop.schemas.timeline import StaffOrderDetailOut
from shop.selectors import orders as selectors
from shop.selectors.customers import customer_of
from shop.selectors.timeline import order_timeline
from shop.services import orders as services
from shop.services import refunds

router = Router(tags=["orders"])


def _customer(request: HttpRequest) -> Customer:
    return customer_of(request.auth)


def _mine(order_id: int, customer: Customer) -> OrderOut:
    return OrderOut.from_orm(selectors.order_of_customer(order_id=order_id, customer=customer))


def _staff_view(order_id: int) -> StaffOrderOut:
    return StaffOrderOut.from_orm(selectors.order_for_staff(order_id=order_id))


def _staff_detail(order_id: int) -> StaffOrderDetailOut:
    order = selectors.order_for_staff(order_id=order_id)
    order.timeline = list(order_timeline(order_id=order_id))
    return StaffOrderDetailOut.from_orm(order)


def _refund_view(refund_id: int) -> RefundOut:
    return RefundOut.from_orm(selectors.refund_for_staff(refund_id=refund_id))


# --- customers ----------------------------------------------------------------------------------
@router.post(
    "/orders",
    response={201: OrderOut},
    auth=bearer_auth,
    summary="Place an order and reserve its stock until the payment deadline",
    description=(
        "Price the lines (coupon included), check availability, purchase limits and the delivery "
        "choice, and reserve the stock until the payment deadline (`expires_at`). Shopper (bearer "
        "token of a customer; `not_a_customer` otherwise). Idempotent with `Idempotency-Key`: a "
        "retry replays the first 201. Coupons: `coupon_ids` (up to 5 of mine, e.g. the "
        "`best.coupon_ids` of `POST /checkout/preview`) and/or a `coupon_code`; they are locked "
        "to the order until it is paid (used), cancelled or expired (released). Main errors: "
        "409 `out_of_stock` (`details.sku_id`, `details.available`), 409 `product_unavailable` "
        "/ `purchase_limit_exceeded`, 422 `coupon_invalid` / `coupon_expired` / "
        "`coupon_not_applicable` / `coupon_not_stackable`, 409 `coupon_unavailable` "
        "(`details.reason`), 429 `coupon_code_rate_limited` (too many wrong codes), 422 "
        "delivery errors (`pickup_point_required`, ...)."
    ),
)
@examples(
    request={
        "lines": [{"sku_id": 1, "quantity": 2}],
        "delivery_mode": "pickup",
        "pickup_point_id": 1,
        "coupon_code": "",
        "note": "Please call on arrival",
    },
    response=response_examples.ORDER_PLACED,
)
@errors(
    CustomerErrorCode.NOT_A_CUSTOMER,
    OrderErrorCode.NO_LINES,
    OrderErrorCode.TOO_MANY_LINES,
    OrderErrorCode.INVALID_QUANTITY,
    OrderErrorCode.SKU_NOT_FOUND,
    OrderErrorCode.PRODUCT_UNAVAILABLE,
    CatalogErrorCode.OUT_OF_STOCK,
    OrderErrorCode.PURCHASE_LIMIT_EXCEEDED,
    *CHECKOUT_COUPON_CODES,
    *DELIVERY_ERROR_CODES,
    CoreErrorCode.INVALID_DEVICE_ID,
)
@idempotent
def order_create(request: HttpRequest, payload: OrderCreateIn):
    customer = _customer(request)
    order = guard_code_guesses(
        request,
        payload.coupon_code,
        lambda: services.order_create(
            customer=customer,
            lines=[(line.sku_id, line.quantity) for line in payload.lines],
            delivery_mode=payload.delivery_mode,
            community_id=payload.community_id,
            pickup_point_id=payload.pickup_point_id,
            address_id=payload.address_id,
            coupon_ids=payload.coupon_ids,
            coupon_code=payload.coupon_code,
            note=payload.note,
            device_id=device_id(request),
            ip_hash=ip_hash(request),
        ),
    )
    return Status(201, _mine(order.pk, customer))


@router.get(
    "/orders",
    response=list[OrderOut],
    auth=bearer_auth,
    summary="My orders, newest first",
    description=(
        "My orders, newest first, paginated; `status` filters. Shopper (bearer token of a "
        "customer; `not_a_customer` otherwise)."
    ),
)
@errors(CustomerErrorCode.NOT_A_CUSTOMER)
@paginate
def order_list(request: HttpRequest, status: OrderStatus | None = None):
    return selectors.orders_of_customer(customer=_customer(request), status=status)


@router.get(
    "/orders/{order_id}",
    response=OrderOut,
    auth=bearer_auth,
    summary="One of my orders",
    description=(
        "One of my orders with its lines. Shopper (bearer token of a customer; `not_a_customer` "
        "otherwise). Another customer's or unknown: 404 `not_found`."
    ),
)
@errors(CustomerErrorCode.NOT_A_CUSTOMER, CoreErrorCode.NOT_FOUND)
def order_detail(request: HttpRequest, order_id: int):
    return _mine(order_id, _customer(request))


@router.get(
    "/orders/{order_id}/pickup-qr",
    auth=bearer_auth,
    summary="My order's pickup code as a QR code (SVG) to show at the pickup point",
    openapi_extra={
        "responses": {
            "200": {
                "description": "An SVG image encoding the pickup code",
                "content": {"image/svg+xml": {"schema": {"type": "string"}}},
            }
        }
    },
    description=(
        "An SVG QR code of my paid pickup order's code, to show at the pickup point. Shopper "
        "(bearer token of a customer; `not_a_customer` otherwise). An order without a pickup code "
        "(unpaid, or not for pickup): 409 `no_pickup_code`."
    ),
)
@errors(CustomerErrorCode.NOT_A_CUSTOMER, CoreErrorCode.NOT_FOUND, PickupErrorCode.NO_PICKUP_CODE)
def order_pickup_qr(request: HttpRequest, order_id: int):
    order = selectors.order_of_customer(order_id=order_id, customer=_customer(request))
    if not order.pickup_code:
        raise Conflict(
            "This order has no pickup code: pickup orders get one once paid.",
            code=PickupErrorCode.NO_PICKUP_CODE,
        )
    svg = segno.make(order.pickup_code, error="m").svg_inline(scale=8, title="Pickup code")
    return HttpResponse(svg, content_type="image/svg+xml")


@router.post(
    "/orders/{order_id}/cancel",
    response=OrderOut,
    auth=bearer_auth,
    summary="Cancel my unpaid order (its stock is released)",
    description=(
        "Cancel my unpaid order; its reserved stock is released. Shopper (bearer token of a "
        "customer; `not_a_customer` otherwise). A paid, fulfilled or already cancelled order: 409 "
        "`illegal_transition` (`details.from`, `details.to`)."
    ),
)
@errors(
    CustomerErrorCode.NOT_A_CUSTOMER, CoreErrorCode.NOT_FOUND, OrderErrorCode.ILLEGAL_TRANSITION
)
def order_cancel(request: HttpRequest, order_id: int):
    customer = _customer(request)
    services.order_cancel(order_id=order_id, customer=customer)
    return _mine(order_id, customer)


@router.post(
    "/orders/{order_id}/confirm-receipt",
    response=OrderOut,
    auth=bearer_auth,
    summary="Confirm I received my fulfilled order (completes it)",
    description=(
        "Confirm I received my fulfilled order; it becomes completed (otherwise it completes on "
        "its own after the after-sale window). Shopper (bearer token of a customer; "
        "`not_a_customer` otherwise). An order that is not fulfilled: 409 `illegal_transition`."
    ),
)
@errors(
    CustomerErrorCode.NOT_A_CUSTOMER, CoreErrorCode.NOT_FOUND, OrderErrorCode.ILLEGAL_TRANSITION
)
def order_confirm_receipt(request: HttpRequest, order_id: int):
    customer = _customer(request)
    services.order_complete(order_id=order_id, customer=customer)
    return _mine(order_id, customer)


@router.post(
    "/orders/{order_id}/refunds",
    response={201: RefundOut},
    auth=bearer_auth,
    summary="Ask for a refund (everything left, some units of lines, or an amount)",
    description=(
        "Ask for a refund of my paid or fulfilled order: everything left (no body fields), some "
        "units of lines (`lines`), or an amount (`amount`, fen). Operators decide it. Shopper "
        "(bearer token of a customer; `not_a_customer` otherwise). Idempotent with "
        "`Idempotency-Key`. Main errors: 409 `refund_exceeds_paid`, 409 `refund_in_progress` (one "
        "open refund per order), 409 `order_not_refundable`, 422 `refund_spec_invalid`."
    ),
)
@examples(
    request={"lines": [{"order_line_id": 11, "quantity": 1}], "note": "One box arrived crushed."},
    response=response_examples.REFUND_REQUESTED,
)
@errors(
    CustomerErrorCode.NOT_A_CUSTOMER,
    CoreErrorCode.NOT_FOUND,
    RefundErrorCode.REFUND_SPEC_INVALID,
    RefundErrorCode.INVALID_QUANTITY,
    RefundErrorCode.INVALID_AMOUNT,
    RefundErrorCode.ORDER_LINE_NOT_FOUND,
    RefundErrorCode.REFUND_EXCEEDS_PAID,
    RefundErrorCode.ORDER_NOT_REFUNDABLE,
    RefundErrorCode.REFUND_IN_PROGRESS,
)
@idempotent
def refund_request(request: HttpRequest, order_id: int, payload: RefundRequestIn):
    refund = refunds.refund_request(
        order_id=order_id,
        customer=_customer(request),
        lines=[line.dict() for line in payload.lines] if payload.lines is not None else None,
        amount=payload.amount,
        note=payload.note,
    )
    return Status(201, _refund_view(refund.pk))


@router.get(
    "/orders/{order_id}/refunds",
    response=list[RefundOut],
    auth=bearer_auth,
    summary="Refunds of my order",
    description=(
        "The refunds of my order. Shopper (bearer token of a customer; `not_a_customer` otherwise)."
    ),
)
@errors(CustomerErrorCode.NOT_A_CUSTOMER, CoreErrorCode.NOT_FOUND)
def order_refunds(request: HttpRequest, order_id: int):
    order = selectors.order_of_customer(order_id=order_id, customer=_customer(request))
    return list(selectors.refunds_of_order(order=order))


@router.post(
    "/pickup/verify",
    response=OrderOut,
    auth=bearer_auth,
    summary="Community leader or staff: redeem a pickup code (the order is fulfilled)",
    description=(
        "Redeem the pickup code a shopper shows: the order becomes fulfilled. For the leader of "
        "the order's community, or staff with `shop.change_order`; rate-limited per user "
        "(`PICKUP_VERIFY_RATE`, 30/min by default). A second redemption is 409 "
        "`already_redeemed` with `details.redeemed_at`. A code that is unknown or belongs to "
        "another community's order is 404 `pickup_code_invalid` either way; a user who leads no "
        "community is 403 `not_community_leader`."
    ),
)
@examples(
    request={"code": "48213377"},
    response=response_examples.ORDER_REDEEMED,
)
@errors(
    CoreErrorCode.RATE_LIMITED,
    PickupErrorCode.NOT_COMMUNITY_LEADER,
    PickupErrorCode.PICKUP_CODE_INVALID,
    PickupErrorCode.ALREADY_REDEEMED,
    OrderErrorCode.ILLEGAL_TRANSITION,
    OrderErrorCode.REFUND_IN_PROGRESS,
)
def pickup_verify(request: HttpRequest, payload: PickupVerifyIn):
    # 8-digit codes: a per-user limit keeps guessing out of reach
    rate_limit(request, group="pickup-verify", rate=settings.PICKUP_VERIFY_RATE, key="user")
    order = services.order_verify_pickup(code=payload.code, actor=request.auth)
    return OrderOut.from_orm(selectors.order_for_staff(order_id=order.pk))


# --- staff ----------------------------------------------------------------------------------------
@router.get(
    "/staff/orders",
    response=list[StaffOrderOut],
    auth=staff_auth,
    summary="Staff: all orders, filtered",
    tags=["staff: orders"],
    description=(
        "All orders, newest first, paginated and filtered. Operators (staff bearer token) with "
        "`shop.view_order`."
    ),
)
@paginate
def staff_order_list(request: HttpRequest, filters: Query[StaffOrderFilter]):
    require_perm(request, "shop.view_order")
    return selectors.orders_for_staff(**filters.dict())


@router.get(
    "/staff/orders/{order_id}",
    response=StaffOrderDetailOut,
    auth=staff_auth,
    summary="Staff: one order, with its timeline (who did what, when, from which status)",
    tags=["staff: orders"],
    description=(
        "One order with its lines and its timeline (who did what, when, from which status). "
        "Operators (staff bearer token) with `shop.view_order`."
    ),
)
@errors(CoreErrorCode.NOT_FOUND)
def staff_order_detail(request: HttpRequest, order_id: int):
    require_perm(request, "shop.view_order")
    return _staff_detail(order_id)


@router.post(
    "/staff/orders/{order_id}/fulfil",
    response=StaffOrderOut,
    auth=bearer_auth,
    summary="Staff (or the community leader, for leader delivery): mark an order handed over",
    tags=["staff: orders"],
    description=(
        "Mark a paid order handed over (fulfilled). Staff with `shop.change_order`, or the leader "
        "of the order's community for leader-delivery orders (pickup orders are redeemed by code). "
        "Already fulfilled: 409 `illegal_transition`; an open refund first: 409 "
        "`refund_in_progress`."
    ),
)
@errors(
    CoreErrorCode.NOT_FOUND,
    OrderErrorCode.NOT_COMMUNITY_LEADER,
    OrderErrorCode.FULFILMENT_NOT_ALLOWED,
    OrderErrorCode.ILLEGAL_TRANSITION,
    OrderErrorCode.REFUND_IN_PROGRESS,
)
def staff_order_fulfil(request: HttpRequest, order_id: int):
    services.order_fulfil(order_id=order_id, actor=request.auth)
    return _staff_view(order_id)


@router.post(
    "/staff/orders/{order_id}/cancel",
    response=StaffOrderOut,
    auth=staff_auth,
    summary="Staff: cancel an unpaid order",
    tags=["staff: orders"],
    description=(
        "Cancel an unpaid order; its reserved stock is released. Operators (staff bearer token) "
        "with `shop.change_order`. A paid order is refunded instead: 409 `illegal_transition`."
    ),
)
@errors(CoreErrorCode.NOT_FOUND, OrderErrorCode.ILLEGAL_TRANSITION)
def staff_order_cancel(request: HttpRequest, order_id: int):
    require_perm(request, "shop.change_order")
    services.order_cancel(order_id=order_id, reason="staff", actor=request.auth)
    return _staff_view(order_id)


@router.post(
    "/staff/orders/{order_id}/refunds",
    response={201: RefundOut},
    auth=staff_auth,
    summary="Staff: refund an order now (approved at once)",
    tags=["staff: refunds"],
    description=(
        "Refund an order now, approved at once: everything left, lines, or an amount; `restock` "
        "puts the refunded units back in stock. Operators (staff bearer token) with "
        "`shop.add_refund`. Idempotent with `Idempotency-Key`. The money is sent after commit; "
        "poll the refund's `status`. Main errors as for the shopper's refund request, plus 422 "
        "`restock_needs_units`."
    ),
)
@examples(
    request={
        "lines": [{"order_line_id": 11, "quantity": 1}],
        "restock": True,
        "note": "Damaged in transit.",
    },
    response=response_examples.REFUND_ISSUED,
)
@errors(
    CoreErrorCode.NOT_FOUND,
    RefundErrorCode.REFUND_SPEC_INVALID,
    RefundErrorCode.INVALID_QUANTITY,
    RefundErrorCode.INVALID_AMOUNT,
    RefundErrorCode.ORDER_LINE_NOT_FOUND,
    RefundErrorCode.REFUND_EXCEEDS_PAID,
    RefundErrorCode.RESTOCK_NEEDS_UNITS,
    RefundErrorCode.ORDER_NOT_REFUNDABLE,
    RefundErrorCode.REFUND_IN_PROGRESS,
)
@idempotent
def staff_refund_issue(request: HttpRequest, order_id: int, payload: RefundIssueIn):
    require_perm(request, "shop.add_refund")
    refund = refunds.refund_issue(
        order_id=order_id,
        staff=request.auth,
        lines=[line.dict() for line in payload.lines] if payload.lines is not None else None,
        amount=payload.amount,
        restock=payload.restock,
        note=payload.note,
    )
    return Status(201, _refund_view(refund.pk))


@router.get(
    "/staff/refunds",
    response=list[RefundOut],
    auth=staff_auth,
    summary="Staff: refunds (e.g. ?status=requested to decide)",
    tags=["staff: refunds"],
    description=(
        "Refunds, paginated, filtered by status and/or order. Operators (staff bearer token) with "
        "`shop.view_refund`."
    ),
)
@paginate
def staff_refund_list(
    request: HttpRequest, status: RefundStatus | None = None, order_id: int | None = None
):
    require_perm(request, "shop.view_refund")
    return selectors.refunds_for_staff(status=status, order_id=order_id)


@router.post(
    "/staff/refunds/{refund_id}/approve",
    response=RefundOut,
    auth=staff_auth,
    summary="Staff: approve a requested refund (the money is sent)",
    tags=["staff: refunds"],
    description=(
        "Approve a requested refund; the money is sent after commit. Operators (staff bearer "
        "token) with `shop.change_refund`. A refund that is not `requested`: 409 "
        "`illegal_transition`."
    ),
)
@errors(RefundErrorCode.REFUND_NOT_FOUND, RefundErrorCode.ILLEGAL_TRANSITION)
def staff_refund_approve(request: HttpRequest, refund_id: int):
    require_perm(request, "shop.change_refund")
    refunds.refund_approve(refund_id=refund_id, staff=request.auth)
    return _refund_view(refund_id)


@router.post(
    "/staff/refunds/{refund_id}/reject",
    response=RefundOut,
    auth=staff_auth,
    summary="Staff: reject a requested refund",
    tags=["staff: refunds"],
    description=(
        "Reject a requested refund with a note for the shopper. Operators (staff bearer token) "
        "with `shop.change_refund`. A refund that is not `requested`: 409 `illegal_transition`."
    ),
)
@examples(request={"note": "Outside the after-sale window."})
@errors(RefundErrorCode.REFUND_NOT_FOUND, RefundErrorCode.ILLEGAL_TRANSITION)
def staff_refund_reject(request: HttpRequest, refund_id: int, payload: RefundRejectIn):
    require_perm(request, "shop.change_refund")
    refunds.refund_reject(refund_id=refund_id, staff=request.auth, note=payload.note)
    return _refund_view(refund_id)
