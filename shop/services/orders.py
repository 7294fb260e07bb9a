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
import uuid
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from functools import cache

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Sum
from django.utils import timezone

from core.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from core.models import User
from core.notifications import notify
from core.rows import columns, insert_rows, instance_from, width
from shop import events, locks
from shop.error_codes import OrderErrorCode, PickupErrorCode
from shop.models import (
    Address,
    Community,
    Customer,
    Order,
    OrderEvent,
    OrderLine,
    PickupPoint,
    Product,
    Refund,
    Sku,
)
from shop.services import coupons, flash_stock, pricing
from shop.services.pricing import Offer, PricingLine
from shop.services.stock import (
    out_of_stock,
    stock_commit,
    stock_refuse_known_short,
    stock_release,
    stock_remember_short,
    stock_reserve,
)
from shop.services.timeline import Kind, order_event_record

MAX_LINES = 50
MAX_QUANTITY = 999
SWEEP_BATCH = 100
OPEN_REFUND_STATUSES = (Refund.Status.REQUESTED, Refund.Status.APPROVED)
S = Order.Status


# --- helpers ---------------------------------------------------------------------------------
def illegal_transition(order: Order, to: str) -> Conflict:
    return Conflict(
        f"An order that is {order.status} cannot become {to}.",
        code=OrderErrorCode.ILLEGAL_TRANSITION,
        details={"from": order.status, "to": to},
    )


def order_not_found() -> NotFound:
    return NotFound("Order not found.")


def lock_order(*, order_id: int, customer: Customer | None = None) -> Order:
    """The order row, locked for this transaction (with its customer, unlocked); 404 if it does
    not exist or, with ``customer``, is not theirs."""
    order = locks.lock_order(order_id, customer=customer)
    if order is None:
        raise order_not_found()
    return order


def has_open_refund(order: Order) -> bool:
    return Refund.objects.filter(
        order=order, status__in=OPEN_REFUND_STATUSES, lines__isnull=False
    ).exists()


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


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
        raise InvalidInput("An order needs at least one line.", code=OrderErrorCode.NO_LINES)
    if len(lines) > MAX_LINES:
        raise InvalidInput(
            f"An order has at most {MAX_LINES} lines.",
            code=OrderErrorCode.TOO_MANY_LINES,
            details={"max": MAX_LINES},
        )
    merged: dict[int, int] = defaultdict(int)
    for sku_id, quantity in lines:
        if not 1 <= quantity <= MAX_QUANTITY:
            raise InvalidInput(
                f"Quantities are between 1 and {MAX_QUANTITY}.",
                code=OrderErrorCode.INVALID_QUANTITY,
                details={"sku_id": sku_id, "quantity": quantity},
            )
        merged[sku_id] += quantity  # the same SKU twice is one line with the summed quantity
    for sku_id, quantity in merged.items():
        if quantity > MAX_QUANTITY:
            raise InvalidInput(
                f"Quantities are between 1 and {MAX_QUANTITY}.",
                code=OrderErrorCode.INVALID_QUANTITY,
                details={"sku_id": sku_id, "quantity": quantity},
            )
    return dict(merged)


@cache
def _skus_sql() -> str:
    sku, product = Sku._meta.db_table, Product._meta.db_table
    offered_in = Product.communities.through._meta.db_table
    return (
        f"SELECT {columns(Sku, 's')}, {columns(Product, 'p')}, "  # noqa: S608 (names from models)
        f"EXISTS (SELECT 1 FROM {offered_in} r WHERE r.product_id = s.product_id) "
        f"FROM {sku} s JOIN {product} p ON p.id = s.product_id "
        "WHERE s.id = ANY(%s) ORDER BY s.id"
    )


