"""HTTP conventions shared by every router: the error envelope, strict input, pagination, auth,
idempotency.

Every non-2xx answer under ``/api/`` has one shape::

    {"error": {"code": "<stable_snake_case>", "message": "<human readable>", "details": {...}}}
"""

import hashlib
import hmac
import json
import logging
import re
import uuid
from collections.abc import Callable
from datetime import timedelta
from functools import wraps
from http import HTTPStatus
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.db import DatabaseError, DataError, IntegrityError, transaction
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from django.views.decorators.cache import cache_page
from django_ratelimit import ALL as ALL_METHODS
from django_ratelimit.core import get_usage
from ninja import Field, NinjaAPI, Schema
from ninja.errors import AuthenticationError, HttpError, ValidationError, ValidationErrorContext
from ninja.pagination import PaginationBase
from ninja.parser import Parser
from ninja.responses import Status
from ninja.security import HttpBearer
from pydantic import BaseModel

from core import clientip
from core.error_codes import AuthErrorCode, CoreErrorCode, ErrorCode, IdempotencyErrorCode
from core.errors import (
    ApplicationError,
    InvalidInput,
    PayloadTooLarge,
    PermissionDenied,
    RateLimited,
    UnsupportedMediaType,
)
from core.locks import lock_idempotency_record_nowait
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
    400: (CoreErrorCode.BAD_REQUEST, "The request is malformed."),
    401: (
        AuthErrorCode.NOT_AUTHENTICATED,
        "Authentication credentials were not provided or are invalid.",
    ),
    403: (AuthErrorCode.PERMISSION_DENIED, "You do not have permission to perform this action."),
    404: (CoreErrorCode.NOT_FOUND, "The requested resource does not exist."),
    405: (CoreErrorCode.METHOD_NOT_ALLOWED, "This method is not allowed on this resource."),
    409: (CoreErrorCode.CONFLICT, "The request conflicts with the current state."),
    413: (CoreErrorCode.PAYLOAD_TOO_LARGE, "The request body is too large."),
    415: (CoreErrorCode.UNSUPPORTED_MEDIA_TYPE, "The request body must be JSON."),
    429: (CoreErrorCode.RATE_LIMITED, "Too many requests; retry later."),
    500: (CoreErrorCode.INTERNAL_ERROR, "Something went wrong on our side; nothing was changed."),
}


def _generic(status: int) -> tuple[str, str]:
    # a status no handler expects (none today) keeps a code naming only its kind
    return _STATUS_CODES.get(status, ("http_error", f"HTTP {status}."))


def _field_error(path: tuple[Any, ...], location: str, message: str, type_: str) -> dict[str, Any]:
    """One entry of ``details.fields``: ``path`` as the client sent it (``lines.0.quantity``),
    ``in`` where (``body``, ``query``, ``path``, ``header``), as in the OpenAPI document."""
    return {
        "path": ".".join(str(part) for part in path),
        "in": location,
        "message": message,
        "type": type_,
    }


def _validation_details(errors: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "fields": [
            _field_error(
                tuple(err.get("loc", ())),
                err.get("in", ""),
                err.get("msg", ""),
                err.get("type", ""),
            )
            for err in errors
        ]
    }


# Validation error types that are the whole story when they are the only kind in a request: the
# envelope then carries that type as its code, so a client can tell "this date-time cannot be
# stored" from "this field is malformed" without reading details.
_SPECIFIC_VALIDATION_CODES = {
    CoreErrorCode.INVALID_DATETIME: (
        "A date-time in the request is outside the range that can be stored."
    ),
}


