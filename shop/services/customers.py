from django.db import IntegrityError, transaction

from core.errors import NotAuthenticated
from core.models import User
from core.tokens import TokenPair, session_start
from shop.error_codes import ShopAuthErrorCode
from shop.models import Customer
from shop.services.coupons import coupons_gift_new_customer
from shop.wechat import WechatIdentity, code_to_identity


def customer_get_or_create(*, openid: str, unionid: str | None = None) -> tuple[Customer, bool]:
    """The customer for ``openid``, created (with its user) on first sight, with the active
    new-customer gift coupons; race-safe."""
    customer = Customer.objects.select_related("user").filter(openid=openid).first()
    if customer is not None:
        if unionid and not customer.unionid:
            customer.unionid = unionid
            customer.save(update_fields=["unionid"])
        return customer, False
    try:
        with transaction.atomic():
            user = User.objects.create(username=f"wx_{openid}"[:150])
            user.set_unusable_password()
            user.save(update_fields=["password"])
            customer = Customer.objects.create(user=user, openid=openid, unionid=unionid)
            coupons_gift_new_customer(customer=customer)
            return customer, True
    except IntegrityError:
        return Customer.objects.select_related("user").get(openid=openid), False


def customer_login_wechat(*, code: str, user_agent: str = "") -> tuple[Customer, bool, TokenPair]:
    return customer_login_identity(identity=code_to_identity(code), user_agent=user_agent)


def customer_login_identity(
    *, identity: WechatIdentity, user_agent: str = ""
) -> tuple[Customer, bool, TokenPair]:
    """Log in the customer WeChat vouched for (created on first sight)."""
    customer, created = customer_get_or_create(openid=identity.openid, unionid=identity.unionid)
    if not customer.user.is_active:
        raise NotAuthenticated("This account is disabled.", code=ShopAuthErrorCode.ACCOUNT_DISABLED)
    return customer, created, session_start(user=customer.user, user_agent=user_agent)


def customer_profile_update(
    *,
    customer: Customer,
    nickname: str | None = None,
    avatar_url: str | None = None,
    phone: str | None = None,
) -> Customer:
    """Change the shopper's own profile; ``None`` leaves a field unchanged, ``""`` clears it."""
    changes = {
        field: value
        for field, value in (("nickname", nickname), ("avatar_url", avatar_url), ("phone", phone))
        if value is not None
    }
    for field, value in changes.items():
        setattr(customer, field, value)
    if changes:
        customer.save(update_fields=list(changes))
    return customer
