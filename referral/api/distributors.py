"""Distributors over HTTP: the programme and joining it, my distributor profile, my upline and my
downline (shoppers and distributors, bearer token of a customer), and the operators' policy,
distributor list, decisions and re-parenting (staff). Parse, call one service or selector,
answer (rules: referral/services/distributors.py)."""

from django.http import HttpRequest
from ninja import Query, Router
from ninja.pagination import paginate
from ninja.responses import Status

from core.http import bearer_auth, errors, examples, request_user, require_perm, staff_auth
from referral.error_codes import DistributorErrorCode
from referral.schemas.distributors import (
    DistributorAppointIn,
    DistributorDecisionIn,
    DistributorDownlineOut,
    DistributorDownlineSummaryOut,
    DistributorEventOut,
    DistributorJoinIn,
    DistributorOut,
    DistributorProfilePatchIn,
    DistributorReasonIn,
    DistributorReparentIn,
    DistributorUplineOut,
    ReferralPolicyIn,
    ReferralPolicyOut,
    ReferralProgramOut,
    StaffDistributorDetailOut,
    StaffDistributorFilter,
    StaffDistributorOut,
)
from referral.selectors import distributors as selectors
from referral.services import distributors as services
from shop.error_codes import CustomerErrorCode
from shop.selectors.customers import customer_of

router = Router(tags=["referral"])

STAFF_TAGS = ["staff: referral"]
VIEW = "referral.view_distributor"
CHANGE = "referral.change_distributor"
VIEW_POLICY = "referral.view_referralpolicy"
CHANGE_POLICY = "referral.change_referralpolicy"
MAX_LEVEL = 1000

D = DistributorErrorCode
SHOPPER = "Shopper (bearer token of a customer; `not_a_customer` otherwise)."
DISTRIBUTOR = (
    "A distributor (bearer token of a customer; `not_a_customer` otherwise; 404 "
    "`not_a_distributor` for a customer who never joined)."
)

# --- examples -------------------------------------------------------------------------------------
ME = {
    "id": 12,
    "display_name": "Aunt Mei's picks",
    "kind": "koc",
    "channels": ["wechat_group", "moments"],
    "status": "active",
    "onboarding": "joined",
    "upline_id": 3,
    "depth": 1,
    "application_note": "",
    "decision_reason": "",
    "created_at": "2025-06-01T08:00:00Z",
    "joined_at": "2025-06-01T08:00:00Z",
}
CARD = {"id": 3, "display_name": "Xiao Li", "kind": "koc", "joined_at": "2025-05-01T08:00:00Z"}
STAFF_ME = {**ME, "customer_id": 40, "customer_nickname": "Mei"}
EVENT = {
    "id": 31,
    "kind": "approved",
    "from_status": "applied",
    "to_status": "active",
    "actor_id": 2,
    "reason": "Runs a building group of 300.",
    "data": {},
    "created_at": "2025-06-01T09:00:00Z",
}
POLICY = {
    "onboarding": "application",
    "spend_threshold": 0,
    "recruit": "last_click",
    "updated_at": "2025-06-01T07:00:00Z",
    "history": [
        {
            "at": "2025-06-01T07:00:00+00:00",
            "by": 2,
            "changes": {"onboarding": ["everyone", "application"]},
        }
    ],
}
PAGE = {"count": 1, "limit": 20, "offset": 0}


# --- the programme and joining it -----------------------------------------------------------------
@router.get(
    "/referral/program",
    response=ReferralProgramOut,
    auth=bearer_auth,
    summary="The distributor programme: how to join, and where I stand",
    description=(
        "The onboarding mode (`everyone`, `spend_threshold`, `application`, `appointed`) and the "
        "spend threshold (fen); for me: my distributor status (null if none), my cumulative "
        "paid spend (fen; in `spend_threshold` mode only, else null) and whether joining now "
        "would succeed (`can_join`). Joining never costs anything. " + SHOPPER
    ),
)
@examples(
    response={
        "onboarding": "spend_threshold",
        "spend_threshold": 10000,
        "spent": 3980,
        "distributor_id": None,
        "distributor_status": None,
        "can_join": False,
    }
)
@errors(CustomerErrorCode.NOT_A_CUSTOMER)
def program_get(request: HttpRequest):
    return selectors.program_for(customer=customer_of(request_user(request)))


