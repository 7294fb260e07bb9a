import pytest
import time_machine
from django.conf import settings
from django.contrib.auth.models import Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from shop.models import Order, OrderLine, Product, StockReservation
from tests.factories import (
    AddressFactory,
    CommunityFactory,
    CustomerFactory,
    PickupPointFactory,
    SkuFactory,
    UserFactory,
)
from tests.shop.factories_coupons import CouponCodeFactory, coupon_for
from tests.shop.factories_orders import paid, place, stock_of

pytestmark = pytest.mark.django_db

ORDERS = "/api/v1/orders"


def body(*lines, mode="pickup", **extra):
    return {
        "lines": [{"sku_id": sku.pk, "quantity": quantity} for sku, quantity in lines],
        "delivery_mode": mode,
        **extra,
    }


def pickup_body(*lines, point=None, **extra):
    return body(*lines, pickup_point_id=(point or PickupPointFactory()).pk, **extra)


def error(response):
    return response.json()["error"]


# --- creating ---------------------------------------------------------------------------------
def test_create_order_snapshots_prices_reserves_stock_and_sets_the_deadline(shopper, customer):
    # given
    a = SkuFactory(price=1990, stock=10, attributes={"size": "500g"})
    b = SkuFactory(price=350, stock=5)
    point = PickupPointFactory()
    now = timezone.now()
    # when
    with time_machine.travel(now, tick=False):
        r = shopper.post(ORDERS, json=pickup_body((a, 2), (b, 3), point=point, note="ring twice"))
    # then
    assert r.status_code == 201, r.content
    data = r.json()
    assert data["status"] == "pending_payment"
    assert data["subtotal"] == data["total"] == 2 * 1990 + 3 * 350
    assert data["discount"] == 0
    assert data["community_id"] == point.community_id  # the pickup point fixes the community
    assert data["pickup_point"]["id"] == point.pk
    assert data["pickup_code"] is None
    assert data["note"] == "ring twice"
    lines = {line["sku_id"]: line for line in data["lines"]}
    assert lines[a.pk]["unit_price"] == 1990
    assert lines[a.pk]["line_total"] == 3980
    assert lines[a.pk]["sku_attributes"] == {"size": "500g"}
    assert lines[a.pk]["product_title"] == a.product.title
    order = Order.objects.get(pk=data["id"])
    assert order.customer == customer
    assert order.payment_deadline == now + settings.STOCK_RESERVATION_TTL
    assert (stock_of(a), stock_of(b)) == (8, 2)
    reservations = StockReservation.objects.filter(order=order)
    assert {(r.sku_id, r.quantity, r.status) for r in reservations} == {
        (a.pk, 2, "active"),
        (b.pk, 3, "active"),
    }
    assert all(r.expires_at == order.payment_deadline for r in reservations)


def test_checkout_keeps_the_device_and_a_hash_of_the_ip_as_fraud_signals(shopper):
    # given: the mini-program's device id
    sku = SkuFactory(price=1990, stock=10)
    device = "0b6f5c3e-2d1a-4e8f-9c7b-6a5d4e3f2a1b"
    # when
    r = shopper.post(ORDERS, json=pickup_body((sku, 1)), headers={"X-Device-Id": device})
    # then
    assert r.status_code == 201, r.content
    order = Order.objects.get(pk=r.json()["id"])
    assert str(order.device_id) == device
    assert len(order.ip_hash) == 64 and "127.0.0.1" not in order.ip_hash


def test_checkout_with_a_malformed_device_id_is_refused_and_places_nothing(shopper):
    sku = SkuFactory(price=1990, stock=10)

    r = shopper.post(ORDERS, json=pickup_body((sku, 1)), headers={"X-Device-Id": "not-a-uuid"})

    assert r.status_code == 400
    assert error(r)["code"] == "invalid_device_id"
    assert not Order.objects.exists()


def test_price_snapshot_does_not_follow_later_price_changes(shopper):
    sku = SkuFactory(price=1000, list_price=None)
    order_id = shopper.post(ORDERS, json=pickup_body((sku, 1))).json()["id"]
    sku.price = 5000
    sku.save()
    assert shopper.get(f"{ORDERS}/{order_id}").json()["lines"][0]["unit_price"] == 1000


def test_duplicate_sku_lines_are_merged(shopper):
    sku = SkuFactory(stock=10)
    r = shopper.post(ORDERS, json=pickup_body((sku, 2), (sku, 3)))
    assert r.status_code == 201
    assert [(line["sku_id"], line["quantity"]) for line in r.json()["lines"]] == [(sku.pk, 5)]
    assert stock_of(sku) == 5