# --- Strict input ------------------------------------------------------------------------------
# Every operation reads its body and query string through ``StrictJsonParser`` (the Api's parser)
# and reports validation errors through ``Api.validation_error_from_error_contexts``, so these rules
# hold for every present and future operation without anything to remember per endpoint:
# a body is a UTF-8 JSON object sent as application/json (else 415 / 422 ``invalid_body``), and no
# string PostgreSQL cannot store (NUL, lone surrogates) gets past the edge (422
# ``invalid_characters`` naming the field). Strict types (core/schemas.py) do the rest.
_UNSTORABLE_CHARACTERS = re.compile("[\x00\ud800-\udfff]")
_JSON_MEDIA_TYPE = re.compile(r"^application/([\w.-]+\+)?json$")
_JSON_TYPE_NAMES = {
    list: "an array",
    str: "a string",
    bool: "a boolean",
    int: "a number",
    float: "a number",
    type(None): "null",
}


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _unstorable_paths(data: Any) -> list[tuple[Any, ...]]:
    """Paths of every string (value or key) in parsed JSON that PostgreSQL cannot store."""
    found: list[tuple[Any, ...]] = []
    stack: list[tuple[tuple[Any, ...], Any]] = [((), data)]
    while stack:  # iterative: a deeply nested body must not exhaust the stack here
        path, value = stack.pop()
        if isinstance(value, str):
            if _UNSTORABLE_CHARACTERS.search(value):
                found.append(path)
        elif isinstance(value, dict):
            for key, item in value.items():
                if _UNSTORABLE_CHARACTERS.search(key):
                    found.append((*path, key))
                stack.append(((*path, key), item))
        elif isinstance(value, list):
            stack.extend(((*path, index), item) for index, item in enumerate(value))
    return sorted(found, key=lambda path: [str(part) for part in path])


def _refuse_unstorable(data: Any, location: str) -> None:
    paths = _unstorable_paths(data)
    if paths:
        message = "NUL bytes and unpaired surrogates are not allowed in text."
        raise InvalidInput(
            "Some text in the request contains characters that cannot be stored.",
            code=CoreErrorCode.INVALID_CHARACTERS,
            details={
                "fields": [
                    _field_error(path, location, message, CoreErrorCode.INVALID_CHARACTERS)
                    for path in paths
                ]
            },
        )


class StrictJsonParser(Parser):
    """The Api's parser. ninja calls ``parse_body`` only for a non-empty body on an operation that
    takes one; whatever it raises is wrapped in a 400 ``HttpError`` whose cause the error handler
    answers instead (see ``_http_error``)."""

    def parse_body(self, request: HttpRequest) -> dict[str, Any]:
        charset = (request.content_params or {}).get("charset", "utf-8").lower()
        if not _JSON_MEDIA_TYPE.match(request.content_type or "") or charset not in (
            "utf-8",
            "utf8",
        ):
            raise UnsupportedMediaType(
                "The request body must be JSON: send Content-Type: application/json.",
                details={"content_type": request.headers.get("Content-Type", "")},
            )
        data = json.loads(request.body.decode("utf-8"), parse_constant=_refuse_constant)
        if not isinstance(data, dict):
            received = _JSON_TYPE_NAMES.get(type(data), "not an object")
            raise InvalidInput(
                f"The request body must be a JSON object, not {received}.",
                code=CoreErrorCode.INVALID_BODY,
            )
        _refuse_unstorable(data, "body")
        return data

    def parse_querydict(self, data, list_fields: list[str], request: HttpRequest) -> dict[str, Any]:
        # a repeated parameter is one field to the client: name it, not its n-th value
        _refuse_unstorable({key: " ".join(values) for key, values in data.lists()}, "query")
        return super().parse_querydict(data, list_fields, request)


def _database_error_code(exc: DataError) -> tuple[CoreErrorCode, str]:
    """The last line of defence for values the edge did not catch (a header, a path segment):
    answer what PostgreSQL (or psycopg) refused in the client's terms."""
    text = str(exc).lower()
    if "0x00" in text or "nul " in text:
        return CoreErrorCode.INVALID_CHARACTERS, "Some text in the request contains a NUL byte."
    if "timestamp" in text or "date" in text:
        code = CoreErrorCode.INVALID_DATETIME
        return code, _SPECIFIC_VALIDATION_CODES[code]
    return CoreErrorCode.VALUE_OUT_OF_RANGE, "A number in the request is out of the accepted range."


