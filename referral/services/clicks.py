"""Clicks: a link opened, as the mini-program reports it (there are no cookies: it sends the
short code / scene it was opened with, before or after login), de-duplicated and bot-filtered;
the periodic flush of raw clicks into the links' counters; a customer's tracking opt-out.

An open (``link_open``) records at most one ``Click`` row:

- nothing for an unknown code (404 ``link_not_found``); an inactive link answers its target (the
  customer lands somewhere) and records nothing;
- nothing when the visitor opted out: ``opted_out`` in the request, or a logged-in customer with
  a ``TrackingOptOut`` row;
- ``bot`` when the user agent is a preview fetcher, crawler or tool (referral/visitors.py); bots
  never touch the de-duplication gate;
- else ``counted`` when the gate lets it through, ``duplicate`` otherwise. The gate
  (``ClickGate``, one row per link and visitor key) keeps the visitor's last counted time; one
  statement upserts it only when absent or older than ``REFERRAL_CLICK_DEDUPE_WINDOW`` and, in
  the same statement, inserts the click with the status the upsert decided. On PostgreSQL the
  conflicting row is locked by the first upsert, so of concurrent opens by one visitor exactly
  one is counted, and a gate never moves without its counted click.

A logged-in customer's open that carries a device id also claims that device's anonymous clicks
(``customer`` set where it was null), so the touches made before login become theirs (the
attribution reads them). The visitor key of an open is the customer's once known, so the same
person may count once anonymously and once more right after logging in.

``clicks_flush`` adds unflushed clicks to their links' counters (``clicks``: counted;
``filtered_clicks``: duplicate + bot), a batch per transaction: the batch's click rows are
claimed ``FOR UPDATE SKIP LOCKED`` and marked flushed in one statement that answers per-link
counts, then the links are locked in id order (two flushers never deadlock) and updated in one
``UPDATE ... FROM``. A rerun or a concurrent run adds nothing twice."""

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from core.errors import NotFound
from core.link_targets import LinkTarget
from referral.error_codes import LinkErrorCode
from referral.models import Click, TrackingOptOut
from referral.selectors import links as selectors
from referral.visitors import is_bot, visitor_key
from shop.models import Customer

USER_AGENT_MAX_LENGTH = 400
FLUSH_BATCH = 5000

# The gate and the click in one statement: the upsert answers a row only when it moved the
# gate (no row yet, or the last counted click is at least a window old).
_GATED_INSERT = """
WITH gate AS (
    INSERT INTO referral_clickgate (link_id, visitor_key, counted_at)
    VALUES (%(link_id)s, %(visitor_key)s, %(now)s)
    ON CONFLICT (link_id, visitor_key) DO UPDATE SET counted_at = EXCLUDED.counted_at
    WHERE referral_clickgate.counted_at <= EXCLUDED.counted_at - %(window)s
    RETURNING 1
)
INSERT INTO referral_click (
    link_id, distributor_id, kind, status, occurred_at, customer_id, device_id, ip_hash,
    user_agent, visitor_key, flushed
)
SELECT %(link_id)s, %(distributor_id)s, %(kind)s,
       CASE WHEN EXISTS (SELECT 1 FROM gate) THEN %(counted)s ELSE %(duplicate)s END,
       %(now)s, %(customer_id)s, %(device_id)s, %(ip_hash)s, %(user_agent)s, %(visitor_key)s,
       false
RETURNING status
"""

_FLUSH_CLAIM = """
WITH batch AS (
    SELECT id FROM referral_click WHERE flushed = false ORDER BY id LIMIT %(batch)s
    FOR UPDATE SKIP LOCKED
), marked AS (
    UPDATE referral_click AS click SET flushed = true FROM batch WHERE click.id = batch.id
    RETURNING click.link_id, click.status
)
SELECT link_id,
       count(*) FILTER (WHERE status = %(counted)s),
       count(*) FILTER (WHERE status <> %(counted)s)
FROM marked GROUP BY link_id ORDER BY link_id
"""

_FLUSH_LOCK_LINKS = "SELECT id FROM referral_sharelink WHERE id = ANY(%s) ORDER BY id FOR UPDATE"

_FLUSH_ADD = """
UPDATE referral_sharelink AS link
SET clicks = link.clicks + added.counted,
    filtered_clicks = link.filtered_clicks + added.filtered,
    flushed_at = %(now)s
FROM unnest(%(ids)s::bigint[], %(counted)s::bigint[], %(filtered)s::bigint[])
     AS added(link_id, counted, filtered)
WHERE link.id = added.link_id
"""


@dataclass(frozen=True)
class LinkOpened:
    """The answer to an open: whether a click was recorded and with which status, and where the
    customer lands (the target and the share path with its scene)."""

    recorded: bool
    status: str | None
    link_id: int
    distributor_name: str
    target: LinkTarget
    share_path: str