def test_coupon_code_is_stored_and_its_discount_split_exactly(shopper):
    # given: a code whose coupon takes 100 fen off
    CouponCodeFactory(code="SAVE1", template__amount=100)
    a, b, c = SkuFactory(price=333), SkuFactory(price=333), SkuFactory(price=334)
    # when
    r = shopper.post(ORDERS, json=pickup_body((a, 1), (b, 1), (c, 1), coupon_code="SAVE1"))
    # then
    data = r.json()
    assert data["coupon_code"] == "SAVE1"
    assert (data["subtotal"], data["discount"], data["total"]) == (1000, 100, 900)
    totals = [line["line_total"] for line in data["lines"]]
    assert sum(totals) == 900
    assert totals == [300, 300, 300]  # 33.3 / 33.3 / 33.4 of the discount, largest remainder


def test_discount_stops_at_the_minimum_payable(shopper, customer):
    coupon = coupon_for(customer, amount=10**9)
    sku = SkuFactory(price=500)
    data = shopper.post(ORDERS, json=pickup_body((sku, 2), coupon_ids=[coupon.pk])).json()
    assert (data["discount"], data["total"], data["lines"][0]["line_total"]) == (999, 1, 1)


def test_courier_order_snapshots_the_customers_address(shopper, customer):
    address = AddressFactory(customer=customer, city="Ningbo")
    r = shopper.post(ORDERS, json=body((SkuFactory(), 1), mode="courier", address_id=address.pk))
    assert r.status_code == 201
    assert r.json()["shipping_address"]["city"] == "Ningbo"
    assert r.json()["community_id"] is None


def test_leader_delivery_needs_a_community_with_a_leader(shopper):
    sku = SkuFactory()
    r = shopper.post(ORDERS, json=body((sku, 1), mode="leader_delivery"))
    assert (r.status_code, error(r)["code"]) == (422, "community_required")

    leaderless = CommunityFactory(leader=None)
    r = shopper.post(
        ORDERS, json=body((sku, 1), mode="leader_delivery", community_id=leaderless.pk)
    )
    assert (r.status_code, error(r)["code"]) == (422, "community_has_no_leader")

    community = CommunityFactory()
    r = shopper.post(ORDERS, json=body((sku, 1), mode="leader_delivery", community_id=community.pk))
    assert r.status_code == 201
    assert r.json()["community_id"] == community.pk


# --- validation errors --------------------------------------------------------------------------
def test_unknown_sku_is_404_and_nothing_is_written(shopper):
    sku = SkuFactory(stock=5)
    payload = pickup_body((sku, 1))
    payload["lines"].append({"sku_id": 999_999, "quantity": 1})
    r = shopper.post(ORDERS, json=payload)
    assert r.status_code == 404
    assert error(r)["code"] == "sku_not_found"
    assert error(r)["details"] == {"sku_ids": [999_999]}
    assert Order.objects.count() == 0
    assert stock_of(sku) == 5


@pytest.mark.parametrize("status", [Product.Status.OFF_SALE, Product.Status.DRAFT])
def test_product_not_on_sale_is_409(shopper, status):
    sku = SkuFactory(product__status=status)
    r = shopper.post(ORDERS, json=pickup_body((sku, 1)))
    assert r.status_code == 409
    assert error(r)["code"] == "product_unavailable"
    assert error(r)["details"] == {"sku_id": sku.pk, "product_id": sku.product_id}


def test_inactive_sku_is_409(shopper):
    r = shopper.post(ORDERS, json=pickup_body((SkuFactory(is_active=False), 1)))
    assert (r.status_code, error(r)["code"]) == (409, "product_unavailable")


def test_product_offered_only_in_other_communities_is_409(shopper):
    sku = SkuFactory()
    sku.product.communities.add(CommunityFactory())
    r = shopper.post(ORDERS, json=pickup_body((sku, 1)))
    assert (r.status_code, error(r)["code"]) == (409, "product_unavailable")

    point = PickupPointFactory()
    sku.product.communities.add(point.community)
    assert shopper.post(ORDERS, json=pickup_body((sku, 1), point=point)).status_code == 201


