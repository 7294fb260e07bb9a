from django.http import HttpRequest
from ninja import Router, Status
from ninja.pagination import paginate

from core.error_codes import CoreErrorCode
from core.http import bearer_auth, errors, examples, require_perm, staff_auth
from shop.error_codes import CommunityErrorCode, CustomerErrorCode
from shop.schemas.customers import (
    AddressIn,
    AddressOut,
    CommunityCreateIn,
    CommunityDetailOut,
    CommunityOut,
    CommunityPatchIn,
    LeaderIn,
    MembershipOut,
    MyCommunityOut,
    PickupPointIn,
    PickupPointOut,
    PickupPointPatchIn,
    ProfileOut,
    ProfilePatchIn,
)
from shop.selectors import customers as selectors
from shop.services import addresses, communities
from shop.services.customers import customer_profile_update

router = Router(tags=["customers"])


# --- Profile ---------------------------------------------------------------------------------
@router.get(
    "/me/profile",
    response=ProfileOut,
    auth=bearer_auth,
    summary="My shopper profile",
    description=(
        "My shopper profile. Shopper (bearer token of a customer; `not_a_customer` otherwise)."
    ),
)
@errors(CustomerErrorCode.NOT_A_CUSTOMER)
def profile_get(request: HttpRequest):
    return selectors.customer_of(request.auth)


@router.patch(
    "/me/profile",
    response=ProfileOut,
    auth=bearer_auth,
    summary="Change my nickname, avatar or phone",
    description=(
        "Change the fields sent (nickname, avatar, phone); absent fields are kept, so sending the "
        "same body twice changes nothing more. Shopper (bearer token of a customer; "
        "`not_a_customer` otherwise)."
    ),
)
@examples(request={"nickname": "Xiao Li"})
@errors(CustomerErrorCode.NOT_A_CUSTOMER)
def profile_patch(request: HttpRequest, payload: ProfilePatchIn):
    customer = selectors.customer_of(request.auth)
    return customer_profile_update(customer=customer, **payload.dict(exclude_unset=True))


# --- Addresses -------------------------------------------------------------------------------
@router.get(
    "/me/addresses",
    response=list[AddressOut],
    auth=bearer_auth,
    summary="My addresses, default first",
    description=(
        "My delivery addresses, default first. Shopper (bearer token of a customer; "
        "`not_a_customer` otherwise)."
    ),
)
@errors(CustomerErrorCode.NOT_A_CUSTOMER)
def address_list(request: HttpRequest):
    return selectors.addresses_of(customer=selectors.customer_of(request.auth))


@router.post(
    "/me/addresses",
    response={201: AddressOut},
    auth=bearer_auth,
    summary="Add an address (the first one becomes the default)",
    description=(
        "Add a delivery address; the first one becomes the default. Shopper (bearer token of a "
        "customer; `not_a_customer` otherwise). Over the per-customer limit: 409 "
        "`address_limit_reached`."
    ),
)
@examples(
    request={
        "recipient_name": "Li Wei",
        "phone": "13800138000",
        "province": "Guangdong",
        "city": "Shenzhen",
        "district": "Nanshan",
        "detail": "Building 3, Room 1202",
        "postal_code": "518000",
        "is_default": True,
    }
)
@errors(CustomerErrorCode.NOT_A_CUSTOMER, CustomerErrorCode.ADDRESS_LIMIT_REACHED)
def address_create(request: HttpRequest, payload: AddressIn):
    customer = selectors.customer_of(request.auth)
    return Status(201, addresses.address_create(customer=customer, **payload.dict()))


@router.get(
    "/me/addresses/{address_id}",
    response=AddressOut,
    auth=bearer_auth,
    summary="One of my addresses",
    description=(
        "One of my addresses. Shopper (bearer token of a customer; `not_a_customer` otherwise). "
        "Another customer's or unknown: 404 `address_not_found`."
    ),
)
@errors(CustomerErrorCode.NOT_A_CUSTOMER, CustomerErrorCode.ADDRESS_NOT_FOUND)
def address_get(request: HttpRequest, address_id: int):
    customer = selectors.customer_of(request.auth)
    return selectors.address_of(customer=customer, address_id=address_id)


@router.put(
    "/me/addresses/{address_id}",
    response=AddressOut,
    auth=bearer_auth,
    summary="Replace one of my addresses",
    description=(
        "Replace one of my addresses with the body (idempotent). Shopper (bearer token of a "
        "customer; `not_a_customer` otherwise). Another customer's or unknown: 404 "
        "`address_not_found`."
    ),
)
@examples(
    request={
        "recipient_name": "Li Wei",
        "phone": "13800138000",
        "province": "Guangdong",
        "city": "Shenzhen",
        "district": "Nanshan",
        "detail": "Building 3, Room 1202",
        "postal_code": "518000",
        "is_default": True,
    }
)
@errors(CustomerErrorCode.NOT_A_CUSTOMER, CustomerErrorCode.ADDRESS_NOT_FOUND)
def address_update(request: HttpRequest, address_id: int, payload: AddressIn):
    customer = selectors.customer_of(request.auth)
    return addresses.address_update(customer=customer, address_id=address_id, **payload.dict())


