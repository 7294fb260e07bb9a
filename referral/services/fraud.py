"""Fraud signals: flag, never silently pay.

A signal raises a ``FraudFlag`` (status ``open``): operators see it, and incentives holds the
commissions of an open flag's attribution (or, for a distributor-wide flag, of its distributor)
until the flag is reviewed. Each signal is raised once: a flag's ``dedupe_key`` is unique and
every flag is written by ``INSERT ... ON CONFLICT (dedupe_key) DO NOTHING RETURNING``, so a
signal seen again (a rescan, a redelivered event, two scans at once) writes nothing, and only
the rows actually inserted announce ``fraud_flag_changed`` (referral/events.py), in the same
transaction.

Signals and their keys:

- ``self_referral:<attribution>`` (``attribution_signals``, at attribution): the buyer is another
  customer than the attributed distributor's own, but shares with the distributor's account the
  device (the order's ``device_id`` is one the distributor's customer used on an order or a
  click), the phone (equal non-empty ``Customer.phone``), or the client IP hash (equal to the
  ``ip_hash`` of an order or click of the distributor's customer in the 30 days before the
  payment). ``details.matched`` lists which of ``device``, ``phone``, ``ip``. A distributor's own
  purchase (the same customer) is a rule of attribution, never fraud.
- ``referral_cycle:<attribution>`` (at attribution): the buyer is a distributor on the attributed
  distributor's upline chain (``attribution.ancestry``; ``details.cycle`` has ``ancestor``, with
  ``ancestor_level``), or the pair buys through each other: an earlier attribution has the
  attributed distributor's customer buying through the buyer's distributor (``mutual``, with
  ``mutual_attribution_id``).
- ``click_spam:<distributor>:<dev|ip>:<value>:<window start epoch>`` (``fraud_scan``): more than
  ``REFERRAL_CLICK_SPAM_LIMIT`` clicks on one distributor's links from one device id or one IP
  hash within one fixed window of ``REFERRAL_CLICK_SPAM_WINDOW`` (``floor(epoch /
  window)``), over the current and the previous window. Link opens only (an exclusive code's
  checkout is not a visit), duplicates included (re-clicking is what spam looks like), bot and
  link-preview rows excluded (they never count, and a preview fetcher's shared address would
  flag every popular distributor).
- ``device_cluster:<distributor>:<device>`` (``fraud_scan``): at least
  ``REFERRAL_DEVICE_CLUSTER_SIZE`` distinct customers with orders attributed to the distributor
  (attributions paid in the last ``DEVICE_CLUSTER_LOOKBACK``) used one device id (on any of
  their orders or clicks). ``details.accounts`` is the count when raised.
- ``high_refund_rate:<distributor>:<period start date>`` (``refund_rate_check`` after an
  attributed refund, and swept by ``fraud_scan``): over the distributor's level-1 attributions
  paid in the last ``REFERRAL_REFUND_RATE_WINDOW``, at least ``REFERRAL_REFUND_RATE_MIN_ORDERS``
  of them, ``refunded * 10000 > REFERRAL_REFUND_RATE_BPS * goods`` (integers: exactly the
  threshold is not flagged). Periods are fixed windows of that length from the Unix epoch (UTC),
  so a distributor gets at most one such flag per period.

Review (``flag_clear`` / ``flag_confirm``), under the flag's row lock::

    open --flag_clear--> cleared      (commissions released)
    open --flag_confirm--> confirmed  (commissions voided; a note is required)

Refusals: 422 ``fraud_flag_note_invalid`` (confirm without a note, or a note over 500
characters; checked before any lock), 404 ``fraud_flag_not_found``, 409
``fraud_flag_already_reviewed`` (``details.status``: the flag is not open any more; a review is
final).

Every detection is one set-based statement (detection and insert together); the queries read
PostgreSQL directly since they group and compare across tables the ORM would take several
round trips for.
"""

import json
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from core.errors import Conflict, InvalidInput, NotFound
from core.models import User
from referral import events
from referral.error_codes import FraudErrorCode
from referral.locks import lock_fraud_flag
from referral.models import Attribution, FraudFlag
from referral.selectors.fraud import open_flags

