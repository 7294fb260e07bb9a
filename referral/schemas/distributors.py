"""Distributors' and the referral policy's HTTP shapes (referral/api/distributors.py). Inputs
are strict ``BodyIn`` bodies; outputs read the models or the selectors' dicts
(referral/selectors/distributors.py). Money is integer fen. A distributor's own views never carry
a customer's personal data (no openid, phone or nickname); only the staff shapes name the
customer."""

from datetime import datetime
from typing import Any, Literal

from ninja import Field, Schema

from core.schemas import BodyIn, Fen, Id, trimmed
from referral.services import distributors as services

Channel = Literal[
    "wechat_group",
    "moments",
    "wecom",
    "official_account",
    "douyin",
    "xiaohongshu",
    "offline",
    "other",
]
Onboarding = Literal["everyone", "spend_threshold", "application", "appointed"]
Recruit = Literal["none", "first_click", "last_click"]
DistributorStatus = Literal["applied", "active", "suspended", "rejected"]
DistributorKind = Literal["koc", "kos"]

DisplayName = trimmed(min_length=1, max_length=services.DISPLAY_NAME_MAX)
Note = trimmed(max_length=services.NOTE_MAX)
Reason = trimmed(max_length=services.REASON_MAX)
RequiredReason = trimmed(min_length=1, max_length=services.REASON_MAX)
Channels = list[Channel]
CHANNELS_TEXT = f"Where they share: up to {services.MAX_CHANNELS}, each once."


# --- inputs ---------------------------------------------------------------------------------------
class DistributorJoinIn(BodyIn):
    display_name: DisplayName = Field(..., description="Shown to your downline and buyers.")
    channels: Channels = Field(
        default_factory=list, max_length=services.MAX_CHANNELS, description=CHANNELS_TEXT
    )
    note: Note = Field("", description="For the operator reviewing an application.")


class DistributorProfilePatchIn(BodyIn):
    display_name: DisplayName | None = Field(None, description="Absent or null: kept.")
    channels: Channels | None = Field(
        None, max_length=services.MAX_CHANNELS, description=CHANNELS_TEXT + " Null: kept."
    )


class ReferralPolicyIn(BodyIn):
    onboarding: Onboarding
    spend_threshold: Fen = Field(
        ...,
        ge=0,
        le=services.SPEND_THRESHOLD_MAX,
        description="Fen of cumulative paid spend that qualifies (spend_threshold mode).",
    )
    recruit: Recruit = Field(..., description="Which link's distributor becomes the upline.")


class DistributorAppointIn(BodyIn):
    customer_id: Id = Field(..., ge=1)
    display_name: DisplayName
    kind: DistributorKind = "koc"
    upline_id: Id | None = Field(
        None, ge=1, description="An existing distributor; null: the recruit rule's (links)."
    )
    reason: Reason = ""


class DistributorDecisionIn(BodyIn):
    reason: Reason = Field("", description="Kept on the audit trail; shown to the distributor.")


class DistributorReasonIn(BodyIn):
    reason: RequiredReason = Field(
        ..., description="Required; kept on the audit trail and shown to the distributor."
    )


class DistributorReparentIn(BodyIn):
    upline_id: Id | None = Field(..., ge=1, description="The new upline; null: a root.")
    reason: RequiredReason = Field(..., description="Required; kept on the audit trail.")


class StaffDistributorFilter(Schema):
    status: DistributorStatus | None = None
    q: str | None = Field(None, max_length=64, description="Part of the display name.")


# --- outputs --------------------------------------------------------------------------------------
class ReferralProgramOut(Schema):
    onboarding: Onboarding
    spend_threshold: int = Field(..., description="Fen (spend_threshold mode).")
    spent: int | None = Field(
        ..., description="My cumulative paid spend, fen (spend_threshold mode only; else null)."
    )
    distributor_id: int | None
    distributor_status: DistributorStatus | None = Field(
        ..., description="Null: not a distributor."
    )
    can_join: bool = Field(..., description="Whether `POST /referral/distributor` would succeed.")


class DistributorOut(Schema):
    id: int
    display_name: str
    kind: DistributorKind
    channels: list[str]
    status: DistributorStatus
    onboarding: str
    upline_id: int | None
    depth: int
    application_note: str
    decision_reason: str
    created_at: datetime
    joined_at: datetime | None


class DistributorCardOut(Schema):
    id: int
    display_name: str
    kind: DistributorKind
    joined_at: datetime | None


class DistributorUplineOut(Schema):
    upline: DistributorCardOut | None
    depth: int = Field(..., description="My level in the tree: 0 at a root.")


class DistributorDownlineOut(Schema):
    id: int
    display_name: str
    kind: DistributorKind
    status: DistributorStatus
    level: int = Field(..., description="1: my direct downline, 2: theirs, ...")
    joined_at: datetime | None
    downline_count: int = Field(..., description="Their direct downline.")

    @staticmethod
    def resolve_id(row: dict[str, Any]) -> int:
        return row["distributor_id"]


class DistributorLevelCountOut(Schema):
    level: int
    count: int


class DistributorDownlineSummaryOut(Schema):
    total: int
    levels: list[DistributorLevelCountOut]


class ReferralPolicyOut(Schema):
    onboarding: Onboarding
    spend_threshold: int
    recruit: Recruit
    updated_at: datetime | None
    history: list[dict[str, Any]] = Field(
        ..., description="`{at, by (user id), changes: {field: [old, new]}}`, oldest first."
    )


class DistributorEventOut(Schema):
    id: int
    kind: str
    from_status: str
    to_status: str
    actor_id: int | None
    reason: str
    data: dict[str, Any]
    created_at: datetime


class StaffDistributorOut(DistributorOut):
    customer_id: int
    customer_nickname: str

    @staticmethod
    def resolve_customer_nickname(distributor) -> str:
        return distributor.customer.nickname


class StaffDistributorDetailOut(StaffDistributorOut):
    upline: DistributorCardOut | None
    downline: DistributorDownlineSummaryOut
    recent_events: list[DistributorEventOut]

    @staticmethod
    def resolve_downline(distributor) -> dict[str, Any]:
        return distributor.downline_summary
