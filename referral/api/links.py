"""Share links over HTTP: a distributor's links (make, list, read, deactivate) and their funnel;
the public QR images of a link; the mini-program's report of a link open (logged in or not);
a customer's tracking opt-out. Parse, call one service or selector, answer (rules:
referral/services/links.py and clicks.py; the funnel: referral/selectors/links.py).

``optional_bearer_auth`` is for operations anonymous visitors may call too: without an
``Authorization`` header the caller is anonymous (``optional_user`` answers None); with one, it
must be a valid bearer token (401 otherwise, as with ``bearer_auth``)."""

from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from ninja import Path, Query, Router
from ninja.pagination import paginate
from ninja.responses import Status

from core.error_codes import CoreErrorCode
from core.errors import NotFound
from core.http import (
    BearerAuth,
    bearer_auth,
    device_id,
    errors,
    examples,
    ip_hash,
    rate_limit,
    request_user,
)
from core.models import User
from referral.error_codes import DistributorErrorCode, LinkErrorCode
from referral.models import Distributor
from referral.schemas.links import (
    MAX_ID,
    SHORT_CODE,
    ReferralLinkCreateIn,
    ReferralLinkOut,
    ReferralLinkStatsOut,
    ReferralLinkStatsQuery,
    ReferralOpenIn,
    ReferralOpenOut,
    ReferralTrackingIn,
    ReferralTrackingOut,
)
from referral.selectors import links as selectors
from referral.services import clicks
from referral.services import links as services
from shop.error_codes import CustomerErrorCode
from shop.models import Customer
from shop.selectors.customers import customer_of

router = Router(tags=["referral"])


# --- optional authentication ----------------------------------------------------------------
class _Anonymous:
    """What ninja stores as ``request.auth`` for a caller without a token (truthy: ninja lets a
    request through only when an auth callback answers something truthy)."""

    def __bool__(self) -> bool:
        return True


ANONYMOUS = _Anonymous()


class OptionalBearerAuth(BearerAuth):
    """``bearer_auth`` that lets a request without an ``Authorization`` header through as
    anonymous. A header that is not a valid bearer token is 401, as with ``bearer_auth``. Give
    the operation ``openapi_extra=OPTIONAL_AUTH_OPENAPI`` so its document says so."""

    def __call__(self, request: HttpRequest) -> Any:
        if not request.headers.get(self.header):
            return ANONYMOUS
        return super().__call__(request)


optional_bearer_auth = OptionalBearerAuth()
# added to the bearer scheme by ninja: "or no token at all"
OPTIONAL_AUTH_OPENAPI: dict[str, Any] = {"security": [{}]}


def optional_user(request: HttpRequest) -> User | None:
    """The user of an ``optional_bearer_auth`` operation, or None for an anonymous caller."""
    user = getattr(request, "auth", None)
    return user if isinstance(user, User) else None


# --- examples -----------------------------------------------------------------------------------
_TARGET = {
    "kind": "product",
    "id": 12,
    "path": "pages/product/detail?id=12",
    "title": "Organic tomatoes",
    "live": True,
}
_UTM = {
    "utm_source": "wechat_group",
    "utm_medium": "share",
    "utm_campaign": "summer",
    "utm_content": "",
}
LINK = {
    "id": 31,
    "short_code": "K7QX2MPA",
    "target_kind": "product",
    "target_id": 12,
    "title": "Organic tomatoes",
    **_UTM,
    "is_active": True,
    "clicks": 42,
    "filtered_clicks": 9,
    "flushed_at": "2025-06-01T10:00:10Z",
    "created_at": "2025-05-30T08:00:00Z",
    "target": _TARGET,
    "share": {
        "path": "pages/product/detail?id=12",
        "scene": "K7QX2MPA",
        "share_path": "pages/product/detail?id=12&scene=K7QX2MPA",
        **_UTM,
    },
    "qr_svg_url": "/api/v1/referral/qr/K7QX2MPA.svg",
    "qr_png_url": "/api/v1/referral/qr/K7QX2MPA.png",
}
CREATE_REQUEST = {"target_kind": "product", "target_id": 12, **_UTM}
OPENED = {
    "recorded": True,
    "status": "counted",
    "link_id": 31,
    "distributor_name": "Aunt Li",
    "target": _TARGET,
    "share_path": "pages/product/detail?id=12&scene=K7QX2MPA",
}
_FUNNEL = {"exposures": 51, "clicks": 42, "orders": 3, "gmv": 5970, "conversion_bps": 714}
STATS = {
    "group_by": "link",
    "since": "2025-05-02T10:00:00Z",
    "until": "2025-06-01T10:00:00Z",
    "rows": [
        {
            **_FUNNEL,
            "utm_source": "wechat_group",
            "link_id": 31,
            "short_code": "K7QX2MPA",
            "title": "Organic tomatoes",
            "target_kind": "product",
            "is_active": True,
            "is_code_link": False,
        }
    ],
    "totals": _FUNNEL,
}