def _storable(text: str) -> str:
    """Text PostgreSQL can store (no NUL), at most the column's length."""
    return text.replace("\x00", "")[:USER_AGENT_MAX_LENGTH]


def _device_clicks_claim(*, customer: Customer, device_id: uuid.UUID) -> int:
    return Click.objects.filter(device_id=device_id, customer__isnull=True).update(
        customer=customer
    )


def _record(
    *,
    link: selectors.OpenableLink,
    customer: Customer | None,
    device_id: uuid.UUID | None,
    ip_hash: str,
    user_agent: str,
    now: datetime,
) -> str:
    key = visitor_key(
        customer_id=customer.pk if customer else None,
        device_id=device_id,
        ip_hash=ip_hash,
        user_agent=user_agent,
    )
    if is_bot(user_agent):
        Click.objects.create(
            link_id=link.link_id,
            distributor_id=link.distributor_id,
            kind=Click.Kind.LINK,
            status=Click.Status.BOT,
            occurred_at=now,
            customer=customer,
            device_id=device_id,
            ip_hash=ip_hash,
            user_agent=user_agent,
            visitor_key=key,
        )
        return Click.Status.BOT.value
    params: dict[str, Any] = {
        "link_id": link.link_id,
        "distributor_id": link.distributor_id,
        "kind": Click.Kind.LINK.value,
        "counted": Click.Status.COUNTED.value,
        "duplicate": Click.Status.DUPLICATE.value,
        "now": now,
        "window": settings.REFERRAL_CLICK_DEDUPE_WINDOW,
        "customer_id": customer.pk if customer else None,
        "device_id": device_id,
        "ip_hash": ip_hash,
        "user_agent": user_agent,
        "visitor_key": key,
    }
    with connection.cursor() as cursor:
        cursor.execute(_GATED_INSERT, params)
        (status,) = cursor.fetchone()
    return status


def link_open(
    *,
    short_code: str,
    customer: Customer | None,
    device_id: uuid.UUID | None,
    ip_hash: str,
    user_agent: str,
    opted_out: bool = False,
    now: datetime | None = None,
) -> LinkOpened:
    """Record one open of the link with this short code (rules: module docstring) and answer
    where it leads. 404 ``link_not_found`` for an unknown code."""
    link = selectors.link_for_open(short_code)
    if link is None:
        raise NotFound("There is no link with this code.", code=LinkErrorCode.LINK_NOT_FOUND)
    now = now or timezone.now()
    user_agent = _storable(user_agent or "")
    tracked = not opted_out and not (
        customer is not None and selectors.tracking_opted_out(customer=customer)
    )
    if tracked and customer is not None and device_id is not None:
        _device_clicks_claim(customer=customer, device_id=device_id)
    status = None
    if tracked and link.is_active:
        status = _record(
            link=link,
            customer=customer,
            device_id=device_id,
            ip_hash=ip_hash[:64],
            user_agent=user_agent,
            now=now,
        )
    return LinkOpened(
        recorded=status is not None,
        status=status,
        link_id=link.link_id,
        distributor_name=link.distributor_name,
        target=link.target,
        share_path=link.share_path,
    )


def _flush_batch(batch: int) -> int:
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(_FLUSH_CLAIM, {"batch": batch, "counted": Click.Status.COUNTED.value})
        per_link = cursor.fetchall()
        if not per_link:
            return 0
        ids = [row[0] for row in per_link]
        cursor.execute(_FLUSH_LOCK_LINKS, [ids])
        cursor.execute(
            _FLUSH_ADD,
            {
                "now": timezone.now(),
                "ids": ids,
                "counted": [row[1] for row in per_link],
                "filtered": [row[2] for row in per_link],
            },
        )
        return sum(row[1] + row[2] for row in per_link)


def clicks_flush(*, batch: int = FLUSH_BATCH) -> int:
    """Add every unflushed click to its link's counters, ``batch`` clicks per transaction, until
    a batch comes back short; returns how many clicks were flushed. Idempotent; concurrent runs
    share the work (rows one run holds are skipped by the other)."""
    flushed = 0
    while True:
        done = _flush_batch(batch)
        flushed += done
        if done < batch:
            return flushed


def tracking_opt_out_set(*, customer: Customer, opted_out: bool) -> bool:
    """Turn the customer's tracking opt-out on or off (idempotent); answers the setting. Clicks
    already recorded stay (attributions made from them are history)."""
    with transaction.atomic():
        if opted_out:
            TrackingOptOut.objects.bulk_create(
                [TrackingOptOut(customer=customer)], ignore_conflicts=True
            )
        else:
            TrackingOptOut.objects.filter(customer=customer).delete()
    return opted_out
