import pytest
from django.test import Client

from core.admin_money import fen_to_yuan
from core.errors import Conflict
from shop.admin.catalog import SkuAdminForm
from shop.models import Product, Sku
from shop.services.catalog import product_set_status, sku_adjust_stock
from tests.factories import (
    CategoryFactory,
    CommunityFactory,
    ProductFactory,
    SkuFactory,
    StaffFactory,
)

pytestmark = pytest.mark.django_db

PRODUCTS = "/api/v1/products"


def ids(response) -> list[int]:
    return [item["id"] for item in response.json()["items"]]


# --- Categories ----------------------------------------------------------------------------
def test_categories_are_listed_in_sort_order(anon):
    fruit = CategoryFactory(name="Fruit", slug="fruit", sort_order=2)
    dairy = CategoryFactory(name="Dairy", slug="dairy", sort_order=1)
    apples = CategoryFactory(name="Apples", slug="apples", parent=fruit, sort_order=3)

    response = anon.get("/api/v1/categories")

    assert response.status_code == 200
    body = response.json()
    assert [c["id"] for c in body] == [dairy.id, fruit.id, apples.id]
    assert body[2] == {
        "id": apples.id,
        "name": "Apples",
        "slug": "apples",
        "parent_id": fruit.id,
        "sort_order": 3,
    }


# --- List ----------------------------------------------------------------------------------
def test_list_shows_only_on_sale_products_newest_first(anon):
    older = SkuFactory().product
    newer = SkuFactory().product
    ProductFactory(status=Product.Status.DRAFT)
    ProductFactory(status=Product.Status.OFF_SALE)

    response = anon.get(PRODUCTS)

    assert response.status_code == 200
    assert ids(response) == [newer.id, older.id]
    assert response.json()["count"] == 2


def test_list_item_has_cover_prices_and_flags(anon):
    product = ProductFactory(
        title="Hainan mangoes",
        images=["https://img.example/m1.jpg", "https://img.example/m2.jpg"],
        purchase_limit=3,
    )
    SkuFactory(product=product, price=2590, list_price=3590, stock=0)
    SkuFactory(product=product, price=1990, list_price=2990, stock=5)
    SkuFactory(product=product, price=990, list_price=9990, stock=5, is_active=False)

    [item] = anon.get(PRODUCTS).json()["items"]

    assert item == {
        "id": product.id,
        "title": "Hainan mangoes",
        "cover_image": "https://img.example/m1.jpg",
        "min_price": 1990,
        "max_list_price": 3590,
        "is_advertisement": False,
        "ad_label": None,
        "sold_out": False,
        "purchase_limit": 3,
    }


def test_promotional_product_is_labelled_as_an_ad(anon):
    SkuFactory(product=ProductFactory(is_promotional=True))

    [item] = anon.get(PRODUCTS).json()["items"]

    assert item["is_advertisement"] is True
    assert item["ad_label"] == "广告 / Ad"


def test_product_is_sold_out_when_no_active_sku_has_stock(anon):
    empty = SkuFactory(stock=0).product
    only_inactive_stock = SkuFactory(stock=0).product
    SkuFactory(product=only_inactive_stock, stock=50, is_active=False)
    without_skus = ProductFactory()
    in_stock = SkuFactory(stock=1).product

    items = {item["id"]: item for item in anon.get(PRODUCTS).json()["items"]}

    assert items[empty.id]["sold_out"] is True
    assert items[only_inactive_stock.id]["sold_out"] is True
    assert items[without_skus.id]["sold_out"] is True
    assert items[without_skus.id]["min_price"] is None
    assert items[without_skus.id]["cover_image"] is None
    assert items[in_stock.id]["sold_out"] is False


def test_list_is_paginated(anon):
    products = [SkuFactory().product for _ in range(5)]
    newest_first = [p.id for p in reversed(products)]

    first = anon.get(PRODUCTS, {"limit": 2, "offset": 0}).json()
    last = anon.get(PRODUCTS, {"limit": 2, "offset": 4}).json()

    assert first["count"] == 5
    assert [i["id"] for i in first["items"]] == newest_first[:2]
    assert (first["limit"], first["offset"]) == (2, 0)
    assert [i["id"] for i in last["items"]] == newest_first[4:]


