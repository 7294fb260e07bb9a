"""Fraud flags over HTTP, for operators: the list (filtered, newest first), one flag, and its
review (clear or confirm). Parse, call one service or selector, answer (rules:
referral/services/fraud.py)."""

from django.http import HttpRequest
from ninja import Query, Router
from ninja.pagination import paginate

from core.http import errors, examples, request_user, require_perm, staff_auth
from referral.error_codes import FraudErrorCode
from referral.schemas.fraud import (
    ReferralFraudFlagClearIn,
    ReferralFraudFlagConfirmIn,
    ReferralFraudFlagFilter,
    ReferralFraudFlagOut,
)
from referral.selectors import fraud as selectors
from referral.services import fraud as services

router = Router(tags=["staff: referral fraud"])

VIEW_PERM = "referral.view_fraudflag"
CHANGE_PERM = "referral.change_fraudflag"
REVIEW_CODES = (FraudErrorCode.FLAG_NOT_FOUND, FraudErrorCode.FLAG_ALREADY_REVIEWED)

FLAG_EXAMPLE = {
    "id": 12,
    "kind": "self_referral",
    "status": "open",
    "distributor_id": 4,
    "distributor_name": "Ming's picks",
    "attribution_id": 310,
    "order_id": 2301,
    "dedupe_key": "self_referral:310",
    "details": {
        "matched": ["device", "ip"],
        "order_id": 2301,
        "buyer_customer_id": 88,
        "distributor_customer_id": 7,
    },
    "created_at": "2025-06-05T10:00:00Z",
    "reviewed_by_id": None,
    "reviewed_at": None,
    "review_note": "",
}


@router.get(
    "/staff/referral/fraud-flags",
    response=list[ReferralFraudFlagOut],
    auth=staff_auth,
    summary="Staff: fraud flags",
    description=(
        "Fraud flags, newest first, paginated, filtered by `status` (open, cleared, confirmed), "
        "`kind` (self_referral, click_spam, device_cluster, high_refund_rate, referral_cycle) "
        "and `distributor_id`. An open flag holds the commissions of its attribution (or, "
        "without one, of its distributor) until reviewed. Operators (staff bearer token) with "
        "`referral.view_fraudflag`; without it 403 `permission_denied`."
    ),
)
@examples(response={"items": [FLAG_EXAMPLE], "count": 1, "limit": 20, "offset": 0})
@paginate
def fraud_flag_list(request: HttpRequest, filters: Query[ReferralFraudFlagFilter]):
    require_perm(request, VIEW_PERM)
    return selectors.flags_for_staff(**filters.dict())


@router.get(
    "/staff/referral/fraud-flags/{flag_id}",
    response=ReferralFraudFlagOut,
    auth=staff_auth,
    summary="Staff: one fraud flag",
    description=(
        "One fraud flag with its evidence (`details`) and review. Operators with "
        "`referral.view_fraudflag`. Unknown: 404 `fraud_flag_not_found`."
    ),
)
@examples(response=FLAG_EXAMPLE)
@errors(FraudErrorCode.FLAG_NOT_FOUND)
def fraud_flag_detail(request: HttpRequest, flag_id: int):
    require_perm(request, VIEW_PERM)
    return selectors.flag_for_staff(flag_id=flag_id)


@router.post(
    "/staff/referral/fraud-flags/{flag_id}/clear",
    response=ReferralFraudFlagOut,
    auth=staff_auth,
    summary="Staff: clear a fraud flag (false alarm)",
    description=(
        "Clear an open flag: it stops holding commissions, and `fraud_flag_changed` is "
        "announced. The note (optional, at most 500 characters) is kept with the reviewer and "
        "the time. A review is final. Operators with `referral.change_fraudflag`. Unknown: 404 "
        "`fraud_flag_not_found`; already cleared or confirmed: 409 "
        "`fraud_flag_already_reviewed` (`details.status`)."
    ),
)
@examples(
    request={"note": "Family members sharing one phone."},
    response={
        **FLAG_EXAMPLE,
        "status": "cleared",
        "reviewed_by_id": 2,
        "reviewed_at": "2025-06-05T12:00:00Z",
        "review_note": "Family members sharing one phone.",
    },
)
@errors(*REVIEW_CODES)
def fraud_flag_clear(request: HttpRequest, flag_id: int, payload: ReferralFraudFlagClearIn):
    require_perm(request, CHANGE_PERM)
    services.flag_clear(flag_id=flag_id, actor=request_user(request), note=payload.note)
    return selectors.flag_for_staff(flag_id=flag_id)


@router.post(
    "/staff/referral/fraud-flags/{flag_id}/confirm",
    response=ReferralFraudFlagOut,
    auth=staff_auth,
    summary="Staff: confirm a fraud flag (fraud)",
    description=(
        "Confirm an open flag: its commissions are voided, and `fraud_flag_changed` is "
        "announced. A note saying why is required (1 to 500 characters; blank: 422 "
        "`fraud_flag_note_invalid`). A review is final. Operators with "
        "`referral.change_fraudflag`. Unknown: 404 `fraud_flag_not_found`; already cleared or "
        "confirmed: 409 `fraud_flag_already_reviewed` (`details.status`)."
    ),
)
@examples(
    request={"note": "Same device as the distributor on 14 orders."},
    response={
        **FLAG_EXAMPLE,
        "status": "confirmed",
        "reviewed_by_id": 2,
        "reviewed_at": "2025-06-05T12:00:00Z",
        "review_note": "Same device as the distributor on 14 orders.",
    },
)
@errors(*REVIEW_CODES, FraudErrorCode.FLAG_NOTE_INVALID)
def fraud_flag_confirm(request: HttpRequest, flag_id: int, payload: ReferralFraudFlagConfirmIn):
    require_perm(request, CHANGE_PERM)
    services.flag_confirm(flag_id=flag_id, actor=request_user(request), note=payload.note)
    return selectors.flag_for_staff(flag_id=flag_id)