def install_error_handlers(api: NinjaAPI) -> None:
    @api.exception_handler(ApplicationError)
    def _application_error(request: HttpRequest, exc: ApplicationError) -> HttpResponse:
        return error_response(exc.status, exc.code, exc.message, exc.details, exc.headers)

    @api.exception_handler(ValidationError)
    def _validation_error(request: HttpRequest, exc: ValidationError) -> HttpResponse:
        code, message = CoreErrorCode.VALIDATION_ERROR, "Some fields are missing or invalid."
        types = {err.get("type") for err in exc.errors}
        if len(types) == 1 and (only := types.pop()) in _SPECIFIC_VALIDATION_CODES:
            code = next(key for key in _SPECIFIC_VALIDATION_CODES if key == only)
            message = _SPECIFIC_VALIDATION_CODES[code]
        return error_response(422, code, message, _validation_details(exc.errors))

    @api.exception_handler(AuthenticationError)
    def _auth_error(request: HttpRequest, exc: AuthenticationError) -> HttpResponse:
        code, message = _generic(401)
        return error_response(401, code, message, headers={"WWW-Authenticate": "Bearer"})

    @api.exception_handler(HttpError)
    def _http_error(request: HttpRequest, exc: HttpError) -> HttpResponse:
        if isinstance(exc.__cause__, ApplicationError):  # refused by StrictJsonParser
            return _application_error(request, exc.__cause__)
        code, default = _generic(exc.status_code)
        if exc.status_code == 400 and str(exc).startswith("Cannot parse request body"):
            code = CoreErrorCode.MALFORMED_JSON
        return error_response(exc.status_code, code, str(exc) or default)

    @api.exception_handler(Http404)
    def _not_found(request: HttpRequest, exc: Http404) -> HttpResponse:
        code, message = _generic(404)
        return error_response(404, code, message)

    @api.exception_handler(DjangoPermissionDenied)
    def _forbidden(request: HttpRequest, exc: DjangoPermissionDenied) -> HttpResponse:
        code, message = _generic(403)
        return error_response(403, code, message)

    @api.exception_handler(RequestDataTooBig)
    def _too_large(request: HttpRequest, exc: RequestDataTooBig) -> HttpResponse:
        # Raised by Django when ninja (or a raw-body view such as the Stripe webhook) reads a body
        # over DATA_UPLOAD_MAX_MEMORY_SIZE: before any parsing, so nothing ran.
        error = PayloadTooLarge(
            details={"max_bytes": settings.DATA_UPLOAD_MAX_MEMORY_SIZE},
        )
        return _application_error(request, error)

    @api.exception_handler(OverflowError)
    def _overflow(request: HttpRequest, exc: OverflowError) -> HttpResponse:
        logger.warning("value out of range on %s %s: %s", request.method, request.path, exc)
        return error_response(
            422,
            CoreErrorCode.VALUE_OUT_OF_RANGE,
            "A number in the request is out of the accepted range.",
        )

    @api.exception_handler(DataError)
    def _data_error(request: HttpRequest, exc: DataError) -> HttpResponse:
        # A value the database cannot hold that the edge let through: bad input, not a crash.
        # Services write inside transaction.atomic, so nothing was half-written.
        logger.warning(
            "value refused by the database on %s %s: %s", request.method, request.path, exc
        )
        code, message = _database_error_code(exc)
        return error_response(422, code, message)

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
        request.auth_session_id = session_id  # type: ignore[attr-defined]  # read by request_session_id
        return user


class StaffAuth(BearerAuth):
    """A bearer token of a staff user; per-action permissions are checked with ``require_perm``."""

    def authenticate(self, request: HttpRequest, token: str) -> User:
        user = super().authenticate(request, token)
        if not user.is_staff:
            raise PermissionDenied("This endpoint is for operators.", code=AuthErrorCode.STAFF_ONLY)
        return user


bearer_auth = BearerAuth()
staff_auth = StaffAuth()


def request_user(request: HttpRequest) -> User:
    """The user a ``BearerAuth`` operation authenticated (ninja sets ``request.auth``)."""
    user = getattr(request, "auth", None)
    if not isinstance(user, User):
        raise RuntimeError("this operation needs BearerAuth")
    return user