@pytest.mark.parametrize("params", [{"limit": 0}, {"limit": 101}, {"offset": -1}])
def test_bad_pagination_is_refused(anon, params):
    response = anon.get(PRODUCTS, params)

    assert response.status_code == 422
    assert response.json()["error"]["code"] == "validation_error"


def test_category_filter_by_id_or_slug_includes_direct_children(anon):
    fruit = CategoryFactory(slug="fruit")
    citrus = CategoryFactory(slug="citrus", parent=fruit)
    oranges = CategoryFactory(slug="oranges", parent=citrus)
    dairy = CategoryFactory(slug="dairy")
    apple = ProductFactory(category=fruit)
    lemon = ProductFactory(category=citrus)
    ProductFactory(category=oranges)  # grandchild: one level only
    ProductFactory(category=dairy)

    by_slug = anon.get(PRODUCTS, {"category": "fruit"})
    by_id = anon.get(PRODUCTS, {"category": str(fruit.id)})
    unknown = anon.get(PRODUCTS, {"category": "nope"})

    assert ids(by_slug) == [lemon.id, apple.id]
    assert ids(by_id) == [lemon.id, apple.id]
    assert ids(unknown) == []


def test_community_filter_keeps_products_offered_there_or_everywhere(anon):
    here, elsewhere = CommunityFactory(), CommunityFactory()
    everywhere = ProductFactory()
    only_here = ProductFactory()
    only_here.communities.add(here)
    both = ProductFactory()
    both.communities.add(here, elsewhere)
    only_elsewhere = ProductFactory()
    only_elsewhere.communities.add(elsewhere)

    response = anon.get(PRODUCTS, {"community": here.id})

    assert ids(response) == [both.id, only_here.id, everywhere.id]
    assert response.json()["count"] == 3
    assert len(ids(anon.get(PRODUCTS))) == 4


def test_title_search_is_case_insensitive(anon):
    mango = ProductFactory(title="Hainan Mango Box")
    ProductFactory(title="Fresh milk")

    assert ids(anon.get(PRODUCTS, {"q": "mango"})) == [mango.id]


def test_title_search_treats_wildcards_literally(anon):
    discount = ProductFactory(title="Eggs 50% off")
    underscore = ProductFactory(title="box_of_eggs")
    ProductFactory(title="Eggs 50 pack")
    chinese = ProductFactory(title="海南芒果 Mango")

    assert ids(anon.get(PRODUCTS, {"q": "50%"})) == [discount.id]
    assert ids(anon.get(PRODUCTS, {"q": "x_o"})) == [underscore.id]
    assert ids(anon.get(PRODUCTS, {"q": "芒果"})) == [chinese.id]


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"category": "fruit'; drop table shop_product; --"}, "validation_error"),
        ({"community": 2**63}, "validation_error"),
        ({"q": "nul\x00byte"}, "invalid_characters"),
        ({"q": "x" * 101}, "validation_error"),
    ],
)
def test_hostile_filters_are_refused_cleanly(anon, params, code):
    ProductFactory()

    response = anon.get(PRODUCTS, params)

    assert response.status_code == 422
    assert response.json()["error"]["code"] == code


def test_oversized_numeric_category_matches_nothing(anon):
    ProductFactory()

    response = anon.get(PRODUCTS, {"category": "9" * 30})

    assert response.status_code == 200
    assert ids(response) == []


def test_filters_combine(anon):
    fruit = CategoryFactory(slug="fruit")
    community = CommunityFactory()
    match = ProductFactory(category=fruit, title="Red apples")
    ProductFactory(category=fruit, title="Green pears")
    wrong_community = ProductFactory(category=fruit, title="Red grapes")
    wrong_community.communities.add(CommunityFactory())

    response = anon.get(PRODUCTS, {"category": "fruit", "community": community.id, "q": "red"})

    assert ids(response) == [match.id]


def test_bad_community_filter_is_refused(anon):
    response = anon.get(PRODUCTS, {"community": "abc"})

    assert response.status_code == 422


