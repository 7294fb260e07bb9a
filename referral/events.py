"""What referral announces to other apps: its events and the payload of each (a contract).

Events are recorded through the transactional outbox (core/outbox.py) by the function named
after the event, inside the transaction of the change; delivery runs after commit and from the
sweep, at least once (handlers key their writes on the payload's ids). Payloads are JSON: ids
and amounts in fen are ``int``, datetimes ISO 8601 strings (UTC). Every key is always present
(``None`` where stated):

- ``order_attributed`` (one per paid order, whoever it went to; what incentives consumes):
  order_id, attribution_id, customer_id, community_id (or None), distributor_id (the attributed
  distributor, level 1; None when nobody), rule_version, touch (``click``, ``code``,
  ``binding``, ``self``, ``none``), reason (a stable code, referral.rules.Reason), click_id,
  link_id, exclusive_code_id (each None when none), self_purchase (the buyer is the active
  distributor themselves, whichever way the rule counts it), levels [{level, distributor_id}]
  (the paid levels: level 1 the attributed distributor, level 2 their direct upline if active;
  never more than two; [] when nobody), ancestry (the attributed distributor's whole upline
  chain at that moment, nearest first; [] when nobody), source, source_ref (as in
  ``order_paid``), total (what the order cost), goods_amount (what its lines paid: the
  commission base, no shipping), paid_at, lines (as in ``order_paid``: [{line_id, sku_id,
  product_id, quantity, list_unit_price, unit_price, paid_amount}]), fraud_flags [{flag_id,
  kind}] (the open flags on this attribution or its level-1 distributor when it was made: they
  hold its commissions).
- ``fraud_flag_changed``: flag_id, kind (``self_referral``, ``click_spam``,
  ``device_cluster``, ``high_refund_rate``, ``referral_cycle``), status (``open``, ``cleared``,
  ``confirmed``), distributor_id, attribution_id (None for a distributor-wide flag), details (the
  signal's evidence, as stored on the flag). Recorded once when a signal raises a flag (status
  open) and once when an operator reviews it (cleared or confirmed); incentives holds the
  commissions of an open flag's attribution or distributor and releases or voids them on review.
"""

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from core import outbox

if TYPE_CHECKING:
    from referral.models import Attribution, FraudFlag

PUBLISHER = "referral"
ORDER_ATTRIBUTED = "order_attributed"
FRAUD_FLAG_CHANGED = "fraud_flag_changed"
EVENTS = (ORDER_ATTRIBUTED, FRAUD_FLAG_CHANGED)


def register_events() -> None:
    for name in EVENTS:
        outbox.event_register(name, publisher=PUBLISHER)


# --- order_attributed ---
def order_attributed_payload(
    *,
    attribution: "Attribution",
    order_paid: Mapping[str, Any],
    levels: Sequence[tuple[int, int]],
    flags: Sequence["FraudFlag"],
) -> dict[str, Any]:
    """``levels``: the attribution's ``(level, distributor_id)`` pairs; ``flags``: the open
    flags holding it."""
    return {
        "order_id": attribution.order_id,
        "attribution_id": attribution.pk,
        "customer_id": attribution.customer_id,
        "community_id": order_paid.get("community_id"),
        "distributor_id": attribution.distributor_id,
        "rule_version": attribution.rule_version,
        "touch": attribution.touch,
        "reason": attribution.reason,
        "click_id": attribution.click_id,
        "link_id": attribution.link_id,
        "exclusive_code_id": attribution.exclusive_code_id,
        "self_purchase": attribution.self_purchase,
        "levels": [{"level": level, "distributor_id": ident} for level, ident in levels],
        "ancestry": [int(ident) for ident in attribution.ancestry],
        "source": attribution.source,
        "source_ref": order_paid.get("source_ref"),
        "total": order_paid["total"],
        "goods_amount": attribution.goods_amount,
        "paid_at": attribution.paid_at.isoformat(),
        "lines": [dict(line) for line in order_paid.get("lines", [])],
        "fraud_flags": [{"flag_id": flag.pk, "kind": flag.kind} for flag in flags],
    }


def order_attributed(
    attribution: "Attribution",
    order_paid: Mapping[str, Any],
    flags: Sequence["FraudFlag"],
    *,
    levels: Sequence[tuple[int, int]],
) -> None:
    """Record ``order_attributed`` inside the attribution's transaction."""
    outbox.event_record(
        ORDER_ATTRIBUTED,
        lambda: order_attributed_payload(
            attribution=attribution, order_paid=order_paid, levels=levels, flags=flags
        ),
    )


# --- fraud_flag_changed ---


def fraud_flag_changed_payload(flag: "FraudFlag") -> dict[str, Any]:
    return {
        "flag_id": flag.pk,
        "kind": flag.kind,
        "status": flag.status,
        "distributor_id": flag.distributor_id,
        "attribution_id": flag.attribution_id,
        "details": flag.details,
    }


def fraud_flag_changed(flag: "FraudFlag") -> None:
    outbox.event_record(FRAUD_FLAG_CHANGED, lambda: fraud_flag_changed_payload(flag))
