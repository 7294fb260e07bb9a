"""The links HTTP API: my links (scoped), QR images, link opens with optional login, the
tracking opt-out, the funnel; hostile inputs answer 4xx, never 500."""

import io
import uuid
from datetime import timedelta

import pytest
import segno
from django.utils import timezone

from referral.models import Click, ShareLink
from referral.selectors import links as selectors
from referral.services.clicks import clicks_flush
from referral.services.links import link_create
from tests.conftest import ApiClient, token_for
from tests.core.utils import assert_error
from tests.factories import ProductFactory, StaffFactory
from tests.referral.factories import make_distributor
from tests.referral.test_visitors import MINI_PROGRAM_IOS
from tests.shop.factories_orders import QuickCustomerFactory

pytestmark = pytest.mark.django_db

API = "/api/v1"
LINKS = f"{API}/referral/links"
OPEN = f"{API}/referral/open"
TRACKING = f"{API}/referral/tracking"


@pytest.fixture(autouse=True)
def _fresh_link_cache():
    selectors.link_cache_clear()
    yield
    selectors.link_cache_clear()


@pytest.fixture
def distributor():
    return make_distributor(display_name="Aunt Li")


@pytest.fixture
def seller(distributor) -> ApiClient:
    return ApiClient(token_for(distributor.customer.user))


@pytest.fixture
def product():
    return ProductFactory(title="Organic tomatoes")


def _make(distributor, product=None, **utm) -> ShareLink:
    if product is None:
        return link_create(distributor=distributor, target_kind="shop", target_id=None, **utm)
    return link_create(distributor=distributor, target_kind="product", target_id=product.pk, **utm)


def _opener(headers=None, token=None):
    client = ApiClient(token)

    def post(body, **extra):
        merged = {"User-Agent": MINI_PROGRAM_IOS, **(headers or {}), **extra}
        return client.post(OPEN, body, headers=merged)

    return post


# --- making links -----------------------------------------------------------------------------
def test_a_distributor_makes_a_link_with_its_share_payload_and_qr_urls(seller, product):
    body = {
        "target_kind": "product",
        "target_id": product.pk,
        "utm_source": "wechat_group",
        "utm_medium": "share",
        "utm_campaign": "summer",
        "utm_content": "",
    }

    response = seller.post(LINKS, body)

    assert response.status_code == 201, response.content
    link = response.json()
    code = link["short_code"]
    assert ShareLink.objects.get(pk=link["id"]).short_code == code
    assert link["title"] == "Organic tomatoes" and link["is_active"] is True
    assert (link["clicks"], link["filtered_clicks"], link["flushed_at"]) == (0, 0, None)
    path = f"pages/product/detail?id={product.pk}"
    assert link["target"] == {
        "kind": "product",
        "id": product.pk,
        "path": path,
        "title": "Organic tomatoes",
        "live": True,
    }
    assert link["share"] == {
        "path": path,
        "scene": code,
        "share_path": f"{path}&scene={code}",
        "utm_source": "wechat_group",
        "utm_medium": "share",
        "utm_campaign": "summer",
        "utm_content": "",
    }
    assert link["qr_svg_url"] == f"{API}/referral/qr/{code}.svg"
    assert link["qr_png_url"] == f"{API}/referral/qr/{code}.png"


def test_a_shop_link_is_made_with_a_null_target_id(seller):
    response = seller.post(LINKS, {"target_kind": "shop", "target_id": None})

    assert response.status_code == 201
    assert response.json()["share"]["share_path"].startswith("pages/index/index?scene=")


