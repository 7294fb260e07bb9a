"""Every error kind, through the real URL stack, answers the one envelope
``{"error": {"code", "message", "details"}}`` with the right status."""

import pytest
from django.utils import timezone

from tests.conftest import ApiClient
from tests.core.idem_urls import SECRET_IN_CRASH
from tests.core.utils import assert_error
from tests.factories import StaffFactory

ANNOUNCEMENT = {"title": "Spring sale", "body": "Everything 10% off"}


def test_unknown_api_url_is_404_envelope(anon):
    response = anon.get("/api/v1/no-such-thing")

    assert_error(response, 404, "not_found")


def test_wrong_method_is_405_envelope_and_keeps_allow(anon):
    response = anon.put("/api/v1/auth/refresh", json={})

    assert_error(response, 405, "method_not_allowed")
    assert response["Allow"] == "POST"


@pytest.mark.django_db
def test_validation_error_is_422_with_field_paths(operator):
    response = operator.post(
        "/api/v1/staff/announcements", json={"title": "", "audience": "everyone"}
    )

    error = assert_error(response, 422, "validation_error")
    paths = sorted(f["path"] for f in error["details"]["fields"])
    assert paths == ["audience", "title"]
    assert all(f["message"] and f["type"] for f in error["details"]["fields"])


@pytest.mark.django_db
def test_missing_field_is_422_with_its_path(anon):
    response = anon.post("/api/v1/auth/wechat", json={})

    error = assert_error(response, 422, "validation_error")
    assert [f["path"] for f in error["details"]["fields"]] == ["code"]
    assert error["details"]["fields"][0]["type"] == "missing"


def test_malformed_json_is_400(anon):
    response = anon.post("/api/v1/auth/wechat", json='{"code": "abc"')

    assert_error(response, 400, "malformed_json")


def test_missing_token_is_401_with_www_authenticate(anon):
    response = anon.get("/api/v1/auth/me")

    assert_error(response, 401, "not_authenticated")
    assert response["WWW-Authenticate"] == "Bearer"


@pytest.mark.django_db
def test_invalid_token_is_401():
    response = ApiClient("not-a-jwt").get("/api/v1/auth/me")

    assert_error(response, 401, "token_invalid")


@pytest.mark.django_db
def test_shopper_token_on_staff_endpoint_is_403_staff_only(shopper):
    response = shopper.post("/api/v1/staff/announcements", json=ANNOUNCEMENT)

    assert_error(response, 403, "staff_only")


@pytest.mark.django_db
def test_staff_without_the_permission_is_403_permission_denied(client_for):
    clerk = StaffFactory(is_superuser=False)

    response = client_for(clerk).post("/api/v1/staff/announcements", json=ANNOUNCEMENT)

    error = assert_error(response, 403, "permission_denied")
    assert error["details"] == {"permission": "core.add_announcement"}


@pytest.mark.django_db
def test_too_many_requests_is_429_with_retry_after(anon, settings, time_machine):
    time_machine.move_to(timezone.now(), tick=False)  # both requests in one rate window
    settings.SHOPPER_LOGIN_IP_RATE = "1/m"
    anon.post("/api/v1/auth/wechat", json={"code": "first"})

    response = anon.post("/api/v1/auth/wechat", json={"code": "second"})

    error = assert_error(response, 429, "rate_limited")
    assert int(response["Retry-After"]) >= 1
    assert error["details"]["retry_after"] == int(response["Retry-After"])


@pytest.mark.urls("tests.core.idem_urls")
def test_domain_conflict_is_409_with_its_code_and_details(anon):
    response = anon.post("/api/test/conflict")

    error = assert_error(response, 409, "illegal_transition")
    assert error["message"] == "The order is already paid."
    assert error["details"] == {"state": "paid"}


@pytest.mark.urls("tests.core.idem_urls")
def test_unexpected_exception_is_500_and_leaks_nothing(anon, caplog):
    response = anon.get("/api/test/crash")

    error = assert_error(response, 500, "internal_error")
    assert error["details"] == {}
    assert SECRET_IN_CRASH not in response.content.decode()
    assert "RuntimeError" not in response.content.decode()
    # ...but the operator still sees it in the log.
    assert any(
        SECRET_IN_CRASH in r.getMessage() or (r.exc_info and SECRET_IN_CRASH in str(r.exc_info[1]))
        for r in caplog.records
    )


HUGE = 2**80


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "code"),
    [
        ("get", f"/api/v1/orders/{HUGE}", None, 404, "not_found"),
        ("get", f"/api/v1/products/{HUGE}", None, 404, "product_not_found"),
        (
            "post",
            "/api/v1/orders",
            {"lines": [{"sku_id": HUGE, "quantity": 1}], "delivery_mode": "courier"},
            404,
            "sku_not_found",
        ),
    ],
)
def test_ids_beyond_64_bits_are_a_client_error_not_a_crash(
    shopper, method, path, body, status, code
):
    response = getattr(shopper, method)(path, body) if body else getattr(shopper, method)(path)

    # PostgreSQL compares such a number with bigint ids exactly: no row has it
    assert_error(response, status, code)


def test_staff_filter_beyond_64_bits_is_not_a_crash(operator):
    response = operator.get("/api/v1/staff/refunds", {"order_id": HUGE})

    assert response.status_code == 200, response.content
    assert response.json() == {"items": [], "count": 0, "limit": 20, "offset": 0}
