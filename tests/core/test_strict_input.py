"""Strict input (issue 9, section 2): a request is exactly what the OpenAPI document says, or a
clear 4xx in the error envelope, and nothing is written."""

import json

import pytest
from django.test import Client

from core.models import Announcement
from shop.models import Community, Customer, Order, Refund
from tests.core.utils import assert_error
from tests.db_snapshot import db_snapshot
from tests.factories import CommunityFactory, CustomerFactory, SkuFactory
from tests.shop.factories_orders import paid, place, quick_pickup_point

pytestmark = pytest.mark.django_db

API = "/api/v1"
MB = 1024 * 1024


def raw_post(client, path: str, body: bytes | str, content_type: str | None = "application/json"):
    """POST ``body`` byte for byte through the client's Django test client and token."""
    extra = {} if content_type is None else {"CONTENT_TYPE": content_type}
    headers = client._headers(None)
    if content_type is None:
        return client.client.generic("POST", path, body, content_type="", headers=headers)
    return client.client.generic(
        "POST", path, body, content_type=extra["CONTENT_TYPE"], headers=headers
    )


# --- Every JSON body is an object ----------
def test_bare_number_to_staff_refund_is_invalid_body_and_refunds_nothing(operator):
    order = paid()
    before = db_snapshot()

    response = raw_post(operator, f"{API}/staff/orders/{order.pk}/refunds", "100")

    error = assert_error(response, 422, "invalid_body")
    assert error["message"] == "The request body must be a JSON object, not a number."
    assert Refund.objects.count() == 0
    assert db_snapshot() == before


def test_bare_string_to_staff_announcements_is_invalid_body_and_schedules_nothing(operator):
    before = db_snapshot()

    response = raw_post(operator, f"{API}/staff/announcements", '"hello everyone"')

    assert_error(response, 422, "invalid_body")
    assert Announcement.objects.count() == 0
    assert db_snapshot() == before


@pytest.mark.parametrize("body", ['"all of it"', "[]", '[{"amount": 1}]', "null", "true", "1.5"])
def test_non_object_body_to_customer_refund_is_invalid_body(client_for, body):
    customer = CustomerFactory()
    order = paid(customer)
    shopper = client_for(customer.user)
    before = db_snapshot()

    response = raw_post(shopper, f"{API}/orders/{order.pk}/refunds", body)

    assert_error(response, 422, "invalid_body")
    assert db_snapshot() == before


def test_missing_body_on_an_operation_that_needs_one_is_invalid_body(operator):
    before = db_snapshot()

    response = raw_post(operator, f"{API}/staff/announcements", b"")

    assert_error(response, 422, "invalid_body")
    assert db_snapshot() == before


def test_operations_without_a_body_still_take_an_empty_post(client_for):
    customer = CustomerFactory()
    order = place(customer)
    shopper = client_for(customer.user)

    cancelled = raw_post(shopper, f"{API}/orders/{order.pk}/cancel", b"", content_type=None)
    logged_out = raw_post(shopper, f"{API}/auth/logout", b"", content_type=None)

    assert cancelled.status_code == 200, cancelled.content
    assert cancelled.json()["status"] == "cancelled"
    assert logged_out.status_code == 204, logged_out.content


def test_an_optional_body_may_be_left_out(client_for):
    customer = CustomerFactory()
    order = place(customer)
    shopper = client_for(customer.user)
    payment = shopper.post(f"{API}/orders/{order.pk}/pay").json()

    response = raw_post(shopper, f"{API}/payments/{payment['id']}/confirm", b"", content_type=None)

    assert response.status_code == 200, response.content
    assert response.json()["status"] == "succeeded"


# --- No lenient coercion ----------
@pytest.mark.parametrize("customer_id", [True, "1", 1.0])
def test_leader_id_must_be_a_json_integer(operator, customer_id):
    community = CommunityFactory(leader=None)
    CustomerFactory(pk=1)  # what lax parsing made of `true`, "1" and 1.0
    before = db_snapshot()

    response = operator.post(
        f"{API}/staff/communities/{community.pk}/leader", json={"customer_id": customer_id}
    )

    error = assert_error(response, 422, "validation_error")
    assert [(f["path"], f["in"]) for f in error["details"]["fields"]] == [("customer_id", "body")]
    assert Community.objects.get(pk=community.pk).leader_id is None
    assert db_snapshot() == before