def test_who_may_make_links(client_for, product):
    body = {"target_kind": "shop"}
    shopper = ApiClient(token_for(QuickCustomerFactory().user))
    operator = ApiClient(token_for(StaffFactory()))
    suspended = make_distributor(status="suspended")

    assert_error(ApiClient().post(LINKS, body), 401, "not_authenticated")
    assert_error(shopper.post(LINKS, body), 404, "not_a_distributor")
    assert_error(operator.post(LINKS, body), 403, "not_a_customer")
    inactive = client_for(suspended.customer.user).post(LINKS, body)
    assert_error(inactive, 409, "distributor_not_active")
    assert not ShareLink.objects.exists()


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"target_kind": "product"}, 422, "link_invalid"),
        ({"target_kind": "shop", "target_id": 3}, 422, "link_invalid"),
        ({"target_kind": "product", "target_id": 999999}, 404, "link_target_not_found"),
        ({"target_kind": "moon", "target_id": 1}, 404, "link_target_not_found"),
        ({"target_kind": "product", "target_id": "1"}, 422, "validation_error"),
        ({"target_kind": "product", "target_id": 1.0}, 422, "validation_error"),
        ({"target_kind": "product", "target_id": 0}, 422, "validation_error"),
        ({"target_kind": "product", "target_id": 2**63}, 422, "validation_error"),
        ({"target_kind": "shop", "utm_source": "a b"}, 422, "validation_error"),
        ({"target_kind": "shop", "utm_source": "x" * 65}, 422, "validation_error"),
        ({"target_kind": "shop", "utm_source": "a\x00b"}, 422, "invalid_characters"),
        ({"target_kind": "Shop!"}, 422, "validation_error"),
        ({"target_kind": "shop", "short_code": "MINE"}, 422, "validation_error"),
        ({}, 422, "validation_error"),
    ],
)
def test_bad_link_bodies_are_refused(seller, body, status, code):
    assert_error(seller.post(LINKS, body), status, code)
    assert not ShareLink.objects.exists()


# --- my links ---------------------------------------------------------------------------------
def test_my_links_newest_first_with_flushed_counters_and_never_anyone_elses(
    seller, distributor, product
):
    older = _make(distributor, product)
    newer = _make(distributor)
    _make(make_distributor())  # someone else's
    ShareLink.objects.create(
        distributor=distributor, short_code="HIDDEN22", target_kind="shop", is_code_link=True
    )
    for ua in (MINI_PROGRAM_IOS, MINI_PROGRAM_IOS, "curl/8.0"):
        opener = _opener({"X-Device-Id": str(uuid.uuid4())})
        opener({"code": older.short_code}, **{"User-Agent": ua})
    clicks_flush()

    response = seller.get(LINKS)

    page = response.json()
    assert response.status_code == 200
    assert page["count"] == 2
    assert [item["id"] for item in page["items"]] == [newer.pk, older.pk]
    assert (page["items"][1]["clicks"], page["items"][1]["filtered_clicks"]) == (2, 1)
    assert page["items"][1]["flushed_at"] is not None


def test_one_of_my_links_and_nobody_elses(seller, distributor):
    mine = _make(distributor)
    theirs = _make(make_distributor())

    response = seller.get(f"{LINKS}/{mine.pk}")

    assert response.status_code == 200 and response.json()["short_code"] == mine.short_code
    assert_error(seller.get(f"{LINKS}/{theirs.pk}"), 404, "link_not_found")
    assert_error(seller.get(f"{LINKS}/999999999"), 404, "link_not_found")


def test_deactivating_my_link_stops_recording_and_hides_its_qr(seller, distributor):
    link = _make(distributor)
    theirs = _make(make_distributor())
    opener = _opener({"X-Device-Id": str(uuid.uuid4())})
    assert opener({"code": link.short_code}).json()["recorded"] is True

    response = seller.delete(f"{LINKS}/{link.pk}")
    again = seller.delete(f"{LINKS}/{link.pk}")
    opened = opener({"code": link.short_code})

    assert (response.status_code, again.status_code) == (204, 204)
    assert seller.get(f"{LINKS}/{link.pk}").json()["is_active"] is False
    assert opened.status_code == 200 and opened.json()["recorded"] is False
    assert_error(ApiClient().get(f"{API}/referral/qr/{link.short_code}.svg"), 404, "link_not_found")
    assert_error(seller.delete(f"{LINKS}/{theirs.pk}"), 404, "link_not_found")
    assert ShareLink.objects.get(pk=theirs.pk).is_active is True
    assert Click.objects.count() == 1


@pytest.mark.parametrize("link_id", ["0", "-1", "abc", str(2**63), "1.5"])
def test_hostile_link_ids_are_refused(seller, link_id):
    response = seller.get(f"{LINKS}/{link_id}")

    assert 400 <= response.status_code < 500, response.content


# --- QR images --------------------------------------------------------------------------------
def _segno(text: str, kind: str) -> bytes:
    out = io.BytesIO()
    options = {"title": "Share link"} if kind == "svg" else {}
    segno.make(text, error="m").save(out, kind=kind, scale=8, **options)
    return out.getvalue()


