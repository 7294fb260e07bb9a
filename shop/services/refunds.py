"""Refunds of paid orders: requested by the customer and decided by staff, or issued by staff.

Lifecycle: ``requested --approve--> approved --provider--> succeeded | failed``, or
``requested --reject--> rejected``; staff-issued refunds start ``approved``. Approval enqueues
``shop.tasks.refund_send`` after commit; the payments area moves the money and reports back
through ``refund_mark_succeeded`` / ``refund_mark_failed``. Only a succeeded refund changes the
order (its lines' refunded quantities and amounts, ``order.refunded_amount``, status, stock).

Amounts are exact: a refund by amount is allocated over the lines' remaining refundable amounts
with ``core.money.allocate``; a refund by line and quantity takes the unit share
``line_total // quantity`` per unit and the last unit of the line takes the remainder, so
refunding a whole line returns exactly its ``line_total``. Nothing can exceed what was paid
(409 ``refund_exceeds_paid``). One order refund may be open (requested or approved) at a time
(409 ``refund_in_progress``).

Where the goods were not delivered (order not fulfilled yet) refunded units go back on sale by
default (``restock``); after fulfilment staff decide. Customers may ask for a refund while the
order is paid, partially refunded or fulfilled (the after-sale window); staff may also refund a
completed order.

A group-buy order whose group did not succeed is refunded in full by the system
(``refund_for_group``: approved at once, reason ``group_failed``, one per order).

A refund "for an unapplied payment" (a payment that arrived for a cancelled order, or a second
payment) has no lines: it returns that payment and leaves the order alone.
"""

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from core.errors import Conflict, InvalidInput, NotFound
from core.models import User
from core.money import allocate, format_minor
from core.notifications import notify
from core.side_effects import enqueue_on_commit
from shop import events, locks, tasks
from shop.error_codes import RefundErrorCode
from shop.models import (
    Customer,
    Order,
    OrderEvent,
    OrderLine,
    Payment,
    ReconciliationDiscrepancy,
    Refund,
    RefundLine,
)
from shop.services import coupons
from shop.services.orders import has_open_refund, lock_order
from shop.services.reconciliation import discrepancy_record
from shop.services.stock import stock_restore
from shop.services.timeline import order_event_record

S = Order.Status
R = Refund.Status
Kind = OrderEvent.Kind
CUSTOMER_REFUNDABLE = (S.PAID, S.PARTIALLY_REFUNDED, S.FULFILLED)
STAFF_REFUNDABLE = (*CUSTOMER_REFUNDABLE, S.COMPLETED)


@dataclass(frozen=True)
class _Part:
    line: OrderLine
    quantity: int
    amount: int


def _unit_amount(line: OrderLine, quantity: int) -> int:
    """What ``quantity`` more units of ``line`` are worth: the unit share each, the line's last
    unit taking the remainder; never more than the line has left."""
    unit = line.line_total // line.quantity
    amount = unit * quantity
    if line.refunded_quantity + quantity == line.quantity:
        amount += line.line_total - unit * line.quantity
    return min(amount, line.line_total - line.refunded_amount)


def _exceeds(details: dict[str, Any]) -> Conflict:
    return Conflict(
        "This is more than what was paid and not yet refunded.",
        code=RefundErrorCode.REFUND_EXCEEDS_PAID,
        details=details,
    )


