import pytest
from django.test import Client

from shop.models import Address
from shop.services.addresses import ADDRESS_LIMIT, address_create, address_set_default
from tests.conftest import run_in_threads
from tests.factories import AddressFactory, CustomerFactory, StaffFactory

pytestmark = pytest.mark.django_db

ADDRESSES = "/api/v1/me/addresses"

NEW_ADDRESS = {
    "recipient_name": "Han Meimei",
    "phone": "13912345678",
    "province": "Zhejiang",
    "city": "Hangzhou",
    "district": "Xihu",
    "detail": "8 Wensan Road",
    "postal_code": "310012",
}


def defaults_of(customer) -> list[int]:
    return list(
        Address.objects.filter(customer=customer, is_default=True).values_list("id", flat=True)
    )


# --- Authentication --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/api/v1/me/profile"),
        ("patch", "/api/v1/me/profile"),
        ("get", ADDRESSES),
        ("post", ADDRESSES),
        ("get", f"{ADDRESSES}/1"),
        ("put", f"{ADDRESSES}/1"),
        ("delete", f"{ADDRESSES}/1"),
        ("post", f"{ADDRESSES}/1/default"),
    ],
)
def test_shopper_endpoints_need_a_login(anon, method, path):
    response = getattr(anon, method)(path)

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"


def test_an_operator_without_a_shopper_profile_is_refused(operator):
    response = operator.get("/api/v1/me/profile")

    assert response.status_code == 403
    assert response.json()["error"]["code"] == "not_a_customer"


# --- Profile ---------------------------------------------------------------------------------
def test_profile_shows_my_data(shopper, customer):
    response = shopper.get("/api/v1/me/profile")

    assert response.status_code == 200
    body = response.json()
    assert body["id"] == customer.id
    assert body["nickname"] == customer.nickname
    assert set(body) == {"id", "nickname", "avatar_url", "phone", "created_at"}


def test_profile_patch_changes_only_given_fields(shopper, customer):
    customer.phone = "13800000000"
    customer.save(update_fields=["phone"])

    response = shopper.patch(
        "/api/v1/me/profile",
        json={"nickname": "  Xiao Ming ", "avatar_url": "https://img.example/a.png"},
    )

    assert response.status_code == 200
    customer.refresh_from_db()
    assert customer.nickname == "Xiao Ming"
    assert customer.avatar_url == "https://img.example/a.png"
    assert customer.phone == "13800000000"
    assert response.json()["phone"] == "13800000000"


def test_profile_fields_can_be_cleared(shopper, customer):
    customer.phone, customer.avatar_url = "13800000000", "https://img.example/a.png"
    customer.save(update_fields=["phone", "avatar_url"])

    response = shopper.patch("/api/v1/me/profile", json={"phone": "", "avatar_url": ""})

    assert response.status_code == 200
    customer.refresh_from_db()
    assert (customer.phone, customer.avatar_url) == ("", "")


@pytest.mark.parametrize(
    "payload",
    [
        {"nickname": ""},
        {"nickname": "x" * 65},
        {"avatar_url": "javascript:alert(1)"},
        {"phone": "call me"},
    ],
)
def test_bad_profile_values_are_refused(shopper, customer, payload):
    before = (customer.nickname, customer.avatar_url, customer.phone)

    response = shopper.patch("/api/v1/me/profile", json=payload)

    assert response.status_code == 422
    assert response.json()["error"]["code"] == "validation_error"
    customer.refresh_from_db()
    assert (customer.nickname, customer.avatar_url, customer.phone) == before


# --- Addresses: CRUD -------------------------------------------------------------------------
def test_first_address_becomes_the_default(shopper, customer):
    response = shopper.post(ADDRESSES, json={**NEW_ADDRESS, "is_default": False})

    assert response.status_code == 201
    body = response.json()
    assert body["is_default"] is True
    assert body["recipient_name"] == "Han Meimei"
    assert defaults_of(customer) == [body["id"]]


