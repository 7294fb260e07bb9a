"""Orders: creation (validation, pricing, stock reservation) and the order state machine.

States and transitions (each one function here, guarded: lock the order row, re-check, write)::

    pending_payment --order_mark_paid--> paid --order_fulfil / order_verify_pickup--> fulfilled
    fulfilled --order_complete / orders_complete_due--> completed
    pending_payment --order_cancel / orders_expire_due--> cancelled
    paid, partially_refunded, fulfilled, completed --refund succeeded (shop.services.refunds)-->
        refunded (everything paid was returned) or partially_refunded (only from paid)

Rules chosen where the brief left room:
- A partial refund moves a ``paid`` order to ``partially_refunded``; such an order may still be
  fulfilled and completed. A partial refund of a ``fulfilled`` or ``completed`` order keeps its
  status (``refunded_amount`` tells the money); a full refund makes any of them ``refunded``.
- Only unpaid orders can be cancelled; a paid order is refunded instead.
- Fulfilment is refused while a refund of the order is open (``refund_in_progress``), so units
  cannot be handed out and put back on sale at the same time.
- Repeating a transition that already happened returns the order unchanged (cancel a cancelled
  order, fulfil a fulfilled one, confirm a completed one); any other illegal transition is 409
  ``illegal_transition`` with ``{"from", "to"}``.
"""

import secrets
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, OuterRef, Sum
from django.utils import timezone

from core.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from core.models import User
from core.notifications import notify
from shop import events
from shop.models import (
    Address,
    Community,
    Customer,
    Order,
    OrderLine,
    PickupPoint,
    Product,
    Refund,
    Sku,
)
from shop.services.pricing import PricingContext, PricingLine, order_price
from shop.services.stock import (
    out_of_stock,
    stock_commit,
    stock_refuse_known_short,
    stock_release,
    stock_remember_short,
    stock_reserve,
)

MAX_LINES = 50
MAX_QUANTITY = 999
SWEEP_BATCH = 100
OPEN_REFUND_STATUSES = (Refund.Status.REQUESTED, Refund.Status.APPROVED)
S = Order.Status


# --- helpers ---------------------------------------------------------------------------------
def illegal_transition(order: Order, to: str) -> Conflict:
    return Conflict(
        f"An order that is {order.status} cannot become {to}.",
        code="illegal_transition",
        details={"from": order.status, "to": to},
    )


def order_not_found() -> NotFound:
    return NotFound("Order not found.")


def lock_order(*, order_id: int, customer: Customer | None = None) -> Order:
    """The order row, locked for this transaction (with its customer, unlocked); 404 if it does
    not exist or, with ``customer``, is not theirs."""
    qs = Order.objects.select_for_update(of=("self",)).select_related("customer")
    if customer is not None:
        qs = qs.filter(customer=customer)
    order = qs.filter(pk=order_id).first()
    if order is None:
        raise order_not_found()
    return order


def has_open_refund(order: Order) -> bool:
    return Refund.objects.filter(
        order=order, status__in=OPEN_REFUND_STATUSES, lines__isnull=False
    ).exists()


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _event_base(order: Order) -> dict[str, Any]:
    return {
        "order_id": order.pk,
        "customer_id": order.customer_id,
        "community_id": order.community_id,
    }


def _new_number(now: datetime) -> str:
    return f"{now:%y%m%d}{secrets.randbelow(10**14):014d}"


def _new_pickup_code() -> str:
    for _ in range(20):
        code = f"{secrets.randbelow(10**8):08d}"
        if not Order.objects.filter(pickup_code=code).exists():
            return code
    raise RuntimeError("could not find a free pickup code")  # 10^8 codes: practically unreachable


# --- create ----------------------------------------------------------------------------------
def _check_lines(lines: Sequence[tuple[int, int]]) -> dict[int, int]:
    if not lines:
        raise InvalidInput("An order needs at least one line.", code="no_lines")
    if len(lines) > MAX_LINES:
        raise InvalidInput(
            f"An order has at most {MAX_LINES} lines.",
            code="too_many_lines",
            details={"max": MAX_LINES},
        )
    merged: dict[int, int] = defaultdict(int)
    for sku_id, quantity in lines:
        if not 1 <= quantity <= MAX_QUANTITY:
            raise InvalidInput(
                f"Quantities are between 1 and {MAX_QUANTITY}.",
                code="invalid_quantity",
                details={"sku_id": sku_id, "quantity": quantity},
            )
        merged[sku_id] += quantity  # the same SKU twice is one line with the summed quantity
    for sku_id, quantity in merged.items():
        if quantity > MAX_QUANTITY:
            raise InvalidInput(
                f"Quantities are between 1 and {MAX_QUANTITY}.",
                code="invalid_quantity",
                details={"sku_id": sku_id, "quantity": quantity},
            )
    return dict(merged)


