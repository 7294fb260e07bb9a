from django.conf import settings
from django.http import HttpRequest
from ninja import Query, Router
from ninja.pagination import paginate
from ninja.responses import Status

from core import selectors, services
from core.error_codes import AuthErrorCode, CoreErrorCode, NotificationErrorCode
from core.http import (
    bearer_auth,
    errors,
    examples,
    rate_limit,
    request_session_id,
    request_user,
    require_perm,
    staff_auth,
)
from core.schemas import (
    AnnouncementIn,
    AnnouncementOut,
    MarkedOut,
    MarkReadIn,
    MeOut,
    NotificationPageOut,
    RefreshIn,
    StaffLoginIn,
    TokenPairOut,
)
from core.tokens import session_refresh, session_revoke

auth_router = Router(tags=["auth"])
notifications_router = Router(tags=["notifications"], auth=bearer_auth)
staff_router = Router(tags=["staff: announcements"], auth=staff_auth)


@auth_router.post(
    "/refresh",
    response=TokenPairOut,
    summary="Rotate a refresh token for a new pair",
    description=(
        "Trade a refresh token for a new access + refresh pair; the old refresh token stops "
        "working (rotation). Anyone holding a refresh token may call it; rate-limited per client "
        "IP. Presenting an already rotated token is 401 `refresh_token_reused` and ends that "
        "session; an unknown, expired or ended one is 401 `refresh_token_invalid` / "
        "`token_expired` / `token_revoked`."
    ),
)
@examples(request={"refresh_token": "rt_3q2-7fNw..."})
@errors(
    CoreErrorCode.RATE_LIMITED,
    AuthErrorCode.REFRESH_TOKEN_INVALID,
    AuthErrorCode.REFRESH_TOKEN_REUSED,
    AuthErrorCode.TOKEN_EXPIRED,
    AuthErrorCode.TOKEN_REVOKED,
)
def refresh(request: HttpRequest, payload: RefreshIn):
    rate_limit(request, group="auth-refresh", rate=settings.REFRESH_RATE)
    return session_refresh(refresh_token=payload.refresh_token)


@auth_router.post(
    "/logout",
    response={204: None},
    auth=bearer_auth,
    summary="End this session",
    description=(
        "End the session of this access token: its refresh and access tokens stop working. Any "
        "signed-in user."
    ),
)
def logout(request: HttpRequest):
    session_revoke(session_id=request_session_id(request))
    return Status(204, None)


@auth_router.post(
    "/staff",
    response=TokenPairOut,
    summary="Operator login (username + password)",
    description=(
        "Operator login with username and password; answers an access + refresh pair. Rate-limited "
        "per client IP and per username (separate buckets from shoppers'). Wrong credentials are "
        "401 `invalid_credentials`, too many attempts 429 `rate_limited`."
    ),
)
@examples(request={"username": "operator", "password": "correct horse battery staple"})
@errors(CoreErrorCode.RATE_LIMITED, AuthErrorCode.INVALID_CREDENTIALS)
def staff_login(request: HttpRequest, payload: StaffLoginIn):
    # Staff buckets, apart from shoppers': per client IP and per username (across IPs).
    rate_limit(request, group="login-staff-ip", rate=settings.STAFF_LOGIN_IP_RATE)
    rate_limit(
        request,
        group="login-staff-account",
        rate=settings.STAFF_LOGIN_ACCOUNT_RATE,
        value=payload.username,
    )
    return services.staff_login(
        username=payload.username,
        password=payload.password,
        user_agent=request.headers.get("User-Agent", ""),
    )


@auth_router.get(
    "/me",
    response=MeOut,
    auth=bearer_auth,
    summary="Who this token belongs to",
    description="The user behind the bearer token. Any signed-in user; read-only.",
)
def me(request: HttpRequest):
    return request_user(request)


@notifications_router.get(
    "",
    response=NotificationPageOut,
    summary="Stored notifications after a cursor (catch up)",
    description=(
        "Stored notifications of the signed-in user with an id above `after`: what a client missed "
        "while its WebSocket was closed. Any signed-in user; read-only."
    ),
)
def notifications_list(
    request: HttpRequest, after: int = Query(0, ge=0), limit: int = Query(50, ge=1, le=200)
):
    return selectors.notifications_after(user=request_user(request), after=after, limit=limit)


@notifications_router.post(
    "/read",
    response=MarkedOut,
    summary="Mark notifications read",
    description=(
        "Mark some of my notifications read, by `ids` or everything `up_to` an id; marking twice "
        "changes nothing. Any signed-in user. Neither given: 422 `nothing_to_mark`."
    ),
)
@examples(request={"up_to": 120})
@errors(NotificationErrorCode.NOTHING_TO_MARK)
def notifications_read(request: HttpRequest, payload: MarkReadIn):
    return {
        "marked": services.notifications_mark_read(
            user=request_user(request), ids=payload.ids, up_to=payload.up_to
        )
    }


@staff_router.post(
    "/announcements",
    response={201: AnnouncementOut},
    summary="Schedule an announcement",
    description=(
        "Schedule an announcement; the periodic job delivers it when due. Operators (staff bearer "
        "token) with `core.add_announcement`."
    ),
)
@examples(
    request={
        "title": "Lychee season",
        "body": "Fresh lychees from Friday.",
        "send_at": "2025-06-06T01:00:00Z",
    }
)
def announcement_create(request: HttpRequest, payload: AnnouncementIn):
    require_perm(request, "core.add_announcement")
    return Status(
        201, services.announcement_create(**payload.dict(), created_by=request_user(request))
    )


@staff_router.get(
    "/announcements",
    response=list[AnnouncementOut],
    summary="List announcements",
    description=(
        "Announcements, paginated. Operators (staff bearer token) with `core.view_announcement`."
    ),
)
@paginate
def announcement_list(request: HttpRequest):
    require_perm(request, "core.view_announcement")
    return selectors.announcements()