def test_later_addresses_are_not_default_unless_asked(shopper, customer):
    first = shopper.post(ADDRESSES, json=NEW_ADDRESS).json()
    second = shopper.post(ADDRESSES, json={**NEW_ADDRESS, "detail": "9 Wensan Road"}).json()

    third = shopper.post(ADDRESSES, json={**NEW_ADDRESS, "is_default": True}).json()

    assert second["is_default"] is False
    assert third["is_default"] is True
    assert defaults_of(customer) == [third["id"]]
    listed = shopper.get(ADDRESSES).json()
    assert [a["id"] for a in listed] == [third["id"], second["id"], first["id"]]


def test_get_and_replace_an_address(shopper, customer):
    address = AddressFactory(customer=customer, is_default=True)

    got = shopper.get(f"{ADDRESSES}/{address.id}")
    replaced = shopper.put(f"{ADDRESSES}/{address.id}", json={**NEW_ADDRESS, "district": ""})

    assert got.status_code == 200 and got.json()["id"] == address.id
    assert replaced.status_code == 200
    address.refresh_from_db()
    assert address.detail == "8 Wensan Road"
    assert address.district == ""
    assert address.is_default is True


def test_replacing_the_default_with_is_default_false_keeps_it_default(shopper, customer):
    address = address_create(customer=customer, **NEW_ADDRESS)

    response = shopper.put(f"{ADDRESSES}/{address.id}", json={**NEW_ADDRESS, "is_default": False})

    assert response.json()["is_default"] is True
    assert defaults_of(customer) == [address.id]


def test_replace_can_make_an_address_the_default(shopper, customer):
    first = address_create(customer=customer, **NEW_ADDRESS)
    second = address_create(customer=customer, **NEW_ADDRESS)

    shopper.put(f"{ADDRESSES}/{second.id}", json={**NEW_ADDRESS, "is_default": True})

    assert defaults_of(customer) == [second.id]
    first.refresh_from_db()
    assert first.is_default is False


def test_setting_the_default_unsets_the_previous_one(shopper, customer):
    first = address_create(customer=customer, **NEW_ADDRESS)
    second = address_create(customer=customer, **NEW_ADDRESS)

    response = shopper.post(f"{ADDRESSES}/{second.id}/default")

    assert response.status_code == 200
    assert response.json()["is_default"] is True
    assert defaults_of(customer) == [second.id]
    # Setting it again changes nothing.
    assert shopper.post(f"{ADDRESSES}/{second.id}/default").status_code == 200
    assert defaults_of(customer) == [second.id]
    first.refresh_from_db()
    assert first.is_default is False


def test_deleting_the_default_promotes_the_most_recent_other(shopper, customer):
    first = address_create(customer=customer, **NEW_ADDRESS)
    second = address_create(customer=customer, **NEW_ADDRESS)
    third = address_create(customer=customer, **NEW_ADDRESS)
    assert defaults_of(customer) == [first.id]

    response = shopper.delete(f"{ADDRESSES}/{first.id}")

    assert response.status_code == 204
    assert defaults_of(customer) == [third.id]
    assert Address.objects.filter(customer=customer).count() == 2
    assert second.id in [a["id"] for a in shopper.get(ADDRESSES).json()]


def test_deleting_another_address_keeps_the_default(shopper, customer):
    first = address_create(customer=customer, **NEW_ADDRESS)
    second = address_create(customer=customer, **NEW_ADDRESS)

    shopper.delete(f"{ADDRESSES}/{second.id}")

    assert defaults_of(customer) == [first.id]


def test_deleting_the_last_address_leaves_none(shopper, customer):
    only = address_create(customer=customer, **NEW_ADDRESS)

    assert shopper.delete(f"{ADDRESSES}/{only.id}").status_code == 204
    assert shopper.get(ADDRESSES).json() == []
    assert shopper.delete(f"{ADDRESSES}/{only.id}").status_code == 404


def test_address_limit(shopper, customer):
    for _ in range(ADDRESS_LIMIT):
        address_create(customer=customer, **NEW_ADDRESS)

    response = shopper.post(ADDRESSES, json=NEW_ADDRESS)

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "address_limit_reached"
    assert Address.objects.filter(customer=customer).count() == ADDRESS_LIMIT


