from django.conf import settings
from django.http import HttpRequest
from ninja import Router

from core.http import rate_limit
from shop.schemas.auth import WechatLoginIn, WechatLoginOut
from shop.services.customers import customer_login_wechat

router = Router(tags=["auth"])


@router.post(
    "/wechat", response=WechatLoginOut, summary="Shopper login with the code from wx.login()"
)
def wechat_login(request: HttpRequest, payload: WechatLoginIn):
    rate_limit(request, group="auth-login", rate=settings.LOGIN_RATE)
    customer, created, tokens = customer_login_wechat(
        code=payload.code, user_agent=request.headers.get("User-Agent", "")
    )
    return {**tokens.__dict__, "customer_id": customer.id, "created": created}
