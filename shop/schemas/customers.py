from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Annotated

from ninja import Field, Schema
from pydantic import StringConstraints, field_validator

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
Text64 = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]
Optional64 = Annotated[str, StringConstraints(strip_whitespace=True, max_length=64)]
Phone = Annotated[
    str, StringConstraints(strip_whitespace=True, pattern=r"^\+?[0-9][0-9 \-]{4,30}$")
]
OptionalPhone = Annotated[
    str, StringConstraints(strip_whitespace=True, pattern=r"^(\+?[0-9][0-9 \-]{4,30})?$")
]
AvatarUrl = Annotated[
    str, StringConstraints(strip_whitespace=True, max_length=500, pattern=r"^(https?://\S+)?$")
]
OpeningHours = Annotated[str, StringConstraints(strip_whitespace=True, max_length=200)]
Latitude = Annotated[Decimal, Field(ge=-90, le=90, description="Degrees, -90..90")]
Longitude = Annotated[Decimal, Field(ge=-180, le=180, description="Degrees, -180..180")]

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


class ProfilePatchIn(Schema):
    nickname: Text64 | None = None
    avatar_url: AvatarUrl | None = Field(None, description='An http(s) URL; "" clears it')
    phone: OptionalPhone | None = Field(None, description='"" clears it')


# --- Addresses -------------------------------------------------------------------------------
class AddressIn(Schema):
    recipient_name: Text64
    phone: Phone
    province: Text64
    city: Text64
    district: Optional64 = ""
    detail: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=255)]
    postal_code: Annotated[
        str, StringConstraints(strip_whitespace=True, max_length=16, pattern=r"^[0-9A-Za-z \-]*$")
    ] = ""
    is_default: bool = Field(
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


class CommunityCreateIn(Schema):
    name: Name
    description: Annotated[str, StringConstraints(max_length=5000)] = ""
    is_active: bool = True
    leader_customer_id: int | None = Field(None, ge=1)


class CommunityPatchIn(Schema):
    name: Name | None = None
    description: Annotated[str, StringConstraints(max_length=5000)] | None = None
    is_active: bool | None = None


class LeaderIn(Schema):
    customer_id: int | None = Field(..., ge=1, description="null removes the leader")


class PickupPointIn(Schema):
    name: Name
    address: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=255)]
    opening_hours: OpeningHours = ""
    latitude: Latitude | None = None
    longitude: Longitude | None = None
    contact_phone: OptionalPhone = ""
    is_active: bool = True

    _round = field_validator("latitude", "longitude")(_microdegrees)


class PickupPointPatchIn(Schema):
    name: Name | None = None
    address: (
        Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=255)]
        | None
    ) = None
    opening_hours: OpeningHours | None = None
    latitude: Latitude | None = None
    longitude: Longitude | None = None
    contact_phone: OptionalPhone | None = None
    is_active: bool | None = None

    _round = field_validator("latitude", "longitude")(_microdegrees)