def _plan(order: Order, *, lines: list[dict[str, int]] | None, amount: int | None) -> list[_Part]:
    """How the refund falls on the order's lines (read under the order lock)."""
    if lines is not None and amount is not None:
        raise InvalidInput(
            "Refund either lines or an amount, not both.", code=RefundErrorCode.REFUND_SPEC_INVALID
        )
    order_lines = {line.pk: line for line in OrderLine.objects.filter(order=order).order_by("pk")}
    parts: list[_Part] = []
    if lines is not None:
        if not lines:
            raise InvalidInput(
                "Name at least one line to refund.", code=RefundErrorCode.REFUND_SPEC_INVALID
            )
        wanted: dict[int, int] = defaultdict(int)
        for item in lines:
            line_id, quantity = int(item["order_line_id"]), int(item["quantity"])
            if quantity < 1:
                raise InvalidInput(
                    "Refunded quantities are positive.",
                    code=RefundErrorCode.INVALID_QUANTITY,
                    details={"order_line_id": line_id, "quantity": quantity},
                )
            if line_id not in order_lines:
                raise NotFound(
                    "This order has no such line.",
                    code=RefundErrorCode.ORDER_LINE_NOT_FOUND,
                    details={"order_line_id": line_id},
                )
            wanted[line_id] += quantity
        for line_id, quantity in sorted(wanted.items()):
            line = order_lines[line_id]
            refundable = line.quantity - line.refunded_quantity
            if quantity > refundable:
                raise _exceeds({"order_line_id": line_id, "refundable_quantity": refundable})
            parts.append(_Part(line, quantity, _unit_amount(line, quantity)))
    elif amount is not None:
        if amount < 1:
            raise InvalidInput(
                "Refund a positive amount (fen).", code=RefundErrorCode.INVALID_AMOUNT
            )
        remaining = [line.line_total - line.refunded_amount for line in order_lines.values()]
        if amount > sum(remaining):
            raise _exceeds({"refundable": sum(remaining), "requested": amount})
        shares = allocate(amount, remaining)
        parts = [
            _Part(line, 0, share)
            for line, share in zip(order_lines.values(), shares, strict=True)
            if share
        ]
    else:
        parts = [
            _Part(
                line,
                line.quantity - line.refunded_quantity,
                line.line_total - line.refunded_amount,
            )
            for line in order_lines.values()
            if line.quantity > line.refunded_quantity or line.line_total > line.refunded_amount
        ]
    total = sum(part.amount for part in parts)
    if total < 1:
        raise _exceeds({"refundable": order.total - order.refunded_amount, "requested": total})
    if total > order.total - order.refunded_amount:  # the line bounds imply it; belt and braces
        raise _exceeds({"refundable": order.total - order.refunded_amount, "requested": total})
    return parts


def _create(
    order: Order,
    parts: list[_Part],
    *,
    status: str,
    reason: str,
    restock: bool,
    note: str,
    requested_by: User | None,
    decided_by: User | None = None,
) -> Refund:
    refund = Refund.objects.create(
        order=order,
        payment_id=order.paid_payment_id,
        amount=sum(part.amount for part in parts),
        status=status,
        reason=reason,
        note=note,
        restock=restock,
        requested_by=requested_by,
        decided_by=decided_by,
        decided_at=timezone.now() if decided_by else None,
    )
    RefundLine.objects.bulk_create(
        RefundLine(refund=refund, order_line=part.line, quantity=part.quantity, amount=part.amount)
        for part in parts
    )
    order_event_record(
        order=order,
        kind=Kind.REFUND_REQUESTED if status == R.REQUESTED else Kind.REFUND_APPROVED,
        from_status=order.status,
        actor=requested_by,
        reason=reason,
        refund=refund,
        amount=refund.amount,
    )
    return refund


def _restock(parts: list[_Part], requested: bool | None, *, fulfilled: bool) -> bool:
    """Whether the refunded units go back on sale. Only units can: a refund by amount returns
    money only, so asking it to restock is refused rather than reported and not done."""
    has_units = any(part.quantity for part in parts)
    if requested and not has_units:
        raise InvalidInput(
            "A refund by amount returns no units to put back on sale; refund lines to restock.",
            code=RefundErrorCode.RESTOCK_NEEDS_UNITS,
        )
    wanted = not fulfilled if requested is None else requested
    return has_units and wanted


def _check_refundable(order: Order, allowed: tuple[str, ...]) -> None:
    if order.status not in allowed:
        raise Conflict(
            f"An order that is {order.status} cannot be refunded.",
            code=RefundErrorCode.ORDER_NOT_REFUNDABLE,
            details={"status": order.status},
        )
    if has_open_refund(order):
        raise Conflict(
            "A refund of this order is already open.", code=RefundErrorCode.REFUND_IN_PROGRESS
        )


def refund_request(
    *,
    order_id: int,
    customer: Customer,
    lines: list[dict[str, int]] | None = None,
    amount: int | None = None,
    note: str = "",
) -> Refund:
    """The customer asks for a refund (everything left when neither ``lines`` nor ``amount``);
    staff approve or reject it. 404 if the order is not theirs."""
    with transaction.atomic():
        order = lock_order(order_id=order_id, customer=customer)
        _check_refundable(order, CUSTOMER_REFUNDABLE)
        parts = _plan(order, lines=lines, amount=amount)
        return _create(
            order,
            parts,
            status=R.REQUESTED,
            reason=Refund.Reason.CUSTOMER_REQUEST,
            restock=_restock(parts, None, fulfilled=order.fulfilled_at is not None),
            note=note,
            requested_by=customer.user,
        )