@pytest.mark.parametrize("quantity", [0, -1, 1000])
def test_quantity_out_of_range_is_422(shopper, quantity):
    sku = SkuFactory(stock=5000)
    r = shopper.post(ORDERS, json=pickup_body((sku, quantity)))
    assert r.status_code == 422
    assert error(r)["code"] == "validation_error"
    assert Order.objects.count() == 0


def test_merged_quantity_over_999_is_422(shopper):
    sku = SkuFactory(stock=5000)
    r = shopper.post(ORDERS, json=pickup_body((sku, 600), (sku, 600)))
    assert (r.status_code, error(r)["code"]) == (422, "invalid_quantity")


def test_no_lines_and_more_than_50_lines_are_422(shopper):
    assert shopper.post(ORDERS, json=pickup_body()).status_code == 422
    skus = [SkuFactory() for _ in range(51)]
    r = shopper.post(ORDERS, json=pickup_body(*[(sku, 1) for sku in skus]))
    assert r.status_code == 422


def test_out_of_stock_is_409_with_what_is_left(shopper):
    sku = SkuFactory(stock=2)
    r = shopper.post(ORDERS, json=pickup_body((sku, 3)))
    assert r.status_code == 409
    assert error(r)["code"] == "out_of_stock"
    assert error(r)["details"] == {"sku_id": sku.pk, "available": 2}
    assert stock_of(sku) == 2


def test_sold_out_sku_is_refused_by_a_read_without_a_write_transaction(shopper):
    # given
    sku = SkuFactory(stock=0)
    point = PickupPointFactory()
    # when
    with CaptureQueriesContext(connection) as queries:
        r = shopper.post(ORDERS, json=pickup_body((sku, 1), point=point))
    # then
    assert error(r)["code"] == "out_of_stock"
    statements = [q["sql"].split()[0].upper() for q in queries.captured_queries]
    assert not {"INSERT", "UPDATE", "DELETE", "SAVEPOINT"} & set(statements) - {"SELECT"}, (
        statements
    )
    # and the next attempt is refused from the memo, without reading the SKU again
    with CaptureQueriesContext(connection) as queries:
        r = shopper.post(ORDERS, json=pickup_body((sku, 1), point=point))
    assert error(r)["code"] == "out_of_stock"
    assert not any("shop_sku" in q["sql"] for q in queries.captured_queries)


def test_purchase_limit_counts_units_in_earlier_non_cancelled_orders(shopper, customer):
    # given: limit 3, already 2 bought (one more cancelled order does not count)
    sku = SkuFactory(product__purchase_limit=3)
    other_sku_same_product = SkuFactory(product=sku.product)
    place(customer, [(sku, 2)])
    cancelled = place(customer, [(sku, 1)])
    cancelled.status = Order.Status.CANCELLED
    cancelled.save()
    # when: 2 more of the same product
    r = shopper.post(ORDERS, json=pickup_body((other_sku_same_product, 2)))
    # then
    assert r.status_code == 409
    assert error(r)["code"] == "purchase_limit_exceeded"
    assert error(r)["details"] == {
        "product_id": sku.product_id,
        "limit": 3,
        "already_bought": 2,
        "requested": 2,
    }
    assert shopper.post(ORDERS, json=pickup_body((other_sku_same_product, 1))).status_code == 201


def test_purchase_limit_is_per_customer(shopper):
    sku = SkuFactory(product__purchase_limit=1)
    place(CustomerFactory(), [(sku, 1)])
    assert shopper.post(ORDERS, json=pickup_body((sku, 1))).status_code == 201
    r = shopper.post(ORDERS, json=pickup_body((sku, 1)))
    assert error(r)["code"] == "purchase_limit_exceeded"


def test_pickup_needs_an_active_pickup_point_of_the_given_community(shopper):
    sku = SkuFactory()
    r = shopper.post(ORDERS, json=body((sku, 1)))
    assert (r.status_code, error(r)["code"]) == (422, "pickup_point_required")

    closed = PickupPointFactory(is_active=False)
    r = shopper.post(ORDERS, json=body((sku, 1), pickup_point_id=closed.pk))
    assert (r.status_code, error(r)["code"]) == (422, "pickup_point_unavailable")

    r = shopper.post(ORDERS, json=body((sku, 1), pickup_point_id=123_456))
    assert (r.status_code, error(r)["code"]) == (422, "pickup_point_unavailable")

    point = PickupPointFactory()
    r = shopper.post(
        ORDERS,
        json=body((sku, 1), pickup_point_id=point.pk, community_id=CommunityFactory().pk),
    )
    assert (r.status_code, error(r)["code"]) == (422, "pickup_point_not_in_community")

    r = shopper.post(
        ORDERS, json=body((sku, 1), pickup_point_id=point.pk, community_id=point.community_id)
    )
    assert r.status_code == 201