def request_session_id(request: HttpRequest) -> int:
    """The session of the access token that authenticated the request."""
    session_id = getattr(request, "auth_session_id", None)
    if not isinstance(session_id, int):
        raise RuntimeError("this operation needs BearerAuth")
    return session_id


def require_perm(request: HttpRequest, perm: str) -> None:
    if not request.user.has_perm(perm):
        raise PermissionDenied(f"Missing permission {perm}.", details={"permission": perm})


def client_ip(request: HttpRequest) -> str:
    """The client's address, with ``X-Forwarded-For`` believed only from ``TRUSTED_PROXIES``."""
    return clientip.client_ip(request)


def rate_limit(
    request: HttpRequest, *, group: str, rate: str, key: str = "ip", value: str | None = None
) -> None:
    """Count this request against ``rate`` (django-ratelimit) and refuse with 429 when over.

    ``key``: ``"ip"`` (the client IP of ``core.clientip``) or ``"user"``; or give ``value`` (an
    account name, a login code) to count per that value instead, whoever sends it."""
    counted: Any = key
    if value is not None:
        normalized = value.strip().lower()

        def counted(group: str, request: HttpRequest) -> str:
            return normalized

    usage = get_usage(
        request, group=group, key=counted, rate=rate, method=ALL_METHODS, increment=True
    )
    if usage and usage["should_limit"]:
        raise RateLimited(retry_after=usage["time_left"])


DEVICE_HEADER = "X-Device-Id"


def device_id(request: HttpRequest) -> uuid.UUID | None:
    """The ``X-Device-Id`` header (INTERFACES.md): a UUID the mini-program makes once and keeps.
    Stored on helps and clicks as a signal, never trusted for authorisation. None when absent;
    400 ``invalid_device_id`` when it is not a UUID."""
    raw = request.headers.get(DEVICE_HEADER)
    if raw is None or raw.strip() == "":
        return None
    try:
        if len(raw) > 64:
            raise ValueError(raw[:64])
        return uuid.UUID(raw.strip())
    except ValueError:
        raise ApplicationError(
            f"{DEVICE_HEADER} must be a UUID.",
            code=CoreErrorCode.INVALID_DEVICE_ID,
            status=400,
            details={"header": DEVICE_HEADER},
        ) from None


def ip_hash(request: HttpRequest) -> str:
    """A keyed hash of the client IP (HMAC-SHA256 with ``SECRET_KEY``): the same address gives
    the same value, so farming from one address shows in the data, without storing the address."""
    address = client_ip(request).encode()
    return hmac.new(settings.SECRET_KEY.encode(), address, hashlib.sha256).hexdigest()


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
        (request.method or "").encode() + request.path.encode() + b"\n" + canonical
    ).hexdigest()


def _to_jsonable(result: Any) -> tuple[int, Any]:
    status = 200
    if isinstance(result, Status):
        status, result = result.status_code, result.value
    if isinstance(result, BaseModel):
        return status, result.model_dump(mode="json")
    return status, json.loads(json.dumps(result, default=str))


def _in_progress() -> ApplicationError:
    return ApplicationError(
        "A request with this Idempotency-Key is still being processed; retry shortly.",
        code=IdempotencyErrorCode.IDEMPOTENCY_REQUEST_IN_PROGRESS,
        status=409,
    )


class _ClaimBusy(Exception):
    """Another attempt holds the claim's lock: it is running."""


def _lock_claim(record_pk: int) -> IdempotencyRecord | None:
    """The claim row, locked for this transaction (None if it was released)."""
    try:
        with transaction.atomic():
            return lock_idempotency_record_nowait(record_pk)
    except DatabaseError:
        raise _ClaimBusy from None


def _replay(record: IdempotencyRecord) -> JsonResponse:
    response = JsonResponse(record.response_body, status=record.status_code, safe=False)
    response["Idempotent-Replayed"] = "true"
    return response