def refund_issue(
    *,
    order_id: int,
    staff: User,
    lines: list[dict[str, int]] | None = None,
    amount: int | None = None,
    restock: bool | None = None,
    note: str = "",
    reason: str = Refund.Reason.STAFF,
) -> Refund:
    """Staff refund an order at once (approved; sent to the provider after commit). ``restock``
    defaults to "the order was not fulfilled yet"; a refund by amount never restocks (422
    ``restock_needs_units`` if asked to)."""
    with transaction.atomic():
        order = lock_order(order_id=order_id)
        _check_refundable(order, STAFF_REFUNDABLE)
        parts = _plan(order, lines=lines, amount=amount)
        refund = _create(
            order,
            parts,
            status=R.APPROVED,
            reason=reason,
            restock=_restock(parts, restock, fulfilled=order.fulfilled_at is not None),
            note=note,
            requested_by=staff,
            decided_by=staff,
        )
        enqueue_on_commit(tasks.refund_send, refund.pk)
        return refund


FLOW_REFUND_REASONS = (Refund.Reason.GROUP_FAILED, Refund.Reason.ENTRY_CANCELLED)


def refund_for_group(*, order_id: int) -> Refund | None:
    """A group-buy order refunded in full because its group did not succeed (or the payment
    landed on a seat that no longer counts): ``refund_for_flow`` with reason ``group_failed``."""
    return refund_for_flow(order_id=order_id, reason=Refund.Reason.GROUP_FAILED)


def refund_for_flow(*, order_id: int, reason: str) -> Refund | None:
    """The system refunds a flow's order in full (a group that did not succeed: ``group_failed``;
    a chain sign-up entry its member withdrew: ``entry_cancelled``): approved at once, no staff
    involved, sent to the provider after commit (``shop.tasks.refund_send``; the stuck-refund
    sweep resends it until the provider answers).

    Exactly one flow refund per order (of any of ``FLOW_REFUND_REASONS``), checked under the
    order's lock: if one exists (in any state) it is returned and nothing is created. An order
    that is not refundable (unpaid, cancelled: a late payment is returned by
    ``refund_for_unapplied_payment``; already fully refunded) gets none and None is returned. A
    customer's refund request still open is rejected as superseded; if an approved refund is
    already on its way, the flow's refund is for what is left beyond it (by amount), and None
    when nothing is left. Call inside or outside a transaction (the caller's, e.g. the group's
    failure, so both commit together)."""
    with transaction.atomic():
        order = lock_order(order_id=order_id)
        if reason not in FLOW_REFUND_REASONS:
            raise ValueError(f"not a flow refund reason: {reason!r}")
        existing = Refund.objects.filter(
            order=order, reason__in=FLOW_REFUND_REASONS, lines__isnull=False
        ).first()
        if existing is not None:
            return existing
        if order.status not in STAFF_REFUNDABLE:
            return None
        open_refunds = Refund.objects.filter(
            order=order, status__in=(R.REQUESTED, R.APPROVED), lines__isnull=False
        ).distinct()
        in_flight = 0
        for other in open_refunds.order_by("pk"):
            if other.status == R.REQUESTED:
                other.status = R.REJECTED
                other.decided_at = timezone.now()
                other.failure_message = "Superseded by the system's full refund."
                other.save(update_fields=["status", "decided_at", "failure_message"])
                _timeline(other, Kind.REFUND_REJECTED, reason=f"superseded by {reason}")
            else:
                in_flight += other.amount
        amount = None
        if in_flight:
            left = sum(
                line.line_total - line.refunded_amount
                for line in OrderLine.objects.filter(order=order)
            )
            amount = left - in_flight
            if amount < 1:
                return None
        parts = _plan(order, lines=None, amount=amount)
        refund = _create(
            order,
            parts,
            status=R.APPROVED,
            reason=reason,
            restock=_restock(parts, None, fulfilled=order.fulfilled_at is not None),
            note="",
            requested_by=None,
        )
        refund.decided_at = timezone.now()
        refund.save(update_fields=["decided_at"])
        enqueue_on_commit(tasks.refund_send, refund.pk)
        return refund


def _lock_refund(refund_id: int) -> Refund:
    refund = locks.lock_refund(refund_id)
    if refund is None:
        raise NotFound("Refund not found.", code=RefundErrorCode.REFUND_NOT_FOUND)
    return refund


def _illegal(refund: Refund, to: str) -> Conflict:
    return Conflict(
        f"A refund that is {refund.status} cannot become {to}.",
        code=RefundErrorCode.ILLEGAL_TRANSITION,
        details={"from": refund.status, "to": to},
    )