def test_list_query_count_does_not_grow_with_products(anon, django_assert_max_num_queries):
    for n in range(20):
        product = ProductFactory(images=[f"https://img.example/{n}.jpg"])
        SkuFactory(product=product, stock=n % 3)
        SkuFactory(product=product, price=990)
        product.communities.add(CommunityFactory())

    with django_assert_max_num_queries(1):
        response = anon.get(PRODUCTS, {"limit": 20})

    assert response.status_code == 200
    body = response.json()
    assert len(body["items"]) == 20
    assert body["count"] == 20


def test_a_page_past_the_end_is_empty_but_still_counted(anon):
    for _ in range(3):
        SkuFactory()

    body = anon.get(PRODUCTS, {"limit": 2, "offset": 10}).json()

    assert body == {"items": [], "count": 3, "limit": 2, "offset": 10}


# --- Detail --------------------------------------------------------------------------------
def test_detail_has_skus_with_live_availability(anon):
    category = CategoryFactory(name="Fruit", slug="fruit")
    community = CommunityFactory()
    product = ProductFactory(
        title="Kiwi",
        description="Sweet",
        images=["https://img.example/k.jpg"],
        category=category,
        is_promotional=True,
        purchase_limit=2,
    )
    product.communities.add(community)
    cheap = SkuFactory(
        product=product,
        code="KIWI-6",
        price=1590,
        list_price=None,
        stock=0,
        attributes={"pack": "6"},
    )
    dear = SkuFactory(product=product, code="KIWI-12", price=2890, list_price=3590, stock=7)
    SkuFactory(product=product, code="KIWI-OLD", is_active=False)

    response = anon.get(f"{PRODUCTS}/{product.id}")

    assert response.status_code == 200
    body = response.json()
    assert body["title"] == "Kiwi"
    assert body["description"] == "Sweet"
    assert body["images"] == ["https://img.example/k.jpg"]
    assert body["category"] == {"id": category.id, "name": "Fruit", "slug": "fruit"}
    assert body["status"] == "on_sale"
    assert body["community_ids"] == [community.id]
    assert body["is_advertisement"] is True and body["ad_label"] == "广告 / Ad"
    assert body["purchase_limit"] == 2
    assert body["min_price"] == 1590 and body["max_list_price"] == 3590
    assert body["sold_out"] is False
    assert body["skus"] == [
        {
            "id": cheap.id,
            "code": "KIWI-6",
            "attributes": {"pack": "6"},
            "price": 1590,
            "list_price": None,
            "available": 0,
            "sold_out": True,
        },
        {
            "id": dear.id,
            "code": "KIWI-12",
            "attributes": {},
            "price": 2890,
            "list_price": 3590,
            "available": 7,
            "sold_out": False,
        },
    ]


def test_detail_availability_follows_stock_changes(anon):
    sku = SkuFactory(stock=1)
    url = f"{PRODUCTS}/{sku.product_id}"
    assert anon.get(url).json()["skus"][0]["available"] == 1

    sku.stock = 0
    sku.save(update_fields=["stock"])

    body = anon.get(url).json()
    assert body["skus"][0] == {**body["skus"][0], "available": 0, "sold_out": True}
    assert body["sold_out"] is True


@pytest.mark.parametrize("status", [Product.Status.DRAFT, Product.Status.OFF_SALE])
def test_hidden_products_are_not_found(anon, status):
    product = SkuFactory(product=ProductFactory(status=status)).product

    response = anon.get(f"{PRODUCTS}/{product.id}")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "product_not_found"


@pytest.mark.parametrize("product_id", ["999999", str(2**63 + 5)])
def test_unknown_product_is_not_found(anon, product_id):
    response = anon.get(f"{PRODUCTS}/{product_id}")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "product_not_found"


# --- Status service (used by admin actions) --------------------------------------------------
def test_a_product_without_active_skus_cannot_go_on_sale():
    product = ProductFactory(status=Product.Status.DRAFT)
    SkuFactory(product=product, is_active=False)

    with pytest.raises(Conflict) as error:
        product_set_status(product_id=product.id, status=Product.Status.ON_SALE)

    assert error.value.code == "product_has_no_skus"
    product.refresh_from_db()
    assert product.status == Product.Status.DRAFT


