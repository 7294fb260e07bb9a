import pytest

from core.models import User
from shop.demo import seed_shop
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
from shop.wechat import sandbox_identity

pytestmark = pytest.mark.django_db

MODELS = [
    User,
    Customer,
    Address,
    Category,
    Product,
    Sku,
    Community,
    CommunityMembership,
    PickupPoint,
]


def counts() -> dict[str, int]:
    return {model.__name__: model.objects.count() for model in MODELS}


def test_seed_is_idempotent():
    first = seed_shop()
    after_first = counts()

    second = seed_shop()

    assert counts() == after_first
    assert second == first


def test_seed_creates_a_usable_demo_shop(anon):
    summary = seed_shop()

    assert Category.objects.filter(slug__in=["fruit", "vegetables", "dairy"]).count() == 3
    products = Product.objects.filter(pk__in=summary["product_ids"])
    assert products.count() == len(summary["product_ids"]) >= 6
    assert all(p.status == Product.Status.ON_SALE for p in products)
    for product in products:
        assert 1 <= product.skus.count() <= 3
        assert all(sku.price > 0 and 50 <= sku.stock <= 500 for sku in product.skus.all())
    assert len(summary["promotional_product_ids"]) == 1

    listed = anon.get("/api/v1/products", {"limit": 100}).json()
    assert listed["count"] == len(summary["product_ids"])
    ads = [item["id"] for item in listed["items"] if item["ad_label"] == "广告 / Ad"]
    assert ads == summary["promotional_product_ids"]
    assert anon.get("/api/v1/products", {"community": summary["community_id"]}).json()["count"] == (
        len(summary["product_ids"])
    )


def test_seed_community_leader_pickup_point_and_shopper(anon):
    summary = seed_shop()

    community = Community.objects.get(pk=summary["community_id"])
    assert community.name == "Sunny Garden Community"
    leader = Customer.objects.get(pk=summary["leader_customer_id"])
    assert community.leader_id == leader.id
    # the leader signs in like any shopper, with the sandbox code printed by seed_demo
    login = anon.post("/api/v1/auth/wechat", {"code": summary["leader_login_code"]})
    assert login.json()["customer_id"] == leader.id

    point = PickupPoint.objects.get(pk=summary["pickup_point_id"])
    assert point.community_id == community.id
    assert point.latitude is not None and point.longitude is not None
    assert point.opening_hours

    shopper = Customer.objects.get(pk=summary["shopper_customer_id"])
    assert shopper.openid == sandbox_identity("demo-shopper").openid
    assert CommunityMembership.objects.filter(community=community, customer=shopper).exists()
    assert (
        Address.objects.get(customer=shopper, is_default=True).pk == summary["shopper_address_id"]
    )

    detail = anon.get(f"/api/v1/communities/{community.id}").json()
    assert [p["id"] for p in detail["pickup_points"]] == [point.id]


def test_demo_shopper_logs_in_with_the_sandbox_code(anon):
    summary = seed_shop()

    response = anon.post("/api/v1/auth/wechat", json={"code": "demo-shopper"})

    assert response.status_code == 200
    body = response.json()
    assert body["customer_id"] == summary["shopper_customer_id"]
    assert body["created"] is False