def test_the_qr_images_encode_the_share_path_and_are_public_and_cached(distributor, product):
    link = _make(distributor, product)
    expected = f"pages/product/detail?id={product.pk}&scene={link.short_code}"

    svg = ApiClient().get(f"{API}/referral/qr/{link.short_code}.svg")
    png = ApiClient().get(f"{API}/referral/qr/{link.short_code}.png")

    assert svg.status_code == 200 and svg["Content-Type"] == "image/svg+xml"
    assert png.status_code == 200 and png["Content-Type"] == "image/png"
    assert svg["Cache-Control"] == png["Cache-Control"] == "public, max-age=86400"
    assert png.content.startswith(b"\x89PNG\r\n\x1a\n")
    assert svg.content.lstrip().startswith(b"<?xml") and b"<svg" in svg.content
    assert svg.content == _segno(expected, "svg")
    assert png.content == _segno(expected, "png")
    assert svg.content != _segno(expected + "X", "svg")  # the content is what differs


@pytest.mark.parametrize(
    "code", ["NOPE2345", "A" * 17, "AB%20CD", "AB%00CD", "%C3%84BC", "AB%2FCD", "AB.CD"]
)
@pytest.mark.parametrize("kind", ["svg", "png"])
def test_unknown_or_hostile_qr_codes_answer_4xx(code, kind):
    response = ApiClient().get(f"{API}/referral/qr/{code}.{kind}")

    assert 400 <= response.status_code < 500, response.content
    assert response["Content-Type"].startswith("application/json")


# --- opens ------------------------------------------------------------------------------------
def test_an_anonymous_open_is_counted_once_and_answers_where_to_land(distributor, product):
    link = _make(distributor, product)
    opener = _opener({"X-Device-Id": str(uuid.uuid4())})

    first = opener({"code": link.short_code})
    second = opener({"code": link.short_code})

    assert first.status_code == 200, first.content
    assert first.json() == {
        "recorded": True,
        "status": "counted",
        "link_id": link.pk,
        "distributor_name": "Aunt Li",
        "target": {
            "kind": "product",
            "id": product.pk,
            "path": f"pages/product/detail?id={product.pk}",
            "title": "Organic tomatoes",
            "live": True,
        },
        "share_path": f"pages/product/detail?id={product.pk}&scene={link.short_code}",
    }
    assert second.json()["status"] == "duplicate"
    assert Click.objects.filter(customer__isnull=True).count() == 2


def test_a_logged_in_open_is_the_customers_and_claims_the_devices_clicks(distributor):
    link = _make(distributor)
    device = str(uuid.uuid4())
    customer = QuickCustomerFactory()
    _opener({"X-Device-Id": device})({"code": link.short_code})

    response = _opener({"X-Device-Id": device}, token_for(customer.user))({"code": link.short_code})

    assert response.status_code == 200 and response.json()["status"] == "counted"
    assert Click.objects.filter(customer=customer).count() == 2


def test_a_preview_fetcher_is_recorded_as_a_bot(distributor):
    link = _make(distributor)

    response = _opener()({"code": link.short_code}, **{"User-Agent": "WeChat-Preview/1.0"})
    no_agent = ApiClient().client.post(
        OPEN, {"code": link.short_code}, content_type="application/json"
    )

    assert response.json()["status"] == "bot" and no_agent.json()["status"] == "bot"


def test_an_open_with_a_bad_token_is_401_not_anonymous(distributor):
    link = _make(distributor)

    bad = _opener(token="not-a-jwt")({"code": link.short_code})
    wrong_scheme = _opener({"Authorization": "Basic dXNlcjpwdw=="})({"code": link.short_code})

    assert_error(bad, 401, bad.json()["error"]["code"])
    assert bad.json()["error"]["code"].startswith(("token_", "not_authenticated"))
    assert_error(wrong_scheme, 401, "not_authenticated")
    assert not Click.objects.exists()


def test_a_malformed_device_id_is_400(distributor):
    link = _make(distributor)

    response = _opener({"X-Device-Id": "not-a-uuid"})({"code": link.short_code})

    assert_error(response, 400, "invalid_device_id")
    assert not Click.objects.exists()


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"code": "AB CD"}, "validation_error"),
        ({"code": "A" * 17}, "validation_error"),
        ({"code": ""}, "validation_error"),
        ({"code": "AB\x00CD"}, "invalid_characters"),
        ({"code": 12345678}, "validation_error"),
        ({"code": "ABCD2345", "opted_out": 1}, "validation_error"),
        ({"code": "ABCD2345", "opted_out": "true"}, "validation_error"),
        ({"code": "ABCD2345", "customer_id": 1}, "validation_error"),
        ({}, "validation_error"),
    ],
)
def test_hostile_open_bodies_are_refused(distributor, body, code):
    _make(distributor)

    assert_error(_opener()(body), 422, code)
    assert not Click.objects.exists()


