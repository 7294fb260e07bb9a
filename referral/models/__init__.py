"""Referral's models: who is a distributor and under whom, what they share and who opened it,
and which distributor (under which rule version) caused each paid order.

Amounts are fen. The tree keeps its ancestry in a closure table (``DistributorAncestry``), so
ancestor and downline-by-level queries are index lookups whatever the tree's size. Paid levels
are capped at ``referral.rules.MAX_PAID_LEVELS`` (2) by a check constraint on
``AttributionLevel`` as well as in the services."""

from referral.models.attribution import (
    Attribution,
    AttributionLevel,
    AttributionRefund,
    AttributionRule,
    Binding,
)
from referral.models.distributors import (
    Distributor,
    DistributorAncestry,
    DistributorEvent,
    ReferralPolicy,
)
from referral.models.fraud import FraudFlag
from referral.models.leads import Lead, LeadEvent
from referral.models.links import Click, ClickGate, ExclusiveCode, ShareLink, TrackingOptOut

__all__ = [
    "Attribution",
    "AttributionLevel",
    "AttributionRefund",
    "AttributionRule",
    "Binding",
    "Click",
    "ClickGate",
    "Distributor",
    "DistributorAncestry",
    "DistributorEvent",
    "ExclusiveCode",
    "FraudFlag",
    "Lead",
    "LeadEvent",
    "ReferralPolicy",
    "ShareLink",
    "TrackingOptOut",
]