K = FraudFlag.Kind
S = FraudFlag.Status

SELF_REFERRAL_IP_LOOKBACK = timedelta(days=30)
DEVICE_CLUSTER_LOOKBACK = timedelta(days=30)
NOTE_MAX_CHARS = 500

# --- raising flags ------------------------------------------------------------------------------
# Every detection below is a SELECT of (kind, distributor_id, attribution_id, dedupe_key,
# details) wrapped in this INSERT: a key that exists already is skipped, and only the inserted
# rows come back (so only they announce anything).
_INSERT_HEAD = """
INSERT INTO referral_fraudflag
    (kind, status, distributor_id, attribution_id, dedupe_key, details, created_at, review_note)
SELECT found.kind, 'open', found.distributor_id, found.attribution_id, found.dedupe_key,
       found.details, %(now)s, ''
FROM (
"""
_INSERT_TAIL = """
) AS found
ON CONFLICT (dedupe_key) DO NOTHING
RETURNING id, kind, status, distributor_id, attribution_id, dedupe_key, details, created_at
"""
_RETURNED = [
    "id",
    "kind",
    "status",
    "distributor_id",
    "attribution_id",
    "dedupe_key",
    "details",
    "created_at",
]


def _raise_flags(detection: str, params: Mapping[str, Any]) -> list[FraudFlag]:
    """Insert the flags ``detection`` finds (skipping known keys) and announce each new one;
    inside the caller's transaction."""
    with connection.cursor() as cursor:
        cursor.execute(_INSERT_HEAD + detection + _INSERT_TAIL, params)
        rows = cursor.fetchall()
    flags = []
    for *columns, details, created_at in rows:
        details = json.loads(details) if isinstance(details, str) else details
        flag = FraudFlag.from_db(connection.alias, _RETURNED, [*columns, details, created_at])
        events.fraud_flag_changed(flag)
        flags.append(flag)
    return flags


_GIVEN_FLAGS = """
SELECT v.kind, v.distributor_id, v.attribution_id, v.dedupe_key, v.details
FROM jsonb_to_recordset(%(flags)s::jsonb)
    AS v(kind text, distributor_id bigint, attribution_id bigint, dedupe_key text, details jsonb)
"""


# --- at attribution -------------------------------------------------------------------------------
# One round trip for both attribution-time signals, driven by the attributed distributor's row:
# what the buyer shares with the distributor's customer (device, phone, IP), the buyer's own
# distributor row if any, and the earliest attribution of the pair the other way round.
_ATTRIBUTION_EVIDENCE = """
SELECT
    d.customer_id,
    bd.id,
    (EXISTS (SELECT 1 FROM shop_order o
             WHERE o.customer_id = d.customer_id AND o.device_id = %(device)s::uuid)
     OR EXISTS (SELECT 1 FROM referral_click c
                WHERE c.customer_id = d.customer_id AND c.device_id = %(device)s::uuid)),
    EXISTS (SELECT 1 FROM shop_customer buyer, shop_customer own
            WHERE buyer.id = %(buyer)s AND own.id = d.customer_id
              AND buyer.phone <> '' AND buyer.phone = own.phone),
    (%(ip)s::text <> '' AND (
        EXISTS (SELECT 1 FROM shop_order o
                WHERE o.customer_id = d.customer_id AND o.ip_hash = %(ip)s
                  AND o.created_at >= %(since)s)
        OR EXISTS (SELECT 1 FROM referral_click c
                   WHERE c.customer_id = d.customer_id AND c.ip_hash = %(ip)s
                     AND c.occurred_at >= %(since)s))),
    (SELECT min(a.id) FROM referral_attribution a
     WHERE bd.id IS NOT NULL AND a.distributor_id = bd.id AND a.customer_id = d.customer_id)
FROM referral_distributor d
LEFT JOIN referral_distributor bd ON bd.customer_id = %(buyer)s
WHERE d.id = %(distributor)s
"""


def _device(value: Any) -> str | None:
    try:
        return str(uuid.UUID(str(value))) if value else None
    except ValueError:
        return None


