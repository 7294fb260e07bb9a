import re
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any

from django.utils import timezone
from ninja import Field, Schema
from pydantic import (
    AfterValidator,
    BeforeValidator,
    ConfigDict,
    Strict,
    StringConstraints,
    WithJsonSchema,
)
from pydantic_core import PydanticCustomError

# --- Strict input types ----------------------------------------------------------------------
# Request bodies use these instead of ``int``/``bool``/``datetime``: pydantic's lax mode turns
# ``"1"``, ``1.0`` and ``true`` into the integer 1 and ``0``/``1`` into booleans, and reads a bare
# number as a Unix timestamp. For money, quantities, ids and flags that is a bug, so a JSON body
# must carry exactly the JSON type the OpenAPI document names. (Query and path parameters arrive
# as text and keep ``int``: there the text *is* the client's value.)
StrictInt = Annotated[int, Strict()]
StrictBool = Annotated[bool, Strict()]
Id = StrictInt
Quantity = StrictInt
Fen = StrictInt  # money: integer minor units


class BodyIn(Schema):
    """A request body (or an object inside one): exactly the fields the OpenAPI document names.
    A key it does not name is refused (422 ``validation_error``, the field's ``type``
    ``extra_forbidden``) instead of being dropped: ``{"coupon_id": 5}`` for ``coupon_ids`` would
    otherwise place the order without the coupon, and a mistyped PATCH field would answer 200
    having changed nothing. The OpenAPI document says so (``additionalProperties: false``)."""

    model_config = ConfigDict(extra="forbid")


def _json_number(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise PydanticCustomError("decimal_type", "Input should be a JSON number")
    return value


def json_number(minimum: int, maximum: int, description: str) -> Any:
    """A JSON number in ``[minimum, maximum]`` read exactly as a Decimal; not a numeric string
    (pydantic's Decimal also takes text, and documents it: here the OpenAPI type is ``number``)."""
    return Annotated[
        Decimal,
        BeforeValidator(_json_number),
        Field(ge=minimum, le=maximum, description=description),
        WithJsonSchema(
            {"type": "number", "minimum": minimum, "maximum": maximum, "description": description},
            mode="validation",
        ),
    ]


def trimmed(*, min_length: int = 0, max_length: int | None = None, pattern: str | None = None):
    """Text checked as sent against what the OpenAPI document says (``maxLength``, ``pattern``,
    ``minLength``), then stripped of surrounding whitespace, and refused when that leaves fewer
    than ``min_length`` characters. (pydantic's ``strip_whitespace`` strips first, so 101
    characters with a leading space passed a ``maxLength`` of 100.)"""

    def strip(value: str) -> str:
        value = value.strip()
        if len(value) < min_length:
            raise PydanticCustomError(
                "string_too_short",
                "String should have at least {min_length} characters besides whitespace",
                {"min_length": min_length},
            )
        return value

    constraints = StringConstraints(
        min_length=min_length or None, max_length=max_length, pattern=pattern
    )
    return Annotated[str, constraints, AfterValidator(strip)]


# Python and PostgreSQL share no date-time range at the edges: a value near year 1 or 9999 can
# leave it when converted to UTC or to the display time zone. A day of margin keeps every value
# this accepts storable, readable back and renderable in any time zone.
_EARLIEST_UTC = datetime(1, 1, 2)
_LATEST_UTC = datetime(9999, 12, 30)


# Date, "T" and time: pydantic would also read "0.5" or 1900000000 as Unix timestamps.
_ISO_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}")


def _datetime_text(value: Any) -> Any:
    if isinstance(value, datetime) or (isinstance(value, str) and _ISO_DATETIME.match(value)):
        return value
    raise PydanticCustomError("datetime_type", "Input should be an ISO 8601 date-time string")


def _storable_datetime(value: datetime) -> datetime:
    if timezone.is_naive(value):
        value = value.replace(tzinfo=timezone.get_default_timezone())
    offset = value.utcoffset() or timedelta(0)
    wall = value.replace(tzinfo=None)  # compared as wall time: the UTC conversion may overflow
    if not _EARLIEST_UTC + offset <= wall <= _LATEST_UTC + offset:
        raise PydanticCustomError(
            "invalid_datetime", "Date-time out of the storable range (years 1 to 9999 in UTC)"
        )
    return value


DateTimeIn = Annotated[
    datetime, BeforeValidator(_datetime_text), AfterValidator(_storable_datetime)
]
"""An ISO 8601 date-time string that the database can store; naive means the default time zone."""


class TokenPairOut(Schema):
    access_token: str
    refresh_token: str
    token_type: str = "Bearer"
    access_expires_at: datetime
    refresh_expires_at: datetime


class RefreshIn(BodyIn):
    refresh_token: str = Field(..., min_length=1, max_length=200)


class StaffLoginIn(BodyIn):
    username: str = Field(..., min_length=1, max_length=150)
    password: str = Field(..., min_length=1, max_length=200)


class MeOut(Schema):
    id: int
    username: str
    is_staff: bool


class NotificationOut(Schema):
    id: int
    kind: str
    title: str
    body: str
    data: dict[str, Any]
    created_at: datetime
    read_at: datetime | None


class NotificationPageOut(Schema):
    items: list[NotificationOut]
    cursor: int = Field(..., description="The last id returned; pass it as `after` next time.")
    has_more: bool
    unread_count: int


class MarkReadIn(BodyIn):
    ids: list[Id] | None = Field(None, max_length=500)
    up_to: Id | None = Field(None, ge=0, description="Mark every notification with id <= up_to.")


class MarkedOut(Schema):
    marked: int


class AnnouncementIn(BodyIn):
    title: str = Field(..., min_length=1, max_length=200)
    body: str = Field("", max_length=5000)
    send_at: DateTimeIn | None = Field(None, description="Default: now (sent by the next sweep).")
    audience: str = Field("all", pattern="^(all|staff)$")
    is_advertisement: StrictBool = False


class AnnouncementOut(Schema):
    id: int
    title: str
    body: str
    audience: str
    is_advertisement: bool
    send_at: datetime
    sent_at: datetime | None
    recipients_count: int