def test_publishing_and_withdrawing_a_product(anon):
    product = SkuFactory(product=ProductFactory(status=Product.Status.DRAFT)).product

    product_set_status(product_id=product.id, status=Product.Status.ON_SALE)
    assert anon.get(f"{PRODUCTS}/{product.id}").status_code == 200

    product_set_status(product_id=product.id, status=Product.Status.OFF_SALE)
    assert anon.get(f"{PRODUCTS}/{product.id}").status_code == 404


# --- Admin ---------------------------------------------------------------------------------
def admin_client() -> Client:
    admin_user = StaffFactory()
    admin_user.refresh_from_db()  # the factory's password is not saved; see test_customers_api
    client = Client()
    client.force_login(admin_user)
    return client


def test_admin_catalog_pages_render():
    sku = SkuFactory()
    client = admin_client()

    for path in [
        "/admin/shop/category/",
        "/admin/shop/category/add/",
        "/admin/shop/product/",
        "/admin/shop/product/?status__exact=on_sale",
        f"/admin/shop/product/{sku.product_id}/change/",
        "/admin/shop/product/add/",
        "/admin/shop/sku/",
        f"/admin/shop/sku/{sku.id}/change/",
        "/admin/shop/sku/add/",
    ]:
        assert client.get(path).status_code == 200, path


def sku_inline_form(product, sku, **changes) -> dict:
    form = {
        "title": product.title,
        "description": product.description,
        "images": "[]",
        "category": product.category_id or "",
        "status": product.status,
        "purchase_limit": "",
        "skus-TOTAL_FORMS": "1",
        "skus-INITIAL_FORMS": "1",
        "skus-MIN_NUM_FORMS": "0",
        "skus-MAX_NUM_FORMS": "1000",
        "skus-0-id": sku.id,
        "skus-0-product": product.id,
        "skus-0-code": sku.code,
        "skus-0-attributes": "{}",
        "skus-0-price": fen_to_yuan(sku.price),  # the admin takes yuan
        "skus-0-list_price": "" if sku.list_price is None else fen_to_yuan(sku.list_price),
        "skus-0-stock_change": "0",
        "skus-0-is_active": "on",
    }
    form.update(changes)
    return form


def test_admin_stock_change_is_relative_so_reservations_are_not_overwritten():
    sku = SkuFactory(stock=10)
    product = sku.product
    client = admin_client()
    form = sku_inline_form(product, sku, **{"skus-0-stock_change": "5", "skus-0-price": "17.90"})
    Sku.objects.filter(pk=sku.pk).update(stock=7)  # a reservation after the page was loaded

    response = client.post(f"/admin/shop/product/{product.id}/change/", form)

    assert response.status_code == 302
    sku.refresh_from_db()
    assert sku.stock == 12
    assert sku.price == 1790


def test_admin_save_never_writes_a_stale_stock(monkeypatch):
    sku = SkuFactory(stock=10)
    client = admin_client()
    form = sku_inline_form(sku.product, sku, **{"skus-0-price": "15.00"})
    validate = SkuAdminForm.clean_stock_change

    def reservation_during_the_request(self):
        # The admin has loaded the SKU (stock 10) and is validating the form when a shopper
        # reserves 7 units.
        Sku.objects.filter(pk=sku.pk).update(stock=3)
        return validate(self)

    monkeypatch.setattr(SkuAdminForm, "clean_stock_change", reservation_during_the_request)

    response = client.post(f"/admin/shop/product/{sku.product_id}/change/", form)

    assert response.status_code == 302

    sku.refresh_from_db()
    assert (sku.stock, sku.price) == (3, 1500)


def test_admin_cannot_remove_more_stock_than_there_is():
    sku = SkuFactory(stock=2)
    client = admin_client()

    response = client.post(
        f"/admin/shop/product/{sku.product_id}/change/",
        sku_inline_form(sku.product, sku, **{"skus-0-stock_change": "-3"}),
    )

    assert response.status_code == 200  # form shown again with the error
    sku.refresh_from_db()
    assert sku.stock == 2


