"""HTTP conventions shared by every router: the error envelope, pagination, auth, idempotency.

Every non-2xx answer under ``/api/`` has one shape::

    {"error": {"code": "<stable_snake_case>", "message": "<human readable>", "details": {...}}}
"""

import hashlib
import json
import logging
from collections.abc import Callable
from datetime import timedelta
from functools import wraps
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.db import DataError, IntegrityError, transaction
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from django.views.decorators.cache import cache_page
from django_ratelimit import ALL as ALL_METHODS
from django_ratelimit.core import get_usage
from ninja import Field, NinjaAPI, Schema
from ninja.errors import AuthenticationError, HttpError, ValidationError
from ninja.pagination import PaginationBase
from ninja.responses import Status
from ninja.security import HttpBearer
from pydantic import BaseModel

from core.errors import ApplicationError, PermissionDenied, RateLimited
from core.models import IdempotencyRecord, User
from core.tokens import access_token_authenticate

logger = logging.getLogger(__name__)


# --- The envelope ------------------------------------------------------------------------
class ErrorBody(Schema):
    code: str
    message: str
    details: dict[str, Any] = {}


class ErrorEnvelope(Schema):
    error: ErrorBody


def error_response(
    status: int,
    code: str,
    message: str,
    details: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> JsonResponse:
    response = JsonResponse(
        {"error": {"code": code, "message": message, "details": details or {}}}, status=status
    )
    for name, value in (headers or {}).items():
        response[name] = value
    return response


_STATUS_CODES = {
    400: ("bad_request", "The request is malformed."),
    401: ("not_authenticated", "Authentication credentials were not provided or are invalid."),
    403: ("permission_denied", "You do not have permission to perform this action."),
    404: ("not_found", "The requested resource does not exist."),
    405: ("method_not_allowed", "This method is not allowed on this resource."),
    409: ("conflict", "The request conflicts with the current state."),
    413: ("payload_too_large", "The request body is too large."),
    415: ("unsupported_media_type", "The request body must be JSON."),
    429: ("rate_limited", "Too many requests; retry later."),
    500: ("internal_error", "Something went wrong on our side; nothing was changed."),
}


def _generic(status: int) -> tuple[str, str]:
    return _STATUS_CODES.get(status, ("http_error", f"HTTP {status}."))


def _validation_details(errors: list[dict[str, Any]]) -> dict[str, Any]:
    fields = []
    for err in errors:
        loc = [str(part) for part in err.get("loc", [])]
        fields.append(
            {"path": ".".join(loc), "message": err.get("msg", ""), "type": err.get("type", "")}
        )
    return {"fields": fields}


def install_error_handlers(api: NinjaAPI) -> None:
    @api.exception_handler(ApplicationError)
    def _application_error(request: HttpRequest, exc: ApplicationError) -> HttpResponse:
        return error_response(exc.status, exc.code, exc.message, exc.details, exc.headers)

    @api.exception_handler(ValidationError)
    def _validation_error(request: HttpRequest, exc: ValidationError) -> HttpResponse:
        return error_response(
            422,
            "validation_error",
            "Some fields are missing or invalid.",
            _validation_details(exc.errors),
        )

    @api.exception_handler(AuthenticationError)
    def _auth_error(request: HttpRequest, exc: AuthenticationError) -> HttpResponse:
        code, message = _generic(401)
        return error_response(401, code, message, headers={"WWW-Authenticate": "Bearer"})

    @api.exception_handler(HttpError)
    def _http_error(request: HttpRequest, exc: HttpError) -> HttpResponse:
        code, default = _generic(exc.status_code)
        if exc.status_code == 400 and str(exc).startswith("Cannot parse request body"):
            code = "malformed_json"
        return error_response(exc.status_code, code, str(exc) or default)

    @api.exception_handler(Http404)
    def _not_found(request: HttpRequest, exc: Http404) -> HttpResponse:
        code, message = _generic(404)
        return error_response(404, code, message)

    @api.exception_handler(DjangoPermissionDenied)
    def _forbidden(request: HttpRequest, exc: DjangoPermissionDenied) -> HttpResponse:
        code, message = _generic(403)
        return error_response(403, code, message)

    @api.exception_handler(OverflowError)
    @api.exception_handler(DataError)
    def _out_of_range(request: HttpRequest, exc: Exception) -> HttpResponse:
        # A number the database cannot hold (an id beyond 64 bits, say): bad input, not a crash.
        # Services write inside transaction.atomic, so nothing was half-written.
        logger.warning("value out of range on %s %s: %s", request.method, request.path, exc)
        return error_response(
            422, "value_out_of_range", "A number in the request is out of the accepted range."
        )

    @api.exception_handler(Exception)
    def _unexpected(request: HttpRequest, exc: Exception) -> HttpResponse:
        logger.exception("unhandled error on %s %s", request.method, request.path)
        code, message = _generic(500)
        return error_response(500, code, message)


class ApiErrorEnvelopeMiddleware:
    """Wraps errors produced outside the API's handlers (unknown URL, wrong method, CSRF,
    oversized body) in the same envelope, for paths under ``/api/``."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if (
            request.path.startswith("/api/")
            and response.status_code >= 400
            and not response.get("Content-Type", "").startswith("application/json")
        ):
            code, message = _generic(response.status_code)
            wrapped = error_response(response.status_code, code, message)
            if response.has_header("Allow"):
                wrapped["Allow"] = response["Allow"]
            return wrapped
        return response


# --- Pagination ----------------------------------------------------------------------------
class PagePagination(PaginationBase):
    """``?limit=&offset=`` everywhere; answers ``{"items", "count", "limit", "offset"}``."""

    class Input(Schema):
        limit: int = Field(
            settings.NINJA_PAGINATION_PER_PAGE, ge=1, le=settings.NINJA_PAGINATION_MAX_LIMIT
        )
        offset: int = Field(0, ge=0, le=1_000_000)

    class Output(Schema):
        items: list[Any]
        count: int
        limit: int
        offset: int

    def paginate_queryset(self, queryset, pagination: Input, request: HttpRequest, **params: Any):
        offset, limit = pagination.offset, pagination.limit
        return {
            "items": list(queryset[offset : offset + limit]),
            "count": self._items_count(queryset),
            "limit": limit,
            "offset": offset,
        }


# --- Public read caching ----------------------------------------------------------------------
ViewFunc = Callable[..., HttpResponse]


def micro_cache(setting: str) -> Callable[[ViewFunc], ViewFunc]:
    """Django's ``cache_page`` for a public GET, with the lifetime read from ``settings.<setting>``
    on each request (0 turns it off). Use with ``ninja.decorators.decorate_view`` so a hit skips
    parsing, the query and serialisation entirely. Only for anonymous, public responses: the key
    is the URL, not the caller."""

    def decorator(view: ViewFunc) -> ViewFunc:
        @wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            seconds = getattr(settings, setting)
            if not seconds or request.method != "GET":
                return view(request, *args, **kwargs)
            return cache_page(seconds, key_prefix=setting.lower())(view)(request, *args, **kwargs)

        return wrapper

    return decorator


# --- Authentication ------------------------------------------------------------------------
class BearerAuth(HttpBearer):
    """``Authorization: Bearer <access token>`` for any active user."""

    def authenticate(self, request: HttpRequest, token: str) -> User:
        user, session_id = access_token_authenticate(token)
        request.user = user
        request.auth_session_id = session_id
        return user


class StaffAuth(BearerAuth):
    """A bearer token of a staff user; per-action permissions are checked with ``require_perm``."""

    def authenticate(self, request: HttpRequest, token: str) -> User:
        user = super().authenticate(request, token)
        if not user.is_staff:
            raise PermissionDenied("This endpoint is for operators.", code="staff_only")
        return user


bearer_auth = BearerAuth()
staff_auth = StaffAuth()


def require_perm(request: HttpRequest, perm: str) -> None:
    if not request.user.has_perm(perm):
        raise PermissionDenied(f"Missing permission {perm}.", details={"permission": perm})


def client_ip(request: HttpRequest) -> str:
    return request.META.get("REMOTE_ADDR", "")


def rate_limit(request: HttpRequest, *, group: str, rate: str, key: str = "ip") -> None:
    """Count this request against ``rate`` (django-ratelimit) and refuse with 429 when over."""
    usage = get_usage(request, group=group, key=key, rate=rate, method=ALL_METHODS, increment=True)
    if usage and usage["should_limit"]:
        raise RateLimited(retry_after=usage["time_left"])


# --- Idempotency -----------------------------------------------------------------------------
IDEMPOTENCY_HEADER = "Idempotency-Key"
IN_PROGRESS_TIMEOUT = timedelta(seconds=60)


def _request_fingerprint(request: HttpRequest) -> str:
    body = request.body or b""
    try:
        canonical = json.dumps(json.loads(body), sort_keys=True, separators=(",", ":")).encode()
    except (ValueError, UnicodeDecodeError):
        canonical = body
    return hashlib.sha256(
        request.method.encode() + request.path.encode() + b"\n" + canonical
    ).hexdigest()


def _to_jsonable(result: Any) -> tuple[int, Any]:
    status = 200
    if isinstance(result, Status):
        status, result = result.status_code, result.value
    if isinstance(result, BaseModel):
        return status, result.model_dump(mode="json")
    return status, json.loads(json.dumps(result, default=str))


def idempotent(view: Callable[..., Any]) -> Callable[..., Any]:
    """Honour ``Idempotency-Key`` on a POST that creates money, seats or holds.

    Same user + key + same body: the stored first response, no second write. Same key, other
    body: 409 ``idempotency_key_reused``. The key is claimed by inserting a row under a unique
    constraint before the work runs, so two concurrent retries cannot both write. Only successful
    responses are kept; on an error the claim is released and the client may retry the same key.
    Views using this return a Schema instance (or ``Status(code, Schema)``).
    """

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
        key = request.headers.get(IDEMPOTENCY_HEADER)
        if not key:
            return view(request, *args, **kwargs)
        if len(key) > 255:
            raise ApplicationError(
                "Idempotency-Key must be at most 255 characters.",
                code="idempotency_key_invalid",
                status=400,
            )
        user = request.auth
        if not isinstance(user, User):
            raise RuntimeError("@idempotent needs an authenticated route")
        fingerprint = _request_fingerprint(request)
        try:
            with transaction.atomic():
                record = IdempotencyRecord.objects.create(
                    user=user,
                    key=key,
                    method=request.method,
                    path=request.path[:512],
                    request_hash=fingerprint,
                )
        except IntegrityError:
            existing = IdempotencyRecord.objects.filter(user=user, key=key).first()
            if existing is None:  # released by a failed first attempt in the meantime
                return wrapper(request, *args, **kwargs)
            if existing.request_hash != fingerprint:
                raise ApplicationError(
                    "This Idempotency-Key was already used with a different request.",
                    code="idempotency_key_reused",
                    status=409,
                ) from None
            if (
                existing.completed_at is None
                and existing.created_at < timezone.now() - IN_PROGRESS_TIMEOUT
            ):
                # The first attempt died without releasing its claim (process killed): take over.
                IdempotencyRecord.objects.filter(pk=existing.pk, completed_at__isnull=True).delete()
                return wrapper(request, *args, **kwargs)
            if existing.completed_at is None:
                raise ApplicationError(
                    "A request with this Idempotency-Key is still being processed; retry shortly.",
                    code="idempotency_request_in_progress",
                    status=409,
                ) from None
            response = JsonResponse(existing.response_body, status=existing.status_code, safe=False)
            response["Idempotent-Replayed"] = "true"
            return response
        try:
            result = view(request, *args, **kwargs)
        except BaseException:
            IdempotencyRecord.objects.filter(pk=record.pk).delete()
            raise
        status, body = _to_jsonable(result)
        IdempotencyRecord.objects.filter(pk=record.pk).update(
            status_code=status, response_body=body, completed_at=timezone.now()
        )
        return JsonResponse(body, status=status, safe=False)

    wrapper.idempotent = True
    return wrapper


# --- The API object ------------------------------------------------------------------------
class Api(NinjaAPI):
    """NinjaAPI whose OpenAPI document also describes the error envelope on every operation and
    the ``Idempotency-Key`` header on idempotent ones, so a client can be written from it alone."""

    def get_openapi_operation_id(self, operation) -> str:
        operation_id = super().get_openapi_operation_id(operation)
        self._operations_by_id = getattr(self, "_operations_by_id", {})
        self._operations_by_id[operation_id] = operation
        return operation_id

    def get_openapi_schema(self, *args: Any, **kwargs: Any):
        schema = super().get_openapi_schema(*args, **kwargs)
        schemas = schema.setdefault("components", {}).setdefault("schemas", {})
        schemas["ErrorEnvelope"] = ErrorEnvelope.model_json_schema(
            ref_template="#/components/schemas/{model}"
        )
        schemas.update(schemas["ErrorEnvelope"].pop("$defs", {}))
        error_ref = {
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/ErrorEnvelope"}}
            }
        }
        operations = getattr(self, "_operations_by_id", {})
        for path_item in schema.get("paths", {}).values():
            for op in path_item.values():
                if not isinstance(op, dict) or "responses" not in op:
                    continue
                op["responses"].setdefault(
                    "4XX",
                    {"description": 'Error: `{"error": {code, message, details}}`', **error_ref},
                )
                view = getattr(operations.get(op.get("operationId")), "view_func", None)
                if getattr(view, "idempotent", False):
                    op.setdefault("parameters", []).append(
                        {
                            "name": IDEMPOTENCY_HEADER,
                            "in": "header",
                            "required": False,
                            "schema": {"type": "string", "maxLength": 255},
                            "description": (
                                "Retry-safe key (e.g. a UUID). Same key + same body replays the "
                                "first response; same key + other body is 409 "
                                "idempotency_key_reused. Kept at least 24 h."
                            ),
                        }
                    )
        return schema