def _load_skus(quantities: dict[int, int]) -> list[Sku]:
    """One plain read (no transaction) of the SKUs with their products. It refuses unknown,
    off-sale and sold-out SKUs before any write; the conditional update stays the real guard."""
    restricted = Product.communities.through.objects.filter(product_id=OuterRef("product_id"))
    skus = list(
        Sku.objects.select_related("product")
        .annotate(community_restricted=Exists(restricted))
        .filter(pk__in=quantities)
        .order_by("pk")
    )
    missing = sorted(set(quantities) - {sku.pk for sku in skus})
    if missing:
        raise NotFound(
            "Some items do not exist.", code="sku_not_found", details={"sku_ids": missing}
        )
    for sku in skus:
        if not sku.is_active or sku.product.status != Product.Status.ON_SALE:
            raise Conflict(
                "This item is not on sale.",
                code="product_unavailable",
                details={"sku_id": sku.pk, "product_id": sku.product_id},
            )
    for sku in skus:
        if sku.stock < quantities[sku.pk]:
            stock_remember_short(sku_id=sku.pk, available=sku.stock)
            raise out_of_stock(sku_id=sku.pk, available=sku.stock)
    return skus


def _active_community(community_id: int) -> Community:
    community = Community.objects.filter(pk=community_id).first()
    if community is None:
        raise NotFound("Community not found.", code="community_not_found")
    if not community.is_active:
        raise InvalidInput("This community is not active.", code="community_inactive")
    return community


def _resolve_delivery(
    *,
    customer: Customer,
    delivery_mode: str,
    community_id: int | None,
    pickup_point_id: int | None,
    address_id: int | None,
) -> tuple[Community | None, PickupPoint | None, dict | None]:
    """The order's community, pickup point and address snapshot for ``delivery_mode``."""
    if delivery_mode not in Order.DeliveryMode.values:
        raise InvalidInput(
            "Unknown delivery mode.",
            code="invalid_delivery_mode",
            details={"allowed": list(Order.DeliveryMode.values)},
        )
    community = pickup_point = address = None
    if delivery_mode == Order.DeliveryMode.PICKUP:
        if pickup_point_id is None:
            raise InvalidInput("Choose a pickup point.", code="pickup_point_required")
        pickup_point = (
            PickupPoint.objects.select_related("community").filter(pk=pickup_point_id).first()
        )
        if pickup_point is None or not pickup_point.is_active:
            raise InvalidInput(
                "This pickup point is not available.",
                code="pickup_point_unavailable",
                details={"pickup_point_id": pickup_point_id},
            )
        if community_id is not None and pickup_point.community_id != community_id:
            raise InvalidInput(
                "This pickup point does not belong to that community.",
                code="pickup_point_not_in_community",
                details={"pickup_point_id": pickup_point_id, "community_id": community_id},
            )
        community = pickup_point.community
        if not community.is_active:
            raise InvalidInput("This community is not active.", code="community_inactive")
    else:
        if community_id is not None:
            community = _active_community(community_id)
        if delivery_mode == Order.DeliveryMode.COURIER and address_id is None:
            raise InvalidInput("Choose a delivery address.", code="address_required")
        if delivery_mode == Order.DeliveryMode.LEADER_DELIVERY:
            if community is None:
                raise InvalidInput("Leader delivery needs a community.", code="community_required")
            if community.leader_id is None:
                raise InvalidInput(
                    "This community has no leader to deliver.", code="community_has_no_leader"
                )
        if address_id is not None:
            found = Address.objects.filter(pk=address_id, customer=customer).first()
            if found is None:
                raise NotFound("Address not found.", code="address_not_found")
            address = found.snapshot()
    return community, pickup_point, address


def _check_offered_in(skus: list[Sku], community: Community | None) -> None:
    """Products tied to communities are sold only in those communities."""
    restricted = [sku for sku in skus if sku.community_restricted]
    if not restricted:
        return
    offered = set()
    if community is not None:
        offered = set(
            Product.communities.through.objects.filter(
                product_id__in={sku.product_id for sku in restricted}, community_id=community.pk
            ).values_list("product_id", flat=True)
        )
    for sku in restricted:
        if sku.product_id not in offered:
            raise Conflict(
                "This item is not offered in your community.",
                code="product_unavailable",
                details={"sku_id": sku.pk, "product_id": sku.product_id},
            )