def test_admin_put_on_sale_action_refuses_products_without_skus():
    ready = SkuFactory(product=ProductFactory(status=Product.Status.DRAFT)).product
    empty = ProductFactory(status=Product.Status.DRAFT)
    client = admin_client()

    client.post(
        "/admin/shop/product/",
        {"action": "put_on_sale", "_selected_action": [ready.id, empty.id]},
    )

    ready.refresh_from_db()
    empty.refresh_from_db()
    assert (ready.status, empty.status) == (Product.Status.ON_SALE, Product.Status.DRAFT)


def test_sku_adjust_stock_refuses_to_go_negative():
    sku = SkuFactory(stock=1)

    assert sku_adjust_stock(sku_id=sku.id, delta=4) == 5
    with pytest.raises(Conflict) as error:
        sku_adjust_stock(sku_id=sku.id, delta=-6)

    assert error.value.code == "stock_would_go_negative"
    assert error.value.details == {"sku_id": sku.id, "available": 5}


def test_admin_adds_a_sku_with_initial_stock_inline():
    sku = SkuFactory(stock=10)
    client = admin_client()
    form = sku_inline_form(sku.product, sku)
    form.update(
        {
            "skus-TOTAL_FORMS": "2",
            "skus-1-product": sku.product_id,
            "skus-1-code": "NEW-SKU-1",
            "skus-1-attributes": '{"size": "1 kg"}',
            "skus-1-price": "25.90",
            "skus-1-list_price": "",
            "skus-1-stock_change": "50",
            "skus-1-is_active": "on",
        }
    )

    response = client.post(f"/admin/shop/product/{sku.product_id}/change/", form)

    assert response.status_code == 302
    new = Sku.objects.get(code="NEW-SKU-1")
    assert (new.product_id, new.stock, new.price, new.attributes) == (
        sku.product_id,
        50,
        2590,
        {"size": "1 kg"},
    )


def test_admin_adds_a_sku_on_its_own_page():
    product = ProductFactory()
    client = admin_client()

    response = client.post(
        "/admin/shop/sku/add/",
        {
            "product": product.id,
            "code": "SOLO-1",
            "attributes": "{}",
            "price": "9.90",
            "list_price": "12.90",
            "stock_change": "30",
            "is_active": "on",
        },
    )

    assert response.status_code == 302
    solo = Sku.objects.get(code="SOLO-1")
    assert (solo.stock, solo.price, solo.list_price) == (30, 990, 1290)


def test_product_list_is_micro_cached_for_anonymous_readers(anon, settings, time_machine):
    settings.CATALOG_LIST_CACHE_SECONDS = 2
    # expiry is checked by moving the clock, which a Redis server does not see
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    time_machine.move_to("2026-11-23 10:00:00+00:00", tick=False)
    sku = SkuFactory(stock=5)

    first = anon.get("/api/v1/products")
    assert first.status_code == 200
    assert first.json()["items"][0]["sold_out"] is False
    assert "max-age=2" in first["Cache-Control"]

    Sku.objects.filter(pk=sku.pk).update(stock=0)
    assert anon.get("/api/v1/products").json()["items"][0]["sold_out"] is False  # cached
    assert anon.get(f"/api/v1/products/{sku.product_id}").json()["skus"][0]["sold_out"] is True

    time_machine.move_to("2026-11-23 10:00:03+00:00", tick=False)
    assert anon.get("/api/v1/products").json()["items"][0]["sold_out"] is True


def test_product_list_cache_keys_on_the_query(anon, settings):
    settings.CATALOG_LIST_CACHE_SECONDS = 60
    a, b = CategoryFactory(), CategoryFactory()
    ProductFactory(category=a)
    ProductFactory(category=b)

    only_a = anon.get("/api/v1/products", {"category": a.pk}).json()
    only_b = anon.get("/api/v1/products", {"category": b.pk}).json()
    assert only_a["count"] == only_b["count"] == 1
    assert only_a["items"][0]["id"] != only_b["items"][0]["id"]
