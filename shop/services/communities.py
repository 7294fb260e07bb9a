"""Communities (社群), their leaders, members and pickup points (自提点).

Writes that depend on who leads a community (appointing a leader, a member leaving) lock the
community row first, so "the leader cannot leave" holds even when both happen at once.
"""

from decimal import Decimal
from typing import Any

from django.db import transaction

from core.errors import Conflict, InvalidInput, NotFound
from core.notifications import notify
from core.realtime import topic_group
from core.side_effects import push_on_commit
from shop import locks
from shop.error_codes import CommunityErrorCode
from shop.models import Community, CommunityMembership, Customer, PickupPoint

COMMUNITY_FIELDS = ("name", "description", "is_active")
NULLABLE_PICKUP_POINT_FIELDS = ("latitude", "longitude")
PICKUP_POINT_FIELDS = (
    "name",
    "address",
    "opening_hours",
    "latitude",
    "longitude",
    "contact_phone",
    "is_active",
)


def check_coordinates(*, latitude: Decimal | None, longitude: Decimal | None) -> None:
    """Both or neither; latitude within -90..90, longitude within -180..180."""
    if (latitude is None) != (longitude is None):
        raise InvalidInput(
            "Give both latitude and longitude, or neither.",
            code=CommunityErrorCode.INVALID_COORDINATES,
        )
    if latitude is not None and not Decimal(-90) <= Decimal(latitude) <= Decimal(90):
        raise InvalidInput(
            "Latitude must be between -90 and 90.",
            code=CommunityErrorCode.INVALID_COORDINATES,
            details={"latitude": str(latitude)},
        )
    if longitude is not None and not Decimal(-180) <= Decimal(longitude) <= Decimal(180):
        raise InvalidInput(
            "Longitude must be between -180 and 180.",
            code=CommunityErrorCode.INVALID_COORDINATES,
            details={"longitude": str(longitude)},
        )


def check_name(name: str) -> str:
    name = (name or "").strip()
    if not name:
        raise InvalidInput("A name is required.", code=CommunityErrorCode.NAME_REQUIRED)
    return name


def _check_changes(
    data: dict[str, Any], allowed: tuple[str, ...], nullable: tuple[str, ...] = ()
) -> None:
    unknown = set(data) - set(allowed)
    if unknown:
        raise InvalidInput(
            "These fields cannot be changed here.", details={"fields": sorted(unknown)}
        )
    missing = sorted(f for f, value in data.items() if value is None and f not in nullable)
    if missing:
        raise InvalidInput(
            "These fields cannot be null.",
            code=CommunityErrorCode.FIELD_REQUIRED,
            details={"fields": missing},
        )


def _lock_community(community_id: int) -> Community:
    community = locks.lock_community(community_id)
    if community is None:
        raise NotFound(
            "This community does not exist.", code=CommunityErrorCode.COMMUNITY_NOT_FOUND
        )
    return community


def _customer(customer_id: int) -> Customer:
    customer = Customer.objects.filter(pk=customer_id).first()
    if customer is None:
        raise NotFound("This customer does not exist.", code=CommunityErrorCode.CUSTOMER_NOT_FOUND)
    return customer


def _announce(community: Community, event: str, **data: Any) -> None:
    push_on_commit(
        topic_group(f"community:{community.pk}"),
        {"type": event, "community_id": community.pk, **data},
    )


def community_create(
    *,
    name: str,
    description: str = "",
    is_active: bool = True,
    leader_customer_id: int | None = None,
) -> Community:
    with transaction.atomic():
        community = Community.objects.create(
            name=check_name(name), description=description, is_active=is_active
        )
        if leader_customer_id is not None:
            community = community_set_leader(
                community_id=community.pk, customer_id=leader_customer_id
            )
    return community


def community_update(*, community_id: int, data: dict[str, Any]) -> Community:
    """Change ``name``, ``description`` and/or ``is_active`` (keys absent: unchanged)."""
    _check_changes(data, COMMUNITY_FIELDS)
    with transaction.atomic():
        community = _lock_community(community_id)
        if "name" in data:
            data = {**data, "name": check_name(data["name"])}
        for field, value in data.items():
            setattr(community, field, value)
        if data:
            community.save(update_fields=list(data))
    return community


def community_set_leader(*, community_id: int, customer_id: int | None) -> Community:
    """Appoint a customer as the community's leader (``None``: no leader).

    The leader becomes a member (so they follow the community's live topic); the previous
    leader stays a member. The new leader is notified once per appointment.
    """
    with transaction.atomic():
        community = _lock_community(community_id)
        customer = _customer(customer_id) if customer_id is not None else None
        if community.leader_id == customer_id:
            return community
        community.leader = customer
        community.save(update_fields=["leader"])
        if customer is not None:
            CommunityMembership.objects.get_or_create(community=community, customer=customer)
            notify(
                user_id=customer.user_id,
                kind="community_leader_appointed",
                title=f"You now lead {community.name}",
                body="Operators appointed you as this community's leader.",
                data={"community_id": community.pk},
            )
        _announce(community, "community.leader_changed", leader_id=customer_id)
    return community


def community_join(*, community_id: int, customer: Customer) -> tuple[CommunityMembership, bool]:
    """Join an active community; joining again returns the existing membership."""
    community = Community.objects.filter(pk=community_id, is_active=True).first()
    if community is None:
        raise NotFound(
            "This community does not exist.", code=CommunityErrorCode.COMMUNITY_NOT_FOUND
        )
    with transaction.atomic():
        membership, created = CommunityMembership.objects.get_or_create(
            community=community, customer=customer
        )
    return membership, created


def community_leave(*, community_id: int, customer: Customer) -> bool:
    """Leave a community (idempotent: True if a membership was removed). Its leader cannot."""
    with transaction.atomic():
        community = _lock_community(community_id)
        if community.leader_id == customer.pk:
            raise Conflict(
                "A community's leader cannot leave it; ask an operator to appoint another leader.",
                code=CommunityErrorCode.LEADER_CANNOT_LEAVE,
            )
        deleted, _ = CommunityMembership.objects.filter(
            community=community, customer=customer
        ).delete()
    return deleted > 0


def pickup_point_create(
    *,
    community_id: int,
    name: str,
    address: str,
    opening_hours: str = "",
    latitude: Decimal | None = None,
    longitude: Decimal | None = None,
    contact_phone: str = "",
    is_active: bool = True,
) -> PickupPoint:
    check_coordinates(latitude=latitude, longitude=longitude)
    with transaction.atomic():
        community = _lock_community(community_id)
        return PickupPoint.objects.create(
            community=community,
            name=check_name(name),
            address=address,
            opening_hours=opening_hours,
            latitude=latitude,
            longitude=longitude,
            contact_phone=contact_phone,
            is_active=is_active,
        )


def pickup_point_update(*, pickup_point_id: int, data: dict[str, Any]) -> PickupPoint:
    """Change some fields (keys absent: unchanged); coordinates are checked as a pair."""
    _check_changes(data, PICKUP_POINT_FIELDS, nullable=NULLABLE_PICKUP_POINT_FIELDS)
    with transaction.atomic():
        point = locks.lock_pickup_point(pickup_point_id)
        if point is None:
            raise NotFound(
                "This pickup point does not exist.", code=CommunityErrorCode.PICKUP_POINT_NOT_FOUND
            )
        if "name" in data:
            data = {**data, "name": check_name(data["name"])}
        for field, value in data.items():
            setattr(point, field, value)
        check_coordinates(latitude=point.latitude, longitude=point.longitude)
        if data:
            point.save(update_fields=list(data))
    return point
