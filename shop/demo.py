"""Demo data for the shop (used by ``manage.py seed_demo``). Idempotent: every row is found by
a natural key (slug, title, SKU code, name, openid) before it is created, so a second run adds
nothing and never overwrites stock that orders have since consumed."""

from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.utils import timezone

from shop.models import (
    Address,
    Category,
    Community,
    CommunityMembership,
    CouponCode,
    CouponTemplate,
    Customer,
    FlashSession,
    PickupPoint,
    Product,
    Sku,
)
from shop.services.addresses import address_create
from shop.services.communities import community_set_leader
from shop.services.customers import customer_get_or_create
from shop.services.flash import FlashItemSpec, flash_session_create
from shop.wechat import sandbox_identity

COMMUNITY_NAME = "Sunny Garden Community"
LEADER_CODE = "demo-leader"
SHOPPER_CODE = "demo-shopper"

CATEGORIES = [
    ("fruit", "Fruit", 1),
    ("vegetables", "Vegetables", 2),
    ("dairy", "Dairy & Eggs", 3),
]

# (category slug, title, description, purchase limit, promotional, community-only,
#  [(sku code, attributes, price fen, list price fen, stock)])
PRODUCTS: list[tuple[str, str, str, int | None, bool, bool, list[tuple]]] = [
    (
        "fruit",
        "Hainan Tainong Mangoes",
        "Sun-ripened small mangoes from Sanya orchards.",
        None,
        False,
        False,
        [
            ("DEMO-MANGO-2KG", {"weight": "2.5 kg"}, 2990, 3990, 200),
            ("DEMO-MANGO-5KG", {"weight": "5 kg"}, 5490, 6990, 120),
        ],
    ),
    (
        "fruit",
        "Yantai Red Fuji Apples",
        "Crisp apples from Shandong, picked this week.",
        None,
        False,
        False,
        [
            ("DEMO-APPLE-8", {"pack": "8 apples"}, 2590, 3290, 300),
            ("DEMO-APPLE-16", {"pack": "16 apples"}, 4690, 5990, 150),
            ("DEMO-APPLE-GIFT", {"pack": "gift box, 12 apples"}, 6990, 8990, 50),
        ],
    ),
    (
        "fruit",
        "Sunshine Rose Grapes",
        "Seedless green grapes from Yunnan, 1 bunch.",
        2,
        False,
        True,
        [("DEMO-GRAPE-1", {"weight": "750 g"}, 3980, 4980, 80)],
    ),
    (
        "vegetables",
        "Shouguang Cherry Tomatoes",
        "Greenhouse cherry tomatoes, sweet and firm.",
        None,
        False,
        False,
        [
            ("DEMO-TOMATO-500", {"weight": "500 g"}, 990, 1290, 500),
            ("DEMO-TOMATO-1KG", {"weight": "1 kg"}, 1790, 2390, 260),
        ],
    ),
    (
        "vegetables",
        "Organic Baby Bok Choy",
        "Picked at dawn, delivered to your pickup point.",
        None,
        False,
        False,
        [("DEMO-BOKCHOY-400", {"weight": "400 g"}, 590, 790, 400)],
    ),
    (
        "dairy",
        "Inner Mongolia Fresh Milk",
        "Pasteurised whole milk, keep refrigerated.",
        6,
        False,
        False,
        [
            ("DEMO-MILK-950", {"volume": "950 ml"}, 1590, 1890, 240),
            ("DEMO-MILK-2x950", {"volume": "2 x 950 ml"}, 2990, 3780, 120),
        ],
    ),
    (
        "dairy",
        "Free-range Eggs (Brand Partner Pick)",
        "Our partner farm's free-range eggs, recommended by the community leader.",
        None,
        True,
        False,
        [("DEMO-EGGS-30", {"pack": "30 eggs"}, 3290, 3990, 180)],
    ),
]

PICKUP_POINT = {
    "name": "Sunny Garden Gate 2 Convenience Store",
    "address": "Gate 2, Sunny Garden, 88 Wensan Road, Xihu District, Hangzhou",
    "opening_hours": "Mon-Sun 08:00-21:00",
    "latitude": Decimal("30.281420"),
    "longitude": Decimal("120.130510"),
    "contact_phone": "0571-88880000",
}

SHOPPER_ADDRESS = {
    "recipient_name": "Wang Fang",
    "phone": "13800138000",
    "province": "Zhejiang",
    "city": "Hangzhou",
    "district": "Xihu",
    "detail": "Building 5, Unit 2, Room 301, Sunny Garden",
    "postal_code": "310012",
}


# A flash sale starting a few minutes after the seed (so `make run` shows its countdown on the
# session topic), with its own stock: (SKU code, flash price fen, flash units, per-customer cap).
FLASH_TITLE = "Demo flash sale"
FLASH_STARTS_IN = timedelta(minutes=3)
FLASH_LASTS = timedelta(minutes=30)
FLASH_ITEMS = [("DEMO-MANGO-2KG", 1990, 20, 1), ("DEMO-MILK-950", 990, 30, 2)]


def _flash_session() -> FlashSession:
    """The demo flash sale that has not started yet, or a new one starting in a few minutes
    (a live or ended one from an earlier run is left as it is)."""
    now = timezone.now()
    waiting = FlashSession.objects.filter(title=FLASH_TITLE, starts_at__gt=now).first()
    if waiting is not None:
        return waiting
    skus = {sku.code: sku.pk for sku in Sku.objects.filter(code__in=[i[0] for i in FLASH_ITEMS])}
    return flash_session_create(
        title=FLASH_TITLE,
        starts_at=now + FLASH_STARTS_IN,
        ends_at=now + FLASH_STARTS_IN + FLASH_LASTS,
        items=[
            FlashItemSpec(
                sku_id=skus[code], flash_price=price, total_stock=units, per_customer_limit=cap
            )
            for code, price, units, cap in FLASH_ITEMS
        ],
    )