def _load_skus(quantities: dict[int, int], *, check_stock: bool = True) -> list[Sku]:
    """One plain read (no transaction) of the SKUs with their products (hand-written: it runs in
    every checkout, see core/rows.py). It refuses unknown, off-sale and sold-out SKUs before any
    write; the conditional update stays the real guard."""
    with connection.cursor() as cursor:
        cursor.execute(_skus_sql(), [list(quantities)])
        rows = cursor.fetchall()
    skus: list[Sku] = []
    split = width(Sku)
    for row in rows:
        sku = instance_from(Sku, row[:split])
        Sku.product.field.set_cached_value(sku, instance_from(Product, row[split:-1]))
        sku.community_restricted = row[-1]  # type: ignore[attr-defined]
        skus.append(sku)
    missing = sorted(set(quantities) - {sku.pk for sku in skus})
    if missing:
        raise NotFound(
            "Some items do not exist.",
            code=OrderErrorCode.SKU_NOT_FOUND,
            details={"sku_ids": missing},
        )
    for sku in skus:
        if not sku.is_active or sku.product.status != Product.Status.ON_SALE:
            raise Conflict(
                "This item is not on sale.",
                code=OrderErrorCode.PRODUCT_UNAVAILABLE,
                details={"sku_id": sku.pk, "product_id": sku.product_id},
            )
    for sku in skus if check_stock else ():
        if sku.stock < quantities[sku.pk]:
            stock_remember_short(sku_id=sku.pk, available=sku.stock)
            raise out_of_stock(sku_id=sku.pk, available=sku.stock)
    return skus


def _active_community(community_id: int) -> Community:
    community = Community.objects.filter(pk=community_id).first()
    if community is None:
        raise NotFound("Community not found.", code=OrderErrorCode.COMMUNITY_NOT_FOUND)
    if not community.is_active:
        raise InvalidInput("This community is not active.", code=OrderErrorCode.COMMUNITY_INACTIVE)
    return community


@cache
def _address_sql() -> str:
    table = Address._meta.db_table
    return f"SELECT {columns(Address, 'a')} FROM {table} a WHERE a.id = %s AND a.customer_id = %s"  # noqa: S608


def _customer_address(*, customer_id: int, address_id: int) -> Address | None:
    with connection.cursor() as cursor:
        cursor.execute(_address_sql(), [address_id, customer_id])
        row = cursor.fetchone()
    return None if row is None else instance_from(Address, row)


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
            code=OrderErrorCode.INVALID_DELIVERY_MODE,
            details={"allowed": list(Order.DeliveryMode.values)},
        )
    community = pickup_point = address = None
    if delivery_mode == Order.DeliveryMode.PICKUP:
        if pickup_point_id is None:
            raise InvalidInput("Choose a pickup point.", code=OrderErrorCode.PICKUP_POINT_REQUIRED)
        pickup_point = (
            PickupPoint.objects.select_related("community").filter(pk=pickup_point_id).first()
        )
        if pickup_point is None or not pickup_point.is_active:
            raise InvalidInput(
                "This pickup point is not available.",
                code=OrderErrorCode.PICKUP_POINT_UNAVAILABLE,
                details={"pickup_point_id": pickup_point_id},
            )
        if community_id is not None and pickup_point.community_id != community_id:
            raise InvalidInput(
                "This pickup point does not belong to that community.",
                code=OrderErrorCode.PICKUP_POINT_NOT_IN_COMMUNITY,
                details={"pickup_point_id": pickup_point_id, "community_id": community_id},
            )
        community = pickup_point.community
        if not community.is_active:
            raise InvalidInput(
                "This community is not active.", code=OrderErrorCode.COMMUNITY_INACTIVE
            )
    else:
        if community_id is not None:
            community = _active_community(community_id)
        if delivery_mode == Order.DeliveryMode.COURIER and address_id is None:
            raise InvalidInput("Choose a delivery address.", code=OrderErrorCode.ADDRESS_REQUIRED)
        if delivery_mode == Order.DeliveryMode.LEADER_DELIVERY:
            if community is None:
                raise InvalidInput(
                    "Leader delivery needs a community.", code=OrderErrorCode.COMMUNITY_REQUIRED
                )
            if community.leader_id is None:
                raise InvalidInput(
                    "This community has no leader to deliver.",
                    code=OrderErrorCode.COMMUNITY_HAS_NO_LEADER,
                )
        if address_id is not None:
            found = _customer_address(customer_id=customer.pk, address_id=address_id)
            if found is None:
                raise NotFound("Address not found.", code=OrderErrorCode.ADDRESS_NOT_FOUND)
            address = found.snapshot()
    return community, pickup_point, address


def _check_offered_in(skus: list[Sku], community: Community | None) -> None:
    """Products tied to communities are sold only in those communities."""
    # community_restricted: annotated by _load_skus
    restricted = [sku for sku in skus if sku.community_restricted]  # type: ignore[attr-defined]
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
                code=OrderErrorCode.PRODUCT_UNAVAILABLE,
                details={"sku_id": sku.pk, "product_id": sku.product_id},
            )