@pytest.mark.parametrize(
    "change",
    [
        {"recipient_name": "   "},
        {"phone": "not a phone"},
        {"detail": ""},
        {"city": "x" * 65},
        {"postal_code": "<script>"},
    ],
)
def test_bad_addresses_are_refused(shopper, customer, change):
    response = shopper.post(ADDRESSES, json={**NEW_ADDRESS, **change})

    assert response.status_code == 422
    assert response.json()["error"]["code"] == "validation_error"
    assert not Address.objects.filter(customer=customer).exists()


def test_missing_address_fields_are_refused(shopper):
    response = shopper.post(ADDRESSES, json={"recipient_name": "Li Lei"})

    assert response.status_code == 422
    paths = {f["path"] for f in response.json()["error"]["details"]["fields"]}
    assert {"phone", "city"} <= paths


# --- Addresses: isolation between customers --------------------------------------------------
@pytest.mark.parametrize(
    ("method", "suffix", "body"),
    [
        ("get", "", None),
        ("put", "", NEW_ADDRESS),
        ("delete", "", None),
        ("post", "/default", None),
    ],
)
def test_another_customers_address_is_not_found(shopper, method, suffix, body):
    stranger_address = AddressFactory(customer=CustomerFactory(), is_default=True, detail="Theirs")
    path = f"{ADDRESSES}/{stranger_address.id}{suffix}"

    response = getattr(shopper, method)(path, json=body) if body else getattr(shopper, method)(path)

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "address_not_found"
    stranger_address.refresh_from_db()
    assert stranger_address.detail == "Theirs"
    assert stranger_address.is_default is True


def test_my_list_never_shows_other_customers_addresses(shopper, customer):
    AddressFactory(customer=CustomerFactory(), is_default=True)
    mine = address_create(customer=customer, **NEW_ADDRESS)

    assert [a["id"] for a in shopper.get(ADDRESSES).json()] == [mine.id]


# --- Addresses: races ------------------------------------------------------------------------
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_first_addresses_yield_exactly_one_default():
    customer = CustomerFactory()

    results = run_in_threads(
        8, lambda i: address_create(customer=customer, **{**NEW_ADDRESS, "detail": f"{i} Rd"})
    )

    assert [r for r in results if isinstance(r, Exception)] == []
    assert Address.objects.filter(customer=customer).count() == 8
    assert len(defaults_of(customer)) == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_default_switches_leave_exactly_one_default():
    customer = CustomerFactory()
    addresses = [address_create(customer=customer, **NEW_ADDRESS) for _ in range(6)]

    results = run_in_threads(
        6, lambda i: address_set_default(customer=customer, address_id=addresses[i].id)
    )

    assert [r for r in results if isinstance(r, Exception)] == []
    assert len(defaults_of(customer)) == 1


# --- Admin -----------------------------------------------------------------------------------
def admin_client() -> Client:
    # StaffFactory sets the password without saving it (skip_postgeneration_save), so the
    # session's password hash would not match the stored user: reload before logging in.
    admin_user = StaffFactory()
    admin_user.refresh_from_db()
    client = Client()
    client.force_login(admin_user)
    return client


def test_admin_pages_for_customers_render():
    address = AddressFactory(is_default=True)
    client = admin_client()

    for path in [
        "/admin/shop/customer/",
        f"/admin/shop/customer/{address.customer_id}/change/",
        "/admin/shop/address/",
        f"/admin/shop/address/{address.id}/change/",
        "/admin/shop/address/add/",
        "/admin/shop/community/",
        "/admin/shop/community/add/",
        "/admin/shop/communitymembership/",
        "/admin/shop/pickuppoint/",
        "/admin/shop/pickuppoint/add/",
    ]:
        assert client.get(path).status_code == 200, path


def test_admin_delete_of_a_default_address_promotes_another():
    customer = CustomerFactory()
    first = address_create(customer=customer, **NEW_ADDRESS)
    second = address_create(customer=customer, **NEW_ADDRESS)
    client = admin_client()

    response = client.post(f"/admin/shop/address/{first.id}/delete/", {"post": "yes"})

    assert response.status_code == 302
    assert defaults_of(customer) == [second.id]