def idempotent(
    view: Callable[..., Any] | None = None, *, atomic: bool = True
) -> Callable[..., Any]:
    """Honour ``Idempotency-Key`` on a POST that creates money, seats or holds.

    Same user + key + same body: the stored first response, no second write. Same key, other
    body: 409 ``idempotency_key_reused``. The key is claimed by inserting a row under a unique
    constraint before the work runs, so two concurrent retries cannot both write. Only successful
    responses are kept; on an error the claim is released and the client may retry the same key.
    Views using this return a Schema instance (or ``Status(code, Schema)``).

    Crashes: with ``atomic`` (the default) the view runs in one transaction that holds the claim
    row locked and completes the claim, so the business write and the stored response commit
    together or not at all. A claim still unfinished after ``IN_PROGRESS_TIMEOUT`` is taken over
    only if its row can be locked: then no attempt is running and the first one's write never
    committed (it died or rolled back), so the takeover cannot make a second order. While the
    first attempt runs, however slowly, its lock makes every duplicate a 409 in progress.

    ``atomic=False`` is for a view that calls a provider between its transactions (no lock may be
    held across that call): its service must be idempotent by construction, since a takeover
    runs it again (``payment_start`` returns the order's open payment).
    """
    if view is None:
        return lambda decorated: idempotent(decorated, atomic=atomic)

    def run_atomic(
        record_pk: int, request: HttpRequest, args: Any, kwargs: Any
    ) -> JsonResponse | None:
        with transaction.atomic():
            record = _lock_claim(record_pk)
            if record is None:  # released by a failed attempt in the meantime
                return None
            if record.completed_at is not None:
                return _replay(record)
            status, body = _to_jsonable(view(request, *args, **kwargs))
            IdempotencyRecord.objects.filter(pk=record_pk).update(
                status_code=status, response_body=body, completed_at=timezone.now()
            )
        return JsonResponse(body, status=status, safe=False)

    def run_plain(record_pk: int, request: HttpRequest, args: Any, kwargs: Any) -> JsonResponse:
        status, body = _to_jsonable(view(request, *args, **kwargs))
        IdempotencyRecord.objects.filter(pk=record_pk).update(
            status_code=status, response_body=body, completed_at=timezone.now()
        )
        return JsonResponse(body, status=status, safe=False)

    run = run_atomic if atomic else run_plain

    def released_on_error(record_pk: int, request: HttpRequest, args: Any, kwargs: Any) -> Any:
        try:
            response = run(record_pk, request, args, kwargs)
        except _ClaimBusy:
            raise _in_progress() from None
        except BaseException:
            IdempotencyRecord.objects.filter(pk=record_pk, completed_at__isnull=True).delete()
            raise
        return wrapper(request, *args, **kwargs) if response is None else response

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
        key = request.headers.get(IDEMPOTENCY_HEADER)
        if not key:
            return view(request, *args, **kwargs)
        if len(key) > 255:
            raise ApplicationError(
                "Idempotency-Key must be at most 255 characters.",
                code=IdempotencyErrorCode.IDEMPOTENCY_KEY_INVALID,
                status=400,
            )
        user = request_user(request)
        fingerprint = _request_fingerprint(request)
        try:
            with transaction.atomic():
                record = IdempotencyRecord.objects.create(
                    user=user,
                    key=key,
                    method=request.method or "",
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
                    code=IdempotencyErrorCode.IDEMPOTENCY_KEY_REUSED,
                    status=409,
                ) from None
            if existing.completed_at is not None:
                return _replay(existing)
            if existing.created_at >= timezone.now() - IN_PROGRESS_TIMEOUT:
                raise _in_progress() from None
            # Unfinished for too long: the first attempt died, or is still running (atomic: it
            # holds the claim's lock, and locking it here answers 409 in progress).
            if not atomic:
                IdempotencyRecord.objects.filter(pk=existing.pk, completed_at__isnull=True).delete()
                return wrapper(request, *args, **kwargs)
            return released_on_error(existing.pk, request, args, kwargs)
        return released_on_error(record.pk, request, args, kwargs)

    wrapper.idempotent = True  # type: ignore[attr-defined]  # read by the OpenAPI builder
    return wrapper