def attribution_signals(
    *, attribution: Attribution, order_paid: Mapping[str, Any]
) -> list[FraudFlag]:
    """Raise the signals of one new attribution (self-referral, referral cycle) inside the
    attribution's transaction (the caller's, after it wrote the Attribution and its levels), and
    return what holds its commissions: the open flags on this attribution and the open
    distributor-wide flags of its level-1 distributor (``open_flags``).

    Two round trips when nothing is raised (the evidence, the open flags); one more for the
    insert and one per flag raised (its event); none for an attribution to no one. It opens no
    savepoint inside the caller's transaction."""
    if attribution.distributor_id is None:
        return []
    with transaction.atomic(savepoint=False):
        with connection.cursor() as cursor:
            cursor.execute(
                _ATTRIBUTION_EVIDENCE,
                {
                    "distributor": attribution.distributor_id,
                    "buyer": attribution.customer_id,
                    "device": _device(order_paid.get("device_id")),
                    "ip": order_paid.get("ip_hash") or "",
                    "since": attribution.paid_at - SELF_REFERRAL_IP_LOOKBACK,
                },
            )
            row = cursor.fetchone()
        if row is None:
            return []
        own_customer_id, buyer_distributor_id, device, phone, ip, mutual_id = row
        # the distributor's own purchase is attribution's rule (self_purchase), not fraud
        own_purchase = own_customer_id == attribution.customer_id
        found = []
        matched = [name for name, hit in (("device", device), ("phone", phone), ("ip", ip)) if hit]
        if matched and not own_purchase:
            found.append(
                _attribution_flag(
                    attribution,
                    K.SELF_REFERRAL,
                    {
                        "matched": matched,
                        "order_id": attribution.order_id,
                        "buyer_customer_id": attribution.customer_id,
                        "distributor_customer_id": own_customer_id,
                    },
                )
            )
        cycle = _cycle_details(attribution, buyer_distributor_id, mutual_id)
        if cycle and not own_purchase:
            found.append(_attribution_flag(attribution, K.REFERRAL_CYCLE, cycle))
        if found:
            _raise_flags(_GIVEN_FLAGS, {"flags": json.dumps(found), "now": timezone.now()})
        return list(
            open_flags(distributor_id=attribution.distributor_id, attribution_id=attribution.pk)
        )


def _attribution_flag(
    attribution: Attribution, kind: str, details: dict[str, Any]
) -> dict[str, Any]:
    return {
        "kind": kind,
        "distributor_id": attribution.distributor_id,
        "attribution_id": attribution.pk,
        "dedupe_key": f"{kind}:{attribution.pk}",
        "details": details,
    }


def _cycle_details(
    attribution: Attribution, buyer_distributor_id: int | None, mutual_id: int | None
) -> dict[str, Any] | None:
    if buyer_distributor_id is None:
        return None
    cycle: list[str] = []
    details: dict[str, Any] = {
        "order_id": attribution.order_id,
        "buyer_distributor_id": buyer_distributor_id,
    }
    upline = [int(pk) for pk in attribution.ancestry or [] if pk != attribution.distributor_id]
    if buyer_distributor_id in upline:
        cycle.append("ancestor")
        # ancestry lists the upline nearest first: its n-th entry is n levels up
        details["ancestor_level"] = upline.index(buyer_distributor_id) + 1
    if mutual_id is not None:
        cycle.append("mutual")
        details["mutual_attribution_id"] = mutual_id
    if not cycle:
        return None
    return {"cycle": cycle, **details}