@pytest.mark.parametrize("quantity", [True, "1", 1.0])
def test_quantity_must_be_a_json_integer(shopper, quantity):
    sku = SkuFactory(stock=5)
    point = quick_pickup_point()
    before = db_snapshot()

    response = shopper.post(
        f"{API}/orders",
        json={
            "lines": [{"sku_id": sku.pk, "quantity": quantity}],
            "delivery_mode": "pickup",
            "pickup_point_id": point.pk,
        },
    )

    error = assert_error(response, 422, "validation_error")
    assert [(f["path"], f["in"]) for f in error["details"]["fields"]] == [
        ("lines.0.quantity", "body")
    ]
    assert Order.objects.count() == 0
    assert db_snapshot() == before


@pytest.mark.parametrize(
    ("field", "value"),
    [("amount", "100"), ("amount", 100.0), ("amount", True), ("restock", 1), ("restock", "true")],
)
def test_money_and_flags_must_be_their_json_type(operator, field, value):
    order = paid()
    before = db_snapshot()

    response = operator.post(f"{API}/staff/orders/{order.pk}/refunds", json={field: value})

    error = assert_error(response, 422, "validation_error")
    assert [f["path"] for f in error["details"]["fields"]] == [field]
    assert db_snapshot() == before


@pytest.mark.parametrize("value", [0, 1, "false"])
def test_boolean_must_be_a_json_boolean(operator, value):
    community = CommunityFactory(is_active=True)
    before = db_snapshot()

    response = operator.patch(f"{API}/staff/communities/{community.pk}", json={"is_active": value})

    error = assert_error(response, 422, "validation_error")
    assert [f["path"] for f in error["details"]["fields"]] == ["is_active"]
    assert db_snapshot() == before


def test_coordinates_are_json_numbers_not_text(operator):
    community = CommunityFactory()
    before = db_snapshot()

    response = operator.post(
        f"{API}/staff/communities/{community.pk}/pickup-points",
        json={"name": "Gate", "address": "1 Road", "latitude": "30.1", "longitude": 120},
    )

    error = assert_error(response, 422, "validation_error")
    assert [f["path"] for f in error["details"]["fields"]] == ["latitude"]
    assert db_snapshot() == before


def test_strict_values_of_the_right_type_are_accepted(operator):
    order = paid()

    response = operator.post(
        f"{API}/staff/orders/{order.pk}/refunds", json={"amount": 100, "restock": False}
    )

    assert response.status_code == 201, response.content
    assert response.json()["amount"] == 100


# --- Content types ----------
@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=xyz",
        "application/xml",
        "application/json; charset=latin-1",
        None,
    ],
)
def test_json_endpoint_refuses_other_content_types(anon, content_type):
    before = db_snapshot()

    response = raw_post(anon, f"{API}/auth/wechat", '{"code": "new-shopper"}', content_type)

    assert_error(response, 415, "unsupported_media_type")
    assert Customer.objects.count() == 0
    assert db_snapshot() == before


@pytest.mark.parametrize(
    "content_type", ["application/json; charset=utf-8", "application/json; charset=UTF-8"]
)
def test_json_with_a_utf8_charset_is_json(anon, content_type):
    response = raw_post(anon, f"{API}/auth/wechat", '{"code": "new-shopper"}', content_type)

    assert response.status_code == 200, response.content
    assert Customer.objects.count() == 1


def test_json_constants_that_are_not_json_are_malformed(operator):
    order = paid()

    response = raw_post(operator, f"{API}/staff/orders/{order.pk}/refunds", '{"amount": NaN}')

    assert_error(response, 400, "malformed_json")
    assert Refund.objects.count() == 0


# --- Size ----------
@pytest.mark.parametrize(
    "path", ["/auth/wechat", "/auth/staff", "/webhooks/stripe", "/orders", "/staff/announcements"]
)
def test_body_over_the_limit_is_413_everywhere(operator, path):
    body = json.dumps({"code": "x" * (3 * MB)})
    before = db_snapshot()

    response = raw_post(operator, f"{API}{path}", body)

    error = assert_error(response, 413, "payload_too_large")
    assert error["details"] == {"max_bytes": 2621440}
    assert db_snapshot() == before


