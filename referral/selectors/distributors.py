"""Reads of distributors, the policy and the tree (referral/api/distributors.py).

The downline comes from the closure table alone (``ancestor = me``, ``depth = level``: the
``ancestry_downline`` index), so a distributor's reads touch their own subtree's rows and never
scan the tree; nothing here exposes a customer's personal data to a distributor (downline items
carry distributor ids, display names and statuses, never an openid, phone or nickname)."""

from typing import Any

from django.db.models import (
    BigIntegerField,
    Count,
    F,
    IntegerField,
    OuterRef,
    QuerySet,
    Subquery,
    Sum,
    Value,
)
from django.db.models.functions import Coalesce

from core.errors import NotFound
from referral.error_codes import DistributorErrorCode
from referral.models import Distributor, DistributorAncestry, DistributorEvent, ReferralPolicy
from shop.models import Customer, Order

POLICY_PK = 1
RECENT_EVENTS = 20
PAID_ORDER_STATUSES = (
    Order.Status.PAID,
    Order.Status.FULFILLED,
    Order.Status.COMPLETED,
    Order.Status.PARTIALLY_REFUNDED,
)
_NET_PAID = F("total") - F("refunded_amount")


# --- the policy and a customer's spend ------------------------------------------------------------
def policy_current() -> ReferralPolicy:
    """The policy row, or (before any operator saved one) an unsaved row with the defaults."""
    return ReferralPolicy.objects.filter(pk=POLICY_PK).first() or ReferralPolicy(pk=POLICY_PK)


def customer_paid_spend(*, customer_id: int) -> int:
    """Cumulative paid spend, fen: ``total - refunded_amount`` of the customer's orders in paid,
    fulfilled, completed or partially refunded."""
    spent = (
        Order.objects.filter(customer_id=customer_id, status__in=PAID_ORDER_STATUSES)
        .aggregate(spent=Sum(_NET_PAID))
        .get("spent")
    )
    return int(spent or 0)


def paid_spend_of_customer(customer: OuterRef) -> Coalesce:
    """``customer_paid_spend`` as a subquery expression, for annotating a customer query."""
    spent = (
        Order.objects.filter(customer_id=customer, status__in=PAID_ORDER_STATUSES)
        .order_by()
        .values("customer_id")
        .annotate(spent=Sum(_NET_PAID))
        .values("spent")
    )
    return Coalesce(Subquery(spent, output_field=BigIntegerField()), Value(0))


def program_for(*, customer: Customer) -> dict[str, Any]:
    """What a shopper sees of the programme: the mode, the threshold, their own status and (in
    spend mode) their paid spend, and whether a join would be accepted now."""
    policy = policy_current()
    mine = Distributor.objects.filter(customer=customer).values("pk", "status").first()
    spend_mode = policy.onboarding == ReferralPolicy.Onboarding.SPEND_THRESHOLD
    spent = customer_paid_spend(customer_id=customer.pk) if spend_mode else None
    status = mine["status"] if mine else None
    can_join = (
        policy.onboarding != ReferralPolicy.Onboarding.APPOINTED
        and status in (None, Distributor.Status.REJECTED)
        and (spent is None or spent >= policy.spend_threshold)
    )
    return {
        "onboarding": policy.onboarding,
        "spend_threshold": policy.spend_threshold,
        "spent": spent,
        "distributor_id": mine["pk"] if mine else None,
        "distributor_status": status,
        "can_join": can_join,
    }


# --- a distributor's own view ---------------------------------------------------------------------
def distributor_of(*, customer: Customer) -> Distributor:
    """The customer's own distributor row (any status), with its upline; else 404
    ``not_a_distributor``."""
    distributor = Distributor.objects.select_related("upline").filter(customer=customer).first()
    if distributor is None:
        raise NotFound("You are not a distributor.", code=DistributorErrorCode.NOT_A_DISTRIBUTOR)
    return distributor


def upline_of(*, distributor: Distributor) -> dict[str, Any]:
    """My direct upline's public card (or None) and my depth in the tree."""
    return {"upline": distributor.upline, "depth": distributor.depth}


def _direct_downline_count(descendant: OuterRef) -> Coalesce:
    counted = (
        DistributorAncestry.objects.filter(ancestor_id=descendant, depth=1)
        .order_by()
        .values("ancestor_id")
        .annotate(n=Count("id"))
        .values("n")
    )
    return Coalesce(Subquery(counted, output_field=IntegerField()), Value(0))


def downline_of(*, distributor_id: int, level: int | None = None) -> QuerySet:
    """My downline from the closure table: level 1 my direct downline, 2 theirs, ...; all levels
    when ``level`` is None. Ordered by level, then join date (never-active ones last), then id.
    Rows are dicts: distributor_id, display_name, kind, status, level, joined_at,
    downline_count (their direct downline)."""
    rows = DistributorAncestry.objects.filter(ancestor_id=distributor_id)
    if level is not None:
        rows = rows.filter(depth=level)
    return (
        rows.annotate(downline_count=_direct_downline_count(OuterRef("descendant_id")))
        .order_by("depth", F("descendant__joined_at").asc(nulls_last=True), "descendant_id")
        .values(
            "downline_count",
            distributor_id=F("descendant_id"),
            display_name=F("descendant__display_name"),
            kind=F("descendant__kind"),
            status=F("descendant__status"),
            level=F("depth"),
            joined_at=F("descendant__joined_at"),
        )
    )


def downline_levels(*, distributor_id: int) -> dict[str, Any]:
    """How many distributors are at each level below me (one GROUP BY), and in all."""
    levels = [
        {"level": row["depth"], "count": row["count"]}
        for row in DistributorAncestry.objects.filter(ancestor_id=distributor_id)
        .values("depth")
        .annotate(count=Count("id"))
        .order_by("depth")
    ]
    return {"total": sum(row["count"] for row in levels), "levels": levels}


# --- staff ----------------------------------------------------------------------------------------
def distributors_for_staff(
    *, status: str | None = None, q: str | None = None
) -> QuerySet[Distributor]:
    """All distributors, newest first; ``status`` filters, ``q`` matches the display name."""
    found = Distributor.objects.select_related("customer").order_by("-id")
    if status:
        found = found.filter(status=status)
    if q:
        found = found.filter(display_name__icontains=q)
    return found


def distributor_for_staff(*, distributor_id: int) -> Distributor:
    """One distributor with its customer and upline, its downline per level
    (``downline``: total and levels) and its latest events (``recent_events``, newest first);
    404 ``distributor_not_found``."""
    distributor = (
        Distributor.objects.select_related("customer", "upline").filter(pk=distributor_id).first()
    )
    if distributor is None:
        raise NotFound("No such distributor.", code=DistributorErrorCode.DISTRIBUTOR_NOT_FOUND)
    distributor.downline_summary = downline_levels(distributor_id=distributor.pk)  # type: ignore[attr-defined]
    distributor.recent_events = list(  # type: ignore[attr-defined]
        DistributorEvent.objects.filter(distributor=distributor).order_by("-id")[:RECENT_EVENTS]
    )
    return distributor


def distributor_events_for_staff(*, distributor_id: int) -> QuerySet[DistributorEvent]:
    """A distributor's audit trail, newest first; 404 ``distributor_not_found``."""
    if not Distributor.objects.filter(pk=distributor_id).exists():
        raise NotFound("No such distributor.", code=DistributorErrorCode.DISTRIBUTOR_NOT_FOUND)
    return DistributorEvent.objects.filter(distributor_id=distributor_id).order_by("-id")
