"""The OpenAPI document is the contract (issue 9, section 2): every operation that takes a body
refuses hostile bodies with a 4xx envelope and writes nothing, and a property-based run over the
whole document finds no 5xx and no 2xx for a request that violates it. Both walk the document, so
an operation added tomorrow is covered without touching this file."""

import json
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from django.core import signals
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import negative_data_rejection

from config.api import api
from config.wsgi import application
from groupbuy.services.community import announcement_post
from shop.models import CommunityMembership, Payment
from shop.services.refunds import refund_request
from tests.conftest import ApiClient, token_for
from tests.core.utils import assert_error
from tests.db_snapshot import db_snapshot
from tests.factories import AddressFactory, CommunityFactory, CustomerFactory, StaffFactory
from tests.groupbuy.factories import campaign, open_group
from tests.groupbuy.factories_bargains import bargain_campaign, start
from tests.groupbuy.factories_chains import board
from tests.referral.factories import referral_world
from tests.shop.factories_coupons import CouponTemplateFactory
from tests.shop.factories_orders import paid, place, quick_pickup_point

PREFIX = "/api/v1"
MB = 1024 * 1024
HOSTILE_SHAPES = {
    "array": "[]",
    "array of objects": '[{"amount": 1}]',
    "number": "100",
    "string": '"everything"',
    "boolean": "true",
    "null": "null",
}
NOT_JSON = [
    "text/plain",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=b",
    "application/xml",
    None,
]


# --- Walking the document ------------------------------------------------------------------------
def _openapi() -> dict[str, Any]:
    return api.get_openapi_schema()