@router.delete(
    "/me/addresses/{address_id}",
    response={204: None},
    auth=bearer_auth,
    summary="Delete one of my addresses (another becomes the default if needed)",
    description=(
        "Delete one of my addresses; if it was the default, another one becomes the default. "
        "Shopper (bearer token of a customer; `not_a_customer` otherwise). Another customer's or "
        "unknown: 404 `address_not_found`."
    ),
)
@errors(CustomerErrorCode.NOT_A_CUSTOMER, CustomerErrorCode.ADDRESS_NOT_FOUND)
def address_delete(request: HttpRequest, address_id: int):
    customer = selectors.customer_of(request.auth)
    addresses.address_delete(customer=customer, address_id=address_id)
    return Status(204, None)


@router.post(
    "/me/addresses/{address_id}/default",
    response=AddressOut,
    auth=bearer_auth,
    summary="Make this my default address",
    description=(
        "Make this address my default (idempotent). Shopper (bearer token of a customer; "
        "`not_a_customer` otherwise). Another customer's or unknown: 404 `address_not_found`."
    ),
)
@errors(CustomerErrorCode.NOT_A_CUSTOMER, CustomerErrorCode.ADDRESS_NOT_FOUND)
def address_set_default(request: HttpRequest, address_id: int):
    customer = selectors.customer_of(request.auth)
    return addresses.address_set_default(customer=customer, address_id=address_id)


# --- Communities (public and shopper) --------------------------------------------------------
@router.get(
    "/communities",
    response=list[CommunityOut],
    summary="Active communities",
    description="Active communities with their member counts, paginated. Public; read-only.",
)
@paginate
def community_list(request: HttpRequest):
    return selectors.communities_public()


@router.get(
    "/communities/{community_id}",
    response=CommunityDetailOut,
    summary="A community with its pickup points",
    description=(
        "A community with its pickup points. Public; read-only. Unknown: 404 `community_not_found`."
    ),
)
@errors(CommunityErrorCode.COMMUNITY_NOT_FOUND)
def community_get(request: HttpRequest, community_id: int):
    return selectors.community_public_detail(community_id=community_id)


@router.get(
    "/me/communities",
    response=list[MyCommunityOut],
    auth=bearer_auth,
    summary="Communities I belong to",
    description=(
        "The communities I am a member of (and whether I lead them). Shopper (bearer token of a "
        "customer; `not_a_customer` otherwise)."
    ),
)
@errors(CustomerErrorCode.NOT_A_CUSTOMER)
@paginate
def my_communities(request: HttpRequest):
    return selectors.communities_of(customer=selectors.customer_of(request.auth))


@router.post(
    "/communities/{community_id}/join",
    response={200: MembershipOut, 201: MembershipOut},
    auth=bearer_auth,
    summary="Join a community (joining again changes nothing)",
    description=(
        "Become a member of an active community: 201 the first time, 200 with `created: false` "
        "afterwards (idempotent). Shopper (bearer token of a customer; `not_a_customer` "
        "otherwise). Unknown or inactive: 404 `community_not_found`."
    ),
)
@errors(CustomerErrorCode.NOT_A_CUSTOMER, CommunityErrorCode.COMMUNITY_NOT_FOUND)
def community_join(request: HttpRequest, community_id: int):
    customer = selectors.customer_of(request.auth)
    membership, created = communities.community_join(community_id=community_id, customer=customer)
    body = MembershipOut(
        community_id=membership.community_id,
        customer_id=membership.customer_id,
        joined_at=membership.joined_at,
        created=created,
    )
    return Status(201 if created else 200, body)


@router.post(
    "/communities/{community_id}/leave",
    response={204: None},
    auth=bearer_auth,
    summary="Leave a community (its leader cannot)",
    description=(
        "Stop being a member (leaving twice is harmless). Shopper (bearer token of a customer; "
        "`not_a_customer` otherwise). The community's leader cannot leave it: 409 "
        "`leader_cannot_leave`."
    ),
)
@errors(
    CustomerErrorCode.NOT_A_CUSTOMER,
    CommunityErrorCode.COMMUNITY_NOT_FOUND,
    CommunityErrorCode.LEADER_CANNOT_LEAVE,
)
def community_leave(request: HttpRequest, community_id: int):
    customer = selectors.customer_of(request.auth)
    communities.community_leave(community_id=community_id, customer=customer)
    return Status(204, None)


