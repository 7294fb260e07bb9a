"""Leads (KOS) over HTTP: anyone fills in a distributor's lead form; the distributor works their
leads; operators list them. Parse, call one service, answer (rules: referral/services/leads.py)."""

from django.conf import settings
from django.http import HttpRequest
from ninja import Router
from ninja.pagination import paginate
from ninja.responses import Status

from core.error_codes import CoreErrorCode
from core.http import (
    bearer_auth,
    errors,
    examples,
    ip_hash,
    rate_limit,
    request_user,
    require_perm,
    staff_auth,
)
from referral.api.codes import distributor_of_user
from referral.api.links import OPTIONAL_AUTH_OPENAPI, optional_bearer_auth, optional_user
from referral.error_codes import DistributorErrorCode, LeadErrorCode, LinkErrorCode
from referral.schemas.leads import (
    LeadStatus,
    LeadStatusIn,
    LeadSubmitIn,
    ReferralLeadOut,
    ReferralLeadSubmittedOut,
    ReferralStaffLeadOut,
)
from referral.services import leads as services
from shop.models import Customer

router = Router(tags=["referral: leads"])

LEAD = {
    "id": 21,
    "name": "Wang Fang",
    "phone": "13800138000",
    "interest": "Gift boxes for the office",
    "status": "contacted",
    "consent_text": services.CONSENT_TEXT,
    "link_id": 88,
    "order_id": None,
    "created_at": "2025-06-02T09:00:00Z",
    "updated_at": "2025-06-02T11:00:00Z",
    "events": [
        {
            "from_status": "",
            "to_status": "new",
            "actor_id": None,
            "note": "",
            "created_at": "2025-06-02T09:00:00Z",
        },
        {
            "from_status": "new",
            "to_status": "contacted",
            "actor_id": 5,
            "note": "Called, sending the catalogue",
            "created_at": "2025-06-02T11:00:00Z",
        },
    ],
}


def _customer_of_caller(request: HttpRequest) -> Customer | None:
    user = optional_user(request)
    return None if user is None else Customer.objects.filter(user=user).first()


@router.post(
    "/referral/leads",
    response={201: ReferralLeadSubmittedOut},
    auth=optional_bearer_auth,
    openapi_extra=OPTIONAL_AUTH_OPENAPI,
    summary="Fill in a distributor's lead form (anyone)",
    description=(
        "A visitor leaves their name, phone and interest on the lead form a distributor shared "
        "(`code`: the link's short code), agreeing to this: \""
        + services.CONSENT_TEXT
        + '" Anyone may call it, logged in (bearer token: the lead notes the customer) or not; '
        "a token that is sent must be valid. The same phone on the same distributor's form "
        "while their lead is open answers that lead (no duplicate). Answers the lead's id and "
        "status only. At most `REFERRAL_LEAD_IP_RATE` per client IP (429 `rate_limited`). "
        "Errors: 404 `link_not_found` (unknown, inactive, not a lead form, or its distributor "
        "not active), 422 `consent_required`, 422 `lead_invalid` (`details.field`: name 1-64 "
        "characters, phone 5-20 digits with an optional leading `+`, interest up to 500)."
    ),
)
@examples(
    request={
        "code": "K7QX2MNP",
        "name": "Wang Fang",
        "phone": "138 0013 8000",
        "interest": "Gift boxes for the office",
        "consent": True,
    },
    response={"lead_id": 21, "status": "new"},
)
@errors(
    LinkErrorCode.LINK_NOT_FOUND,
    LeadErrorCode.CONSENT_REQUIRED,
    LeadErrorCode.LEAD_INVALID,
    CoreErrorCode.RATE_LIMITED,
)
def lead_submit(request: HttpRequest, payload: LeadSubmitIn):
    rate_limit(request, group="referral-lead-ip", rate=settings.REFERRAL_LEAD_IP_RATE, key="ip")
    lead = services.lead_submit(
        short_code=payload.code,
        name=payload.name,
        phone=payload.phone,
        interest=payload.interest,
        consent=payload.consent,
        customer=_customer_of_caller(request),
        ip_hash=ip_hash(request),
    )
    return Status(201, ReferralLeadSubmittedOut.from_orm(lead))


@router.get(
    "/referral/distributor/me/leads",
    response=list[ReferralLeadOut],
    auth=bearer_auth,
    summary="Distributor: my leads, newest first",
    description=(
        "The leads left on my lead forms, newest first, paginated; `status` filters. The people "
        "gave their name and phone to me, so I see them, with each lead's history. Distributor "
        "(bearer token of a customer who is a distributor; else 404 `not_a_distributor`)."
    ),
)
@examples(response={"items": [LEAD], "count": 1, "limit": 20, "offset": 0})
@errors(DistributorErrorCode.NOT_A_DISTRIBUTOR)
@paginate
def my_leads(request: HttpRequest, status: LeadStatus | None = None):
    return services.leads(distributor_id=distributor_of_user(request).pk, status=status)


@router.post(
    "/referral/distributor/me/leads/{lead_id}/status",
    response=ReferralLeadOut,
    auth=bearer_auth,
    summary="Distributor: move one of my leads (contacted, converted, lost)",
    description=(
        "new -> contacted | converted | lost; contacted -> converted | lost; converted and lost "
        "are final. Converting names the order (`order_id`): a paid order attributed to me "
        "(level 1), not converting another lead. Each change is kept in the lead's history with "
        "my `note`. Distributor (bearer token; else 404 `not_a_distributor`). Errors: 404 "
        "`lead_not_found` (also another distributor's lead), 409 `lead_illegal_transition` "
        "(`details.from`, `details.to`), 422 `lead_invalid` (`details.field`, e.g. `order_id`)."
    ),
)
@examples(request={"status": "contacted", "note": "Called, sending the catalogue"}, response=LEAD)
@errors(
    DistributorErrorCode.NOT_A_DISTRIBUTOR,
    LeadErrorCode.LEAD_NOT_FOUND,
    LeadErrorCode.LEAD_ILLEGAL_TRANSITION,
    LeadErrorCode.LEAD_INVALID,
)
def my_lead_set_status(request: HttpRequest, lead_id: int, payload: LeadStatusIn):
    return services.lead_set_status(
        distributor=distributor_of_user(request),
        lead_id=lead_id,
        status=payload.status,
        note=payload.note,
        order_id=payload.order_id,
        actor=request_user(request),
    )


@router.get(
    "/staff/referral/leads",
    response=list[ReferralStaffLeadOut],
    auth=staff_auth,
    summary="Staff: leads, newest first",
    description=(
        "Leads of every distributor, newest first, paginated; `distributor_id` and `status` "
        "filter. Operators (staff bearer token) with `referral.view_lead`."
    ),
)
@examples(
    response={
        "items": [{**LEAD, "distributor_id": 7, "customer_id": None}],
        "count": 1,
        "limit": 20,
        "offset": 0,
    }
)
@paginate
def staff_leads(
    request: HttpRequest, distributor_id: int | None = None, status: LeadStatus | None = None
):
    require_perm(request, "referral.view_lead")
    return services.leads(distributor_id=distributor_id, status=status)
