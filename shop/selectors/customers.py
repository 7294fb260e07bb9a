"""Reads for customers, their addresses, communities and pickup points."""

from django.contrib.auth.base_user import AbstractBaseUser
from django.db.models import (
    BooleanField,
    Count,
    ExpressionWrapper,
    IntegerField,
    OuterRef,
    Prefetch,
    Q,
    QuerySet,
    Subquery,
    Value,
)
from django.db.models.functions import Coalesce

from core.errors import NotFound, PermissionDenied
from shop.error_codes import CommunityErrorCode, CustomerErrorCode
from shop.models import Address, Community, CommunityMembership, Customer, PickupPoint


def customer_of(user: AbstractBaseUser) -> Customer:
    """The shopper profile of a logged-in user; operators without one get 403 ``not_a_customer``."""
    customer = Customer.objects.filter(user_id=user.pk).first()
    if customer is None:
        raise PermissionDenied(
            "This endpoint is for shoppers.", code=CustomerErrorCode.NOT_A_CUSTOMER
        )
    return customer


def addresses_of(*, customer: Customer) -> QuerySet[Address]:
    return Address.objects.filter(customer=customer).order_by("-is_default", "-created_at", "-id")


def address_of(*, customer: Customer, address_id: int) -> Address:
    """One of the customer's own addresses; anyone else's is indistinguishable from none."""
    address = Address.objects.filter(customer=customer, pk=address_id).first()
    if address is None:
        raise NotFound("This address does not exist.", code=CustomerErrorCode.ADDRESS_NOT_FOUND)
    return address


def _members_count() -> Coalesce:
    counted = (
        CommunityMembership.objects.filter(community=OuterRef("pk"))
        .order_by()
        .values("community")
        .annotate(n=Count("id"))
        .values("n")
    )
    return Coalesce(Subquery(counted, output_field=IntegerField()), Value(0))


def _communities() -> QuerySet[Community]:
    return Community.objects.select_related("leader").annotate(members_count=_members_count())


def communities_public() -> QuerySet[Community]:
    return _communities().filter(is_active=True).order_by("id")


def community_public_detail(*, community_id: int) -> Community:
    """An active community with its active pickup points (``listed_pickup_points``); else 404."""
    community = (
        _communities()
        .filter(is_active=True, pk=community_id)
        .prefetch_related(
            Prefetch(
                "pickup_points",
                queryset=PickupPoint.objects.filter(is_active=True).order_by("id"),
                to_attr="listed_pickup_points",
            )
        )
        .first()
    )
    if community is None:
        raise NotFound(
            "This community does not exist.", code=CommunityErrorCode.COMMUNITY_NOT_FOUND
        )
    return community


def community_detail(*, community_id: int) -> Community:
    """Any community (staff view) with all its pickup points (``listed_pickup_points``)."""
    community = (
        _communities()
        .filter(pk=community_id)
        .prefetch_related(
            Prefetch(
                "pickup_points",
                queryset=PickupPoint.objects.order_by("id"),
                to_attr="listed_pickup_points",
            )
        )
        .first()
    )
    if community is None:
        raise NotFound(
            "This community does not exist.", code=CommunityErrorCode.COMMUNITY_NOT_FOUND
        )
    return community


def communities_of(*, customer: Customer) -> QuerySet[Community]:
    """Communities the customer belongs to, most recently joined first, with ``joined_at`` and
    ``is_leader``."""
    joined = CommunityMembership.objects.filter(community=OuterRef("pk"), customer=customer)
    return (
        _communities()
        .filter(memberships__customer=customer)
        .annotate(
            joined_at=Subquery(joined.values("joined_at")[:1]),
            is_leader=ExpressionWrapper(Q(leader_id=customer.pk), output_field=BooleanField()),
        )
        .order_by("-joined_at", "-id")
    )