@router.post(
    "/referral/distributor",
    response={201: DistributorOut},
    auth=bearer_auth,
    summary="Become a distributor (join or apply)",
    description=(
        "Join the programme under its onboarding mode: `everyone`, active at once; "
        "`spend_threshold`, active if my cumulative paid spend reached the threshold, else 409 "
        "`spend_threshold_not_met` (`details.spent`, `details.threshold`); `application`, "
        "status `applied` until an operator decides; `appointed`, 409 `onboarding_closed`. "
        "My upline is the distributor of the link that brought me (the policy's recruit rule). "
        "Already one: 409 `already_distributor` (a rejected applicant may apply again). Free of "
        "charge. " + SHOPPER
    ),
)
@examples(
    request={
        "display_name": "Aunt Mei's picks",
        "channels": ["wechat_group", "moments"],
        "note": "I run our building's group.",
    },
    response={**ME, "status": "applied", "onboarding": "application", "joined_at": None},
)
@errors(
    CustomerErrorCode.NOT_A_CUSTOMER,
    D.ONBOARDING_CLOSED,
    D.SPEND_THRESHOLD_NOT_MET,
    D.ALREADY_DISTRIBUTOR,
    D.PROFILE_INVALID,
)
def distributor_join(request: HttpRequest, payload: DistributorJoinIn):
    customer = customer_of(request_user(request))
    distributor = services.distributor_join(customer=customer, **payload.dict())
    return Status(201, DistributorOut.from_orm(distributor))


# --- my profile, upline and downline --------------------------------------------------------------
@router.get(
    "/referral/distributor/me",
    response=DistributorOut,
    auth=bearer_auth,
    summary="My distributor profile",
    description=(
        "My distributor profile: display name, channels, status (with the operator's latest "
        "reason), upline id, depth in the tree, join date. " + DISTRIBUTOR
    ),
)
@examples(response=ME)
@errors(CustomerErrorCode.NOT_A_CUSTOMER, D.NOT_A_DISTRIBUTOR)
def distributor_me(request: HttpRequest):
    return selectors.distributor_of(customer=customer_of(request_user(request)))


@router.patch(
    "/referral/distributor/me",
    response=DistributorOut,
    auth=bearer_auth,
    summary="Change my display name or channels",
    description=(
        "Change the fields sent (display name; channels: up to 8 of `wechat_group`, `moments`, "
        "`wecom`, `official_account`, `douyin`, `xiaohongshu`, `offline`, `other`, each once); "
        "absent or null fields are kept. Recorded on my audit trail. " + DISTRIBUTOR + " 422 "
        "`distributor_profile_invalid`."
    ),
)
@examples(request={"display_name": "Mei's fresh picks", "channels": ["wecom"]}, response=ME)
@errors(CustomerErrorCode.NOT_A_CUSTOMER, D.NOT_A_DISTRIBUTOR, D.PROFILE_INVALID)
def distributor_me_patch(request: HttpRequest, payload: DistributorProfilePatchIn):
    distributor = selectors.distributor_of(customer=customer_of(request_user(request)))
    changes = payload.dict(exclude_unset=True)
    return services.distributor_profile_update(
        distributor=distributor,
        display_name=changes.get("display_name"),
        channels=changes.get("channels"),
    )


@router.get(
    "/referral/distributor/me/upline",
    response=DistributorUplineOut,
    auth=bearer_auth,
    summary="My upline (who recruited me)",
    description=(
        "My direct upline's public card (id, display name, kind, join date), or null at a root, "
        "and my depth in the tree (0 at a root). " + DISTRIBUTOR
    ),
)
@examples(response={"upline": CARD, "depth": 1})
@errors(CustomerErrorCode.NOT_A_CUSTOMER, D.NOT_A_DISTRIBUTOR)
def distributor_me_upline(request: HttpRequest):
    distributor = selectors.distributor_of(customer=customer_of(request_user(request)))
    return selectors.upline_of(distributor=distributor)