def _check_purchase_limits(
    *, customer: Customer, skus: list[Sku], quantities: dict[int, int]
) -> None:
    """Units of a limited product in the customer's non-cancelled orders plus this order must
    stay within ``purchase_limit``. Call inside the transaction: the customer row is locked so
    two concurrent orders of one customer are counted one after the other."""
    limited: dict[int, Product] = {
        sku.product_id: sku.product for sku in skus if sku.product.purchase_limit is not None
    }
    if not limited:
        return
    Customer.objects.select_for_update().filter(pk=customer.pk).values_list("pk").first()
    bought = dict(
        OrderLine.objects.filter(order__customer=customer, sku__product_id__in=limited)
        .exclude(order__status=Order.Status.CANCELLED)
        .values_list("sku__product_id")
        .annotate(units=Sum("quantity"))
        .values_list("sku__product_id", "units")
    )
    wanted: dict[int, int] = defaultdict(int)
    for sku in skus:
        wanted[sku.product_id] += quantities[sku.pk]
    for product_id, product in limited.items():
        already = bought.get(product_id, 0)
        if already + wanted[product_id] > product.purchase_limit:
            raise Conflict(
                "This exceeds the purchase limit for this product.",
                code="purchase_limit_exceeded",
                details={
                    "product_id": product_id,
                    "limit": product.purchase_limit,
                    "already_bought": already,
                    "requested": wanted[product_id],
                },
            )


def order_create(
    *,
    customer: Customer,
    lines: Sequence[tuple[int, int]],
    delivery_mode: str,
    community_id: int | None = None,
    pickup_point_id: int | None = None,
    address_id: int | None = None,
    coupon_code: str = "",
    note: str = "",
) -> Order:
    """Create an unpaid order for ``lines`` of ``(sku_id, quantity)`` and reserve its stock until
    ``payment_deadline`` (now + ``STOCK_RESERVATION_TTL``).

    Unknown SKU: 404 ``sku_not_found``. Inactive SKU / product not on sale / not offered in the
    community: 409 ``product_unavailable``. Sold out: 409 ``out_of_stock`` (refused by the
    short-stock memo or a plain read before any write; see shop.services.stock). Over
    ``purchase_limit``: 409 ``purchase_limit_exceeded``. Bad quantity (not 1..999), no lines,
    more than 50 lines, delivery details missing or wrong: 422.
    """
    quantities = _check_lines(lines)
    stock_refuse_known_short(quantities=quantities)
    skus = _load_skus(quantities)
    community, pickup_point, address = _resolve_delivery(
        customer=customer,
        delivery_mode=delivery_mode,
        community_id=community_id,
        pickup_point_id=pickup_point_id,
        address_id=address_id,
    )
    _check_offered_in(skus, community)
    pricing = order_price(
        context=PricingContext(
            customer=customer,
            community=community,
            coupon_code=coupon_code,
            lines=tuple(
                PricingLine(
                    sku_id=sku.pk,
                    product_id=sku.product_id,
                    unit_price=sku.price,
                    quantity=quantities[sku.pk],
                )
                for sku in skus
            ),
        )
    )
    now = timezone.now()
    deadline = now + settings.STOCK_RESERVATION_TTL
    with transaction.atomic():
        _check_purchase_limits(customer=customer, skus=skus, quantities=quantities)
        order = Order.objects.create(
            number=_new_number(now),
            customer=customer,
            community=community,
            delivery_mode=delivery_mode,
            pickup_point=pickup_point,
            shipping_address=address,
            subtotal=pricing.subtotal,
            discount=pricing.discount,
            total=pricing.total,
            coupon_code=coupon_code,
            note=note,
            payment_deadline=deadline,
        )
        OrderLine.objects.bulk_create(
            OrderLine(
                order=order,
                sku=sku,
                product_title=sku.product.title,
                sku_code=sku.code,
                sku_attributes=sku.attributes,
                unit_price=sku.price,
                quantity=quantities[sku.pk],
                line_total=line_total,
            )
            for sku, line_total in zip(skus, pricing.line_totals, strict=True)
        )
        stock_reserve(
            order=order, lines=[(sku, quantities[sku.pk]) for sku in skus], expires_at=deadline
        )
    return order


