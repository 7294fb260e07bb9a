"""Tokens through the API: access, refresh rotation and reuse, logout, staff login, rate limits."""

from datetime import timedelta

import jwt
import pytest
from django.conf import settings as django_settings
from django.utils import timezone

from core.models import AuthSession, User
from tests.conftest import ApiClient
from tests.core.utils import assert_error
from tests.factories import StaffFactory, UserFactory

pytestmark = pytest.mark.django_db

PASSWORD = "pw-for-tests-123"


def _with_password(user):
    """tests.factories.UserFactory sets its password after saving and never saves it again
    (``skip_postgeneration_save``), so the stored password is empty: set one that is stored."""
    user.set_password(PASSWORD)
    user.save(update_fields=["password"])
    return user


def _login(anon, code: str = "code-1") -> dict:
    response = anon.post("/api/v1/auth/wechat", json={"code": code})
    assert response.status_code == 200, response.content
    return response.json()


def _me(token: str):
    return ApiClient(token).get("/api/v1/auth/me")


def _refresh(refresh_token: str):
    return ApiClient().post("/api/v1/auth/refresh", json={"refresh_token": refresh_token})


# --- access tokens ---------------------------------------------------------------------------
def test_access_token_identifies_the_user(anon):
    tokens = _login(anon)

    response = _me(tokens["access_token"])

    assert response.status_code == 200
    me = response.json()
    assert me["is_staff"] is False
    assert me["username"].startswith("wx_sbx_")
    assert tokens["token_type"] == "Bearer"


def test_access_token_expires_after_its_ttl(anon, time_machine):
    start = timezone.now()
    time_machine.move_to(start, tick=False)
    tokens = _login(anon)

    time_machine.move_to(
        start + django_settings.ACCESS_TOKEN_TTL - timedelta(seconds=5), tick=False
    )
    assert _me(tokens["access_token"]).status_code == 200

    time_machine.move_to(
        start + django_settings.ACCESS_TOKEN_TTL + timedelta(seconds=1), tick=False
    )
    assert_error(_me(tokens["access_token"]), 401, "token_expired")


def test_tampered_token_is_invalid(anon):
    tokens = _login(anon)
    header, payload, signature = tokens["access_token"].split(".")
    flipped = signature[:-2] + ("A" if signature[-2] != "A" else "B") + signature[-1]

    assert_error(_me(f"{header}.{payload}.{flipped}"), 401, "token_invalid")


def test_token_signed_with_another_key_is_invalid(anon):
    tokens = _login(anon)
    claims = jwt.decode(tokens["access_token"], options={"verify_signature": False})

    forged = jwt.encode(claims, "not-our-key-" * 4, algorithm="HS256")

    assert_error(_me(forged), 401, "token_invalid")


def test_unsigned_token_is_invalid(anon):
    tokens = _login(anon)
    claims = jwt.decode(tokens["access_token"], options={"verify_signature": False})

    forged = jwt.encode(claims, None, algorithm="none")

    assert_error(_me(forged), 401, "token_invalid")


def test_disabled_user_token_is_refused(anon):
    tokens = _login(anon)
    user_id = _me(tokens["access_token"]).json()["id"]
    User.objects.filter(pk=user_id).update(is_active=False)

    assert_error(_me(tokens["access_token"]), 401, "account_disabled")


# --- logout ------------------------------------------------------------------------------
def test_logout_revokes_the_access_and_refresh_tokens(anon):
    tokens = _login(anon)

    response = ApiClient(tokens["access_token"]).post("/api/v1/auth/logout")

    assert response.status_code == 204
    assert_error(_me(tokens["access_token"]), 401, "token_revoked")
    assert_error(_refresh(tokens["refresh_token"]), 401, "token_revoked")
    assert AuthSession.objects.get().revoked_reason == "logout"


def test_logout_ends_only_this_session(anon):
    phone = _login(anon, code="same-person")
    tablet = _login(anon, code="same-person")

    ApiClient(phone["access_token"]).post("/api/v1/auth/logout")

    assert _me(tablet["access_token"]).status_code == 200


def test_logout_needs_a_token(anon):
    assert_error(anon.post("/api/v1/auth/logout"), 401, "not_authenticated")


