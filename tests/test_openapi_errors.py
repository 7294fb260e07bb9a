"""Each operation documents its error codes, per status, in the OpenAPI document; its summary,
description and examples are there; and real raise paths answer codes their operation lists."""

from typing import Any

import pytest

from config.api import api
from core.error_codes import ErrorCode
from shop.error_codes import CatalogErrorCode
from tests.core.test_error_codes import _all_enums
from tests.factories import CommunityFactory, SkuFactory
from tests.shop.factories_orders import fulfilled, paid, place, quick_pickup_point

PREFIX = "/api/v1"
METHODS = {"get", "post", "put", "patch", "delete"}
MONEY_OPERATIONS = [
    ("post", "/orders"),
    ("post", "/orders/{order_id}/pay"),
    ("post", "/orders/{order_id}/refunds"),
    ("post", "/staff/orders/{order_id}/refunds"),
    ("post", "/pickup/verify"),
]


def _document() -> dict[str, Any]:
    return api.get_openapi_schema()


def _operations() -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method, path, operation)
        for path, item in _document()["paths"].items()
        for method, operation in item.items()
        if method in METHODS
    ]


def documented_codes(operation: dict[str, Any], status: int) -> list[str]:
    response = operation["responses"].get(str(status))
    if response is None:
        return []
    schema = response["content"]["application/json"]["schema"]
    return schema["allOf"][1]["properties"]["error"]["properties"]["code"]["enum"]


def _operation(method: str, path: str) -> dict[str, Any]:
    return _document()["paths"][f"{PREFIX}{path}"][method]


def _registry() -> dict[str, int]:
    return {member.value: member.status for enum in _all_enums() for member in enum}


def _ids(operations):
    return [f"{method.upper()} {path}" for method, path, _ in operations]


@pytest.mark.parametrize(("method", "path", "operation"), _operations(), ids=_ids(_operations()))
def test_every_operation_documents_its_error_statuses_with_known_codes(method, path, operation):
    registry = _registry()
    errors = {
        int(status): documented_codes(operation, int(status))
        for status in operation["responses"]
        if str(status).isdigit() and int(status) >= 400
    }

    assert operation["summary"] and operation["description"]
    assert errors[500] == ["internal_error"]
    for status, codes in errors.items():
        assert codes, status
        assert {registry[code] for code in codes} == {status}, (status, codes)
        assert all(
            f"`{code}`" in operation["responses"][str(status)]["description"] for code in codes
        )
    if operation.get("security"):
        assert "not_authenticated" in errors[401]
        assert "token_expired" in errors[401]
    if "requestBody" in operation:
        assert errors[413] == ["payload_too_large"]
        assert errors[415] == ["unsupported_media_type"]
        assert {"validation_error", "invalid_body", "invalid_characters"} <= set(errors[422])
    if path.startswith(f"{PREFIX}/staff/") and not path.endswith("/fulfil"):
        assert {"staff_only", "permission_denied"} <= set(errors[403])
    assert "4XX" in operation["responses"]  # anything else: the same envelope


def _conforms(value: Any, schema: dict[str, Any], document: dict[str, Any]) -> list[str]:
    """The few JSON Schema rules our documents use: $ref, anyOf, type, properties, required,
    items, enum."""
    while "$ref" in schema:
        schema = document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    if "anyOf" in schema:
        options = [_conforms(value, option, document) for option in schema["anyOf"]]
        return [] if any(not problems for problems in options) else [f"{value!r}: no option"]
    if "allOf" in schema:
        return [p for option in schema["allOf"] for p in _conforms(value, option, document)]
    kinds = {
        "object": dict,
        "array": list,
        "string": str,
        "integer": int,
        "number": (int, float),
        "boolean": bool,
        "null": type(None),
    }
    kind = schema.get("type")
    if (kind and not isinstance(value, kinds[kind])) or (kind == "integer" and value is True):
        return [f"{value!r} is not {kind}"]
    if "enum" in schema and value not in schema["enum"]:
        return [f"{value!r} not in {schema['enum']}"]
    problems = []
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        problems += [f"missing {name}" for name in schema.get("required", []) if name not in value]
        problems += [f"unknown {name}" for name in value if properties and name not in properties]
        for name, item in value.items():
            if name in properties:
                problems += [f"{name}: {p}" for p in _conforms(item, properties[name], document)]
    if isinstance(value, list) and "items" in schema:
        for item in value:
            problems += _conforms(item, schema["items"], document)
    return problems


def test_the_conformance_check_can_fail():
    document = _document()
    schema = document["paths"][f"{PREFIX}/orders"]["post"]["requestBody"]["content"][
        "application/json"
    ]["schema"]

    assert _conforms({"lines": [{"sku_id": "1", "quantity": 1}]}, schema, document) == [
        "missing delivery_mode",
        "lines: sku_id: '1' is not integer",
    ]