# --- payment -----------------------------------------------------------------------------------
def order_get_payable(*, order_id: int, customer: Customer) -> Order:
    """The customer's order if it can be paid now; 404 ``not_found`` / 409 ``order_not_payable``."""
    order = Order.objects.filter(pk=order_id, customer=customer).first()
    if order is None:
        raise order_not_found()
    if order.status != S.PENDING_PAYMENT or order.payment_deadline <= timezone.now():
        raise Conflict(
            "This order cannot be paid.",
            code="order_not_payable",
            details={"status": order.status, "payment_deadline": _iso(order.payment_deadline)},
        )
    return order


def order_mark_paid(*, order_id: int, payment_id: int) -> bool:
    """The payment ``payment_id`` succeeded for this order (see the payments contract).

    True if the order is now paid by this payment (also when it already was: idempotent);
    False if the order cannot take it (cancelled or expired, or paid by another payment): nothing
    changes and the caller must refund the payment. A pending order past its deadline that the
    expiry job has not cancelled yet is still accepted: its stock is still reserved.
    """
    with transaction.atomic():
        order = lock_order(order_id=order_id)
        if order.status != S.PENDING_PAYMENT:
            return order.paid_payment_id == payment_id
        now = timezone.now()
        order.status = S.PAID
        order.paid_at = now
        order.paid_payment_id = payment_id
        fields = ["status", "paid_at", "paid_payment"]
        if order.delivery_mode == Order.DeliveryMode.PICKUP:
            order.pickup_code = _new_pickup_code()
            fields.append("pickup_code")
        order.save(update_fields=fields)
        stock_commit(order=order)
        events.fire(events.ORDER_PAID, **_event_base(order), total=order.total, paid_at=_iso(now))
        notify(
            user_id=order.customer.user_id,
            kind="order_paid",
            title="Payment received",
            body=f"We received your payment for order {order.number}.",
            data={"order_id": order.pk, "pickup_code": order.pickup_code},
            dedupe_key=f"order:{order.pk}:paid",
        )
        return True


# --- cancel / expire ---------------------------------------------------------------------------
def _cancel(order: Order, *, reason: str, now: datetime) -> None:
    order.status = S.CANCELLED
    order.cancel_reason = reason
    order.cancelled_at = now
    order.save(update_fields=["status", "cancel_reason", "cancelled_at"])
    stock_release(order=order)
    events.fire(events.ORDER_CANCELLED, **_event_base(order), reason=reason, cancelled_at=_iso(now))
    if reason != "customer":
        expired = reason == "expired"
        notify(
            user_id=order.customer.user_id,
            kind="order_cancelled",
            title="Order expired" if expired else "Order cancelled",
            body=(
                f"Order {order.number} was not paid in time and has been cancelled."
                if expired
                else f"Order {order.number} has been cancelled."
            ),
            data={"order_id": order.pk, "reason": reason},
            dedupe_key=f"order:{order.pk}:cancelled",
        )


def order_cancel(
    *, order_id: int, customer: Customer | None = None, reason: str = "customer"
) -> Order:
    """Cancel an unpaid order and release its stock. With ``customer``, only their own order
    (404 otherwise). Cancelling a cancelled order returns it; a paid order: 409."""
    with transaction.atomic():
        order = lock_order(order_id=order_id, customer=customer)
        if order.status == S.CANCELLED:
            return order
        if order.status != S.PENDING_PAYMENT:
            raise illegal_transition(order, S.CANCELLED)
        _cancel(order, reason=reason, now=timezone.now())
        return order


def _sweep(base_qs, step) -> int:
    """Run ``step(order, now)`` on due orders in batches, each batch in one transaction, skipping
    rows another worker holds (they are handled by that worker or by the next sweep)."""
    done = 0
    while True:
        now = timezone.now()
        with transaction.atomic():
            batch = list(
                base_qs(now)
                .select_for_update(of=("self",), skip_locked=True)
                .select_related("customer")[:SWEEP_BATCH]
            )
            for order in batch:
                step(order, now)
        done += len(batch)
        if len(batch) < SWEEP_BATCH:
            return done


def orders_expire_due() -> int:
    """Cancel unpaid orders past their payment deadline (reason ``expired``), release their
    stock, tell their customers. Safe to run concurrently and repeatedly."""
    return _sweep(
        lambda now: Order.objects.filter(
            status=S.PENDING_PAYMENT, payment_deadline__lte=now
        ).order_by("payment_deadline", "id"),
        lambda order, now: _cancel(order, reason="expired", now=now),
    )


