from django.conf import settings
from django.http import HttpRequest
from ninja import Router

from core.error_codes import CoreErrorCode
from core.http import errors, examples, rate_limit
from shop.error_codes import ShopAuthErrorCode
from shop.schemas.auth import WechatLoginIn, WechatLoginOut
from shop.services.customers import customer_login_identity
from shop.wechat import code_to_identity

router = Router(tags=["auth"])


@router.post(
    "/wechat",
    response=WechatLoginOut,
    summary="Shopper login with the code from wx.login()",
    description=(
        "Exchange the code from `wx.login()` for an access + refresh pair; the first login creates "
        "the customer (`created`). Public; rate-limited per client IP, per code and per account. "
        "A code WeChat refuses is 401 `wechat_code_invalid`; WeChat down is 502 "
        "`wechat_unavailable`; a disabled account is 401 `account_disabled`."
    ),
)
@examples(request={"code": "081Kq2Ga1qXz1F0uYbJa1Zc9Ga1Kq2GP"})
@errors(
    CoreErrorCode.RATE_LIMITED,
    ShopAuthErrorCode.WECHAT_CODE_INVALID,
    ShopAuthErrorCode.WECHAT_RATE_LIMITED,
    ShopAuthErrorCode.WECHAT_UNAVAILABLE,
    ShopAuthErrorCode.ACCOUNT_DISABLED,
)
def wechat_login(request: HttpRequest, payload: WechatLoginIn):
    # Shopper buckets only (staff logins never lock shoppers out): per client IP, generous for
    # carrier NAT; per login code before asking WeChat; per account (openid) once WeChat answered.
    rate_limit(request, group="login-shopper-ip", rate=settings.SHOPPER_LOGIN_IP_RATE)
    account_rate = settings.SHOPPER_LOGIN_ACCOUNT_RATE
    rate_limit(request, group="login-shopper-code", rate=account_rate, value=payload.code)
    identity = code_to_identity(payload.code)
    rate_limit(request, group="login-shopper-account", rate=account_rate, value=identity.openid)
    customer, created, tokens = customer_login_identity(
        identity=identity, user_agent=request.headers.get("User-Agent", "")
    )
    return {**tokens.__dict__, "customer_id": customer.id, "created": created}
