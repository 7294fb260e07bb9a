"""Attribution over HTTP: a distributor's attributed orders (no buyer data), and for operators
the attributions (list, detail) and the versions of the attribution rule (list, new version).
Parse, call one service or selector, answer (rules: referral/services/attribution.py,
referral/services/rules_admin.py)."""

from django.http import HttpRequest
from ninja import Query, Router
from ninja.pagination import paginate
from ninja.responses import Status

from core.errors import NotFound
from core.http import bearer_auth, errors, examples, request_user, require_perm, staff_auth
from referral.error_codes import AttributionErrorCode, DistributorErrorCode
from referral.models import Distributor
from referral.schemas.attribution import (
    ReferralAttributionFilter,
    ReferralAttributionRuleIn,
    ReferralAttributionRuleOut,
    ReferralMyAttributionOut,
    ReferralStaffAttributionOut,
)
from referral.selectors import attribution as selectors
from referral.services import rules_admin

router = Router(tags=["referral"])

STAFF_TAGS = ["staff: referral attribution"]
VIEW_PERM = "referral.view_attribution"
VIEW_RULES_PERM = "referral.view_attributionrule"
ADD_RULE_PERM = "referral.add_attributionrule"

MY_ATTRIBUTION = {
    "attribution_id": 310,
    "level": 1,
    "paid_at": "2025-06-05T10:00:00Z",
    "source": "normal",
    "goods_amount": 3980,
    "refunded_amount": 0,
    "touch": "click",
    "link_id": 21,
    "rule_version": 2,
    "held": False,
}
STAFF_ATTRIBUTION = {
    "id": 310,
    "order_id": 2301,
    "customer_id": 88,
    "distributor_id": 4,
    "rule_version": 2,
    "touch": "click",
    "reason": "last_touch",
    "click_id": 5120,
    "link_id": 21,
    "exclusive_code_id": None,
    "self_purchase": False,
    "levels": [{"level": 1, "distributor_id": 4}, {"level": 2, "distributor_id": 2}],
    "ancestry": [2, 1],
    "source": "normal",
    "goods_amount": 3980,
    "refunded_amount": 0,
    "refunds": [],
    "held": False,
    "paid_at": "2025-06-05T10:00:00Z",
    "attributed_at": "2025-06-05T10:00:01Z",
}
RULE = {
    "id": 2,
    "version": 2,
    "model": "binding",
    "binding_days": 30,
    "click_window_days": 7,
    "code_overrides_link": True,
    "self_purchase": "self",
    "effective_from": "2025-06-01T00:00:00Z",
    "note": "Lock customers for 30 days",
    "created_by_id": 2,
    "created_at": "2025-05-31T18:00:00Z",
    "is_current": True,
}
RULE_REQUEST = {
    "model": "binding",
    "binding_days": 30,
    "click_window_days": 7,
    "code_overrides_link": True,
    "self_purchase": "self",
    "effective_from": "2025-06-01T00:00:00Z",
    "note": "Lock customers for 30 days",
}


def _page(item: dict) -> dict:
    return {"items": [item], "count": 1, "limit": 20, "offset": 0}


# --- distributor ---------------------------------------------------------------------------------
@router.get(
    "/referral/distributor/me/attributions",
    response=list[ReferralMyAttributionOut],
    auth=bearer_auth,
    summary="My attributed orders",
    description=(
        "Orders attributed to me, newest paid first, paginated: one row per paid level (1: I "
        "caused it; 2: my direct downline did), with what the goods paid and what was refunded "
        "(fen), the touch that justified it, my link, the rule version applied, and `held` (an "
        "open fraud flag holds its commissions). No buyer data: no customer, nickname, phone or "
        "order number. A distributor (bearer token of a customer with a distributor profile, "
        "any status); anyone else: 404 `not_a_distributor`."
    ),
)
@examples(response=_page(MY_ATTRIBUTION))
@errors(DistributorErrorCode.NOT_A_DISTRIBUTOR)
@paginate
def my_attributions(request: HttpRequest):
    distributor = Distributor.objects.filter(customer__user=request_user(request)).first()
    if distributor is None:
        raise NotFound("You are not a distributor.", code=DistributorErrorCode.NOT_A_DISTRIBUTOR)
    return selectors.attributions_of_distributor(distributor_id=distributor.pk)