def test_community_must_exist_and_be_active(shopper):
    sku = SkuFactory()
    point = PickupPointFactory(community__is_active=False)
    r = shopper.post(ORDERS, json=body((sku, 1), pickup_point_id=point.pk))
    assert (r.status_code, error(r)["code"]) == (422, "community_inactive")

    r = shopper.post(ORDERS, json=body((sku, 1), mode="leader_delivery", community_id=987_654))
    assert (r.status_code, error(r)["code"]) == (404, "community_not_found")


def test_courier_needs_one_of_my_addresses(shopper):
    sku = SkuFactory()
    r = shopper.post(ORDERS, json=body((sku, 1), mode="courier"))
    assert (r.status_code, error(r)["code"]) == (422, "address_required")

    someone_elses = AddressFactory()
    r = shopper.post(ORDERS, json=body((sku, 1), mode="courier", address_id=someone_elses.pk))
    assert (r.status_code, error(r)["code"]) == (404, "address_not_found")


def test_unknown_delivery_mode_is_422(shopper):
    r = shopper.post(ORDERS, json=body((SkuFactory(), 1), mode="drone"))
    assert r.status_code == 422


def test_placing_an_order_needs_a_shopper(anon, client_for):
    sku = SkuFactory()
    assert anon.post(ORDERS, json=pickup_body((sku, 1))).status_code == 401
    no_customer = client_for(UserFactory())
    r = no_customer.post(ORDERS, json=pickup_body((sku, 1)))
    assert (r.status_code, error(r)["code"]) == (403, "not_a_customer")


# --- idempotency ----------------------------------------------------------------------------------
def test_replaying_the_same_key_and_body_returns_the_same_order(shopper):
    sku = SkuFactory(stock=10)
    payload = pickup_body((sku, 2))
    headers = {"Idempotency-Key": "checkout-1"}

    first = shopper.post(ORDERS, json=payload, headers=headers)
    second = shopper.post(ORDERS, json=payload, headers=headers)

    assert first.status_code == second.status_code == 201
    assert second.json() == first.json()
    assert second["Idempotent-Replayed"] == "true"
    assert Order.objects.count() == 1
    assert stock_of(sku) == 8


def test_same_key_with_another_body_is_409(shopper):
    sku = SkuFactory(stock=10)
    headers = {"Idempotency-Key": "checkout-2"}
    assert shopper.post(ORDERS, json=pickup_body((sku, 1)), headers=headers).status_code == 201
    r = shopper.post(ORDERS, json=pickup_body((sku, 5)), headers=headers)
    assert (r.status_code, error(r)["code"]) == (409, "idempotency_key_reused")
    assert Order.objects.count() == 1


def test_a_refused_order_does_not_burn_the_key(shopper):
    sku = SkuFactory(stock=5, product__status=Product.Status.OFF_SALE)
    point = PickupPointFactory()
    headers = {"Idempotency-Key": "checkout-3"}
    r = shopper.post(ORDERS, json=pickup_body((sku, 1), point=point), headers=headers)
    assert r.status_code == 409
    sku.product.status = Product.Status.ON_SALE
    sku.product.save()
    r = shopper.post(ORDERS, json=pickup_body((sku, 1), point=point), headers=headers)
    assert r.status_code == 201


# --- reading ------------------------------------------------------------------------------------
def test_customers_list_only_their_orders_with_a_status_filter(shopper, customer):
    mine_unpaid = place(customer)
    mine_paid = paid(customer)
    place(CustomerFactory())

    r = shopper.get(ORDERS)
    assert r.status_code == 200
    assert r.json()["count"] == 2
    assert [o["id"] for o in r.json()["items"]] == [mine_paid.pk, mine_unpaid.pk]

    r = shopper.get(ORDERS, {"status": "paid"})
    assert [o["id"] for o in r.json()["items"]] == [mine_paid.pk]
    assert r.json()["items"][0]["pickup_code"] == mine_paid.pickup_code

    r = shopper.get(ORDERS, {"limit": 1, "offset": 1})
    assert (r.json()["count"], len(r.json()["items"])) == (2, 1)

    assert shopper.get(ORDERS, {"status": "bogus"}).status_code == 422


