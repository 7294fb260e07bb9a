"""Leads' HTTP shapes (referral/api/leads.py). Inputs are strict ``BodyIn`` bodies; the public
form's answer echoes nothing personal back."""

from datetime import datetime
from typing import Literal

from ninja import Field, Schema

from core.schemas import BodyIn, Id, StrictBool
from referral.services import leads as services

LeadStatus = Literal["new", "contacted", "converted", "lost"]
LeadTarget = Literal["contacted", "converted", "lost"]


class LeadSubmitIn(BodyIn):
    code: str = Field(
        ..., min_length=1, max_length=16, description="The lead form link's short code (scene)."
    )
    name: str = Field(..., max_length=services.NAME_MAX, description="1-64 characters.")
    phone: str = Field(
        ...,
        max_length=32,
        description="Digits with an optional leading `+` (5-20 digits; spaces and `-` dropped).",
    )
    interest: str = Field("", max_length=services.INTEREST_MAX)
    consent: StrictBool = Field(
        ..., description="The visitor agreed to be contacted (must be true)."
    )


class ReferralLeadSubmittedOut(Schema):
    lead_id: int
    status: LeadStatus

    @staticmethod
    def resolve_lead_id(obj) -> int:
        return obj.pk


class LeadStatusIn(BodyIn):
    status: LeadTarget
    note: str = Field("", max_length=services.NOTE_MAX)
    order_id: Id | None = Field(
        None, description="Converting: the paid order attributed to me that the lead placed."
    )


class ReferralLeadEventOut(Schema):
    from_status: str = Field(..., description="Empty for the submission.")
    to_status: LeadStatus
    actor_id: int | None = Field(None, description="Null: the form, or the system.")
    note: str
    created_at: datetime


class ReferralLeadOut(Schema):
    """A lead as its distributor sees it: the person gave their details to them."""

    id: int
    name: str
    phone: str
    interest: str
    status: LeadStatus
    consent_text: str = Field(..., description="What the person agreed to.")
    link_id: int | None
    order_id: int | None = Field(None, description="The order it converted to.")
    created_at: datetime
    updated_at: datetime
    events: list[ReferralLeadEventOut]

    @staticmethod
    def resolve_events(obj) -> list:
        return list(obj.events.all())


class ReferralStaffLeadOut(ReferralLeadOut):
    distributor_id: int
    customer_id: int | None = Field(None, description="The customer, when known.")