# --- Characters and date-times PostgreSQL cannot store ----------
@pytest.mark.parametrize("bad", ["a\x00b", "\ud800"])
def test_unstorable_characters_are_422_naming_the_field(operator, bad):
    before = db_snapshot()

    response = operator.post(f"{API}/staff/announcements", json={"title": "ok", "body": bad})

    error = assert_error(response, 422, "invalid_characters")
    assert [(f["path"], f["in"], f["type"]) for f in error["details"]["fields"]] == [
        ("body", "body", "invalid_characters")
    ]
    assert db_snapshot() == before


def test_nul_deep_in_a_body_and_in_a_key_are_both_named(shopper):
    before = db_snapshot()

    response = shopper.post(
        f"{API}/orders",
        json={"lines": [{"sku_id": 1, "quantity": 1, "x\x00": 1}], "note": "\x00"},
    )

    error = assert_error(response, 422, "invalid_characters")
    assert [f["path"] for f in error["details"]["fields"]] == ["lines.0.x\x00", "note"]
    assert db_snapshot() == before


def test_nul_in_a_query_string_is_422_naming_the_parameter(anon):
    response = anon.get(f"{API}/products", {"q": "tea\x00"})

    error = assert_error(response, 422, "invalid_characters")
    assert [(f["path"], f["in"]) for f in error["details"]["fields"]] == [("q", "query")]


def test_nul_the_edge_cannot_see_is_still_invalid_characters(shopper):
    """A header is no body or query: PostgreSQL's refusal is reported in the client's terms."""
    response = shopper.post(
        f"{API}/orders",
        json={"lines": [{"sku_id": SkuFactory().pk, "quantity": 1}], "delivery_mode": "courier"},
        headers={"Idempotency-Key": "key\x00"},
    )

    assert_error(response, 422, "invalid_characters")
    assert Order.objects.count() == 0


@pytest.mark.parametrize(
    "send_at", ["9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+14:00", "9999-12-31T00:00:00Z"]
)
def test_datetime_the_database_cannot_store_is_invalid_datetime(operator, send_at):
    before = db_snapshot()

    response = operator.post(f"{API}/staff/announcements", json={"title": "t", "send_at": send_at})

    error = assert_error(response, 422, "invalid_datetime")
    assert [(f["path"], f["type"]) for f in error["details"]["fields"]] == [
        ("send_at", "invalid_datetime")
    ]
    assert db_snapshot() == before


def test_datetime_filter_is_iso_text(operator):
    response = operator.get(f"{API}/staff/orders", {"created_to": "0.5"})

    error = assert_error(response, 422, "validation_error")
    assert [(f["path"], f["in"]) for f in error["details"]["fields"]] == [("created_to", "query")]


def test_datetime_filter_out_of_range_is_invalid_datetime(operator):
    response = operator.get(f"{API}/staff/orders", {"created_from": "0001-01-01T00:00:00+14:00"})

    error = assert_error(response, 422, "invalid_datetime")
    assert [(f["path"], f["in"]) for f in error["details"]["fields"]] == [("created_from", "query")]


@pytest.mark.parametrize("send_at", [1_900_000_000, "1900000000", "0.5", "2030-01-01"])
def test_datetime_is_iso_text_not_a_unix_timestamp(operator, send_at):
    response = operator.post(f"{API}/staff/announcements", json={"title": "t", "send_at": send_at})

    error = assert_error(response, 422, "validation_error")
    assert [f["path"] for f in error["details"]["fields"]] == ["send_at"]
    assert Announcement.objects.count() == 0


def test_datetime_near_the_edges_but_storable_is_accepted(operator):
    response = operator.post(
        f"{API}/staff/announcements", json={"title": "t", "send_at": "9999-12-29T00:00:00Z"}
    )

    assert response.status_code == 201, response.content
    assert response.json()["send_at"].startswith("9999-12-29")


@pytest.mark.parametrize(
    ("field", "value"),
    [("name", " " + "x" * 100), ("name", "x" * 100 + "\u0085")],
)
def test_length_limits_apply_to_the_text_as_sent(operator, field, value):
    """The document says maxLength 100: surrounding whitespace is trimmed, but not to fit."""
    before = db_snapshot()

    response = operator.post(f"{API}/staff/communities", json={field: value})

    error = assert_error(response, 422, "validation_error")
    assert [(f["path"], f["type"]) for f in error["details"]["fields"]] == [
        (field, "string_too_long")
    ]
    assert db_snapshot() == before


