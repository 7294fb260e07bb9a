"""Orders, pickup and refunds over HTTP: parse, call one service or selector, answer."""

import segno
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from ninja import Query, Router
from ninja.pagination import paginate
from ninja.responses import Status

from core.errors import Conflict
from core.http import bearer_auth, idempotent, rate_limit, require_perm, staff_auth
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
from shop.selectors import orders as selectors
from shop.selectors.customers import customer_of
from shop.services import orders as services
from shop.services import refunds

router = Router(tags=["orders"])


def _customer(request: HttpRequest) -> Customer:
    return customer_of(request.auth)


def _mine(order_id: int, customer: Customer) -> OrderOut:
    return OrderOut.from_orm(selectors.order_of_customer(order_id=order_id, customer=customer))


def _staff_view(order_id: int) -> StaffOrderOut:
    return StaffOrderOut.from_orm(selectors.order_for_staff(order_id=order_id))


def _refund_view(refund_id: int) -> RefundOut:
    return RefundOut.from_orm(selectors.refund_for_staff(refund_id=refund_id))


# --- customers ----------------------------------------------------------------------------------
@router.post(
    "/orders",
    response={201: OrderOut},
    auth=bearer_auth,
    summary="Place an order and reserve its stock until the payment deadline",
)
@idempotent
def order_create(request: HttpRequest, payload: OrderCreateIn):
    customer = _customer(request)
    order = services.order_create(
        customer=customer,
        lines=[(line.sku_id, line.quantity) for line in payload.lines],
        delivery_mode=payload.delivery_mode,
        community_id=payload.community_id,
        pickup_point_id=payload.pickup_point_id,
        address_id=payload.address_id,
        coupon_code=payload.coupon_code,
        note=payload.note,
    )
    return Status(201, _mine(order.pk, customer))


@router.get("/orders", response=list[OrderOut], auth=bearer_auth, summary="My orders, newest first")
@paginate
def order_list(request: HttpRequest, status: OrderStatus | None = None):
    return selectors.orders_of_customer(customer=_customer(request), status=status)


@router.get("/orders/{order_id}", response=OrderOut, auth=bearer_auth, summary="One of my orders")
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
)
def order_pickup_qr(request: HttpRequest, order_id: int):
    order = selectors.order_of_customer(order_id=order_id, customer=_customer(request))
    if not order.pickup_code:
        raise Conflict(
            "This order has no pickup code: pickup orders get one once paid.",
            code="no_pickup_code",
        )
    svg = segno.make(order.pickup_code, error="m").svg_inline(scale=8, title="Pickup code")
    return HttpResponse(svg, content_type="image/svg+xml")


@router.post(
    "/orders/{order_id}/cancel",
    response=OrderOut,
    auth=bearer_auth,
    summary="Cancel my unpaid order (its stock is released)",
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
)
def order_refunds(request: HttpRequest, order_id: int):
    order = selectors.order_of_customer(order_id=order_id, customer=_customer(request))
    return list(selectors.refunds_of_order(order=order))


@router.post(
    "/pickup/verify",
    response=OrderOut,
    auth=bearer_auth,
    summary="Community leader or staff: redeem a pickup code (the order is fulfilled)",
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
)
@paginate
def staff_order_list(request: HttpRequest, filters: Query[StaffOrderFilter]):
    require_perm(request, "shop.view_order")
    return selectors.orders_for_staff(**filters.dict())


@router.get(
    "/staff/orders/{order_id}",
    response=StaffOrderOut,
    auth=staff_auth,
    summary="Staff: one order",
    tags=["staff: orders"],
)
def staff_order_detail(request: HttpRequest, order_id: int):
    require_perm(request, "shop.view_order")
    return _staff_view(order_id)


@router.post(
    "/staff/orders/{order_id}/fulfil",
    response=StaffOrderOut,
    auth=bearer_auth,
    summary="Staff (or the community leader, for leader delivery): mark an order handed over",
    tags=["staff: orders"],
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
)
def staff_order_cancel(request: HttpRequest, order_id: int):
    require_perm(request, "shop.change_order")
    services.order_cancel(order_id=order_id, reason="staff")
    return _staff_view(order_id)


@router.post(
    "/staff/orders/{order_id}/refunds",
    response={201: RefundOut},
    auth=staff_auth,
    summary="Staff: refund an order now (approved at once)",
    tags=["staff: refunds"],
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
)
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
)
def staff_refund_reject(request: HttpRequest, refund_id: int, payload: RefundRejectIn):
    require_perm(request, "shop.change_refund")
    refunds.refund_reject(refund_id=refund_id, staff=request.auth, note=payload.note)
    return _refund_view(refund_id)
