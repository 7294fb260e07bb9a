"""POST /api/v1/auth/wechat: the sandbox provider, the real code2session provider through an
injected httpx transport (never the network), account state and the per-IP rate limit."""

import hashlib
from collections.abc import Callable, Iterator
from datetime import timedelta

import httpx
import pytest
from django.conf import settings as django_settings
from django.utils import timezone

from core.models import AuthSession
from shop import wechat
from shop.models import Customer
from tests.conftest import ApiClient
from tests.core.utils import assert_error

pytestmark = pytest.mark.django_db

URL = "/api/v1/auth/wechat"


def _login(client: ApiClient, code: str, **extra):
    return client.post(URL, json={"code": code}, **extra)


# --- sandbox provider ------------------------------------------------------------------------
def test_first_login_creates_the_customer(anon):
    response = _login(anon, "wx-code-1")

    assert response.status_code == 200
    body = response.json()
    assert body["created"] is True
    customer = Customer.objects.get()
    assert body["customer_id"] == customer.id
    digest = hashlib.sha256(b"wx-code-1").hexdigest()
    assert customer.openid == f"sbx_{digest[:24]}"
    assert customer.unionid == f"sbxu_{digest[24:48]}"
    assert customer.user.has_usable_password() is False
    assert set(body) == {
        "access_token",
        "refresh_token",
        "token_type",
        "access_expires_at",
        "refresh_expires_at",
        "customer_id",
        "created",
    }


def test_returning_customer_gets_the_same_id(anon):
    first = _login(anon, "wx-code-2").json()

    second = _login(anon, "wx-code-2")

    assert second.status_code == 200
    assert second.json()["created"] is False
    assert second.json()["customer_id"] == first["customer_id"]
    assert Customer.objects.count() == 1
    assert AuthSession.objects.count() == 2


def test_access_token_from_login_works_on_me(anon):
    body = _login(anon, "wx-code-3").json()

    me = ApiClient(body["access_token"]).get("/api/v1/auth/me")

    assert me.status_code == 200
    assert me.json()["id"] == Customer.objects.get(pk=body["customer_id"]).user_id


def test_invalid_code_is_401_and_creates_nothing(anon):
    response = _login(anon, "invalid-used-code")

    assert_error(response, 401, "wechat_code_invalid")
    assert Customer.objects.count() == 0
    assert AuthSession.objects.count() == 0


@pytest.mark.parametrize("body", [{"code": ""}, {}, {"code": "x" * 129}])
def test_missing_empty_or_oversized_code_is_422(anon, body):
    response = anon.post(URL, json=body)

    error = assert_error(response, 422, "validation_error")
    assert [f["path"] for f in error["details"]["fields"]] == ["code"]
    assert Customer.objects.count() == 0


def test_disabled_customer_cannot_log_in(anon):
    customer_id = _login(anon, "wx-code-4").json()["customer_id"]
    user = Customer.objects.get(pk=customer_id).user
    user.is_active = False
    user.save(update_fields=["is_active"])

    response = _login(anon, "wx-code-4")

    assert_error(response, 401, "account_disabled")
    assert AuthSession.objects.count() == 1


# --- rate limit --------------------------------------------------------------------------
def _logins_from_one_ip(anon, n: int) -> list:
    return [_login(anon, f"rate-{i}") for i in range(n)]


def test_sixty_first_login_from_one_ip_within_a_minute_is_429(anon, time_machine):
    # generous per IP: behind carrier NAT many shoppers share one address
    time_machine.move_to(timezone.now(), tick=False)
    assert django_settings.SHOPPER_LOGIN_IP_RATE == "60/m"

    responses = _logins_from_one_ip(anon, 61)

    assert [r.status_code for r in responses[:60]] == [200] * 60
    error = assert_error(responses[60], 429, "rate_limited")
    retry_after = int(responses[60]["Retry-After"])
    assert 0 < retry_after <= 60
    assert error["details"]["retry_after"] == retry_after
    assert Customer.objects.count() == 60
    # another IP is counted separately
    assert _login(anon, "other-ip", REMOTE_ADDR="10.1.2.3").status_code == 200


def test_login_limit_resets_in_the_next_window(anon, time_machine):
    start = timezone.now()
    time_machine.move_to(start, tick=False)
    limited = _logins_from_one_ip(anon, 61)[60]
    assert limited.status_code == 429

    time_machine.move_to(start + timedelta(seconds=int(limited["Retry-After"]) + 1), tick=False)

    assert _login(anon, "after-the-window").status_code == 200