@pytest.mark.parametrize(
    ("method", "path", "operation"),
    [op for op in _operations() if "requestBody" in op[2]],
    ids=_ids([op for op in _operations() if "requestBody" in op[2]]),
)
def test_every_request_body_has_an_example_that_fits_its_schema(method, path, operation):
    media = operation["requestBody"]["content"]["application/json"]

    assert "example" in media
    assert _conforms(media["example"], media["schema"], _document()) == []


@pytest.mark.parametrize(("method", "path"), MONEY_OPERATIONS)
def test_money_operations_show_a_success_example_that_fits_the_response(method, path):
    operation = _operation(method, path)
    status = min((s for s in operation["responses"] if str(s).startswith("2")), key=str)
    media = operation["responses"][status]["content"]["application/json"]

    assert _conforms(media["example"], media["schema"], _document()) == []


# --- Real raise paths answer codes their operation documents --------------------------------------
def assert_documented(response, method: str, path: str, status: int, code: str) -> None:
    body = response.json()
    assert (response.status_code, body["error"]["code"]) == (status, code), body
    assert code in documented_codes(_operation(method, path), status)


def _pickup_body(sku, quantity, point, **extra):
    return {
        "lines": [{"sku_id": sku.pk, "quantity": quantity}],
        "delivery_mode": "pickup",
        "pickup_point_id": point.pk,
        **extra,
    }


def test_out_of_stock_on_placing_an_order_is_documented(shopper):
    sku = SkuFactory(stock=1)

    response = shopper.post(f"{PREFIX}/orders", json=_pickup_body(sku, 2, quick_pickup_point()))

    assert_documented(response, "post", "/orders", 409, CatalogErrorCode.OUT_OF_STOCK)


def test_an_unknown_coupon_is_documented(shopper):
    body = _pickup_body(SkuFactory(stock=5), 1, quick_pickup_point(), coupon_code="NOPE-2025")

    response = shopper.post(f"{PREFIX}/orders", json=body)

    assert_documented(response, "post", "/orders", 422, "coupon_invalid")


def test_cancelling_a_paid_order_is_a_documented_illegal_transition(shopper, customer):
    order = paid(customer)

    response = shopper.post(f"{PREFIX}/orders/{order.pk}/cancel")

    assert_documented(response, "post", "/orders/{order_id}/cancel", 409, "illegal_transition")


def test_redeeming_a_pickup_code_twice_is_documented(operator):
    order = fulfilled()

    response = operator.post(f"{PREFIX}/pickup/verify", json={"code": order.pickup_code})

    assert_documented(response, "post", "/pickup/verify", 409, "already_redeemed")


def test_paying_a_cancelled_order_is_documented(shopper, customer):
    order = place(customer)
    shopper.post(f"{PREFIX}/orders/{order.pk}/cancel")

    response = shopper.post(f"{PREFIX}/orders/{order.pk}/pay")

    assert_documented(response, "post", "/orders/{order_id}/pay", 409, "order_not_payable")


def test_a_staff_refund_over_the_paid_amount_is_documented(operator):
    order = paid()

    response = operator.post(
        f"{PREFIX}/staff/orders/{order.pk}/refunds", json={"amount": order.total + 1}
    )

    assert_documented(
        response, "post", "/staff/orders/{order_id}/refunds", 409, "refund_exceeds_paid"
    )


def test_joining_an_unknown_community_is_documented(shopper):
    gone = CommunityFactory()
    missing = gone.pk
    gone.delete()

    response = shopper.post(f"{PREFIX}/communities/{missing}/join")

    assert_documented(
        response, "post", "/communities/{community_id}/join", 404, "community_not_found"
    )


def test_members_of_the_registry_are_error_codes():
    assert all(issubclass(enum, ErrorCode) for enum in _all_enums())


def _schema_classes(base: type) -> list[type]:
    found = []
    for sub in base.__subclasses__():
        found.append(sub)
        found += _schema_classes(sub)
    return found


def test_no_two_api_schemas_share_a_name():
    """The document names each component after its class: a second class of the same name
    silently replaces the first in it (and the examples checked against it)."""
    from ninja import Schema

    apps = ("core", "shop", "groupbuy", "referral", "incentives")
    names: dict[str, set[str]] = {}
    for cls in _schema_classes(Schema):
        if cls.__module__.split(".")[0] in apps:
            names.setdefault(cls.__name__, set()).add(f"{cls.__module__}.{cls.__qualname__}")

    assert {name: where for name, where in names.items() if len(where) > 1} == {}
