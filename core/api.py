from django.conf import settings
from django.http import HttpRequest
from ninja import Query, Router
from ninja.pagination import paginate
from ninja.responses import Status

from core import selectors, services
from core.http import bearer_auth, rate_limit, require_perm, staff_auth
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
    "/refresh", response=TokenPairOut, summary="Rotate a refresh token for a new pair"
)
def refresh(request: HttpRequest, payload: RefreshIn):
    rate_limit(request, group="auth-refresh", rate=settings.REFRESH_RATE)
    return session_refresh(refresh_token=payload.refresh_token)


@auth_router.post("/logout", response={204: None}, auth=bearer_auth, summary="End this session")
def logout(request: HttpRequest):
    session_revoke(session_id=request.auth_session_id)
    return Status(204, None)


@auth_router.post("/staff", response=TokenPairOut, summary="Operator login (username + password)")
def staff_login(request: HttpRequest, payload: StaffLoginIn):
    rate_limit(request, group="auth-login", rate=settings.LOGIN_RATE)
    return services.staff_login(
        username=payload.username,
        password=payload.password,
        user_agent=request.headers.get("User-Agent", ""),
    )


@auth_router.get("/me", response=MeOut, auth=bearer_auth, summary="Who this token belongs to")
def me(request: HttpRequest):
    return request.auth


@notifications_router.get(
    "", response=NotificationPageOut, summary="Stored notifications after a cursor (catch up)"
)
def notifications_list(
    request: HttpRequest, after: int = Query(0, ge=0), limit: int = Query(50, ge=1, le=200)
):
    return selectors.notifications_after(user=request.auth, after=after, limit=limit)


@notifications_router.post("/read", response=MarkedOut, summary="Mark notifications read")
def notifications_read(request: HttpRequest, payload: MarkReadIn):
    return {
        "marked": services.notifications_mark_read(
            user=request.auth, ids=payload.ids, up_to=payload.up_to
        )
    }


@staff_router.post(
    "/announcements", response={201: AnnouncementOut}, summary="Schedule an announcement"
)
def announcement_create(request: HttpRequest, payload: AnnouncementIn):
    require_perm(request, "core.add_announcement")
    return Status(201, services.announcement_create(**payload.dict(), created_by=request.auth))


@staff_router.get("/announcements", response=list[AnnouncementOut], summary="List announcements")
@paginate
def announcement_list(request: HttpRequest):
    require_perm(request, "core.view_announcement")
    return selectors.announcements()