def _check_purchase_limits(
    *, customer: Customer, skus: list[Sku], quantities: dict[int, int]
) -> None:
    """Units of a limited product in the customer's non-cancelled orders (less the units
    refunded) plus this order must stay within ``purchase_limit``. Call inside the transaction:
    the customer row is locked so two concurrent orders of one customer are counted one after
    the other."""
    limited: dict[int, Product] = {
        sku.product_id: sku.product for sku in skus if sku.product.purchase_limit is not None
    }
    if not limited:
        return
    locks.lock_customer(customer.pk)
    bought = dict(
        OrderLine.objects.filter(order__customer=customer, sku__product_id__in=limited)
        .exclude(order__status=Order.Status.CANCELLED)
        .values_list("sku__product_id")
        .annotate(units=Sum(F("quantity") - F("refunded_quantity")))
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
                code=OrderErrorCode.PURCHASE_LIMIT_EXCEEDED,
                details={
                    "product_id": product_id,
                    "limit": product.purchase_limit,
                    "already_bought": already,
                    "requested": wanted[product_id],
                },
            )


def _pricing_lines(
    skus: list[Sku], quantities: dict[int, int], unit_prices: Mapping[int, int]
) -> tuple[PricingLine, ...]:
    unknown = sorted(set(unit_prices) - set(quantities))
    if unknown:
        raise ValueError(f"campaign prices for SKUs not in the order: {unknown}")
    lines = []
    for sku in skus:
        price = unit_prices.get(sku.pk, sku.price)
        if not isinstance(price, int) or isinstance(price, bool) or not 0 < price <= sku.price:
            raise ValueError(f"campaign price {price!r} of SKU {sku.pk}: 1 fen .. list price")
        lines.append(
            PricingLine(
                sku_id=sku.pk,
                product_id=sku.product_id,
                category_id=sku.product.category_id,
                list_unit_price=sku.price,
                unit_price=price,
                quantity=quantities[sku.pk],
            )
        )
    return tuple(lines)


def _price(
    *, lines: tuple[PricingLine, ...], offers: list[Offer], delivery_mode: str
) -> pricing.Pricing:
    """Price with exactly the chosen coupons; each must take something off (422 otherwise)."""
    try:
        priced = pricing.order_price(
            lines=lines,
            offers=offers,
            shipping_fee=shipping_fee(delivery_mode),
            min_payable=settings.MIN_PAYABLE,
        )
    except pricing.StackingError as exc:
        raise InvalidInput(str(exc), code=OrderErrorCode.COUPON_NOT_STACKABLE) from exc
    for applied in priced.applied:
        if not (applied.discount or applied.shipping_waived):
            raise InvalidInput(
                "This coupon does not apply to this order.",
                code=OrderErrorCode.COUPON_NOT_APPLICABLE,
                details={"coupon": str(applied.key)},
            )
    return priced


def shipping_fee(delivery_mode: str) -> int:
    return settings.COURIER_SHIPPING_FEE if delivery_mode == Order.DeliveryMode.COURIER else 0


Reserve = Callable[[Order, list[tuple[Sku, int]], datetime], None]


def _reserve_sku_stock(order: Order, lines: list[tuple[Sku, int]], expires_at: datetime) -> None:
    stock_reserve(order=order, lines=lines, expires_at=expires_at)