@router.get(
    "/referral/distributor/me/downline",
    response=list[DistributorDownlineOut],
    auth=bearer_auth,
    summary="My downline, by level",
    description=(
        "The distributors below me, paginated: `level` 1 my direct downline, 2 theirs, and so "
        "on; without `level`, every level, ordered by level then join date. Each: distributor "
        "id, display name, kind, status, level, join date and how many direct downline they "
        "have. Only my own subtree, and nothing about customers. " + DISTRIBUTOR
    ),
)
@examples(
    response={
        "items": [
            {
                "id": 19,
                "display_name": "Lan's kitchen",
                "kind": "koc",
                "status": "active",
                "level": 1,
                "joined_at": "2025-06-03T10:00:00Z",
                "downline_count": 2,
            }
        ],
        **PAGE,
    }
)
@errors(CustomerErrorCode.NOT_A_CUSTOMER, D.NOT_A_DISTRIBUTOR)
@paginate
def distributor_me_downline(
    request: HttpRequest,
    level: int | None = Query(None, ge=1, le=MAX_LEVEL, description="Default: all levels."),
):
    distributor = selectors.distributor_of(customer=customer_of(request_user(request)))
    return selectors.downline_of(distributor_id=distributor.pk, level=level)


@router.get(
    "/referral/distributor/me/downline/summary",
    response=DistributorDownlineSummaryOut,
    auth=bearer_auth,
    summary="How many distributors are at each level below me",
    description=(
        "Counts of my downline per level (1: direct) and in all, levels with nobody left out. "
        + DISTRIBUTOR
    ),
)
@examples(response={"total": 5, "levels": [{"level": 1, "count": 2}, {"level": 2, "count": 3}]})
@errors(CustomerErrorCode.NOT_A_CUSTOMER, D.NOT_A_DISTRIBUTOR)
def distributor_me_downline_summary(request: HttpRequest):
    distributor = selectors.distributor_of(customer=customer_of(request_user(request)))
    return selectors.downline_levels(distributor_id=distributor.pk)


# --- staff: policy --------------------------------------------------------------------------------
@router.get(
    "/staff/referral/policy",
    response=ReferralPolicyOut,
    auth=staff_auth,
    tags=STAFF_TAGS,
    summary="Staff: the onboarding and recruiting policy, with its history",
    description=(
        "The onboarding mode, the spend threshold (fen), the recruit rule, and every change "
        "made (who, when, old and new values). Operators (staff bearer token) with "
        f"`{VIEW_POLICY}`."
    ),
)
@examples(response=POLICY)
def staff_policy_get(request: HttpRequest):
    require_perm(request, VIEW_POLICY)
    return services.policy_get()


@router.put(
    "/staff/referral/policy",
    response=ReferralPolicyOut,
    auth=staff_auth,
    tags=STAFF_TAGS,
    summary="Staff: set the onboarding and recruiting policy",
    description=(
        "Set all three: `onboarding` (`everyone`, `spend_threshold`, `application`, "
        "`appointed`), `spend_threshold` (fen of cumulative paid spend, for `spend_threshold`) "
        "and `recruit` (`last_click`, `first_click`, `none`: which link's distributor becomes a "
        "new distributor's upline). Each change is appended to `history`; the same body again "
        "changes nothing. There is no fee to set: joining is always free. Operators (staff "
        f"bearer token) with `{CHANGE_POLICY}`. 422 `referral_policy_invalid`."
    ),
)
@examples(
    request={"onboarding": "application", "spend_threshold": 0, "recruit": "last_click"},
    response=POLICY,
)
@errors(D.POLICY_INVALID)
def staff_policy_put(request: HttpRequest, payload: ReferralPolicyIn):
    require_perm(request, CHANGE_POLICY)
    return services.policy_update(actor=request_user(request), **payload.dict())


# --- staff: distributors --------------------------------------------------------------------------
@router.get(
    "/staff/referral/distributors",
    response=list[StaffDistributorOut],
    auth=staff_auth,
    tags=STAFF_TAGS,
    summary="Staff: distributors, filtered",
    description=(
        "All distributors, newest first, paginated; `status` filters, `q` matches part of the "
        f"display name. Operators (staff bearer token) with `{VIEW}`."
    ),
)
@examples(response={"items": [STAFF_ME], **PAGE})
@paginate
def staff_distributor_list(request: HttpRequest, filters: Query[StaffDistributorFilter]):
    require_perm(request, VIEW)
    return selectors.distributors_for_staff(status=filters.status, q=filters.q)