# --- Documented errors ---------------------------------------------------------------------------
def errors(*codes: ErrorCode) -> Callable[[ViewFunc], ViewFunc]:
    """Declare the error codes an operation answers besides those every operation of its kind
    can (``implicit_error_codes``); the Api lists them in the operation's OpenAPI responses,
    grouped by each code's status. Put it right under the ``@router.<method>`` decorator::

        @router.post("/orders", ...)
        @errors(OrderErrorCode.NO_LINES, CatalogErrorCode.OUT_OF_STOCK)
        @idempotent
        def order_create(...): ...
    """

    def decorator(view: ViewFunc) -> ViewFunc:
        view.error_codes = (*getattr(view, "error_codes", ()), *codes)  # type: ignore[attr-defined]
        return view

    return decorator


def examples(
    *, request: dict[str, Any] | None = None, response: Any = None
) -> Callable[[ViewFunc], ViewFunc]:
    """Example request body and/or main success response of an operation, for its OpenAPI
    document (set on the ``application/json`` media types; the schemas stay untouched, so no
    alias or validator is added to the request path)."""

    def decorator(view: ViewFunc) -> ViewFunc:
        view.openapi_examples = {"request": request, "response": response}  # type: ignore[attr-defined]
        return view

    return decorator


def _set_examples(op: dict[str, Any], view: Any) -> None:
    found = getattr(view, "openapi_examples", None)
    if not found:
        return
    if found["request"] is not None:
        for media in op.get("requestBody", {}).get("content", {}).values():
            media["example"] = found["request"]
    if found["response"] is not None:
        success = min((s for s in op["responses"] if str(s).startswith("2")), key=str)
        content = op["responses"][success].setdefault("content", {})
        content.setdefault("application/json", {})["example"] = found["response"]


_AUTHENTICATION_CODES = (
    AuthErrorCode.NOT_AUTHENTICATED,
    AuthErrorCode.TOKEN_EXPIRED,
    AuthErrorCode.TOKEN_INVALID,
    AuthErrorCode.TOKEN_REVOKED,
    AuthErrorCode.ACCOUNT_DISABLED,
)
_INPUT_CODES = (
    CoreErrorCode.VALIDATION_ERROR,
    CoreErrorCode.INVALID_CHARACTERS,
    CoreErrorCode.INVALID_DATETIME,
    CoreErrorCode.VALUE_OUT_OF_RANGE,
)
_BODY_CODES = (
    CoreErrorCode.MALFORMED_JSON,
    CoreErrorCode.PAYLOAD_TOO_LARGE,
    CoreErrorCode.UNSUPPORTED_MEDIA_TYPE,
    CoreErrorCode.INVALID_BODY,
)
_IDEMPOTENCY_CODES = tuple(IdempotencyErrorCode)


def implicit_error_codes(
    *, auth: list[Any], takes_input: bool, takes_body: bool, idempotent: bool
) -> tuple[ErrorCode, ...]:
    """What an operation can answer because of how it is declared, whatever its service does:
    bearer auth (401 token codes), staff auth (403 ``staff_only`` / ``permission_denied`` of
    ``require_perm``), parameters (422 validation family), a JSON body (400 / 413 / 415 / 422
    ``invalid_body``), ``@idempotent`` (the key's codes), and 500 ``internal_error``."""
    codes: list[ErrorCode] = [CoreErrorCode.INTERNAL_ERROR]
    if any(isinstance(callback, BearerAuth) for callback in auth):
        codes.extend(_AUTHENTICATION_CODES)
    if any(isinstance(callback, StaffAuth) for callback in auth):
        codes.extend((AuthErrorCode.STAFF_ONLY, AuthErrorCode.PERMISSION_DENIED))
    if takes_input or takes_body:
        codes.extend(_INPUT_CODES)
    if takes_body:
        codes.extend(_BODY_CODES)
    if idempotent:
        codes.extend(_IDEMPOTENCY_CODES)
    return tuple(codes)