# --- Staff -----------------------------------------------------------------------------------
@router.post(
    "/staff/communities",
    response={201: CommunityDetailOut},
    auth=staff_auth,
    summary="Create a community",
    tags=["staff: communities"],
    description=(
        "Create a community, optionally with its leader. Operators (staff bearer token) with "
        "`shop.add_community`. A blank name is 422 `name_required`; an unknown leader 404 "
        "`customer_not_found`."
    ),
)
@examples(request={"name": "Sunny Garden Community", "description": "Phase 2 residents"})
@errors(CommunityErrorCode.NAME_REQUIRED, CommunityErrorCode.CUSTOMER_NOT_FOUND)
def staff_community_create(request: HttpRequest, payload: CommunityCreateIn):
    require_perm(request, "shop.add_community")
    community = communities.community_create(**payload.dict())
    return Status(201, selectors.community_detail(community_id=community.pk))


@router.patch(
    "/staff/communities/{community_id}",
    response=CommunityDetailOut,
    auth=staff_auth,
    summary="Change a community's name, description or active flag",
    tags=["staff: communities"],
    description=(
        "Change the fields sent (name, description, is_active); absent ones are kept. Operators "
        "(staff bearer token) with `shop.change_community`. Null for a required field is 422 "
        "`field_required`."
    ),
)
@examples(request={"is_active": False})
@errors(
    CommunityErrorCode.COMMUNITY_NOT_FOUND,
    CoreErrorCode.INVALID_INPUT,
    CommunityErrorCode.FIELD_REQUIRED,
    CommunityErrorCode.NAME_REQUIRED,
)
def staff_community_update(request: HttpRequest, community_id: int, payload: CommunityPatchIn):
    require_perm(request, "shop.change_community")
    communities.community_update(community_id=community_id, data=payload.dict(exclude_unset=True))
    return selectors.community_detail(community_id=community_id)


@router.post(
    "/staff/communities/{community_id}/leader",
    response=CommunityDetailOut,
    auth=staff_auth,
    summary="Appoint (or remove) a community's leader",
    tags=["staff: communities"],
    description=(
        "Appoint a customer as the community's leader (they become a member and are notified), or "
        "remove the leader with `customer_id: null`; appointing the same leader again changes "
        "nothing. Operators (staff bearer token) with `shop.change_community`."
    ),
)
@examples(request={"customer_id": 5})
@errors(CommunityErrorCode.COMMUNITY_NOT_FOUND, CommunityErrorCode.CUSTOMER_NOT_FOUND)
def staff_community_leader(request: HttpRequest, community_id: int, payload: LeaderIn):
    require_perm(request, "shop.change_community")
    communities.community_set_leader(community_id=community_id, customer_id=payload.customer_id)
    return selectors.community_detail(community_id=community_id)


@router.post(
    "/staff/communities/{community_id}/pickup-points",
    response={201: PickupPointOut},
    auth=staff_auth,
    summary="Add a pickup point to a community",
    tags=["staff: communities"],
    description=(
        "Add a pickup point to a community. Operators (staff bearer token) with "
        "`shop.add_pickuppoint`. Only one of latitude/longitude, or out of range: 422 "
        "`invalid_coordinates`."
    ),
)
@examples(
    request={
        "name": "North gate kiosk",
        "address": "1 Garden Road",
        "opening_hours": "08:00-20:00",
        "latitude": 22.5431,
        "longitude": 114.0579,
        "contact_phone": "13800138001",
        "is_active": True,
    }
)
@errors(
    CommunityErrorCode.COMMUNITY_NOT_FOUND,
    CommunityErrorCode.NAME_REQUIRED,
    CommunityErrorCode.INVALID_COORDINATES,
)
def staff_pickup_point_create(request: HttpRequest, community_id: int, payload: PickupPointIn):
    require_perm(request, "shop.add_pickuppoint")
    point = communities.pickup_point_create(community_id=community_id, **payload.dict())
    return Status(201, point)


@router.patch(
    "/staff/pickup-points/{pickup_point_id}",
    response=PickupPointOut,
    auth=staff_auth,
    summary="Change a pickup point",
    tags=["staff: communities"],
    description=(
        "Change the fields sent; absent ones are kept. Operators (staff bearer token) with "
        "`shop.change_pickuppoint`."
    ),
)
@examples(request={"opening_hours": "09:00-21:00"})
@errors(
    CommunityErrorCode.PICKUP_POINT_NOT_FOUND,
    CoreErrorCode.INVALID_INPUT,
    CommunityErrorCode.FIELD_REQUIRED,
    CommunityErrorCode.NAME_REQUIRED,
    CommunityErrorCode.INVALID_COORDINATES,
)
def staff_pickup_point_update(
    request: HttpRequest, pickup_point_id: int, payload: PickupPointPatchIn
):
    require_perm(request, "shop.change_pickuppoint")
    return communities.pickup_point_update(
        pickup_point_id=pickup_point_id, data=payload.dict(exclude_unset=True)
    )