def test_another_customers_order_is_404(shopper):
    theirs = place(CustomerFactory())
    r = shopper.get(f"{ORDERS}/{theirs.pk}")
    assert (r.status_code, error(r)["code"]) == (404, "not_found")
    assert shopper.get(f"{ORDERS}/999999").status_code == 404
    assert shopper.post(f"{ORDERS}/{theirs.pk}/cancel").status_code == 404
    assert shopper.post(f"{ORDERS}/{theirs.pk}/confirm-receipt").status_code == 404
    assert shopper.post(f"{ORDERS}/{theirs.pk}/refunds", json={}).status_code == 404
    assert Order.objects.get(pk=theirs.pk).status == "pending_payment"


def test_staff_see_all_orders_with_filters(operator):
    courier_order = place(mode="courier")
    point = PickupPointFactory()
    pickup_order = paid(pickup_point=point)

    r = operator.get("/api/v1/staff/orders")
    assert r.status_code == 200
    assert r.json()["count"] == 2
    r = operator.get("/api/v1/staff/orders", {"delivery_mode": "courier"})
    assert [o["id"] for o in r.json()["items"]] == [courier_order.pk]
    r = operator.get("/api/v1/staff/orders", {"status": "paid", "community_id": point.community_id})
    assert [o["id"] for o in r.json()["items"]] == [pickup_order.pk]
    assert r.json()["items"][0]["customer_id"] == pickup_order.customer_id
    assert r.json()["items"][0]["paid_payment_id"] == pickup_order.paid_payment_id
    r = operator.get("/api/v1/staff/orders", {"number": courier_order.number})
    assert [o["id"] for o in r.json()["items"]] == [courier_order.pk]

    r = operator.get(f"/api/v1/staff/orders/{courier_order.pk}")
    assert r.json()["number"] == courier_order.number
    assert operator.get("/api/v1/staff/orders/999999").status_code == 404


def test_staff_need_the_view_permission_and_shoppers_are_refused(client_for, shopper):
    clerk = UserFactory(is_staff=True)
    r = client_for(clerk).get("/api/v1/staff/orders")
    assert r.status_code == 403
    assert error(r)["details"] == {"permission": "shop.view_order"}

    clerk.user_permissions.add(Permission.objects.get(codename="view_order"))
    assert client_for(clerk).get("/api/v1/staff/orders").status_code == 200

    assert shopper.get("/api/v1/staff/orders").status_code == 403


# --- cancel / confirm ----------------------------------------------------------------------------
def test_customer_cancels_an_unpaid_order_and_its_stock_returns(shopper, customer):
    sku = SkuFactory(stock=5)
    order = place(customer, [(sku, 2)])
    assert stock_of(sku) == 3

    r = shopper.post(f"{ORDERS}/{order.pk}/cancel")

    assert r.status_code == 200
    assert (r.json()["status"], r.json()["cancel_reason"]) == ("cancelled", "customer")
    assert stock_of(sku) == 5
    assert set(order.reservations.values_list("status", flat=True)) == {"released"}
    # cancelling again returns the cancelled order, changes nothing
    again = shopper.post(f"{ORDERS}/{order.pk}/cancel")
    assert again.status_code == 200
    assert again.json()["cancelled_at"] == r.json()["cancelled_at"]
    assert stock_of(sku) == 5


def test_cancelling_a_paid_order_is_an_illegal_transition(shopper, customer):
    order = paid(customer)
    r = shopper.post(f"{ORDERS}/{order.pk}/cancel")
    assert r.status_code == 409
    assert error(r)["code"] == "illegal_transition"
    assert error(r)["details"] == {"from": "paid", "to": "cancelled"}


def test_confirming_receipt_of_an_unfulfilled_order_is_409(shopper, customer):
    order = paid(customer)
    r = shopper.post(f"{ORDERS}/{order.pk}/confirm-receipt")
    assert (r.status_code, error(r)["details"]) == (409, {"from": "paid", "to": "completed"})


def test_staff_cancel_an_unpaid_order(operator):
    order = place()
    r = operator.post(f"/api/v1/staff/orders/{order.pk}/cancel")
    assert r.status_code == 200
    assert (r.json()["status"], r.json()["cancel_reason"]) == ("cancelled", "staff")


def test_order_lines_are_stored_once_per_sku(shopper):
    sku = SkuFactory()
    shopper.post(ORDERS, json=pickup_body((sku, 1), (sku, 1)))
    assert OrderLine.objects.count() == 1
