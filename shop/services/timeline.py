"""The order timeline: one ``OrderEvent`` per transition, payment, refund step and pickup.

Services call ``order_event_record`` inside the transaction that does the thing, so a rolled-back
action leaves no row. "Who": the acting user, classed as customer, community leader or staff;
no user is the system (sweeps, provider webhooks).
"""

from core.models import User
from core.rows import insert_rows
from shop.models import Order, OrderEvent, Payment, Refund

Kind = OrderEvent.Kind


def actor_kind_of(actor: User | None) -> str:
    if actor is None:
        return OrderEvent.ActorKind.SYSTEM
    if actor.is_staff:
        return OrderEvent.ActorKind.STAFF
    return OrderEvent.ActorKind.CUSTOMER


def order_event_record(
    *,
    order: Order,
    kind: str,
    from_status: str,
    to_status: str | None = None,
    actor: User | None = None,
    actor_kind: str | None = None,
    reason: str = "",
    payment: Payment | int | None = None,
    refund: Refund | None = None,
    amount: int | None = None,
) -> OrderEvent:
    payment_id = payment.pk if isinstance(payment, Payment) else payment
    event = OrderEvent(
        order_id=order.pk,
        kind=kind,
        actor=actor,
        actor_kind=actor_kind or actor_kind_of(actor),
        from_status=from_status,
        to_status=order.status if to_status is None else to_status,
        reason=reason[:64],
        payment_id=payment_id,
        refund=refund,
        amount=amount,
    )
    insert_rows([event])
    return event
