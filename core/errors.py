"""The domain error family. Every error a client can cause is an ``ApplicationError`` with a
stable snake_case ``code``, a human ``message``, an HTTP status and optional ``details``; the API
layer renders them all in one envelope (see core/http.py)."""

from typing import Any


class ApplicationError(Exception):
    status = 400
    code = "bad_request"
    default_message = "The request could not be processed."

    def __init__(
        self,
        message: str | None = None,
        *,
        code: str | None = None,
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
    code = "not_found"
    default_message = "The requested resource does not exist."


class Conflict(ApplicationError):
    """A valid request that the current state forbids (illegal transition, duplicate...)."""

    status = 409
    code = "conflict"
    default_message = "The request conflicts with the current state."


class InvalidInput(ApplicationError):
    status = 422
    code = "invalid_input"
    default_message = "The request contains invalid values."


class NotAuthenticated(ApplicationError):
    status = 401
    code = "not_authenticated"
    default_message = "Authentication credentials were not provided or are invalid."


class PermissionDenied(ApplicationError):
    status = 403
    code = "permission_denied"
    default_message = "You do not have permission to perform this action."


class RateLimited(ApplicationError):
    status = 429
    code = "rate_limited"
    default_message = "Too many requests; retry later."

    def __init__(self, retry_after: int, message: str | None = None) -> None:
        retry_after = max(1, int(retry_after))
        super().__init__(
            message,
            details={"retry_after": retry_after},
            headers={"Retry-After": str(retry_after)},
        )