def _resolve(schema: dict[str, Any], document: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def _alternatives(schema: dict[str, Any], document: dict[str, Any]) -> Iterator[dict[str, Any]]:
    schema = _resolve(schema, document)
    for option in schema.get("anyOf", schema.get("oneOf", [schema])):
        yield _resolve(option, document)


def leaves(schema: dict[str, Any], document: dict[str, Any], path=()) -> Iterator[tuple]:
    """``(path, JSON type)`` of every scalar field of a body schema, through objects and arrays;
    an array index is 0."""
    for option in _alternatives(schema, document):
        kind = option.get("type")
        if kind == "object" or "properties" in option:
            for name, sub in option.get("properties", {}).items():
                yield from leaves(sub, document, (*path, name))
        elif kind == "array":
            yield from leaves(option.get("items", {}), document, (*path, 0))
        elif kind in ("integer", "boolean", "string", "number") and path:
            yield path, kind


def nest(path: tuple, value: Any) -> Any:
    """The smallest JSON value with ``value`` at ``path``."""
    for part in reversed(path):
        value = [value] if isinstance(part, int) else {part: value}
    return value


def body_operations() -> list[tuple[str, str, dict[str, Any]]]:
    document = _openapi()
    found = []
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if isinstance(operation, dict) and "requestBody" in operation:
                schema = operation["requestBody"]["content"]["application/json"]["schema"]
                found.append((method.upper(), path, schema))
    return found


def hostile_catalogue(schema: dict[str, Any]) -> Iterator[tuple[str, Any, str | None, int, str]]:
    """``(case, body text, content type, status, code)`` for one operation's body schema."""
    document = _openapi()
    for name, text in HOSTILE_SHAPES.items():
        yield f"{name} body", text, "application/json", 422, "invalid_body"
    for content_type in NOT_JSON:
        yield f"content type {content_type}", "{}", content_type, 415, "unsupported_media_type"
    yield "3 MB body", json.dumps({"x": "y" * 3 * MB}), "application/json", 413, "payload_too_large"
    wrong_types = {
        "integer": [("string for int", "1"), ("float for int", 1.0), ("bool for int", True)],
        "boolean": [("int for bool", 1), ("string for bool", "true")],
        "number": [("string for number", "1"), ("bool for number", True)],
    }
    for path, kind in leaves(schema, document):
        dotted = ".".join(str(part) for part in path)
        for label, value in wrong_types.get(kind, []):
            body = json.dumps(nest(path, value))
            yield f"{label} at {dotted}", body, "application/json", 422, dotted
        if kind == "string":
            body = json.dumps(nest(path, "a\x00b"))
            yield f"NUL at {dotted}", body, "application/json", 422, f"invalid_characters:{dotted}"


# --- The world the hostile requests aim at -------------------------------------------------------
@pytest.fixture
def world(db):
    """Real objects behind every path parameter, so a server that let a hostile body through
    would really write (refund a paid order, appoint a leader, ...)."""
    shopper = CustomerFactory()
    community = CommunityFactory(leader=None)
    point = quick_pickup_point()
    order = paid(shopper)
    refunded = paid(shopper)
    refund = refund_request(order_id=refunded.pk, customer=shopper, lines=None, amount=1, note="")
    unpaid = place(shopper)
    payment = Payment.objects.create(
        order=unpaid, provider=Payment.Provider.SANDBOX, amount=unpaid.total
    )
    group, _ = open_group(campaign(size=3))
    made = board()
    CommunityMembership.objects.create(community=made.community, customer=shopper)
    said = announcement_post(author=made.leader, community_id=made.community.pk, body="Hello")
    bargain = start(bargain_campaign())
    ids = {
        "order_id": order.pk,
        "community_id": community.pk,
        "pickup_point_id": point.pk,
        "address_id": AddressFactory(customer=shopper).pk,
        "refund_id": refund.pk,
        "payment_id": payment.pk,
        "template_id": CouponTemplateFactory(channel="issued").pk,
        "customer_id": shopper.pk,
        "campaign_id": group.campaign_id,
        "group_id": group.pk,
        "share_token": group.share_token,
        "bargain_campaign_id": bargain.campaign_id,
        "bargain_id": bargain.pk,
        "post_id": made.post.pk,
        "announcement_id": said.pk,
        **referral_world(shopper=shopper, order=order),
    }
    return {
        "ids": ids,
        "shopper": token_for(shopper.user),
        "operator": token_for(StaffFactory()),
    }


def _url(path: str, ids: dict[str, int]) -> str:
    return path.format(**ids)


def _token_for_path(path: str, world) -> str:
    return world["operator"] if path.startswith(f"{PREFIX}/staff") else world["shopper"]


def test_the_document_has_the_body_operations_the_catalogue_walks():
    operations = {(method, path) for method, path, _ in body_operations()}

    assert len(operations) >= 19
    assert ("POST", f"{PREFIX}/staff/orders/{{order_id}}/refunds") in operations
    assert ("POST", f"{PREFIX}/payments/{{payment_id}}/confirm") in operations


def test_the_walk_reaches_nested_fields_of_every_json_type():
    schemas = {(method, path): schema for method, path, schema in body_operations()}

    order_fields = dict(leaves(schemas[("POST", f"{PREFIX}/orders")], _openapi()))
    refund_fields = dict(
        leaves(schemas[("POST", f"{PREFIX}/staff/orders/{{order_id}}/refunds")], _openapi())
    )

    assert order_fields[("lines", 0, "quantity")] == "integer"
    assert order_fields[("note",)] == "string"
    assert refund_fields[("restock",)] == "boolean"
    assert refund_fields[("lines", 0, "order_line_id")] == "integer"


@pytest.mark.parametrize(
    ("method", "path", "schema"),
    body_operations(),
    ids=[f"{method} {path}" for method, path, _ in body_operations()],
)
def test_every_body_operation_refuses_hostile_bodies_and_writes_nothing(
    world, method, path, schema
):
    client = ApiClient(_token_for_path(path, world))
    url = _url(path, world["ids"])
    before = db_snapshot()
    cases = list(hostile_catalogue(schema))

    for label, text, content_type, status, expected in cases:
        response = client.client.generic(
            method, url, text, content_type=content_type or "", headers=client._headers(None)
        )
        if status == 422 and expected.startswith("invalid_characters:"):
            error = assert_error(response, 422, "invalid_characters")
            assert [f["path"] for f in error["details"]["fields"]] == [expected.split(":", 1)[1]]
        elif status == 422 and expected != "invalid_body":
            error = assert_error(response, 422, "validation_error")
            assert any(
                f["path"] == expected and f["in"] == "body" for f in error["details"]["fields"]
            ), (label, error)
        else:
            assert_error(response, status, expected), label

    assert db_snapshot() == before
    assert len(cases) >= len(HOSTILE_SHAPES) + len(NOT_JSON) + 1


# --- Nullability: the document and the server agree ----------------------------------------------
def _allows_null(schema: dict[str, Any], document: dict[str, Any]) -> bool:
    return any(option.get("type") == "null" for option in _alternatives(schema, document))


def test_no_body_is_documented_as_nullable():
    """The server refuses a JSON null body (invalid_body); the document must not offer one."""
    document = _openapi()

    nullable = [
        (method, path)
        for method, path, schema in body_operations()
        if _allows_null(schema, document)
    ]

    assert nullable == []
    confirm = document["paths"][f"{PREFIX}/payments/{{payment_id}}/confirm"]["post"]
    assert confirm["requestBody"]["required"] is False


def _nullable_fields() -> list[tuple[str, str, str]]:
    document = _openapi()
    found = []
    for method, path, schema in body_operations():
        for option in _alternatives(schema, document):
            for name, sub in option.get("properties", {}).items():
                if _allows_null(sub, document):
                    found.append((method, path, name))
    return found


@pytest.mark.parametrize(("method", "path", "field"), _nullable_fields())
def test_a_field_documented_as_nullable_takes_null(world, method, path, field):
    client = ApiClient(_token_for_path(path, world))

    response = client.client.generic(
        method,
        _url(path, world["ids"]),
        json.dumps({field: None}),
        content_type="application/json",
        headers=client._headers(None),
    )

    fields = response.json().get("error", {}).get("details", {}).get("fields", [])
    refused = [f["path"] if isinstance(f, dict) else f for f in fields]  # services list names
    assert field not in refused, response.content
    assert response.status_code < 500, response.content


# --- Property-based: schemathesis over the whole document ----------------------------------------
@pytest.fixture
def keep_test_connection():
    """Calling the WSGI app directly fires request_started/finished, whose handler closes the
    database connection, and with it the test's transaction; Django's test client detaches it
    the same way."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


schema = schemathesis.openapi.from_dict(_openapi())
schema.app = application  # in-process, through the whole WSGI stack (middleware included)
# Tokens are ours (below), so no generated Authorization header hides the one we send.
schema.config.generation.update(
    modes=list(schemathesis.GenerationMode), with_security_parameters=False
)


@schemathesis.check
def error_code_documented(ctx, response, case) -> None:
    """A 4xx answer's code is one the operation lists for that status (core.http.errors). 405 is
    the path's answer to a method it does not have (schemathesis probes some): the 4XX range."""
    if not 400 <= response.status_code < 500 or response.status_code == 405:
        return
    code = response.json()["error"]["code"]
    documented = case.operation.definition.raw["responses"].get(str(response.status_code), {})
    schema = documented.get("content", {}).get("application/json", {}).get("schema", {})
    listed = schema.get("allOf", [{}, {}])[1].get("properties", {})
    codes = listed.get("error", {}).get("properties", {}).get("code", {}).get("enum", [])
    assert code in codes, f"{case.operation.label}: {response.status_code} {code} not documented"


@schema.parametrize()
@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_no_operation_crashes_or_accepts_what_the_document_forbids(
    transactional_db, case, world, keep_test_connection
):
    """Autocommit as in production: in one test transaction, a statement PostgreSQL refuses
    would abort every later request of the run."""
    if case.meta.generation.mode.is_positive:  # aim valid requests at real objects
        case.path_parameters = {
            name: world["ids"].get(name, value)
            for name, value in (case.path_parameters or {}).items()
        }
    token = _token_for_path(case.operation.path, world)
    case.call_and_validate(
        headers={"Authorization": f"Bearer {token}"},
        checks=[not_a_server_error, negative_data_rejection, error_code_documented],
        environ_base={"REMOTE_ADDR": "127.0.0.1"},  # as every real server sets it
    )