@pytest.mark.redis
def test_login_rate_limit_with_the_redis_cache(anon, time_machine):
    assert (
        django_settings.CACHES["default"]["BACKEND"]
        == "django.core.cache.backends.redis.RedisCache"
    )
    time_machine.move_to(timezone.now(), tick=False)

    responses = _logins_from_one_ip(anon, 61)

    assert [r.status_code for r in responses[:60]] == [200] * 60
    assert_error(responses[60], 429, "rate_limited")
    assert int(responses[60]["Retry-After"]) > 0


# --- the real WeChat provider, offline ----------------------------------------------------
@pytest.fixture
def wechat_provider(
    settings,
) -> Iterator[Callable[[Callable[[httpx.Request], httpx.Response]], list]]:
    """Switch to the ``wechat`` provider; ``use(handler)`` installs a mock transport and returns
    the list of requests it saw. The transport is always reset afterwards."""
    settings.WECHAT_LOGIN_PROVIDER = "wechat"
    settings.WECHAT_APP_ID = "wx-test-app"
    settings.WECHAT_APP_SECRET = "test-app-secret"

    def use(handler: Callable[[httpx.Request], httpx.Response]) -> list[httpx.Request]:
        seen: list[httpx.Request] = []

        def record(request: httpx.Request) -> httpx.Response:
            seen.append(request)
            return handler(request)

        wechat.set_transport(httpx.MockTransport(record))
        return seen

    yield use
    wechat.set_transport(None)


def test_wechat_provider_exchanges_the_code(anon, wechat_provider):
    seen = wechat_provider(
        lambda request: httpx.Response(
            200, json={"openid": "o-real-1", "unionid": "u-real-1", "session_key": "sk"}
        )
    )

    response = _login(anon, "real-code")

    assert response.status_code == 200
    assert response.json()["created"] is True
    assert len(seen) == 1
    request = seen[0]
    assert request.method == "GET"
    assert (request.url.scheme, request.url.host, request.url.path) == (
        "https",
        "api.weixin.qq.com",
        "/sns/jscode2session",
    )
    assert dict(request.url.params) == {
        "appid": "wx-test-app",
        "secret": "test-app-secret",
        "js_code": "real-code",
        "grant_type": "authorization_code",
    }
    customer = Customer.objects.get()
    assert (customer.openid, customer.unionid) == ("o-real-1", "u-real-1")


def test_wechat_provider_without_unionid_fills_it_in_later(anon, wechat_provider):
    answers = iter([{"openid": "o-real-2"}, {"openid": "o-real-2", "unionid": "u-real-2"}])
    wechat_provider(lambda request: httpx.Response(200, json=next(answers)))

    first = _login(anon, "c1").json()
    second = _login(anon, "c2").json()

    assert (first["created"], second["created"]) == (True, False)
    assert first["customer_id"] == second["customer_id"]
    assert Customer.objects.get().unionid == "u-real-2"


@pytest.mark.parametrize("errcode", [40029, 40163, 40226])
def test_wechat_provider_refused_code_is_401(anon, wechat_provider, errcode):
    wechat_provider(
        lambda request: httpx.Response(200, json={"errcode": errcode, "errmsg": "invalid code"})
    )

    response = _login(anon, "bad-code")

    assert_error(response, 401, "wechat_code_invalid")
    assert Customer.objects.count() == 0


def test_wechat_provider_rate_limit_is_429(anon, wechat_provider):
    wechat_provider(lambda request: httpx.Response(200, json={"errcode": 45011, "errmsg": "busy"}))

    assert_error(_login(anon, "code"), 429, "wechat_rate_limited")


def _network_down(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("connection refused", request=request)


def _read_timeout(request: httpx.Request) -> httpx.Response:
    raise httpx.ReadTimeout("timed out", request=request)


@pytest.mark.parametrize(
    "handler",
    [
        _network_down,
        _read_timeout,
        lambda request: httpx.Response(500, text="upstream error"),
        lambda request: httpx.Response(200, text="<html>not json</html>"),
        lambda request: httpx.Response(200, json={"errcode": -1, "errmsg": "system busy"}),
        lambda request: httpx.Response(200, json={"session_key": "sk"}),
    ],
    ids=["connect-error", "timeout", "http-500", "not-json", "errcode-minus-1", "no-openid"],
)
def test_wechat_provider_unavailable_is_502(anon, wechat_provider, handler):
    wechat_provider(handler)

    response = _login(anon, "code")

    assert_error(response, 502, "wechat_unavailable")
    assert Customer.objects.count() == 0
    assert AuthSession.objects.count() == 0


def test_transport_is_reset_after_each_test():
    assert wechat._transport is None
