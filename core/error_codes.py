"""Error codes: one ``StrEnum`` per area (Saleor's ``OrderErrorCode``), instead of free strings at
each raise site.

A member's value is the stable snake_case code clients switch on (never rename one: add a new
member instead); being a ``str``, it renders in JSON exactly as the string did. Each member also
carries the HTTP ``status`` it is answered with, so an operation lists its codes once
(``core.http.errors``) and the OpenAPI document groups them by status. The same code may appear in
two areas (``illegal_transition`` for orders and refunds) when it means the same thing there; it
then has the same status (tests/core/test_error_codes.py checks both, and that raise sites agree
with the status of the code they raise)."""

from enum import StrEnum
from typing import Self


class ErrorCode(StrEnum):
    """Base of every area's enum: ``Member = "stable_code", <HTTP status>``."""

    status: int

    def __new__(cls, value: str, status: int) -> Self:
        member = str.__new__(cls, value)
        member._value_ = value
        member.status = status
        return member


class CoreErrorCode(ErrorCode):
    """What any operation can answer: the request itself (shape, size, media type), generic
    lookups and states, limits, and our own failures."""

    BAD_REQUEST = "bad_request", 400
    MALFORMED_JSON = "malformed_json", 400
    NOT_FOUND = "not_found", 404
    METHOD_NOT_ALLOWED = "method_not_allowed", 405
    CONFLICT = "conflict", 409
    PAYLOAD_TOO_LARGE = "payload_too_large", 413
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type", 415
    VALIDATION_ERROR = "validation_error", 422
    INVALID_INPUT = "invalid_input", 422
    INVALID_BODY = "invalid_body", 422
    INVALID_DEVICE_ID = "invalid_device_id", 400
    INVALID_CHARACTERS = "invalid_characters", 422
    INVALID_DATETIME = "invalid_datetime", 422
    VALUE_OUT_OF_RANGE = "value_out_of_range", 422
    RATE_LIMITED = "rate_limited", 429
    INTERNAL_ERROR = "internal_error", 500


class AuthErrorCode(ErrorCode):
    """Tokens, sessions, staff login and permissions."""

    NOT_AUTHENTICATED = "not_authenticated", 401
    TOKEN_EXPIRED = "token_expired", 401
    TOKEN_INVALID = "token_invalid", 401
    TOKEN_REVOKED = "token_revoked", 401
    ACCOUNT_DISABLED = "account_disabled", 401
    REFRESH_TOKEN_INVALID = "refresh_token_invalid", 401
    REFRESH_TOKEN_REUSED = "refresh_token_reused", 401
    INVALID_CREDENTIALS = "invalid_credentials", 401
    PERMISSION_DENIED = "permission_denied", 403
    STAFF_ONLY = "staff_only", 403


class IdempotencyErrorCode(ErrorCode):
    """The ``Idempotency-Key`` header (core.http.idempotent)."""

    IDEMPOTENCY_KEY_INVALID = "idempotency_key_invalid", 400
    IDEMPOTENCY_KEY_REUSED = "idempotency_key_reused", 409
    IDEMPOTENCY_REQUEST_IN_PROGRESS = "idempotency_request_in_progress", 409


class NotificationErrorCode(ErrorCode):
    NOTHING_TO_MARK = "nothing_to_mark", 422
