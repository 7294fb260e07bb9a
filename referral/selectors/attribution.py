"""Reads of attribution: what the attribution service decides from (``attribution_context``,
``customer_touches``, ``ancestry_with_status``), a distributor's own attributed orders (no
buyer data), and the operators' views of attributions and rule versions."""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from django.db import connection
from django.db.models import Case, Exists, OuterRef, Prefetch, Q, QuerySet, Value, When

from core.errors import NotFound
from referral.error_codes import AttributionErrorCode
from referral.models import (
    Attribution,
    AttributionLevel,
    AttributionRule,
    Click,
    DistributorAncestry,
    FraudFlag,
)
from referral.services.rules_admin import rule_current

ACTIVE = "active"
TOUCH_STATUSES = (Click.Status.COUNTED, Click.Status.DUPLICATE)


# --- what an attribution is decided from ---------------------------------------------------------
@dataclass(frozen=True)
class StoredBinding:
    pk: int
    distributor_id: int
    distributor_status: str
    bound_at: datetime
    last_touch_at: datetime
    click_id: int | None
    link_id: int | None


@dataclass(frozen=True)
class CodeUsed:
    """The exclusive code typed at the order's checkout."""

    pk: int
    distributor_id: int
    distributor_status: str
    link_id: int


@dataclass(frozen=True)
class AttributionContext:
    order_created_at: datetime
    customer_id: int
    attribution_id: int | None  # already attributed
    own_distributor_id: int | None  # the buyer's own distributor, if active
    rule: AttributionRule | None  # in force at the payment (None: no version exists yet)
    binding: StoredBinding | None
    code: CodeUsed | None


# One round trip for everything the decision reads besides the touches: the order (and whether it
# is attributed already), the buyer's own active distributor, the rule version in force at the
# payment, the buyer's binding (with its distributor's status and its click's link) and the
# exclusive code typed at checkout (matched case-insensitively, as the shop's unique index does).
_CONTEXT = """
SELECT o.created_at, o.customer_id,
       (SELECT a.id FROM referral_attribution a WHERE a.order_id = o.id),
       (SELECT d.id FROM referral_distributor d
        WHERE d.customer_id = o.customer_id AND d.status = %(active)s),
       r.id, r.version, r.model, r.binding_days, r.click_window_days, r.code_overrides_link,
       r.self_purchase, r.effective_from,
       b.id, b.distributor_id, bd.status, b.bound_at, b.last_touch_at, b.click_id, bc.link_id,
       x.id, x.distributor_id, xd.status, x.link_id
FROM shop_order o
LEFT JOIN LATERAL (
    SELECT * FROM referral_attributionrule
    WHERE effective_from <= %(paid_at)s ORDER BY version DESC LIMIT 1
) r ON true
LEFT JOIN referral_binding b ON b.customer_id = o.customer_id
LEFT JOIN referral_distributor bd ON bd.id = b.distributor_id
LEFT JOIN referral_click bc ON bc.id = b.click_id
LEFT JOIN LATERAL (
    SELECT e.id, e.distributor_id, e.link_id
    FROM shop_couponcode cc JOIN referral_exclusivecode e ON e.coupon_code_id = cc.id
    WHERE upper(cc.code) = ANY(%(codes)s) ORDER BY e.id LIMIT 1
) x ON true
LEFT JOIN referral_distributor xd ON xd.id = x.distributor_id
WHERE o.id = %(order)s
"""


def attribution_context(
    *, order_id: int, paid_at: datetime, codes: Sequence[str]
) -> AttributionContext | None:
    """None if the order does not exist."""
    texts = [code.strip().upper() for code in codes if isinstance(code, str) and code.strip()]
    with connection.cursor() as cursor:
        cursor.execute(
            _CONTEXT, {"order": order_id, "paid_at": paid_at, "codes": texts, "active": ACTIVE}
        )
        row = cursor.fetchone()
    if row is None:
        return None
    created_at, customer_id, attribution_id, own_id = row[0:4]
    rule_id, version, model, binding_days, window_days, overrides, self_purchase, since = row[4:12]
    rule = None
    if rule_id is not None:
        rule = AttributionRule(
            pk=rule_id,
            version=version,
            model=model,
            binding_days=binding_days,
            click_window_days=window_days,
            code_overrides_link=overrides,
            self_purchase=self_purchase,
            effective_from=since,
        )
    binding_id, bound_distributor, bound_status, bound_at, last_touch_at, click_id, link_id = row[
        12:19
    ]
    binding = None
    if binding_id is not None:
        binding = StoredBinding(
            binding_id, bound_distributor, bound_status, bound_at, last_touch_at, click_id, link_id
        )
    code_id, code_distributor, code_status, code_link = row[19:23]
    code = None
    if code_id is not None:
        code = CodeUsed(code_id, code_distributor, code_status, code_link)
    return AttributionContext(
        order_created_at=created_at,
        customer_id=customer_id,
        attribution_id=attribution_id,
        own_distributor_id=own_id,
        rule=rule,
        binding=binding,
        code=code,
    )