def refund_approve(*, refund_id: int, staff: User) -> Refund:
    """requested → approved, and send it. Approving an approved (or succeeded) refund returns it
    without sending again, so concurrent approvals send once."""
    with transaction.atomic():
        refund = _lock_refund(refund_id)
        if refund.status in (R.APPROVED, R.SUCCEEDED):
            return refund
        if refund.status != R.REQUESTED:
            raise _illegal(refund, R.APPROVED)
        refund.status = R.APPROVED
        refund.decided_by = staff
        refund.decided_at = timezone.now()
        refund.save(update_fields=["status", "decided_by", "decided_at"])
        _timeline(refund, Kind.REFUND_APPROVED, actor=staff)
        enqueue_on_commit(tasks.refund_send, refund.pk)
        return refund


def refund_reject(*, refund_id: int, staff: User, note: str = "") -> Refund:
    """requested → rejected (``note`` is kept as ``failure_message``). Idempotent."""
    with transaction.atomic():
        refund = _lock_refund(refund_id)
        if refund.status == R.REJECTED:
            return refund
        if refund.status != R.REQUESTED:
            raise _illegal(refund, R.REJECTED)
        refund.status = R.REJECTED
        refund.decided_by = staff
        refund.decided_at = timezone.now()
        refund.failure_message = note[:500]
        refund.save(update_fields=["status", "decided_by", "decided_at", "failure_message"])
        _timeline(refund, Kind.REFUND_REJECTED, actor=staff, reason=note)
        return refund


def refund_for_unapplied_payment(*, payment_id: int, reason: str) -> Refund:
    """An approved refund of the whole payment that ``order_mark_paid`` refused (late or second
    payment); the order is left alone. Idempotent per (payment, reason). The caller enqueues
    ``refund_send``."""
    with transaction.atomic():
        payment = locks.lock_payment(payment_id)
        existing = Refund.objects.filter(payment=payment, reason=reason, lines__isnull=True).first()
        if existing is not None:
            return existing
        refund = Refund.objects.create(
            order_id=payment.order_id,
            payment=payment,
            amount=payment.amount,
            status=R.APPROVED,
            reason=reason,
            restock=False,
            decided_at=timezone.now(),
        )
        _timeline(refund, Kind.REFUND_APPROVED, reason=reason)
        return refund


def _apply_to_order(refund: Refund, parts: list[RefundLine]) -> Order:
    order = lock_order(order_id=refund.order_id)
    for part in parts:
        OrderLine.objects.filter(pk=part.order_line_id).update(
            refunded_quantity=F("refunded_quantity") + part.quantity,
            refunded_amount=F("refunded_amount") + part.amount,
        )
    order.refunded_amount += refund.amount
    if order.refunded_amount >= order.total - order.shipping_fee:  # shipping is not refunded
        order.status = S.REFUNDED
        coupons.coupons_return(order=order)
    elif order.status == S.PAID:
        order.status = S.PARTIALLY_REFUNDED
    order.save(update_fields=["refunded_amount", "status"])
    if refund.restock:
        restock: dict[int, int] = defaultdict(int)
        for part in parts:
            if part.quantity:
                restock[part.order_line.sku_id] += part.quantity
        for sku_id, quantity in sorted(restock.items()):
            stock_restore(sku_id=sku_id, quantity=quantity)
        refund.restocked_quantity = sum(restock.values())
        refund.save(update_fields=["restocked_quantity"])
    events.order_refunded(refund=refund, order=order, parts=parts)
    return order


def _timeline(refund: Refund, kind: str, *, actor: User | None = None, reason: str = "") -> None:
    order = Order.objects.only("status").get(pk=refund.order_id)
    order_event_record(
        order=order,
        kind=kind,
        from_status=order.status,
        actor=actor,
        reason=reason or refund.reason,
        payment=refund.payment_id,
        refund=refund,
        amount=refund.amount,
    )