def test_surrounding_whitespace_is_still_trimmed(operator):
    response = operator.post(f"{API}/staff/communities", json={"name": "  Riverside  "})

    assert response.status_code == 201, response.content
    assert Community.objects.get(pk=response.json()["id"]).name == "Riverside"


# --- Field names as sent ----------
def test_validation_errors_name_fields_as_sent(shopper):
    response = shopper.post(
        f"{API}/orders", json={"lines": [{"sku_id": 1, "quantity": 0}], "delivery_mode": "boat"}
    )

    error = assert_error(response, 422, "validation_error")
    assert sorted((f["path"], f["in"]) for f in error["details"]["fields"]) == [
        ("delivery_mode", "body"),
        ("lines.0.quantity", "body"),
    ]


def test_query_errors_name_the_parameter(anon):
    response = anon.get(f"{API}/products", {"limit": 0})

    error = assert_error(response, 422, "validation_error")
    assert [(f["path"], f["in"]) for f in error["details"]["fields"]] == [("limit", "query")]


# --- Order of checks ----------
def test_a_raw_client_without_a_token_is_refused_before_the_body_is_read():
    response = Client().generic("POST", f"{API}/staff/announcements", "100", "application/json")

    assert_error(response, 401, "not_authenticated")


def test_null_for_a_field_that_cannot_be_cleared_is_refused_like_any_wrong_type(operator):
    community = CommunityFactory(name="Riverside")
    before = db_snapshot()

    response = operator.patch(f"{API}/staff/communities/{community.pk}", json={"name": None})

    error = assert_error(response, 422, "validation_error")
    assert [(f["path"], f["type"]) for f in error["details"]["fields"]] == [("name", "string_type")]
    assert db_snapshot() == before


# --- A body has exactly the schema's keys ----------
def test_a_key_the_schema_does_not_name_is_refused_and_places_nothing(shopper, customer):
    """``coupon_id`` for ``coupon_ids`` would otherwise place the order without the coupon."""
    sku = SkuFactory(stock=5)
    point = quick_pickup_point()
    before = db_snapshot()

    response = shopper.post(
        f"{API}/orders",
        json={
            "lines": [{"sku_id": sku.pk, "quantity": 1, "price": 1}],
            "delivery_mode": "pickup",
            "pickup_point_id": point.pk,
            "coupon_id": 5,
        },
    )

    error = assert_error(response, 422, "validation_error")
    assert sorted((f["path"], f["in"], f["type"]) for f in error["details"]["fields"]) == [
        ("coupon_id", "body", "extra_forbidden"),
        ("lines.0.price", "body", "extra_forbidden"),
    ]
    assert Order.objects.count() == 0
    assert db_snapshot() == before


def test_a_mistyped_patch_field_is_refused_instead_of_answering_200_unchanged(shopper, customer):
    before = db_snapshot()

    response = shopper.patch(f"{API}/me/profile", json={"nick_name": "typo"})

    error = assert_error(response, 422, "validation_error")
    assert [(f["path"], f["type"]) for f in error["details"]["fields"]] == [
        ("nick_name", "extra_forbidden")
    ]
    assert db_snapshot() == before


def test_the_openapi_document_says_every_request_body_takes_no_other_keys():
    from config.api import api

    document = api.get_openapi_schema()
    components = document["components"]["schemas"]

    def objects_under(schema, seen):
        """Every object schema reachable from ``schema`` (through $ref, items, anyOf, ...)."""
        if isinstance(schema, dict):
            ref = schema.get("$ref")
            if ref:
                name = ref.rsplit("/", 1)[1]
                if name not in seen:
                    seen.add(name)
                    yield name, components[name]
                    yield from objects_under(components[name], seen)
            for key, value in schema.items():
                if key in {"properties", "$defs"}:
                    for inner in value.values():
                        yield from objects_under(inner, seen)
                elif key in {"items", "additionalProperties", "anyOf", "allOf", "oneOf"}:
                    yield from objects_under(value, seen)
        elif isinstance(schema, list):
            for item in schema:
                yield from objects_under(item, seen)

    bodies = {}
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            content = operation.get("requestBody", {}).get("content", {})
            for media in content.values():
                for name, schema in objects_under(media["schema"], set()):
                    if schema.get("type") == "object" and "properties" in schema:
                        bodies[name] = (method.upper(), path, schema.get("additionalProperties"))
    assert len(bodies) >= 20
    assert {name: where for name, where in bodies.items() if where[2] is not False} == {}
