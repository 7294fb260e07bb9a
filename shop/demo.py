"""Demo data for the shop (used by ``manage.py seed_demo``). Idempotent: every row is found by
a natural key (slug, title, SKU code, name, openid) before it is created, so a second run adds
nothing and never overwrites stock that orders have since consumed."""

from decimal import Decimal
from typing import Any

from django.db import transaction

from shop.models import (
    Address,
    Category,
    Community,
    CommunityMembership,
    Customer,
    PickupPoint,
    Product,
    Sku,
)
from shop.services.addresses import address_create
from shop.services.communities import community_set_leader
from shop.services.customers import customer_get_or_create
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


def seed_shop() -> dict[str, Any]:
    """Create (once) the demo catalog, community, leader, pickup point and shopper."""
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

    return {
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
    }