def order_create(
    *,
    customer: Customer,
    lines: Sequence[tuple[int, int]],
    delivery_mode: str,
    community_id: int | None = None,
    pickup_point_id: int | None = None,
    address_id: int | None = None,
    coupon_ids: Sequence[int] = (),
    coupon_code: str = "",
    note: str = "",
    device_id: uuid.UUID | None = None,
    ip_hash: str = "",
    source: str = Order.Source.NORMAL,
    source_ref: int | None = None,
    unit_prices: Mapping[int, int] | None = None,
    payment_ttl: int | None = None,
    hold_fulfilment: bool = False,
    reserve: Reserve | None = None,
) -> Order:
    """Create an unpaid order for ``lines`` of ``(sku_id, quantity)`` and reserve its stock until
    ``payment_deadline`` (now + ``STOCK_RESERVATION_TTL``).

    Unknown SKU: 404 ``sku_not_found``. Inactive SKU / product not on sale / not offered in the
    community: 409 ``product_unavailable``. Sold out: 409 ``out_of_stock`` (refused by the
    short-stock memo or a plain read before any write; see shop.services.stock). Over
    ``purchase_limit``: 409 ``purchase_limit_exceeded``. Bad quantity (not 1..999), no lines,
    more than 50 lines, delivery details missing or wrong: 422. Coupons (``coupon_ids`` of the
    customer's coupons, a ``coupon_code``): see shop.services.coupons; each chosen coupon must
    take something off (422 ``coupon_not_applicable``). ``device_id`` (the client's
    ``X-Device-Id``) and ``ip_hash`` are stored as signals for referral's fraud checks.

    Flows (flash sale, group-buy, ...) also pass what no API schema exposes (INTERFACES.md,
    "Checkout for flows"): ``source`` and ``source_ref`` (the campaign object), ``unit_prices``
    (``{sku_id: fen}``, the campaign price, at most the list price), ``payment_ttl`` (seconds),
    ``hold_fulfilment`` (paid orders wait for ``order_release_hold``), and ``reserve``, which
    replaces the SKU stock reservation (a flash sale reserves its own stock); it runs last in the
    transaction, so the hot stock row is locked last.
    """
    if source not in Order.Source.values:
        raise ValueError(f"unknown order source {source!r}")
    quantities = _check_lines(lines)
    coupon_code = coupon_code.strip()
    if reserve is None:
        stock_refuse_known_short(quantities=quantities)
    skus = _load_skus(quantities, check_stock=reserve is None)
    community, pickup_point, address = _resolve_delivery(
        customer=customer,
        delivery_mode=delivery_mode,
        community_id=community_id,
        pickup_point_id=pickup_point_id,
        address_id=address_id,
    )
    _check_offered_in(skus, community)
    now = timezone.now()
    pricing_lines = _pricing_lines(skus, quantities, unit_prices or {})
    offers = coupons.checkout_offers(
        customer=customer,
        community=community,
        lines=pricing_lines,
        coupon_ids=coupon_ids,
        coupon_code=coupon_code,
        now=now,
    )
    priced = _price(lines=pricing_lines, offers=offers, delivery_mode=delivery_mode)
    ttl = settings.STOCK_RESERVATION_TTL if payment_ttl is None else timedelta(seconds=payment_ttl)
    deadline = now + ttl
    with transaction.atomic():
        _check_purchase_limits(customer=customer, skus=skus, quantities=quantities)
        order = Order(
            number=_new_number(now),
            customer=customer,
            community=community,
            source=source,
            source_ref=source_ref,
            fulfilment_held=hold_fulfilment,
            delivery_mode=delivery_mode,
            pickup_point=pickup_point,
            shipping_address=address,
            subtotal=priced.subtotal,
            discount=priced.discount,
            shipping_fee=priced.shipping_fee,
            total=priced.total,
            coupon_code=coupon_code,
            device_id=device_id,
            ip_hash=ip_hash,
            note=note,
            payment_deadline=deadline,
        )
        insert_rows([order])
        order_event_record(order=order, kind=Kind.PLACED, from_status="", actor=customer.user)
        insert_rows(
            [
                OrderLine(
                    order=order,
                    sku=sku,
                    product_title=sku.product.title,
                    sku_code=sku.code,
                    sku_attributes=sku.attributes,
                    list_unit_price=line.list_unit_price,
                    unit_price=line.unit_price,
                    quantity=line.quantity,
                    discount=discount,
                    line_total=line_total,
                )
                for sku, line, discount, line_total in zip(
                    skus, pricing_lines, priced.line_discounts, priced.line_totals, strict=True
                )
            ]
        )
        if priced.applied:
            coupons.coupons_lock(order=order, pricing=priced, offers=offers)
        (reserve or _reserve_sku_stock)(
            order, [(sku, quantities[sku.pk]) for sku in skus], deadline
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
            code=OrderErrorCode.ORDER_NOT_PAYABLE,
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
        if order.delivery_mode == Order.DeliveryMode.PICKUP and not order.fulfilment_held:
            order.pickup_code = _new_pickup_code()
            fields.append("pickup_code")
        order.save(update_fields=fields)
        stock_commit(order=order)
        coupons.coupons_use(order=order)  # also a free-shipping coupon, which has no discount
        order_event_record(
            order=order,
            kind=Kind.PAID,
            from_status=S.PENDING_PAYMENT,
            payment=payment_id,
            amount=order.total,
        )
        events.order_paid(order)
        notify(
            user_id=order.customer.user_id,
            kind="order_paid",
            title="Payment received",
            body=f"We received your payment for order {order.number}.",
            data={"order_id": order.pk, "pickup_code": order.pickup_code},
            dedupe_key=f"order:{order.pk}:paid",
        )
        return True


def order_release_hold(*, order_id: int) -> Order:
    """A flow releases an order it placed with ``hold_fulfilment`` (its group succeeded): from
    now it is fulfilled like any other, and a paid pickup order gets its pickup code. Idempotent:
    releasing a released order returns it."""
    with transaction.atomic():
        order = lock_order(order_id=order_id)
        if not order.fulfilment_held:
            return order
        order.fulfilment_held = False
        fields = ["fulfilment_held"]
        paid = order.status in (S.PAID, S.PARTIALLY_REFUNDED)
        if paid and order.delivery_mode == Order.DeliveryMode.PICKUP and not order.pickup_code:
            order.pickup_code = _new_pickup_code()
            fields.append("pickup_code")
        order.save(update_fields=fields)
        order_event_record(
            order=order, kind=Kind.RELEASED, from_status=order.status, to_status=order.status
        )
        if paid:
            notify(
                user_id=order.customer.user_id,
                kind="order_released",
                title="Your order is confirmed",
                body=f"Order {order.number} will now be prepared for you.",
                data={"order_id": order.pk, "pickup_code": order.pickup_code},
                dedupe_key=f"order:{order.pk}:released",
            )
        return order


# --- cancel / expire ---------------------------------------------------------------------------
def _cancel(order: Order, *, reason: str, now: datetime, actor: User | None = None) -> None:
    order.status = S.CANCELLED
    order.cancel_reason = reason
    order.cancelled_at = now
    order.save(update_fields=["status", "cancel_reason", "cancelled_at"])
    order_event_record(
        order=order,
        kind=Kind.CANCELLED,
        from_status=S.PENDING_PAYMENT,
        actor=actor,
        reason=reason,
    )
    stock_release(order=order)
    coupons.coupons_release(order=order)
    if order.source == Order.Source.FLASH_SALE:
        flash_stock.flash_release(order=order)
    events.order_cancelled(order)
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
    *,
    order_id: int,
    customer: Customer | None = None,
    reason: str = "customer",
    actor: User | None = None,
) -> Order:
    """Cancel an unpaid order and release its stock. With ``customer``, only their own order
    (404 otherwise). Cancelling a cancelled order returns it; a paid order: 409. ``actor`` (for
    the timeline) defaults to the customer."""
    with transaction.atomic():
        order = lock_order(order_id=order_id, customer=customer)
        if order.status == S.CANCELLED:
            return order
        if order.status != S.PENDING_PAYMENT:
            raise illegal_transition(order, S.CANCELLED)
        if actor is None and customer is not None:
            actor = customer.user
        _cancel(order, reason=reason, now=timezone.now(), actor=actor)
        return order


