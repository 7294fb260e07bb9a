"""WeChat mini-program login: exchange the ``code`` from ``wx.login`` for an openid.

Two providers behind one function, chosen by ``WECHAT_LOGIN_PROVIDER``:

* ``sandbox`` (embedded default, tests): deterministic, offline. A code maps to
  ``openid = "sbx_" + sha256(code)[:24]``; codes starting with ``invalid`` are refused like WeChat
  refuses a used or expired code.
* ``wechat``: calls ``GET https://api.weixin.qq.com/sns/jscode2session`` with the app id/secret.
  The httpx transport is injectable so tests never reach the network.

(wechatpy's ``code_to_session`` first fetches an access token that this endpoint does not need,
so the one documented GET is made directly with httpx.)
"""

import hashlib
from dataclasses import dataclass

import httpx
from django.conf import settings

from core.errors import ApplicationError, NotAuthenticated
from shop.error_codes import ShopAuthErrorCode

CODE2SESSION_URL = "https://api.weixin.qq.com/sns/jscode2session"


@dataclass(frozen=True)
class WechatIdentity:
    openid: str
    unionid: str | None


class WechatUnavailable(ApplicationError):
    status = 502
    code = ShopAuthErrorCode.WECHAT_UNAVAILABLE
    default_message = "WeChat login is temporarily unavailable; try again."


def sandbox_identity(code: str) -> WechatIdentity:
    if code.startswith("invalid"):
        raise NotAuthenticated(
            "The login code is invalid or expired.", code=ShopAuthErrorCode.WECHAT_CODE_INVALID
        )
    digest = hashlib.sha256(code.encode()).hexdigest()
    return WechatIdentity(openid=f"sbx_{digest[:24]}", unionid=f"sbxu_{digest[24:48]}")


_transport: httpx.BaseTransport | None = None


def set_transport(transport: httpx.BaseTransport | None) -> None:
    """Inject the HTTP transport used by the real provider (tests: ``httpx.MockTransport``)."""
    global _transport
    _transport = transport


def _wechat(code: str) -> WechatIdentity:
    params = {
        "appid": settings.WECHAT_APP_ID,
        "secret": settings.WECHAT_APP_SECRET,
        "js_code": code,
        "grant_type": "authorization_code",
    }
    try:
        with httpx.Client(transport=_transport, timeout=5.0) as client:
            response = client.get(CODE2SESSION_URL, params=params)
            response.raise_for_status()
            data = response.json()
    except (httpx.HTTPError, ValueError) as exc:
        raise WechatUnavailable() from exc
    errcode = data.get("errcode") or 0
    if errcode in (40029, 40163, 40226):  # invalid code, code already used, risky user
        raise NotAuthenticated(
            "The login code is invalid or expired.", code=ShopAuthErrorCode.WECHAT_CODE_INVALID
        )
    if errcode == 45011:
        raise ApplicationError(
            "WeChat rate limit reached; retry shortly.",
            code=ShopAuthErrorCode.WECHAT_RATE_LIMITED,
            status=429,
            headers={"Retry-After": "5"},
            details={"retry_after": 5},
        )
    if errcode or not data.get("openid"):
        raise WechatUnavailable(details={"errcode": errcode})
    return WechatIdentity(openid=data["openid"], unionid=data.get("unionid"))


def code_to_identity(code: str) -> WechatIdentity:
    if settings.WECHAT_LOGIN_PROVIDER == "wechat":
        return _wechat(code)
    return sandbox_identity(code)
