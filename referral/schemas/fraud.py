"""Fraud flags over HTTP: the operators' view and review bodies."""

from datetime import datetime
from typing import Any, Literal

from ninja import Field, Schema

from core.schemas import BodyIn, trimmed

FraudFlagKind = Literal[
    "self_referral", "click_spam", "device_cluster", "high_refund_rate", "referral_cycle"
]
FraudFlagStatus = Literal["open", "cleared", "confirmed"]
OptionalNote = trimmed(max_length=500)


class ReferralFraudFlagOut(Schema):
    id: int
    kind: FraudFlagKind
    status: FraudFlagStatus
    distributor_id: int
    distributor_name: str = Field(..., description="The distributor's display name.")
    attribution_id: int | None = Field(
        ..., description="The attribution flagged; None for a distributor-wide flag."
    )
    order_id: int | None = Field(..., description="The attributed order, if any.")
    dedupe_key: str = Field(..., description="The signal's identity: each is flagged once.")
    details: dict[str, Any] = Field(..., description="The signal's evidence.")
    created_at: datetime
    reviewed_by_id: int | None
    reviewed_at: datetime | None
    review_note: str


class ReferralFraudFlagFilter(Schema):
    status: FraudFlagStatus | None = None
    kind: FraudFlagKind | None = None
    distributor_id: int | None = Field(None, ge=1, le=2**63 - 1)


class ReferralFraudFlagClearIn(BodyIn):
    note: OptionalNote = Field("", description="Why it is a false alarm (optional).")


class ReferralFraudFlagConfirmIn(BodyIn):
    note: OptionalNote = Field(
        ..., description="Why it is fraud: required, and not blank (422 fraud_flag_note_invalid)."
    )