DISTRIBUTOR_TEXT = (
    "Distributor (bearer token of a customer who is a distributor; 404 `not_a_distributor` "
    "otherwise, 403 `not_a_customer` for an operator without a shopper profile)."
)


def _distributor(request: HttpRequest) -> Distributor:
    distributor = Distributor.objects.filter(customer__user=request_user(request)).first()
    if distributor is None:
        raise NotFound("You are not a distributor.", code=DistributorErrorCode.NOT_A_DISTRIBUTOR)
    return distributor


# --- my links ---------------------------------------------------------------------------------
@router.post(
    "/referral/links",
    response={201: ReferralLinkOut},
    auth=bearer_auth,
    summary="Make a share link (with its short code, share path and QR code)",
    description=(
        "Make a share link to a target: `target_kind` with `target_id` (`product`, "
        "`group_campaign`, `bargain_campaign`, `chain_post`, `flash_session`), or with "
        "`target_id` null (`shop`, `lead_form`), and optional UTM parameters. Answers the link "
        "with its short code, the share payload for the mini-program (`share.path`, "
        "`share.scene` = the short code, `share.share_path` = path + scene) and the public QR "
        "image URLs. " + DISTRIBUTOR_TEXT + " Errors: 422 `link_invalid` (`details.field`: an "
        "id given to `shop` / `lead_form` or none to the others), 404 `link_target_not_found` "
        "(unknown kind, or no such target), 409 `distributor_not_active` (applied, suspended "
        f"or rejected), 409 `link_limit_reached` (at most {services.MAX_ACTIVE_LINKS} active "
        "links)."
    ),
)
@examples(request=CREATE_REQUEST, response=LINK)
@errors(
    CustomerErrorCode.NOT_A_CUSTOMER,
    DistributorErrorCode.NOT_A_DISTRIBUTOR,
    DistributorErrorCode.DISTRIBUTOR_NOT_ACTIVE,
    LinkErrorCode.LINK_INVALID,
    LinkErrorCode.LINK_TARGET_NOT_FOUND,
    LinkErrorCode.LINK_LIMIT_REACHED,
)
def link_create(request: HttpRequest, payload: ReferralLinkCreateIn):
    customer_of(request_user(request))
    link = services.link_create(distributor=_distributor(request), **payload.dict())
    return Status(201, link)


@router.get(
    "/referral/links",
    response=list[ReferralLinkOut],
    auth=bearer_auth,
    summary="My share links, newest first, with their flushed click counters",
    description=(
        "My share links (active and deactivated), newest first, paginated, each with its "
        "counters as of the last flush (`clicks`: counted; `filtered_clicks`: duplicates and "
        "bots; flushed every few seconds, `flushed_at`), its target as it is now, its share "
        "payload and QR image URLs. Counts only: never who clicked. " + DISTRIBUTOR_TEXT
    ),
)
@examples(response={"items": [LINK], "count": 1, "limit": 20, "offset": 0})
@errors(CustomerErrorCode.NOT_A_CUSTOMER, DistributorErrorCode.NOT_A_DISTRIBUTOR)
@paginate
def link_list(request: HttpRequest):
    customer_of(request_user(request))
    return selectors.links_of(distributor=_distributor(request))