def _error_responses(codes: tuple[ErrorCode, ...]) -> dict[str, dict[str, Any]]:
    """OpenAPI responses for ``codes``: one per status, the envelope with ``error.code`` narrowed
    to that status's codes (an ``enum``) and the codes named in the description."""
    by_status: dict[int, list[str]] = {}
    for code in codes:
        listed = by_status.setdefault(code.status, [])
        if code.value not in listed:
            listed.append(code.value)
    responses = {}
    for status, values in sorted(by_status.items()):
        reason = HTTPStatus(status).phrase
        responses[str(status)] = {
            "description": f"{reason}: " + ", ".join(f"`{value}`" for value in values),
            "content": {
                "application/json": {
                    "schema": {
                        "allOf": [
                            {"$ref": "#/components/schemas/ErrorEnvelope"},
                            {
                                "type": "object",
                                "properties": {
                                    "error": {
                                        "type": "object",
                                        "properties": {
                                            "code": {"type": "string", "enum": sorted(values)}
                                        },
                                    }
                                },
                            },
                        ]
                    }
                }
            },
        }
    return responses


# --- The API object ------------------------------------------------------------------------
def _body_is_an_object(operation: dict[str, Any]) -> None:
    """An optional body (``payload: X | None = None``) is documented by ninja as "X or null"; the
    server leaves it out when there is none and refuses a JSON ``null`` (every body is an
    object), so the document says X, with ``required: false``."""
    for media in operation.get("requestBody", {}).get("content", {}).values():
        options = media.get("schema", {}).get("anyOf")
        if options and {"type": "null"} in options:
            kept = [option for option in options if option != {"type": "null"}]
            media["schema"] = kept[0] if len(kept) == 1 else {"anyOf": kept}


class Api(NinjaAPI):
    """NinjaAPI whose OpenAPI document also describes, on every operation, each error status it
    can answer with the codes of that status (``implicit_error_codes`` + the operation's
    ``@errors``), and the ``Idempotency-Key`` header on idempotent ones, so a client can be
    written from it alone;
    it reads input strictly (``StrictJsonParser``) and names invalid fields as the client sent
    them."""

    def __init__(self, *args: Any, parser: Parser | None = None, **kwargs: Any) -> None:
        super().__init__(*args, parser=parser or StrictJsonParser(), **kwargs)

    def validation_error_from_error_contexts(
        self, error_contexts: list[ValidationErrorContext]
    ) -> ValidationError:
        """``lines.0.quantity`` (``in: body``), not ninja's ``body.payload.lines.0.quantity``."""
        errors = []
        for context in error_contexts:
            model = context.model
            location = model.__ninja_param_source__
            body_attr = getattr(model, "__read_from_single_attr__", None)
            flattened = getattr(model, "__ninja_flatten_map_reverse__", {})
            for err in context.pydantic_validation_error.errors(
                include_url=False, include_input=False, include_context=False
            ):
                loc = tuple(flattened.get(err["loc"], err["loc"]))
                if location == "body" and body_attr and loc[:1] == (body_attr,):
                    loc = loc[1:]
                    if not loc and err["type"] == "missing":
                        raise InvalidInput(
                            "This operation needs a JSON object body.",
                            code=CoreErrorCode.INVALID_BODY,
                        )
                errors.append({"loc": loc, "in": location, "msg": err["msg"], "type": err["type"]})
        return ValidationError(errors)

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
                operation = operations.get(op.get("operationId"))
                view = getattr(operation, "view_func", None)
                codes = implicit_error_codes(
                    auth=list(getattr(operation, "auth_callbacks", None) or []),
                    takes_input=bool(op.get("parameters")),
                    takes_body="requestBody" in op,
                    idempotent=getattr(view, "idempotent", False),
                )
                for status, response in _error_responses(
                    (*codes, *getattr(view, "error_codes", ()))
                ).items():
                    op["responses"].setdefault(status, response)
                op["responses"].setdefault(
                    "4XX",
                    {
                        "description": (
                            "Any other client error (e.g. 405 `method_not_allowed`): "
                            '`{"error": {code, message, details}}`'
                        ),
                        **error_ref,
                    },
                )
                _body_is_an_object(op)
                _set_examples(op, view)
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