def test_an_unknown_code_is_404():
    assert_error(_opener()({"code": "NOPE2345"}), 404, "link_not_found")


def test_opens_are_rate_limited_per_ip(distributor, settings):
    settings.REFERRAL_OPEN_IP_RATE = "2/m"
    link = _make(distributor)
    opener = _opener()

    answers = [opener({"code": link.short_code}).status_code for _ in range(3)]

    assert answers == [200, 200, 429]
    assert Click.objects.count() == 2


def test_opted_out_in_the_body_or_in_my_settings_records_nothing(distributor):
    link = _make(distributor)
    customer = QuickCustomerFactory()
    me = ApiClient(token_for(customer.user))

    by_body = _opener()({"code": link.short_code, "opted_out": True})
    setting = me.put(TRACKING, {"opted_out": True})
    read = me.get(TRACKING)
    by_setting = _opener(token=me.token)({"code": link.short_code})
    back = me.put(TRACKING, {"opted_out": False})
    tracked = _opener(token=me.token)({"code": link.short_code})

    assert (by_body.json()["recorded"], by_body.json()["status"]) == (False, None)
    assert setting.json() == read.json() == {"opted_out": True}
    assert by_setting.json()["recorded"] is False
    assert back.json() == {"opted_out": False}
    assert tracked.json()["recorded"] is True
    assert Click.objects.count() == 1


def test_the_tracking_setting_is_for_shoppers_with_a_strict_body():
    me = ApiClient(token_for(QuickCustomerFactory().user))

    assert_error(ApiClient().put(TRACKING, {"opted_out": True}), 401, "not_authenticated")
    assert_error(ApiClient(token_for(StaffFactory())).get(TRACKING), 403, "not_a_customer")
    assert_error(me.put(TRACKING, {"opted_out": 1}), 422, "validation_error")
    assert_error(me.put(TRACKING, {}), 422, "validation_error")


# --- the funnel -------------------------------------------------------------------------------
def test_my_funnel_counts_my_links_only_and_names_nobody(seller, distributor):
    link = _make(distributor, utm_source="moments")
    theirs = _make(make_distributor())
    for _ in range(3):
        _opener({"X-Device-Id": str(uuid.uuid4())})({"code": link.short_code})
    _opener({"X-Device-Id": str(uuid.uuid4())})({"code": theirs.short_code})
    _opener()({"code": link.short_code}, **{"User-Agent": "curl/8.0"})

    by_link = seller.get(f"{LINKS}/stats").json()
    by_source = seller.get(f"{LINKS}/stats", {"group_by": "utm_source"}).json()

    assert [row["link_id"] for row in by_link["rows"]] == [link.pk]
    row = by_link["rows"][0]
    assert (row["exposures"], row["clicks"], row["orders"], row["gmv"]) == (3, 3, 0, 0)
    assert set(row) == {
        "link_id",
        "short_code",
        "title",
        "target_kind",
        "utm_source",
        "is_active",
        "is_code_link",
        "exposures",
        "clicks",
        "orders",
        "gmv",
        "conversion_bps",
    }
    assert by_link["totals"]["clicks"] == 3
    assert [(r["utm_source"], r["clicks"]) for r in by_source["rows"]] == [("moments", 3)]


def test_the_funnel_range_and_grouping_are_checked(seller):
    now = timezone.now()

    reversed_range = seller.get(
        f"{LINKS}/stats",
        {"since": now.isoformat(), "until": (now - timedelta(days=1)).isoformat()},
    )
    bad_group = seller.get(f"{LINKS}/stats", {"group_by": "customer"})
    bad_date = seller.get(f"{LINKS}/stats", {"since": "1700000000"})

    assert_error(reversed_range, 422, "link_stats_range_invalid")
    assert_error(bad_group, 422, "validation_error")
    assert_error(bad_date, 422, "validation_error")


def test_the_funnel_is_for_distributors(client_for):
    shopper = client_for(QuickCustomerFactory().user)

    assert_error(shopper.get(f"{LINKS}/stats"), 404, "not_a_distributor")
    assert_error(shopper.get(LINKS), 404, "not_a_distributor")
