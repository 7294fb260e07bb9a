"""Referral's demo data for ``manage.py seed_demo`` (found by name, see
shop/management/commands/seed_demo.py): a referral tree on three levels with the demo shopper in
the middle (a head KOC above them, a grass-roots KOC below), share links with UTM parameters,
clicks (one of them a link-preview bot, one a duplicate), an exclusive code, and paid orders of
two demo buyers attributed through the outbox: one through the grass-roots KOC's link (level 1
the grass-roots KOC, level 2 the demo shopper), one with the exclusive code.

Idempotent: distributors, links and codes are found again by their customer or code; the buyers'
orders are placed only while they have none. Everything goes through the services (and the
sandbox payment provider), as a user would."""

import uuid
from datetime import timedelta
from typing import Any

from django.utils import timezone

from core import outbox
from referral.models import Attribution, Distributor, ExclusiveCode, ShareLink
from referral.services.clicks import link_open
from referral.services.codes import exclusive_code_issue
from referral.services.distributors import distributor_appoint
from referral.services.links import link_create
from shop.models import Customer, Order, Sku
from shop.services.customers import customer_get_or_create
from shop.services.orders import order_create
from shop.services.payments import payment_confirm_sandbox, payment_start
from shop.wechat import sandbox_identity

HEAD_CODE = "demo-koc-head"
GRASS_CODE = "demo-koc-grass"
BUYER_CODES = ("demo-buyer-1", "demo-buyer-2")
EXCLUSIVE_CODE = "GAO10"
PRODUCT_SKU = "DEMO-APPLE-8"
HUMAN_UA = "Mozilla/5.0 (iPhone) AppleWebKit/605.1.15 MicroMessenger/8.0.47 miniProgram"
PREVIEW_UA = "Mozilla/5.0 (compatible; WeChat-Preview/1.0)"


def _customer(code: str, nickname: str) -> Customer:
    identity = sandbox_identity(code)
    customer, _ = customer_get_or_create(openid=identity.openid, unionid=identity.unionid)
    if not customer.nickname:
        customer.nickname = nickname
        customer.save(update_fields=["nickname"])
    return customer


def _distributor(customer: Customer, name: str, upline: Distributor | None) -> Distributor:
    existing = Distributor.objects.filter(customer=customer).first()
    if existing is not None:
        return existing
    return distributor_appoint(
        customer_id=customer.pk,
        actor=None,
        display_name=name,
        upline_id=upline.pk if upline else None,
        reason="demo data",
    )


def _link(distributor: Distributor, kind: str, ident: int | None, source: str) -> ShareLink:
    link = ShareLink.objects.filter(
        distributor=distributor, target_kind=kind, utm_source=source, is_code_link=False
    ).first()
    return link or link_create(
        distributor=distributor,
        target_kind=kind,
        target_id=ident,
        utm_source=source,
        utm_medium="share",
        utm_campaign="demo",
    )


def _exclusive_code(grass: Distributor) -> ExclusiveCode:
    existing = ExclusiveCode.objects.filter(coupon_code__code__iexact=EXCLUSIVE_CODE).first()
    return existing or exclusive_code_issue(
        actor=None,
        distributor_id=grass.pk,
        code=EXCLUSIVE_CODE,
        kind="percent",
        percent_bps=1000,
        max_discount=2000,
        valid_until=timezone.now() + timedelta(days=365),
        name="10 % off with Gao",
    )


def _buy(buyer: Customer, shop: dict[str, Any], device: uuid.UUID, code: str = "") -> None:
    if Order.objects.filter(customer=buyer).exclude(status=Order.Status.CANCELLED).exists():
        return
    sku = Sku.objects.get(code=PRODUCT_SKU)
    order = order_create(
        customer=buyer,
        lines=[(sku.pk, 2)],
        delivery_mode=Order.DeliveryMode.PICKUP,
        pickup_point_id=shop["pickup_point_id"],
        coupon_code=code,
        device_id=device,
    )
    payment = payment_start(order_id=order.pk, customer=buyer)
    payment_confirm_sandbox(payment_id=payment.pk, customer=buyer)


def seed(shop: dict[str, Any]) -> list[str]:
    """Create (or find) the demo tree, links, clicks, code and attributed orders."""
    shopper = Customer.objects.get(pk=shop["shopper_customer_id"])
    head = _distributor(_customer(HEAD_CODE, "KOC Hua (head)"), "Hua's picks", None)
    waist = _distributor(shopper, "Demo shopper's finds", head)
    grass = _distributor(_customer(GRASS_CODE, "KOC Gao (grass-roots)"), "Gao's garden", waist)
    product_id = Sku.objects.get(code=PRODUCT_SKU).product_id
    waist_link = _link(waist, "product", product_id, "wechat_group")
    grass_link = _link(grass, "shop", None, "moments")
    code = _exclusive_code(grass)

    buyers = [_customer(c, f"Demo buyer {n}") for n, c in enumerate(BUYER_CODES, start=1)]
    devices = [uuid.uuid5(uuid.NAMESPACE_URL, f"demo-device:{c}") for c in BUYER_CODES]
    if not Order.objects.filter(customer=buyers[0]).exists():
        ip = "demo-ip-hash"
        for link, ua in ((grass_link, HUMAN_UA), (grass_link, HUMAN_UA), (waist_link, PREVIEW_UA)):
            link_open(
                short_code=link.short_code,
                customer=buyers[0],
                device_id=devices[0],
                ip_hash=ip,
                user_agent=ua,
            )
    _buy(buyers[0], shop, devices[0])
    _buy(buyers[1], shop, devices[1], code=EXCLUSIVE_CODE)
    outbox.outbox_sweep()  # attribute now rather than when the worker's first sweep runs

    attributed = Attribution.objects.filter(distributor=grass).count()
    return [
        f"Referral: the demo shopper is distributor #{waist.pk} (upline #{head.pk}, downline "
        f"#{grass.pk}); GET /api/v1/referral/distributor/me/downline and "
        f"/referral/links/stats with the shopper's token",
        f"Share link {grass_link.short_code} (Gao's) has {attributed} attributed orders; "
        f'open it with POST /api/v1/referral/open {{"code": "{grass_link.short_code}"}}; '
        f"QR at /api/v1/referral/qr/{grass_link.short_code}.svg; exclusive code "
        f"{code.coupon_code.code} attributes to Gao at checkout",
    ]