# --- periodic and after refunds -------------------------------------------------------------------
_CLICK_SPAM = """
WITH recent AS (
    SELECT distributor_id, device_id::text AS device, ip_hash,
           floor(extract(epoch FROM occurred_at) / %(window)s)::bigint AS slot
    FROM referral_click
    WHERE occurred_at >= %(since)s AND occurred_at <= %(now)s
      AND kind = 'link' AND status <> 'bot'
),
counted AS (
    SELECT distributor_id, 'dev' AS source, device AS value, slot, count(*) AS clicks
    FROM recent WHERE device IS NOT NULL
    GROUP BY distributor_id, device, slot HAVING count(*) > %(limit)s
    UNION ALL
    SELECT distributor_id, 'ip', ip_hash, slot, count(*)
    FROM recent WHERE ip_hash <> ''
    GROUP BY distributor_id, ip_hash, slot HAVING count(*) > %(limit)s
)
SELECT 'click_spam' AS kind, distributor_id, NULL::bigint AS attribution_id,
       'click_spam:' || distributor_id || ':' || source || ':' || value || ':'
           || (slot * %(window)s) AS dedupe_key,
       jsonb_build_object(
           'source', source, 'value', value, 'clicks', clicks, 'limit', %(limit)s::int,
           'window_start', to_timestamp(slot * %(window)s), 'window_seconds', %(window)s::bigint
       ) AS details
FROM counted
"""

_DEVICE_CLUSTER = """
WITH buyers AS (
    SELECT DISTINCT distributor_id, customer_id FROM referral_attribution
    WHERE distributor_id IS NOT NULL AND paid_at >= %(since)s AND paid_at <= %(now)s
),
used AS (
    SELECT customer_id, device_id FROM shop_order
    WHERE device_id IS NOT NULL AND customer_id IN (SELECT customer_id FROM buyers)
    UNION
    SELECT customer_id, device_id FROM referral_click
    WHERE device_id IS NOT NULL AND customer_id IN (SELECT customer_id FROM buyers)
),
clusters AS (
    SELECT b.distributor_id, u.device_id, count(*) AS accounts,
           array_agg(b.customer_id ORDER BY b.customer_id) AS customer_ids
    FROM buyers b JOIN used u ON u.customer_id = b.customer_id
    GROUP BY b.distributor_id, u.device_id
    HAVING count(*) >= %(size)s
)
SELECT 'device_cluster' AS kind, distributor_id, NULL::bigint AS attribution_id,
       'device_cluster:' || distributor_id || ':' || device_id AS dedupe_key,
       jsonb_build_object(
           'device_id', device_id, 'accounts', accounts, 'customer_ids', to_jsonb(customer_ids)
       ) AS details
FROM clusters
"""

_REFUND_RATE = """
SELECT 'high_refund_rate' AS kind, a.distributor_id, NULL::bigint AS attribution_id,
       'high_refund_rate:' || a.distributor_id || ':' || %(period)s::text AS dedupe_key,
       jsonb_build_object(
           'attributions', count(*), 'goods_amount', sum(a.goods_amount),
           'refunded_amount', sum(a.refunded_amount),
           'rate_bps', floor(sum(a.refunded_amount) * 10000 / sum(a.goods_amount))::bigint,
           'threshold_bps', %(bps)s::bigint, 'window_days', %(days)s::int,
           'period_start', %(period)s::text
       ) AS details
FROM referral_attribution a
WHERE a.distributor_id IS NOT NULL AND (%(distributor)s::bigint IS NULL
                                        OR a.distributor_id = %(distributor)s::bigint)
  AND a.paid_at >= %(since)s AND a.paid_at <= %(now)s
GROUP BY a.distributor_id
HAVING count(*) >= %(min_orders)s
   AND sum(a.refunded_amount) * 10000 > %(bps)s * sum(a.goods_amount)
"""


def _seconds(window: timedelta) -> int:
    seconds = int(window.total_seconds())
    if seconds < 1:
        raise ValueError("a fraud window must be at least one second")
    return seconds


def _click_spam(now: datetime) -> list[FraudFlag]:
    window = _seconds(settings.REFERRAL_CLICK_SPAM_WINDOW)
    current_start = int(now.timestamp()) // window * window
    since = datetime.fromtimestamp(current_start - window, tz=UTC)
    params = {
        "now": now,
        "since": since,
        "window": window,
        "limit": settings.REFERRAL_CLICK_SPAM_LIMIT,
    }
    return _raise_flags(_CLICK_SPAM, params)


