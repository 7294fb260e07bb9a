from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Annotated

from ninja import Field, Schema
from pydantic import StringConstraints, field_validator

from core.schemas import BodyIn, Id, StrictBool, json_number, trimmed

# Text is checked as sent, then trimmed (core.schemas.trimmed): what the OpenAPI document says.
Name = trimmed(min_length=1, max_length=100)
Text64 = trimmed(min_length=1, max_length=64)
Optional64 = trimmed(max_length=64)
Text255 = trimmed(min_length=1, max_length=255)
Phone = trimmed(pattern=r"^\+?[0-9][0-9 \-]{4,30}$")
OptionalPhone = trimmed(pattern=r"^(\+?[0-9][0-9 \-]{4,30})?$")
AvatarUrl = trimmed(max_length=500, pattern=r"^(https?://\S+)?$")
OpeningHours = trimmed(max_length=200)
PostalCode = trimmed(max_length=16, pattern=r"^[0-9A-Za-z \-]*$")
Latitude = json_number(-90, 90, "Degrees, -90..90")
Longitude = json_number(-180, 180, "Degrees, -180..180")

_MICRODEGREE = Decimal("0.000001")


def _microdegrees(value: Decimal | None) -> Decimal | None:
    """Coordinates are stored with 6 decimals (about 0.1 m); finer input is rounded, not refused."""
    return None if value is None else value.quantize(_MICRODEGREE, rounding=ROUND_HALF_EVEN)


def _number(value: Decimal | None) -> float | None:
    return None if value is None else float(value)


# --- Profile ---------------------------------------------------------------------------------
class ProfileOut(Schema):
    id: int
    nickname: str
    avatar_url: str
    phone: str
    created_at: datetime


class ProfilePatchIn(BodyIn):
    nickname: Text64 | None = None
    avatar_url: AvatarUrl | None = Field(None, description='An http(s) URL; "" clears it')
    phone: OptionalPhone | None = Field(None, description='"" clears it')


# --- Addresses -------------------------------------------------------------------------------
class AddressIn(BodyIn):
    recipient_name: Text64
    phone: Phone
    province: Text64
    city: Text64
    district: Optional64 = ""
    detail: Text255
    postal_code: PostalCode = ""
    is_default: StrictBool = Field(
        False, description="Make this the default (the first address always is); false never unsets"
    )


class AddressOut(Schema):
    id: int
    recipient_name: str
    phone: str
    province: str
    city: str
    district: str
    detail: str
    postal_code: str
    is_default: bool
    created_at: datetime


# --- Communities and pickup points -----------------------------------------------------------
class PickupPointOut(Schema):
    id: int
    community_id: int
    name: str
    address: str
    opening_hours: str
    latitude: float | None
    longitude: float | None
    contact_phone: str
    is_active: bool

    @staticmethod
    def resolve_latitude(obj) -> float | None:
        return _number(obj.latitude)

    @staticmethod
    def resolve_longitude(obj) -> float | None:
        return _number(obj.longitude)


class LeaderOut(Schema):
    id: int
    nickname: str
    avatar_url: str


class CommunityOut(Schema):
    id: int
    name: str
    description: str
    leader: LeaderOut | None
    members_count: int
    is_active: bool


class CommunityDetailOut(CommunityOut):
    pickup_points: list[PickupPointOut]

    @staticmethod
    def resolve_pickup_points(obj) -> list:
        return obj.listed_pickup_points


class MyCommunityOut(CommunityOut):
    joined_at: datetime
    is_leader: bool


class MembershipOut(Schema):
    community_id: int
    customer_id: int
    joined_at: datetime
    created: bool = Field(..., description="False when the customer was already a member")


class CommunityCreateIn(BodyIn):
    name: Name
    description: Annotated[str, StringConstraints(max_length=5000)] = ""
    is_active: StrictBool = True
    leader_customer_id: Id | None = Field(None, ge=1)


# PATCH bodies: a field left out is not changed. Those that cannot be cleared are typed without
# ``| None`` (their default is never validated), so the document does not offer null for them and
# the server refuses it in the same words.
class CommunityPatchIn(BodyIn):
    name: Name = None
    description: Annotated[str, StringConstraints(max_length=5000)] = None
    is_active: StrictBool = None


class LeaderIn(BodyIn):
    customer_id: Id | None = Field(..., ge=1, description="null removes the leader")


class PickupPointIn(BodyIn):
    name: Name
    address: Text255
    opening_hours: OpeningHours = ""
    latitude: Latitude | None = None
    longitude: Longitude | None = None
    contact_phone: OptionalPhone = ""
    is_active: StrictBool = True

    _round = field_validator("latitude", "longitude")(_microdegrees)


class PickupPointPatchIn(BodyIn):
    name: Name = None
    address: Text255 = None
    opening_hours: OpeningHours = None
    latitude: Latitude | None = Field(None, description="null clears it")
    longitude: Longitude | None = Field(None, description="null clears it")
    contact_phone: OptionalPhone = None
    is_active: StrictBool = None

    _round = field_validator("latitude", "longitude")(_microdegrees)
