"""Exclusive codes over HTTP: operators issue, list and deactivate them; a distributor lists
their own to share. Parse, call one service, answer (rules: referral/services/codes.py)."""

from django.http import HttpRequest
from ninja import Router
from ninja.pagination import paginate
from ninja.responses import Status

from core.errors import NotFound
from core.http import (
    bearer_auth,
    errors,
    examples,
    idempotent,
    request_user,
    require_perm,
    staff_auth,
)
from referral.error_codes import DistributorErrorCode, ExclusiveCodeErrorCode
from referral.models import Distributor
from referral.schemas.codes import ExclusiveCodeIssueIn, ReferralExclusiveCodeOut, ReferralMyCodeOut
from referral.services import codes as services
from shop.error_codes import CouponErrorCode

router = Router(tags=["referral: exclusive codes"])

_TERMS = {
    "template_id": 12,
    "name": "Exclusive: Ming",
    "kind": "fixed",
    "amount": 500,
    "percent_bps": 0,
    "max_discount": None,
    "min_spend": 3000,
    "valid_from": None,
    "valid_until": "2025-07-01T00:00:00Z",
    "valid_days": None,
    "total_limit": 200,
    "per_customer_limit": 1,
    "status": "active",
}
MY_CODE = {
    "id": 3,
    "code": "MING5",
    "terms": _TERMS,
    "redemptions": 17,
    "active": True,
    "usable": True,
    "created_at": "2025-06-01T08:00:00Z",
}
STAFF_CODE = {
    **MY_CODE,
    "redemptions": 0,
    "distributor_id": 7,
    "distributor_name": "Ming",
    "coupon_code_id": 40,
    "link_id": 88,
    "link_short_code": "K7QX2MNP",
    "created_by_id": 1,
}


def distributor_of_user(request: HttpRequest) -> Distributor:
    """The caller's distributor profile (any status); 404 ``not_a_distributor`` if none."""
    distributor = Distributor.objects.filter(customer__user=request_user(request)).first()
    if distributor is None:
        raise NotFound("You are not a distributor.", code=DistributorErrorCode.NOT_A_DISTRIBUTOR)
    return distributor


@router.post(
    "/staff/referral/exclusive-codes",
    response={201: ReferralExclusiveCodeOut},
    auth=staff_auth,
    summary="Staff: issue an exclusive coupon code to a distributor",
    description=(
        "Issue a shop coupon code tied to an active distributor: fixed (`amount`) or percent "
        "(`percent_bps`, optional `max_discount`) off in the exclusive slot, `min_spend`, a "
        "validity (`valid_until` in the future and/or `valid_days` per redeemed coupon; "
        "`valid_from` is when it may first be redeemed), `total_limit` redemptions in all (null: "
        "unlimited), once per customer. Checkouts with the code are attributed to the "
        "distributor. The code, its template and its hidden share link are made together or not "
        "at all. Operators (staff bearer token) with `referral.add_exclusivecode`. Idempotent "
        "with `Idempotency-Key`. Errors: 404 `distributor_not_found`, 409 "
        "`distributor_not_active`, 422 `exclusive_code_invalid` (`details.field`), the shop's 422 "
        "`coupon_template_invalid` (`details.field`) and 409 `coupon_code_taken`."
    ),
)
@examples(
    request={
        "distributor_id": 7,
        "code": "MING5",
        "kind": "fixed",
        "amount": 500,
        "min_spend": 3000,
        "valid_until": "2025-07-01T00:00:00Z",
        "total_limit": 200,
    },
    response=STAFF_CODE,
)
@errors(
    DistributorErrorCode.DISTRIBUTOR_NOT_FOUND,
    DistributorErrorCode.DISTRIBUTOR_NOT_ACTIVE,
    ExclusiveCodeErrorCode.EXCLUSIVE_CODE_INVALID,
    CouponErrorCode.TEMPLATE_INVALID,
    CouponErrorCode.CODE_TAKEN,
)
@idempotent
def exclusive_code_issue(request: HttpRequest, payload: ExclusiveCodeIssueIn):
    require_perm(request, "referral.add_exclusivecode")
    exclusive = services.exclusive_code_issue(actor=request_user(request), **payload.model_dump())
    return Status(201, ReferralExclusiveCodeOut.from_orm(exclusive))


@router.get(
    "/staff/referral/exclusive-codes",
    response=list[ReferralExclusiveCodeOut],
    auth=staff_auth,
    summary="Staff: exclusive codes, newest first",
    description=(
        "Exclusive codes, newest first, paginated; `distributor_id` filters. Each with its "
        "terms, redemptions, whether it is active (not deactivated) and usable now, and its "
        "hidden share link. Operators (staff bearer token) with `referral.view_exclusivecode`."
    ),
)
@examples(response={"items": [STAFF_CODE], "count": 1, "limit": 20, "offset": 0})
@paginate
def exclusive_code_list(request: HttpRequest, distributor_id: int | None = None):
    require_perm(request, "referral.view_exclusivecode")
    return services.exclusive_codes(distributor_id=distributor_id)


@router.post(
    "/staff/referral/exclusive-codes/{exclusive_code_id}/deactivate",
    response=ReferralExclusiveCodeOut,
    auth=staff_auth,
    summary="Staff: deactivate an exclusive code (no new redemptions)",
    description=(
        "Stop new redemptions of the code; customers who already redeemed it keep their coupon. "
        "Deactivating an inactive code answers it unchanged. Operators (staff bearer token) with "
        "`referral.change_exclusivecode`. Unknown: 404 `exclusive_code_not_found`."
    ),
)
@examples(response={**STAFF_CODE, "active": False, "usable": False})
@errors(ExclusiveCodeErrorCode.EXCLUSIVE_CODE_NOT_FOUND)
def exclusive_code_deactivate(request: HttpRequest, exclusive_code_id: int):
    require_perm(request, "referral.change_exclusivecode")
    exclusive = services.exclusive_code_deactivate(
        actor=request_user(request), exclusive_code_id=exclusive_code_id
    )
    return ReferralExclusiveCodeOut.from_orm(exclusive)


@router.get(
    "/referral/distributor/me/codes",
    response=list[ReferralMyCodeOut],
    auth=bearer_auth,
    summary="Distributor: my exclusive codes, to share",
    description=(
        "My exclusive codes, newest first, paginated: the text to share, the terms and valid "
        "window, redemptions so far, whether it is active and usable now. Distributor (bearer "
        "token of a customer who is a distributor; else 404 `not_a_distributor`)."
    ),
)
@examples(response={"items": [MY_CODE], "count": 1, "limit": 20, "offset": 0})
@errors(DistributorErrorCode.NOT_A_DISTRIBUTOR)
@paginate
def my_exclusive_codes(request: HttpRequest):
    return services.exclusive_codes(distributor_id=distributor_of_user(request).pk)