def _sweep(base_qs, step) -> int:
    """Run ``step(order, now)`` on due orders in batches, each batch in one transaction, skipping
    rows another worker holds (they are handled by that worker or by the next sweep)."""
    done = 0
    while True:
        now = timezone.now()
        with transaction.atomic():
            batch = list(
                locks.lock_orders_skip_locked(base_qs(now)).select_related("customer")[:SWEEP_BATCH]
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
            code=OrderErrorCode.NOT_COMMUNITY_LEADER,
        )
    if order.delivery_mode != allowed_mode:
        raise PermissionDenied(
            "Community leaders may not fulfil this kind of order.",
            code=OrderErrorCode.FULFILMENT_NOT_ALLOWED,
            details={"delivery_mode": order.delivery_mode},
        )


def _fulfil(
    order: Order, *, actor: User, kind: str = Kind.FULFILLED, actor_kind: str | None = None
) -> Order:
    if order.status in (S.FULFILLED, S.COMPLETED):
        return order
    if order.status not in (S.PAID, S.PARTIALLY_REFUNDED):
        raise illegal_transition(order, S.FULFILLED)
    if order.fulfilment_held:
        raise Conflict(
            "This order waits for its campaign (e.g. its group to fill) before it can be handed "
            "over.",
            code=OrderErrorCode.FULFILMENT_HELD,
        )
    if has_open_refund(order):
        raise Conflict(
            "Decide the open refund of this order first.", code=OrderErrorCode.REFUND_IN_PROGRESS
        )
    from_status = order.status
    now = timezone.now()
    order.status = S.FULFILLED
    order.fulfilled_at = now
    order.auto_complete_at = now + settings.AFTER_SALE_WINDOW
    order.save(update_fields=["status", "fulfilled_at", "auto_complete_at"])
    order_event_record(
        order=order, kind=kind, from_status=from_status, actor=actor, actor_kind=actor_kind
    )
    events.order_fulfilled(order)
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
        return _fulfil(order, actor=actor)