def _unapplicable(refund: Refund, order: Order) -> tuple[str, dict[str, Any]] | None:
    """Why this refund's success cannot be applied to the books as they are now (locked), or
    None. A failed refund is replaced once another refund of the order's lines is open or done."""
    lines = list(RefundLine.objects.filter(refund=refund).select_related("order_line"))
    if lines and refund.status == R.FAILED:
        replacement = (
            Refund.objects.filter(
                order_id=refund.order_id,
                pk__gt=refund.pk,
                lines__isnull=False,
                status__in=(R.REQUESTED, R.APPROVED, R.SUCCEEDED),
            )
            .values_list("pk", flat=True)
            .first()
        )
        if replacement is not None:
            return (
                ReconciliationDiscrepancy.Kind.REFUND_SUCCEEDED_AFTER_REPLACEMENT,
                {"replaced_by_refund_id": replacement},
            )
    exceeded = [
        part.order_line_id
        for part in lines
        if part.order_line.refunded_quantity + part.quantity > part.order_line.quantity
        or part.order_line.refunded_amount + part.amount > part.order_line.line_total
    ]
    over_order = bool(lines) and order.refunded_amount + refund.amount > order.total
    # Every refund of a payment belongs to its order, whose lock we hold: a plain read is exact.
    payment = Payment.objects.get(pk=refund.payment_id) if refund.payment_id else None
    over_payment = payment is not None and payment.refunded_amount + refund.amount > payment.amount
    if exceeded or over_order or over_payment:
        return (
            ReconciliationDiscrepancy.Kind.REFUND_EXCEEDS_PAID,
            {
                "order_line_ids": exceeded,
                "order_refundable": order.total - order.refunded_amount,
                "payment_refundable": payment.amount - payment.refunded_amount if payment else None,
            },
        )
    return None


def refund_mark_succeeded(*, refund_id: int, provider_ref: str | None = None) -> Refund:
    """The provider returned the money. Applies an order refund to the order (lines, refunded
    amount, status, restock, ``order_refunded`` event) and tells the customer. Idempotent: a
    succeeded refund is returned unchanged. Locks the refund, then the order.

    A success the books cannot take never raises (a provider report must not fail forever): a
    late success of a failed refund that another refund has since replaced, or one beyond what is
    left to refund, is recorded as a reconciliation discrepancy for the operators, and the
    refund, the order and the payment are left as they are."""
    with transaction.atomic():
        refund = _lock_refund(refund_id)
        if refund.status == R.SUCCEEDED:
            return refund
        if refund.status not in (R.APPROVED, R.FAILED):
            raise _illegal(refund, R.SUCCEEDED)
        order = lock_order(order_id=refund.order_id)
        from_status = order.status
        conflict = _unapplicable(refund, order)
        if conflict is not None:
            kind, details = conflict
            discrepancy_record(
                kind=kind,
                amount=refund.amount,
                order=order,
                payment=refund.payment,
                refund=refund,
                provider_ref=provider_ref or refund.provider_ref or "",
                details={**details, "refund_status": refund.status},
            )
            return refund
        refund.status = R.SUCCEEDED
        refund.succeeded_at = timezone.now()
        fields = ["status", "succeeded_at"]
        if provider_ref and not refund.provider_ref:
            refund.provider_ref = provider_ref
            fields.append("provider_ref")
        refund.save(update_fields=fields)
        parts = list(RefundLine.objects.filter(refund=refund).select_related("order_line"))
        # An order refund has lines; a refund of an unapplied payment has none and leaves the
        # order alone.
        if parts:
            order = _apply_to_order(refund, parts)
        if refund.payment_id:
            Payment.objects.filter(pk=refund.payment_id).update(
                refunded_amount=F("refunded_amount") + refund.amount
            )
        order_event_record(
            order=order,
            kind=Kind.REFUND_SUCCEEDED,
            from_status=from_status,
            reason=refund.reason,
            payment=refund.payment_id,
            refund=refund,
            amount=refund.amount,
        )
        notify(
            user_id=Customer.objects.values_list("user_id", flat=True).get(pk=order.customer_id),
            kind="refund_succeeded",
            title="Refund sent",
            body=f"{format_minor(refund.amount, order.currency)} is on its way back for order "
            f"{order.number}.",
            data={"order_id": order.pk, "refund_id": refund.pk, "amount": refund.amount},
            dedupe_key=f"refund:{refund.pk}:succeeded",
        )
        return refund


def refund_mark_failed(*, refund_id: int, message: str, detail: str = "") -> Refund:
    """The provider refused the refund: approved → failed (the order is unchanged and a new
    refund may be opened). Any other state is returned unchanged (a late failure report never
    undoes a success). ``message`` is shown to the customer and must be one of our own stable
    texts; ``detail`` (what the provider said) goes only to the order's timeline (operators)."""
    with transaction.atomic():
        refund = _lock_refund(refund_id)
        if refund.status != R.APPROVED:
            return refund
        refund.status = R.FAILED
        refund.failure_message = message[:500]
        refund.save(update_fields=["status", "failure_message"])
        _timeline(refund, Kind.REFUND_FAILED, reason=detail[:500])
        return refund