@router.get(
    "/referral/links/stats",
    response=ReferralLinkStatsOut,
    auth=bearer_auth,
    summary="My funnel: exposures, clicks, orders and GMV per link or per UTM source",
    description=(
        "My click → order funnel over `[since, until)` (default: the 30 days up to now; at most "
        f"{selectors.MAX_RANGE.days} days), one row per link (`group_by=link`, newest first) or "
        "per UTM source (`group_by=utm_source`), only rows with a click or an order in the "
        "range, plus totals: `exposures` (non-bot opens: counted + duplicate), `clicks` "
        "(counted), `orders` (orders attributed to me at level 1 through the link, by payment "
        "time), `gmv` (their goods amount less refunds, fen), `conversion_bps` (orders * 10000 "
        "// clicks). Aggregated from the raw click and attribution rows, so it is exact to the "
        "second (the links' `clicks` counters lag by a flush). Counts only: never who clicked "
        "or bought. " + DISTRIBUTOR_TEXT + " `since` not before `until`, or a longer range: 422 "
        "`link_stats_range_invalid`."
    ),
)
@examples(response=STATS)
@errors(
    CustomerErrorCode.NOT_A_CUSTOMER,
    DistributorErrorCode.NOT_A_DISTRIBUTOR,
    LinkErrorCode.STATS_RANGE_INVALID,
)
def link_stats(request: HttpRequest, filters: Query[ReferralLinkStatsQuery]):
    customer_of(request_user(request))
    return selectors.link_funnel(distributor=_distributor(request), **filters.dict())


@router.get(
    "/referral/links/{link_id}",
    response=ReferralLinkOut,
    auth=bearer_auth,
    summary="One of my share links",
    description=(
        "One of my share links with its flushed counters, target, share payload and QR image "
        "URLs. " + DISTRIBUTOR_TEXT + " Another distributor's or unknown: 404 `link_not_found`."
    ),
)
@examples(response=LINK)
@errors(
    CustomerErrorCode.NOT_A_CUSTOMER,
    DistributorErrorCode.NOT_A_DISTRIBUTOR,
    LinkErrorCode.LINK_NOT_FOUND,
)
def link_detail(request: HttpRequest, link_id: int = Path(..., ge=1, le=MAX_ID)):
    customer_of(request_user(request))
    return selectors.link_of(distributor=_distributor(request), link_id=link_id)


@router.delete(
    "/referral/links/{link_id}",
    response={204: None},
    auth=bearer_auth,
    summary="Deactivate one of my share links",
    description=(
        "Deactivate one of my share links, for good (make a new one to share again); "
        "idempotent. Opening it still lands on its target but records no click, and its QR "
        "images answer 404. " + DISTRIBUTOR_TEXT + " Another distributor's or unknown: 404 "
        "`link_not_found`."
    ),
)
@errors(
    CustomerErrorCode.NOT_A_CUSTOMER,
    DistributorErrorCode.NOT_A_DISTRIBUTOR,
    LinkErrorCode.LINK_NOT_FOUND,
)
def link_deactivate(request: HttpRequest, link_id: int = Path(..., ge=1, le=MAX_ID)):
    customer_of(request_user(request))
    services.link_deactivate(distributor=_distributor(request), link_id=link_id)
    return Status(204, None)


# --- public QR images -------------------------------------------------------------------------
QR_CACHE_CONTROL = "public, max-age=86400"


def _image(content: bytes | str, content_type: str) -> HttpResponse:
    response = HttpResponse(content, content_type=content_type)
    response["Cache-Control"] = QR_CACHE_CONTROL
    return response


def _qr_openapi(media: str) -> dict[str, Any]:
    return {
        "responses": {
            "200": {
                "description": "The QR code of the link's share path (cached a day)",
                "content": {media: {"schema": {"type": "string", "format": "binary"}}},
            }
        }
    }


QR_TEXT = (
    "encoding the link's `share_path` (the target's mini-program path with `scene=<short "
    "code>`). Public, no login: a mini-program `<image>` cannot send a token. Unknown or "
    "deactivated: 404 `link_not_found`."
)


@router.get(
    "/referral/qr/{short_code}.svg",
    auth=None,
    url_name="referral_link_qr_svg",
    summary="A share link's QR code (SVG)",
    description="An SVG QR code " + QR_TEXT,
    openapi_extra=_qr_openapi("image/svg+xml"),
)
@errors(LinkErrorCode.LINK_NOT_FOUND)
def link_qr_svg(request: HttpRequest, short_code: str = Path(..., pattern=SHORT_CODE)):
    link = selectors.link_public_by_code(short_code=short_code)
    return _image(services.link_qr_svg(link), "image/svg+xml")


