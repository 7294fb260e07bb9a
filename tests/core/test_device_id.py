"""The X-Device-Id header and the client-IP hash (core.http.device_id, core.http.ip_hash)."""

import uuid

import pytest
from django.test import RequestFactory

from core.errors import ApplicationError
from core.http import device_id, ip_hash

DEVICE = "5f0c3c1e-8d2a-4b7e-9a51-2f6d1c0e7b9a"


def request(**headers):
    return RequestFactory().get("/", headers=headers)


def test_a_uuid_is_read_and_a_missing_or_blank_header_is_none():
    assert device_id(request(**{"X-Device-Id": DEVICE})) == uuid.UUID(DEVICE)
    assert device_id(request(**{"X-Device-Id": f"  {DEVICE.upper()} "})) == uuid.UUID(DEVICE)
    assert device_id(request()) is None
    assert device_id(request(**{"X-Device-Id": "  "})) is None


@pytest.mark.parametrize(
    "raw", ["not-a-uuid", "1", DEVICE[:-1], DEVICE + "0", "x" * 5000, f"{DEVICE}\x00"]
)
def test_anything_but_a_uuid_is_a_clear_400(raw):
    with pytest.raises(ApplicationError) as caught:
        device_id(request(**{"X-Device-Id": raw}))

    assert (caught.value.status, caught.value.code) == (400, "invalid_device_id")
    assert caught.value.details == {"header": "X-Device-Id"}


def test_the_ip_hash_is_stable_per_address_and_hides_it(settings):
    one = RequestFactory().get("/", REMOTE_ADDR="203.0.113.7")
    same = RequestFactory().get("/", REMOTE_ADDR="203.0.113.7")
    other = RequestFactory().get("/", REMOTE_ADDR="203.0.113.8")

    assert ip_hash(one) == ip_hash(same) != ip_hash(other)
    assert "203.0.113.7" not in ip_hash(one) and len(ip_hash(one)) == 64
    before = ip_hash(one)
    settings.SECRET_KEY = "another-secret-key-for-this-test-only-0123456789"
    assert ip_hash(one) != before  # keyed: not a plain hash anyone could reverse by lookup


def test_a_forged_forwarded_for_does_not_change_the_hash_without_a_trusted_proxy(settings):
    settings.TRUSTED_PROXIES = []
    plain = RequestFactory().get("/", REMOTE_ADDR="203.0.113.7")
    forged = RequestFactory().get(
        "/", REMOTE_ADDR="203.0.113.7", HTTP_X_FORWARDED_FOR="198.51.100.1"
    )

    assert ip_hash(forged) == ip_hash(plain)
