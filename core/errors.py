"""The domain error family. Every error a client can cause is an ``ApplicationError`` with a
stable snake_case ``code``, a human ``message``, an HTTP status and optional ``details``; the API
layer renders them all in one envelope (see core/http.py).

A ``code`` is a member of an area's enum (core/error_codes.py, shop/error_codes.py), never a bare
string: the value is what clients see, the enum is where the codes are listed and documented.
tests/core/test_error_codes.py refuses a string literal at any raise site."""

from typing import Any

from core.error_codes import AuthErrorCode, CoreErrorCode, ErrorCode


class ApplicationError(Exception):
    status = 400
    code: ErrorCode = CoreErrorCode.BAD_REQUEST
    default_message = "The request could not be processed."

    def __init__(
        self,
        message: str | None = None,
        *,
        code: ErrorCode | None = None,
        status: int | None = None,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.message = message or self.default_message
        if code:
            self.code = code
        if status:
            self.status = status
        self.details = details or {}
        self.headers = headers or {}
        super().__init__(self.message)


class NotFound(ApplicationError):
    status = 404
    code = CoreErrorCode.NOT_FOUND
    default_message = "The requested resource does not exist."


class Conflict(ApplicationError):
    """A valid request that the current state forbids (illegal transition, duplicate...)."""

    status = 409
    code = CoreErrorCode.CONFLICT
    default_message = "The request conflicts with the current state."


class InvalidInput(ApplicationError):
    status = 422
    code = CoreErrorCode.INVALID_INPUT
    default_message = "The request contains invalid values."


class NotAuthenticated(ApplicationError):
    status = 401
    code = AuthErrorCode.NOT_AUTHENTICATED
    default_message = "Authentication credentials were not provided or are invalid."


class PermissionDenied(ApplicationError):
    status = 403
    code = AuthErrorCode.PERMISSION_DENIED
    default_message = "You do not have permission to perform this action."


class RateLimited(ApplicationError):
    status = 429
    code = CoreErrorCode.RATE_LIMITED
    default_message = "Too many requests; retry later."

    def __init__(self, retry_after: int, message: str | None = None) -> None:
        retry_after = max(1, int(retry_after))
        super().__init__(
            message,
            details={"retry_after": retry_after},
            headers={"Retry-After": str(retry_after)},
        )


class PayloadTooLarge(ApplicationError):
    status = 413
    code = CoreErrorCode.PAYLOAD_TOO_LARGE
    default_message = "The request body is too large."


class UnsupportedMediaType(ApplicationError):
    status = 415
    code = CoreErrorCode.UNSUPPORTED_MEDIA_TYPE
    default_message = "The request body must be JSON (Content-Type: application/json)."