@router.get(
    "/referral/qr/{short_code}.png",
    auth=None,
    url_name="referral_link_qr_png",
    summary="A share link's QR code (PNG)",
    description="A PNG QR code " + QR_TEXT,
    openapi_extra=_qr_openapi("image/png"),
)
@errors(LinkErrorCode.LINK_NOT_FOUND)
def link_qr_png(request: HttpRequest, short_code: str = Path(..., pattern=SHORT_CODE)):
    link = selectors.link_public_by_code(short_code=short_code)
    return _image(services.link_qr_png(link), "image/png")


# --- opens --------------------------------------------------------------------------------------
@router.post(
    "/referral/open",
    response=ReferralOpenOut,
    auth=optional_bearer_auth,
    openapi_extra=OPTIONAL_AUTH_OPENAPI,
    summary="Report a share link open (the short code / scene the mini-program was opened with)",
    description=(
        "The mini-program reports the short code (`scene`) it was opened with, before or after "
        "login, and learns where to land (`target`, `share_path`) and whose link it was "
        "(`distributor_name`). Login optional: without an `Authorization` header the visitor is "
        "anonymous; with a bearer token they are that customer (an invalid token is 401), and "
        "the device's earlier anonymous opens become theirs. Send `X-Device-Id` (a UUID; 400 "
        "`invalid_device_id` when malformed). One click is recorded per open (`recorded`, "
        "`status`): `counted` once per link and visitor (customer, else device, else IP + user "
        "agent) per de-duplication window (default an hour), `duplicate` within it, `bot` for "
        "link-preview fetchers and crawlers (WeChat / WeCom / QQ previews, curl, ...), never "
        "counted. Nothing is recorded when `opted_out` is true, when the customer opted out "
        "(`PUT /referral/tracking`), or for a deactivated link (which still answers its "
        "target). Rate-limited per client IP (`REFERRAL_OPEN_IP_RATE`, 429 `rate_limited`). "
        "Unknown code: 404 `link_not_found`."
    ),
)
@examples(request={"code": "K7QX2MPA", "opted_out": False}, response=OPENED)
@errors(
    LinkErrorCode.LINK_NOT_FOUND,
    CoreErrorCode.INVALID_DEVICE_ID,
    CoreErrorCode.RATE_LIMITED,
)
def link_open(request: HttpRequest, payload: ReferralOpenIn):
    rate_limit(request, group="referral-open-ip", rate=settings.REFERRAL_OPEN_IP_RATE)
    device = device_id(request)
    user = optional_user(request)
    customer = Customer.objects.filter(user_id=user.pk).first() if user else None
    return clicks.link_open(
        short_code=payload.code,
        customer=customer,
        device_id=device,
        ip_hash=ip_hash(request),
        user_agent=request.headers.get("User-Agent", ""),
        opted_out=payload.opted_out,
    )


# --- tracking opt-out ---------------------------------------------------------------------------
TRACKING_TEXT = (
    "While opted out, opening share links records nothing about me (links still open their "
    "target); what was recorded before stays. Shopper (bearer token of a customer; "
    "`not_a_customer` otherwise)."
)


@router.get(
    "/referral/tracking",
    response=ReferralTrackingOut,
    auth=bearer_auth,
    summary="Whether I opted out of link tracking",
    description="My link-tracking setting. " + TRACKING_TEXT,
)
@examples(response={"opted_out": False})
@errors(CustomerErrorCode.NOT_A_CUSTOMER)
def tracking_get(request: HttpRequest):
    customer = customer_of(request_user(request))
    return {"opted_out": selectors.tracking_opted_out(customer=customer)}


@router.put(
    "/referral/tracking",
    response=ReferralTrackingOut,
    auth=bearer_auth,
    summary="Opt out of (or back into) link tracking",
    description="Set my link-tracking opt-out; idempotent. " + TRACKING_TEXT,
)
@examples(request={"opted_out": True}, response={"opted_out": True})
@errors(CustomerErrorCode.NOT_A_CUSTOMER)
def tracking_set(request: HttpRequest, payload: ReferralTrackingIn):
    customer = customer_of(request_user(request))
    opted_out = clicks.tracking_opt_out_set(customer=customer, opted_out=payload.opted_out)
    return {"opted_out": opted_out}