def _sandbox_customer(code: str, nickname: str) -> Customer:
    """The customer a sandbox WeChat login with ``code`` signs in as."""
    identity = sandbox_identity(code)
    customer, _ = customer_get_or_create(openid=identity.openid, unionid=identity.unionid)
    if not customer.nickname:
        customer.nickname = nickname
        customer.save(update_fields=["nickname"])
    return customer


def _leader() -> Customer:
    return _sandbox_customer(LEADER_CODE, "Leader Chen")


def _shopper() -> Customer:
    return _sandbox_customer(SHOPPER_CODE, "Wang Fang")


# Coupons: (name, fields). Claimable in the coupon centre, a threshold discount (满减) among them,
# and a shared code to type at checkout.
COUPON_CODE = "SUNNY10"
COUPONS: list[tuple[str, dict[str, Any]]] = [
    (
        "Spend ¥99 save ¥10, spend ¥199 save ¥25",
        {
            "kind": "threshold",
            "tiers": [{"threshold": 9900, "off": 1000}, {"threshold": 19900, "off": 2500}],
            "channel": "claimable",
            "valid_days": 7,
            "total_quantity": 1000,
        },
    ),
    (
        "¥3 off orders from ¥30",
        {
            "kind": "fixed",
            "amount": 300,
            "min_spend": 3000,
            "channel": "claimable",
            "valid_days": 3,
            "per_customer_limit": 2,
        },
    ),
    (
        "Fruit 10% off (up to ¥8)",
        {
            "kind": "percent",
            "percent_bps": 1000,
            "max_discount": 800,
            "scope": "categories",
            "channel": "claimable",
            "valid_days": 7,
        },
    ),
    (
        "Code SUNNY10: ¥10 off from ¥60",
        {"kind": "fixed", "amount": 1000, "min_spend": 6000, "channel": "code", "valid_days": 3},
    ),
]


def _seed_coupons(fruit: Category) -> list[CouponTemplate]:
    """The demo's coupon templates (active) and its shared code, found by name / code."""
    templates = []
    for name, fields in COUPONS:
        template, created = CouponTemplate.objects.get_or_create(
            name=name, defaults={**fields, "status": CouponTemplate.Status.ACTIVE}
        )
        if created and template.scope == CouponTemplate.Scope.CATEGORIES:
            template.categories.add(fruit)
        templates.append(template)
    CouponCode.objects.get_or_create(
        code=COUPON_CODE,
        defaults={
            "template": templates[-1],
            "kind": CouponCode.Kind.SHARED,
            "max_redemptions": 500,
        },
    )
    return templates


def seed_shop() -> dict[str, Any]:
    """Create (once) the demo catalog, community, leader, pickup point, shopper and coupons."""
    with transaction.atomic():
        categories = {}
        for slug, name, order in CATEGORIES:
            categories[slug], _ = Category.objects.get_or_create(
                slug=slug, defaults={"name": name, "sort_order": order}
            )

        leader = _leader()
        community, _ = Community.objects.get_or_create(
            name=COMMUNITY_NAME,
            defaults={"description": "Neighbours of Sunny Garden buying fresh food together."},
        )
        if community.leader_id != leader.pk:
            community = community_set_leader(community_id=community.pk, customer_id=leader.pk)
        point, _ = PickupPoint.objects.get_or_create(
            community=community, name=PICKUP_POINT["name"], defaults=PICKUP_POINT
        )

        product_ids = []
        for slug, title, description, limit, promotional, community_only, skus in PRODUCTS:
            product, created = Product.objects.get_or_create(
                title=title,
                defaults={
                    "description": description,
                    "category": categories[slug],
                    "status": Product.Status.ON_SALE,
                    "purchase_limit": limit,
                    "is_promotional": promotional,
                    "images": [
                        f"https://picsum.photos/seed/{skus[0][0].lower()}/{size}/{size}"
                        for size in (600, 800)
                    ],
                },
            )
            if created and community_only:
                product.communities.add(community)
            for code, attributes, price, list_price, stock in skus:
                Sku.objects.get_or_create(
                    code=code,
                    defaults={
                        "product": product,
                        "attributes": attributes,
                        "price": price,
                        "list_price": list_price,
                        "stock": stock,
                    },
                )
            product_ids.append(product.pk)

        shopper = _shopper()
        CommunityMembership.objects.get_or_create(community=community, customer=shopper)
        if not Address.objects.filter(customer=shopper).exists():
            address_create(customer=shopper, **SHOPPER_ADDRESS)
        address = Address.objects.get(customer=shopper, is_default=True)
        flash_session = _flash_session()

        coupon_templates = _seed_coupons(categories["fruit"])

    return {
        "coupon_template_ids": [t.pk for t in coupon_templates],
        "coupon_code": COUPON_CODE,
        "category_ids": [c.pk for c in categories.values()],
        "product_ids": product_ids,
        "promotional_product_ids": [
            pk for pk, spec in zip(product_ids, PRODUCTS, strict=True) if spec[4]
        ],
        "community_id": community.pk,
        "pickup_point_id": point.pk,
        "leader_customer_id": leader.pk,
        "leader_login_code": LEADER_CODE,
        "shopper_customer_id": shopper.pk,
        "shopper_address_id": address.pk,
        "shopper_login_code": SHOPPER_CODE,
        "flash_session_id": flash_session.pk,
    }