@dataclass(frozen=True)
class TouchRow:
    click_id: int
    distributor_id: int
    distributor_status: str
    occurred_at: datetime
    kind: str  # Click.Kind
    link_id: int


def customer_touches(
    *,
    customer_id: int,
    device_id: UUID | None,
    until: datetime,
    since: datetime | None = None,
    after: datetime | None = None,
    oldest_first: bool = False,
    limit: int = 200,
) -> list[TouchRow]:
    """One query: the non-bot clicks (counted or duplicate, links and exclusive codes) of the
    customer, and the anonymous ones of their device, with ``since <= occurred_at`` /
    ``after < occurred_at`` and ``occurred_at <= until``; the newest ``limit`` (or the oldest,
    ``oldest_first``), with each distributor's status."""
    who = Q(customer_id=customer_id)
    if device_id is not None:
        who |= Q(customer__isnull=True, device_id=device_id)
    clicks = Click.objects.filter(who, status__in=TOUCH_STATUSES, occurred_at__lte=until)
    if since is not None:
        clicks = clicks.filter(occurred_at__gte=since)
    if after is not None:
        clicks = clicks.filter(occurred_at__gt=after)
    order = ("occurred_at", "id") if oldest_first else ("-occurred_at", "-id")
    rows = clicks.order_by(*order).values_list(
        "id", "distributor_id", "distributor__status", "occurred_at", "kind", "link_id"
    )[:limit]
    return [TouchRow(*row) for row in rows]


def ancestry_with_status(distributor_id: int) -> list[tuple[int, str]]:
    """``(ancestor id, status)`` of the distributor's whole upline chain, nearest first: one
    index lookup on the closure table, whatever the tree's size."""
    return list(
        DistributorAncestry.objects.filter(descendant_id=distributor_id)
        .order_by("depth")
        .values_list("ancestor_id", "ancestor__status")
    )


# --- views ---------------------------------------------------------------------------------------
def _held(attribution: str, distributor: str) -> Exists:
    """An open fraud flag on the attribution, or a distributor-wide one (no attribution) on its
    level-1 distributor (the outer query's fields named ``attribution`` and ``distributor``):
    what holds its commissions."""
    return Exists(
        FraudFlag.objects.filter(status=FraudFlag.Status.OPEN).filter(
            Q(attribution_id=OuterRef(attribution))
            | Q(attribution__isnull=True, distributor_id=OuterRef(distributor))
        )
    )


def attributions_of_distributor(*, distributor_id: int) -> QuerySet[AttributionLevel]:
    """The orders attributed to the distributor at level 1 or 2, newest paid first: one row per
    paid level, with the attribution (no buyer data is read) and ``held``."""
    return (
        AttributionLevel.objects.filter(distributor_id=distributor_id)
        .select_related("attribution")
        .annotate(held=_held("attribution_id", "attribution__distributor_id"))
        .order_by("-attribution__paid_at", "-attribution_id")
    )


def _staff_attributions() -> QuerySet[Attribution]:
    return (
        Attribution.objects.annotate(held=_held("pk", "distributor_id"))
        .prefetch_related(
            Prefetch("levels", queryset=AttributionLevel.objects.order_by("level")),
            "refunds",
        )
        .order_by("-paid_at", "-id")
    )


def attributions_for_staff(
    *, order_id: int | None = None, distributor_id: int | None = None
) -> QuerySet[Attribution]:
    """Attributions newest paid first; ``distributor_id``: those attributed to the distributor or
    paying them at a level."""
    found = _staff_attributions()
    if order_id is not None:
        found = found.filter(order_id=order_id)
    if distributor_id is not None:
        found = found.filter(
            Q(distributor_id=distributor_id)
            | Exists(
                AttributionLevel.objects.filter(
                    attribution_id=OuterRef("pk"), distributor_id=distributor_id
                )
            )
        )
    return found


def attribution_for_staff(*, attribution_id: int) -> Attribution:
    found = _staff_attributions().filter(pk=attribution_id).first()
    if found is None:
        raise NotFound(
            "This attribution does not exist.", code=AttributionErrorCode.ATTRIBUTION_NOT_FOUND
        )
    return found


def rules_for_staff() -> QuerySet[AttributionRule]:
    """Every version, newest first, ``is_current`` on the one in force now (version 1, the
    default, is created on first use)."""
    current = rule_current().version
    return AttributionRule.objects.annotate(
        is_current=Case(When(version=current, then=Value(True)), default=Value(False))
    ).order_by("-version")