# --- staff: attributions -------------------------------------------------------------------------
@router.get(
    "/staff/referral/attributions",
    response=list[ReferralStaffAttributionOut],
    auth=staff_auth,
    tags=STAFF_TAGS,
    summary="Staff: order attributions",
    description=(
        "Attributions, newest paid first, paginated, filtered by `order_id` and by "
        "`distributor_id` (attributed to it, or paying it at level 2): the distributor (null "
        "when nobody) and the stable `reason`, the rule version, the click / link / exclusive "
        "code that justified it, the paid levels (at most two), the upline chain snapshotted "
        "when it was made, refunds, and `held` (an open fraud flag on it or its distributor). "
        "Operators (staff bearer token) with `referral.view_attribution`; without it 403 "
        "`permission_denied`."
    ),
)
@examples(response=_page(STAFF_ATTRIBUTION))
@paginate
def staff_attribution_list(request: HttpRequest, filters: Query[ReferralAttributionFilter]):
    require_perm(request, VIEW_PERM)
    return selectors.attributions_for_staff(
        order_id=filters.order_id, distributor_id=filters.distributor_id
    )


@router.get(
    "/staff/referral/attributions/{attribution_id}",
    response=ReferralStaffAttributionOut,
    auth=staff_auth,
    tags=STAFF_TAGS,
    summary="Staff: one order attribution",
    description=(
        "One attribution in full (as in the list). Operators with `referral.view_attribution`; "
        "unknown id: 404 `attribution_not_found`."
    ),
)
@examples(response=STAFF_ATTRIBUTION)
@errors(AttributionErrorCode.ATTRIBUTION_NOT_FOUND)
def staff_attribution_detail(request: HttpRequest, attribution_id: int):
    require_perm(request, VIEW_PERM)
    return selectors.attribution_for_staff(attribution_id=attribution_id)


# --- staff: rule versions ------------------------------------------------------------------------
@router.get(
    "/staff/referral/rules",
    response=list[ReferralAttributionRuleOut],
    auth=staff_auth,
    tags=STAFF_TAGS,
    summary="Staff: versions of the attribution rule",
    description=(
        "Every version of the attribution rule, newest first, paginated; `is_current` marks "
        "the one in force now (the highest version whose `effective_from` has come). Version "
        "1, the default (last touch, 7-day click window, 30-day binding, codes override links, "
        "own orders count for the distributor), exists from the first use. Operators with "
        "`referral.view_attributionrule`; without it 403 `permission_denied`."
    ),
)
@examples(response=_page(RULE))
@paginate
def staff_rule_list(request: HttpRequest):
    require_perm(request, VIEW_RULES_PERM)
    return selectors.rules_for_staff()


@router.post(
    "/staff/referral/rules",
    response={201: ReferralAttributionRuleOut},
    auth=staff_auth,
    tags=STAFF_TAGS,
    summary="Staff: a new version of the attribution rule",
    description=(
        "Save a new version (one more than the last; versions are never edited), in force from "
        "`effective_from` (default now) for orders paid from then on; each attribution stores "
        "the version it applied. Paid levels are not configurable (two, fixed in code). "
        "Operators with `referral.add_attributionrule`. A value the rule cannot take: 422 "
        "`attribution_rule_invalid` (`details.field`, `details.reason`: e.g. `effective_from` "
        "in the past or before the latest version's)."
    ),
)
@examples(request=RULE_REQUEST, response=RULE)
@errors(AttributionErrorCode.RULE_INVALID)
def staff_rule_create(request: HttpRequest, payload: ReferralAttributionRuleIn):
    require_perm(request, ADD_RULE_PERM)
    rule = rules_admin.rule_version_create(actor=request_user(request), **payload.dict())
    return Status(201, selectors.rules_for_staff().get(pk=rule.pk))