@router.post(
    "/staff/referral/distributors",
    response={201: StaffDistributorOut},
    auth=staff_auth,
    tags=STAFF_TAGS,
    summary="Staff: appoint a distributor",
    description=(
        "Make a customer an active distributor (KOC or KOS), in any onboarding mode: a new one, "
        "or their pending or rejected application. `upline_id` places them under an existing "
        "distributor; without it a new one gets the upline of the link that brought them. "
        f"Operators (staff bearer token) with `{CHANGE}`. 404 `customer_not_found`, "
        "`distributor_not_found` (the upline); 409 `already_distributor` (active or "
        "suspended), `referral_cycle`; 422 `distributor_profile_invalid`."
    ),
)
@examples(
    request={
        "customer_id": 40,
        "display_name": "Aunt Mei's picks",
        "kind": "kos",
        "upline_id": 3,
        "reason": "Store staff, promotes in the lobby.",
    },
    response={**STAFF_ME, "kind": "kos", "onboarding": "appointed"},
)
@errors(
    D.CUSTOMER_NOT_FOUND,
    D.DISTRIBUTOR_NOT_FOUND,
    D.ALREADY_DISTRIBUTOR,
    D.WOULD_CYCLE,
    D.PROFILE_INVALID,
    D.REASON_INVALID,
)
def staff_distributor_appoint(request: HttpRequest, payload: DistributorAppointIn):
    require_perm(request, CHANGE)
    distributor = services.distributor_appoint(actor=request_user(request), **payload.dict())
    return Status(201, _staff_view(distributor.pk))


@router.get(
    "/staff/referral/distributors/{distributor_id}",
    response=StaffDistributorDetailOut,
    auth=staff_auth,
    tags=STAFF_TAGS,
    summary="Staff: one distributor, with upline, downline counts and recent events",
    description=(
        "One distributor: profile and customer, upline card, depth, downline counts per level, "
        f"and the latest {selectors.RECENT_EVENTS} audit events (newest first). Operators (staff "
        f"bearer token) with `{VIEW}`. Unknown: 404 `distributor_not_found`."
    ),
)
@examples(
    response={
        **STAFF_ME,
        "upline": CARD,
        "downline": {"total": 2, "levels": [{"level": 1, "count": 2}]},
        "recent_events": [EVENT],
    }
)
@errors(D.DISTRIBUTOR_NOT_FOUND)
def staff_distributor_detail(request: HttpRequest, distributor_id: int):
    require_perm(request, VIEW)
    return selectors.distributor_for_staff(distributor_id=distributor_id)


@router.get(
    "/staff/referral/distributors/{distributor_id}/events",
    response=list[DistributorEventOut],
    auth=staff_auth,
    tags=STAFF_TAGS,
    summary="Staff: a distributor's audit trail",
    description=(
        "Every change of a distributor (joined, applied, qualified, appointed, approved, "
        "rejected, suspended, reinstated, re-parented, profile updated) with who, from and to "
        f"which status, why and details; newest first, paginated. Operators (staff bearer "
        f"token) with `{VIEW}`. Unknown: 404 `distributor_not_found`."
    ),
)
@examples(response={"items": [EVENT], **PAGE})
@errors(D.DISTRIBUTOR_NOT_FOUND)
@paginate
def staff_distributor_events(request: HttpRequest, distributor_id: int):
    require_perm(request, VIEW)
    return selectors.distributor_events_for_staff(distributor_id=distributor_id)


def _staff_view(distributor_id: int) -> StaffDistributorOut:
    return StaffDistributorOut.from_orm(selectors.distributors_for_staff().get(pk=distributor_id))


DECISION_TEXT = (
    f" Recorded on the audit trail; the distributor is notified. Operators (staff bearer token) "
    f"with `{CHANGE}`. Unknown: 404 `distributor_not_found`; from another status: 409 "
    "`illegal_transition` (`details.from`, `details.to`)."
)
DECISION_ERRORS = (D.DISTRIBUTOR_NOT_FOUND, D.ILLEGAL_TRANSITION, D.REASON_INVALID)