# --- fulfil / pickup ----------------------------------------------------------------------------
def _is_leader(user: User, community_id: int | None) -> bool:
    return (
        community_id is not None
        and Community.objects.filter(pk=community_id, leader__user_id=user.pk).exists()
    )


def _authorize_fulfilment(actor: User, order: Order, *, allowed_mode: str) -> None:
    """Staff with ``shop.change_order`` fulfil any order; the leader of the order's community
    fulfils orders of ``allowed_mode`` (leader_delivery by hand, pickup by code)."""
    if actor.has_perm("shop.change_order"):
        return
    if not _is_leader(actor, order.community_id):
        raise PermissionDenied(
            "Only the leader of this order's community or staff may do this.",
            code="not_community_leader",
        )
    if order.delivery_mode != allowed_mode:
        raise PermissionDenied(
            "Community leaders may not fulfil this kind of order.",
            code="fulfilment_not_allowed",
            details={"delivery_mode": order.delivery_mode},
        )


def _fulfil(order: Order) -> Order:
    if order.status in (S.FULFILLED, S.COMPLETED):
        return order
    if order.status not in (S.PAID, S.PARTIALLY_REFUNDED):
        raise illegal_transition(order, S.FULFILLED)
    if has_open_refund(order):
        raise Conflict("Decide the open refund of this order first.", code="refund_in_progress")
    now = timezone.now()
    order.status = S.FULFILLED
    order.fulfilled_at = now
    order.auto_complete_at = now + settings.AFTER_SALE_WINDOW
    order.save(update_fields=["status", "fulfilled_at", "auto_complete_at"])
    events.fire(
        events.ORDER_FULFILLED,
        **_event_base(order),
        delivery_mode=order.delivery_mode,
        fulfilled_at=_iso(now),
    )
    notify(
        user_id=order.customer.user_id,
        kind="order_fulfilled",
        title="Order delivered",
        body=f"Order {order.number} has been handed over.",
        data={"order_id": order.pk},
        dedupe_key=f"order:{order.pk}:fulfilled",
    )
    return order


def order_fulfil(*, order_id: int, actor: User) -> Order:
    """Mark a paid order handed over (courier shipped / leader delivered / staff override).
    Starts the after-sale window: ``auto_complete_at = fulfilled_at + AFTER_SALE_WINDOW``."""
    with transaction.atomic():
        order = lock_order(order_id=order_id)
        _authorize_fulfilment(actor, order, allowed_mode=Order.DeliveryMode.LEADER_DELIVERY)
        return _fulfil(order)


def order_verify_pickup(*, code: str, actor: User) -> Order:
    """The customer showed their pickup code at the pickup point: the order is fulfilled.
    Unknown code: 404 ``pickup_code_invalid``; another community's order: 403."""
    order_id = (
        Order.objects.filter(pickup_code=code.strip()).values_list("pk", flat=True).first()
        if code and code.strip()
        else None
    )
    if order_id is None:
        raise NotFound("No order has this pickup code.", code="pickup_code_invalid")
    with transaction.atomic():
        order = lock_order(order_id=order_id)
        _authorize_fulfilment(actor, order, allowed_mode=Order.DeliveryMode.PICKUP)
        return _fulfil(order)


# --- complete ------------------------------------------------------------------------------------
def _complete(order: Order, now: datetime) -> None:
    order.status = S.COMPLETED
    order.completed_at = now
    order.save(update_fields=["status", "completed_at"])
    events.fire(
        events.ORDER_COMPLETED,
        **_event_base(order),
        total=order.total,
        refunded_amount=order.refunded_amount,
        completed_at=_iso(now),
    )


def order_complete(*, order_id: int, customer: Customer | None = None) -> Order:
    """The customer confirms receipt (or staff completes): fulfilled → completed. Idempotent."""
    with transaction.atomic():
        order = lock_order(order_id=order_id, customer=customer)
        if order.status == S.COMPLETED:
            return order
        if order.status != S.FULFILLED:
            raise illegal_transition(order, S.COMPLETED)
        _complete(order, timezone.now())
        return order


def orders_complete_due() -> int:
    """Complete fulfilled orders whose after-sale window has passed."""
    return _sweep(
        lambda now: Order.objects.filter(status=S.FULFILLED, auto_complete_at__lte=now).order_by(
            "auto_complete_at", "id"
        ),
        _complete,
    )