def _device_cluster(now: datetime) -> list[FraudFlag]:
    params = {
        "now": now,
        "since": now - DEVICE_CLUSTER_LOOKBACK,
        "size": settings.REFERRAL_DEVICE_CLUSTER_SIZE,
    }
    return _raise_flags(_DEVICE_CLUSTER, params)


def _refund_rate(now: datetime, distributor_id: int | None) -> list[FraudFlag]:
    window = _seconds(settings.REFERRAL_REFUND_RATE_WINDOW)
    period_start = datetime.fromtimestamp(int(now.timestamp()) // window * window, tz=UTC)
    params = {
        "now": now,
        "since": now - settings.REFERRAL_REFUND_RATE_WINDOW,
        "distributor": distributor_id,
        "period": period_start.date().isoformat(),
        "bps": settings.REFERRAL_REFUND_RATE_BPS,
        "days": window // 86400,
        "min_orders": settings.REFERRAL_REFUND_RATE_MIN_ORDERS,
    }
    return _raise_flags(_REFUND_RATE, params)


def refund_rate_check(*, distributor_id: int, now: datetime | None = None) -> FraudFlag | None:
    """After an attributed refund of ``distributor_id``'s order: raise ``high_refund_rate`` if
    the distributor's refund rate is now over the threshold. Returns the flag raised by this
    call, or None (within bounds, too few orders, or already flagged for this period)."""
    with transaction.atomic(savepoint=False):
        raised = _refund_rate(now or timezone.now(), distributor_id)
    return raised[0] if raised else None


def fraud_scan(*, now: datetime | None = None) -> int:
    """The periodic sweep (referral.tasks.fraud_scan): click spam, device clusters and refund
    rates of every distributor, each detection in its own transaction. Safe to run twice, and
    concurrently: a signal already flagged is skipped. Returns the number of new flags."""
    now = now or timezone.now()
    raised = 0
    for detect in (_click_spam, _device_cluster):
        with transaction.atomic():
            raised += len(detect(now))
    with transaction.atomic():
        raised += len(_refund_rate(now, None))
    return raised


# --- review -----------------------------------------------------------------------------------
def _check_note(note: str, *, required: bool) -> str:
    note = (note or "").strip()
    if required and not note:
        raise InvalidInput(
            "Confirming a fraud flag needs a note saying why.",
            code=FraudErrorCode.FLAG_NOTE_INVALID,
            details={"field": "note", "reason": "required"},
        )
    if len(note) > NOTE_MAX_CHARS:
        raise InvalidInput(
            f"The note may have at most {NOTE_MAX_CHARS} characters.",
            code=FraudErrorCode.FLAG_NOTE_INVALID,
            details={"field": "note", "reason": "too_long"},
        )
    return note


def _review(*, flag_id: int, actor: User, note: str, status: str) -> FraudFlag:
    with transaction.atomic():
        flag = lock_fraud_flag(flag_id)
        if flag is None:
            raise NotFound("Fraud flag not found.", code=FraudErrorCode.FLAG_NOT_FOUND)
        if flag.status != S.OPEN:
            raise Conflict(
                f"This flag was already reviewed ({flag.status}).",
                code=FraudErrorCode.FLAG_ALREADY_REVIEWED,
                details={"status": flag.status},
            )
        flag.status = status
        flag.reviewed_by = actor
        flag.reviewed_at = timezone.now()
        flag.review_note = note
        flag.save(update_fields=["status", "reviewed_by", "reviewed_at", "review_note"])
        events.fraud_flag_changed(flag)
    return flag


def flag_clear(*, flag_id: int, actor: User, note: str = "") -> FraudFlag:
    """An operator clears an open flag (a false alarm): its held commissions may be released.
    The note is optional."""
    return _review(
        flag_id=flag_id, actor=actor, note=_check_note(note, required=False), status=S.CLEARED
    )


def flag_confirm(*, flag_id: int, actor: User, note: str) -> FraudFlag:
    """An operator confirms an open flag (fraud): its commissions are voided. The note is
    required."""
    return _review(
        flag_id=flag_id, actor=actor, note=_check_note(note, required=True), status=S.CONFIRMED
    )