@router.post(
    "/staff/referral/distributors/{distributor_id}/approve",
    response=StaffDistributorOut,
    auth=staff_auth,
    tags=STAFF_TAGS,
    summary="Staff: approve an application",
    description="An applied distributor becomes active (joined now)." + DECISION_TEXT,
)
@examples(request={"reason": "Runs a building group of 300."}, response=STAFF_ME)
@errors(*DECISION_ERRORS)
def staff_distributor_approve(
    request: HttpRequest, distributor_id: int, payload: DistributorDecisionIn
):
    require_perm(request, CHANGE)
    services.distributor_approve(
        distributor_id=distributor_id, actor=request_user(request), reason=payload.reason
    )
    return _staff_view(distributor_id)


@router.post(
    "/staff/referral/distributors/{distributor_id}/reject",
    response=StaffDistributorOut,
    auth=staff_auth,
    tags=STAFF_TAGS,
    summary="Staff: reject an application (with a reason)",
    description=(
        "An applied distributor is rejected, with a reason (required); they may apply again."
        + DECISION_TEXT
    ),
)
@examples(
    request={"reason": "Please add the group you share in."},
    response={**STAFF_ME, "status": "rejected", "joined_at": None},
)
@errors(*DECISION_ERRORS)
def staff_distributor_reject(
    request: HttpRequest, distributor_id: int, payload: DistributorReasonIn
):
    require_perm(request, CHANGE)
    services.distributor_reject(
        distributor_id=distributor_id, actor=request_user(request), reason=payload.reason
    )
    return _staff_view(distributor_id)


@router.post(
    "/staff/referral/distributors/{distributor_id}/suspend",
    response=StaffDistributorOut,
    auth=staff_auth,
    tags=STAFF_TAGS,
    summary="Staff: suspend an active distributor (with a reason)",
    description=(
        "An active distributor is suspended, with a reason (required): a suspended distributor "
        "recruits no one and is paid nothing until reinstated." + DECISION_TEXT
    ),
)
@examples(request={"reason": "Spam in other groups."}, response={**STAFF_ME, "status": "suspended"})
@errors(*DECISION_ERRORS)
def staff_distributor_suspend(
    request: HttpRequest, distributor_id: int, payload: DistributorReasonIn
):
    require_perm(request, CHANGE)
    services.distributor_suspend(
        distributor_id=distributor_id, actor=request_user(request), reason=payload.reason
    )
    return _staff_view(distributor_id)


@router.post(
    "/staff/referral/distributors/{distributor_id}/reinstate",
    response=StaffDistributorOut,
    auth=staff_auth,
    tags=STAFF_TAGS,
    summary="Staff: reinstate a suspended distributor",
    description="A suspended distributor becomes active again." + DECISION_TEXT,
)
@examples(request={"reason": "Appeal accepted."}, response=STAFF_ME)
@errors(*DECISION_ERRORS)
def staff_distributor_reinstate(
    request: HttpRequest, distributor_id: int, payload: DistributorDecisionIn
):
    require_perm(request, CHANGE)
    services.distributor_reinstate(
        distributor_id=distributor_id, actor=request_user(request), reason=payload.reason
    )
    return _staff_view(distributor_id)


@router.post(
    "/staff/referral/distributors/{distributor_id}/reparent",
    response=StaffDistributorOut,
    auth=staff_auth,
    tags=STAFF_TAGS,
    summary="Staff: move a distributor (and its downline) under another upline",
    description=(
        "Move a distributor with its whole subtree under `upline_id` (null: make it a root), "
        "with a reason (required), recorded on its audit trail (old and new upline). Past "
        "attributions keep the upline chain they were made with. Under the current upline: "
        "nothing changes. Operators (staff bearer token) with "
        f"`{CHANGE}`. Unknown distributor or upline: 404 `distributor_not_found`; the upline "
        "is the distributor itself or in its downline: 409 `referral_cycle`, nothing changes."
    ),
)
@examples(
    request={"upline_id": 5, "reason": "Recruited offline by Xiao Li; link was missing."},
    response={**STAFF_ME, "upline_id": 5, "depth": 2},
)
@errors(D.DISTRIBUTOR_NOT_FOUND, D.WOULD_CYCLE, D.REASON_INVALID)
def staff_distributor_reparent(
    request: HttpRequest, distributor_id: int, payload: DistributorReparentIn
):
    require_perm(request, CHANGE)
    services.distributor_reparent(
        distributor_id=distributor_id,
        upline_id=payload.upline_id,
        actor=request_user(request),
        reason=payload.reason,
    )
    return _staff_view(distributor_id)