def order_verify_pickup(*, code: str, actor: User) -> Order:
    """The customer showed their pickup code at the pickup point: the order is fulfilled.

    Staff (``shop.change_order``) redeem any code; a community leader only codes of orders of a
    community they lead. Any other code, unknown or another community's, is the same 404
    ``pickup_code_invalid``, so answers never tell which codes exist. A user who leads no
    community is 403 ``not_community_leader`` whatever the code. A code already redeemed is 409
    ``already_redeemed`` with ``redeemed_at``."""
    as_staff = actor.has_perm("shop.change_order")
    if not as_staff and not Community.objects.filter(leader__user_id=actor.pk).exists():
        raise PermissionDenied(
            "Only community leaders and staff redeem pickup codes.",
            code=PickupErrorCode.NOT_COMMUNITY_LEADER,
        )
    code = code.strip() if code else ""
    candidates = Order.objects.filter(pickup_code=code, delivery_mode=Order.DeliveryMode.PICKUP)
    if not as_staff:
        candidates = candidates.filter(community__leader__user_id=actor.pk)
    order_id = candidates.values_list("pk", flat=True).first() if code else None
    if order_id is None:
        raise NotFound("No order has this pickup code.", code=PickupErrorCode.PICKUP_CODE_INVALID)
    with transaction.atomic():
        order = lock_order(order_id=order_id)
        _authorize_fulfilment(actor, order, allowed_mode=Order.DeliveryMode.PICKUP)
        if order.status in (S.FULFILLED, S.COMPLETED):
            raise Conflict(
                "This pickup code was already redeemed.",
                code=PickupErrorCode.ALREADY_REDEEMED,
                details={"redeemed_at": _iso(order.fulfilled_at)},
            )
        return _fulfil(
            order,
            actor=actor,
            kind=Kind.PICKUP_VERIFIED,
            actor_kind=OrderEvent.ActorKind.STAFF if as_staff else OrderEvent.ActorKind.LEADER,
        )


# --- complete ------------------------------------------------------------------------------------
def _complete(
    order: Order, now: datetime, actor: User | None = None, reason: str = "after_sale_window"
) -> None:
    order.status = S.COMPLETED
    order.completed_at = now
    order.save(update_fields=["status", "completed_at"])
    order_event_record(
        order=order, kind=Kind.COMPLETED, from_status=S.FULFILLED, actor=actor, reason=reason
    )
    events.order_completed(order)


def order_complete(*, order_id: int, customer: Customer | None = None) -> Order:
    """The customer confirms receipt (or staff completes): fulfilled → completed. Idempotent."""
    with transaction.atomic():
        order = lock_order(order_id=order_id, customer=customer)
        if order.status == S.COMPLETED:
            return order
        if order.status != S.FULFILLED:
            raise illegal_transition(order, S.COMPLETED)
        _complete(
            order,
            timezone.now(),
            actor=customer.user if customer is not None else None,
            reason="receipt_confirmed" if customer is not None else "completed",
        )
        return order


def orders_complete_due() -> int:
    """Complete fulfilled orders whose after-sale window has passed."""
    return _sweep(
        lambda now: Order.objects.filter(status=S.FULFILLED, auto_complete_at__lte=now).order_by(
            "auto_complete_at", "id"
        ),
        _complete,
    )