# --- refresh -----------------------------------------------------------------------------
def test_refresh_rotates_to_a_new_working_pair(anon):
    old = _login(anon)

    response = _refresh(old["refresh_token"])

    assert response.status_code == 200
    new = response.json()
    assert new["refresh_token"] != old["refresh_token"]
    assert new["access_token"] != old["access_token"]
    assert _me(new["access_token"]).status_code == 200
    assert _refresh(new["refresh_token"]).status_code == 200


def test_reusing_a_spent_refresh_token_revokes_the_whole_session(anon):
    old = _login(anon)
    new = _refresh(old["refresh_token"]).json()

    replay = _refresh(old["refresh_token"])

    assert_error(replay, 401, "refresh_token_reused")
    assert_error(_me(new["access_token"]), 401, "token_revoked")
    assert_error(_me(old["access_token"]), 401, "token_revoked")
    assert_error(_refresh(new["refresh_token"]), 401, "token_revoked")
    session = AuthSession.objects.get()
    assert session.revoked_reason == "refresh_reuse"
    assert session.revoked_at is not None


def test_unknown_refresh_token_is_invalid(anon):
    _login(anon)

    assert_error(_refresh("no-such-token"), 401, "refresh_token_invalid")


def test_empty_refresh_token_is_422(anon):
    error = assert_error(_refresh(""), 422, "validation_error")
    assert [f["path"] for f in error["details"]["fields"]] == ["refresh_token"]


def test_expired_refresh_token_is_refused(anon, time_machine):
    start = timezone.now()
    time_machine.move_to(start, tick=False)
    tokens = _login(anon)

    time_machine.move_to(
        start + django_settings.REFRESH_TOKEN_TTL + timedelta(seconds=1), tick=False
    )

    assert_error(_refresh(tokens["refresh_token"]), 401, "token_expired")


def test_refresh_is_rate_limited_per_ip(anon, settings, time_machine):
    time_machine.move_to(timezone.now(), tick=False)
    settings.REFRESH_RATE = "3/m"
    for _ in range(3):
        assert_error(_refresh("unknown"), 401, "refresh_token_invalid")

    response = _refresh("unknown")

    error = assert_error(response, 429, "rate_limited")
    assert int(response["Retry-After"]) > 0
    assert error["details"]["retry_after"] == int(response["Retry-After"])


def test_default_refresh_rate_is_30_per_minute(anon, time_machine):
    time_machine.move_to(timezone.now(), tick=False)
    assert django_settings.REFRESH_RATE == "30/m"
    statuses = [_refresh("unknown").status_code for _ in range(31)]

    assert statuses == [401] * 30 + [429]


# --- staff login -------------------------------------------------------------------------
def test_staff_login_returns_working_tokens(anon):
    operator = _with_password(StaffFactory(is_superuser=False))

    response = anon.post(
        "/api/v1/auth/staff", json={"username": operator.username, "password": PASSWORD}
    )

    assert response.status_code == 200
    me = _me(response.json()["access_token"]).json()
    assert (me["id"], me["is_staff"]) == (operator.id, True)


@pytest.mark.parametrize(
    ("who", "password"),
    [
        ("staff", "wrong-password"),
        ("shopper", PASSWORD),
        ("nobody", PASSWORD),
        ("disabled-staff", PASSWORD),
    ],
)
def test_staff_login_refuses_bad_credentials_alike(anon, who, password):
    users = {
        "staff": lambda: _with_password(StaffFactory()),
        "shopper": lambda: _with_password(UserFactory()),
        "nobody": lambda: UserFactory.build(username="ghost"),
        "disabled-staff": lambda: _with_password(StaffFactory(is_active=False)),
    }
    user = users[who]()

    response = anon.post(
        "/api/v1/auth/staff", json={"username": user.username, "password": password}
    )

    assert_error(response, 401, "invalid_credentials")
    assert AuthSession.objects.count() == 0


def test_staff_login_is_rate_limited(anon, settings, time_machine):
    time_machine.move_to(timezone.now(), tick=False)
    settings.STAFF_LOGIN_IP_RATE = "2/m"
    body = {"username": "ghost", "password": "x"}
    assert [anon.post("/api/v1/auth/staff", json=body).status_code for _ in range(2)] == [401, 401]

    assert_error(anon.post("/api/v1/auth/staff", json=body), 429, "rate_limited")
