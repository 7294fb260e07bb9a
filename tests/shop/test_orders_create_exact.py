"""Exact outcomes of ``order_create``, ``order_get_payable`` and ``order_mark_paid``: every refusal
with its code, message and details (and nothing written), every field of a created or paid
order. Written to kill the mutants `make mutate` left alive in shop/services/orders.py."""

import re
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.conf import settings

from core.errors import ApplicationError
from core.models import Notification
from shop.models import Order, OrderEvent, OrderLine, Product, StockReservation
from shop.services.orders import (
    order_cancel,
    order_create,
    order_get_payable,
    order_mark_paid,
)
from tests.factories import (
    AddressFactory,
    CommunityFactory,
    PickupPointFactory,
    ProductFactory,
    SkuFactory,
)
from tests.shop.factories_coupons import CouponCodeFactory, coupon_for
from tests.shop.factories_orders import (
    QuickCustomerFactory,
    SucceededPaymentFactory,
    place,
    quick_pickup_point,
    stock_of,
)

pytestmark = pytest.mark.django_db

T = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


def error_of(excinfo) -> tuple:
    error = excinfo.value
    return (type(error).__name__, error.status, error.code, error.message, error.details)


def refused(**kwargs) -> tuple:
    """Try ``order_create`` (a customer and courier delivery unless given); nothing is written."""
    kwargs.setdefault("customer", QuickCustomerFactory())
    kwargs.setdefault("delivery_mode", "courier")
    if kwargs["delivery_mode"] == "courier" and "address_id" not in kwargs:
        kwargs["address_id"] = AddressFactory(customer=kwargs["customer"]).pk
    before = (Order.objects.count(), StockReservation.objects.count())
    with pytest.raises(ApplicationError) as excinfo:
        order_create(**kwargs)
    assert (Order.objects.count(), StockReservation.objects.count()) == before
    return error_of(excinfo)


def unprocessable(code, message, details=None):
    return ("InvalidInput", 422, code, message, details or {})


# --- lines ---------------------------------------------------------------------------------------
def test_an_order_without_lines_is_refused():
    assert refused(lines=[]) == unprocessable("no_lines", "An order needs at least one line.")


def test_more_than_fifty_lines_are_refused():
    skus = SkuFactory.create_batch(51)
    assert refused(lines=[(sku.pk, 1) for sku in skus]) == unprocessable(
        "too_many_lines", "An order has at most 50 lines.", {"max": 50}
    )


def test_fifty_lines_are_accepted():
    skus = SkuFactory.create_batch(50, stock=5)
    order = place(lines=[(sku, 1) for sku in skus], mode="courier")
    assert order.lines.count() == 50


@pytest.mark.parametrize("quantity", [0, 1000])
def test_a_quantity_outside_1_to_999_is_refused(quantity):
    sku = SkuFactory(stock=2000)
    assert refused(lines=[(sku.pk, quantity)]) == unprocessable(
        "invalid_quantity",
        "Quantities are between 1 and 999.",
        {"sku_id": sku.pk, "quantity": quantity},
    )


def test_the_same_sku_twice_is_one_line_and_refused_over_999():
    sku = SkuFactory(stock=2000)
    assert refused(lines=[(sku.pk, 500), (sku.pk, 500)]) == unprocessable(
        "invalid_quantity",
        "Quantities are between 1 and 999.",
        {"sku_id": sku.pk, "quantity": 1000},
    )


def test_the_same_sku_twice_makes_one_line_with_the_sum():
    sku = SkuFactory(price=100, stock=2000)
    order = place(lines=[(sku, 1), (sku, 998)], mode="courier")
    assert list(order.lines.values_list("sku_id", "quantity", "line_total")) == [
        (sku.pk, 999, 99900)
    ]
    assert stock_of(sku) == 1001


# --- skus ----------------------------------------------------------------------------------------
def test_unknown_skus_are_listed_sorted():
    sku = SkuFactory()
    assert refused(lines=[(10**9 + 2, 1), (sku.pk, 1), (10**9 + 1, 1)]) == (
        "NotFound",
        404,
        "sku_not_found",
        "Some items do not exist.",
        {"sku_ids": [10**9 + 1, 10**9 + 2]},
    )


def test_an_inactive_sku_is_unavailable():
    on_sale, off = SkuFactory(), SkuFactory(is_active=False)
    assert refused(lines=[(on_sale.pk, 1), (off.pk, 1)]) == (
        "Conflict",
        409,
        "product_unavailable",
        "This item is not on sale.",
        {"sku_id": off.pk, "product_id": off.product_id},
    )


def test_a_product_off_sale_is_unavailable():
    sku = SkuFactory(product=ProductFactory(status=Product.Status.OFF_SALE))
    assert refused(lines=[(sku.pk, 1)]) == (
        "Conflict",
        409,
        "product_unavailable",
        "This item is not on sale.",
        {"sku_id": sku.pk, "product_id": sku.product_id},
    )


def test_a_sold_out_sku_is_refused_and_remembered_short():
    plenty, short = SkuFactory(stock=10), SkuFactory(stock=2)
    assert refused(lines=[(plenty.pk, 3), (short.pk, 3)]) == (
        "Conflict",
        409,
        "out_of_stock",
        "Not enough stock for this item.",
        {"sku_id": short.pk, "available": 2},
    )
    # the memo refuses the next attempt before reading the SKU, with what was seen then
    type(short).objects.filter(pk=short.pk).update(stock=50)
    assert refused(lines=[(short.pk, 3)])[2:] == (
        "out_of_stock",
        "Not enough stock for this item.",
        {"sku_id": short.pk, "available": 2},
    )
    # asking for what was available passes the memo
    assert place(lines=[(short, 2)], mode="courier").status == "pending_payment"


def test_exactly_the_stock_left_can_be_ordered():
    sku = SkuFactory(stock=3)
    place(lines=[(sku, 3)], mode="courier")
    assert stock_of(sku) == 0


# --- delivery ------------------------------------------------------------------------------------
def test_an_unknown_delivery_mode_is_refused():
    sku = SkuFactory()
    assert refused(lines=[(sku.pk, 1)], delivery_mode="drone") == unprocessable(
        "invalid_delivery_mode",
        "Unknown delivery mode.",
        {"allowed": ["pickup", "courier", "leader_delivery"]},
    )


def test_pickup_needs_a_pickup_point():
    sku = SkuFactory()
    assert refused(lines=[(sku.pk, 1)], delivery_mode="pickup") == unprocessable(
        "pickup_point_required", "Choose a pickup point."
    )


@pytest.mark.parametrize("exists", [True, False])
def test_an_inactive_or_unknown_pickup_point_is_unavailable(exists):
    sku = SkuFactory()
    point_id = quick_pickup_point(is_active=False).pk if exists else 10**9
    assert refused(
        lines=[(sku.pk, 1)], delivery_mode="pickup", pickup_point_id=point_id
    ) == unprocessable(
        "pickup_point_unavailable",
        "This pickup point is not available.",
        {"pickup_point_id": point_id},
    )


def test_a_pickup_point_of_another_community_is_refused():
    sku = SkuFactory()
    point = quick_pickup_point()
    other = CommunityFactory(leader=QuickCustomerFactory())
    assert refused(
        lines=[(sku.pk, 1)],
        delivery_mode="pickup",
        pickup_point_id=point.pk,
        community_id=other.pk,
    ) == unprocessable(
        "pickup_point_not_in_community",
        "This pickup point does not belong to that community.",
        {"pickup_point_id": point.pk, "community_id": other.pk},
    )


def test_a_pickup_point_in_an_inactive_community_is_refused():
    sku = SkuFactory()
    point = PickupPointFactory(
        community=CommunityFactory(leader=QuickCustomerFactory(), is_active=False)
    )
    assert refused(
        lines=[(sku.pk, 1)], delivery_mode="pickup", pickup_point_id=point.pk
    ) == unprocessable("community_inactive", "This community is not active.")


def test_pickup_takes_the_community_of_its_point():
    point = quick_pickup_point()
    order = place(pickup_point=point, community_id=point.community_id)
    assert (order.community_id, order.pickup_point_id, order.shipping_address) == (
        point.community_id,
        point.pk,
        None,
    )


def test_courier_needs_an_address():
    sku = SkuFactory()
    assert refused(lines=[(sku.pk, 1)], address_id=None) == unprocessable(
        "address_required", "Choose a delivery address."
    )


def test_leader_delivery_needs_a_community():
    sku = SkuFactory()
    assert refused(lines=[(sku.pk, 1)], delivery_mode="leader_delivery") == unprocessable(
        "community_required", "Leader delivery needs a community."
    )


def test_leader_delivery_needs_a_leader():
    sku = SkuFactory()
    community = CommunityFactory(leader=None)
    assert refused(
        lines=[(sku.pk, 1)], delivery_mode="leader_delivery", community_id=community.pk
    ) == unprocessable("community_has_no_leader", "This community has no leader to deliver.")


def test_someone_elses_address_is_not_found():
    sku = SkuFactory()
    assert refused(lines=[(sku.pk, 1)], address_id=AddressFactory().pk) == (
        "NotFound",
        404,
        "address_not_found",
        "Address not found.",
        {},
    )


def test_leader_delivery_with_an_address_keeps_its_snapshot():
    customer = QuickCustomerFactory()
    address = AddressFactory(customer=customer, postal_code="310000")
    community = CommunityFactory(leader=QuickCustomerFactory())
    order = place(
        customer, mode="leader_delivery", community_id=community.pk, address_id=address.pk
    )
    assert (order.community_id, order.pickup_point_id) == (community.pk, None)
    assert order.shipping_address == {
        "recipient_name": "Li Lei",
        "phone": "13800000000",
        "province": "Zhejiang",
        "city": "Hangzhou",
        "district": "Xihu",
        "detail": address.detail,
        "postal_code": "310000",
    }


# --- products tied to communities, purchase limits, coupons --------------------------------------
def test_a_product_tied_to_communities_is_sold_only_there():
    community = CommunityFactory(leader=QuickCustomerFactory())
    elsewhere = CommunityFactory(leader=QuickCustomerFactory())
    free, tied = SkuFactory(), SkuFactory()
    tied.product.communities.add(community)
    lines = [(free.pk, 1), (tied.pk, 1)]
    expected = (
        "Conflict",
        409,
        "product_unavailable",
        "This item is not offered in your community.",
        {"sku_id": tied.pk, "product_id": tied.product_id},
    )
    assert refused(lines=lines) == expected  # no community at all
    assert refused(lines=lines, community_id=elsewhere.pk) == expected
    order = place(lines=[(free, 1), (tied, 1)], mode="courier", community_id=community.pk)
    assert order.lines.count() == 2


def test_the_purchase_limit_counts_earlier_orders_less_refunds_and_cancellations():
    customer = QuickCustomerFactory()
    limited = ProductFactory(purchase_limit=5)
    a, b = SkuFactory(product=limited), SkuFactory(product=limited)
    first = place(customer, [(a, 2)], mode="courier")
    OrderLine.objects.filter(order=first).update(refunded_quantity=1)  # 1 unit kept of 2
    cancelled = place(customer, [(a, 4)], mode="courier")
    order_cancel(order_id=cancelled.pk, customer=customer)
    place(QuickCustomerFactory(), [(a, 5)], mode="courier")  # someone else's
    # 1 kept + 2 + 3 = 6 > 5
    assert refused(customer=customer, lines=[(a.pk, 2), (b.pk, 3)]) == (
        "Conflict",
        409,
        "purchase_limit_exceeded",
        "This exceeds the purchase limit for this product.",
        {"product_id": limited.pk, "limit": 5, "already_bought": 1, "requested": 5},
    )
    # 1 kept + 4 = 5: allowed
    order = place(customer, [(a, 1), (b, 3)], mode="courier")
    assert order.lines.count() == 2


def test_the_purchase_limit_with_nothing_bought_yet():
    limited = ProductFactory(purchase_limit=2)
    sku = SkuFactory(product=limited)
    assert refused(lines=[(sku.pk, 3)])[2:] == (
        "purchase_limit_exceeded",
        "This exceeds the purchase limit for this product.",
        {"product_id": limited.pk, "limit": 2, "already_bought": 0, "requested": 3},
    )
    assert place(lines=[(sku, 2)], mode="courier").lines.get().quantity == 2


def test_an_unknown_coupon_is_refused_stripped():
    sku = SkuFactory()
    assert refused(lines=[(sku.pk, 1)], coupon_code="  SAVE10 ") == unprocessable(
        "coupon_invalid", "This coupon code is not valid.", {"coupon_code": "SAVE10"}
    )
    CouponCodeFactory(code="SAVE10")
    order = place(lines=[(sku, 1)], mode="courier", coupon_code="  SAVE10 ")
    assert order.coupon_code == "SAVE10"


def test_a_blank_coupon_is_no_coupon():
    order = place(mode="courier", coupon_code="   ")
    assert order.coupon_code == ""


# --- the created order ---------------------------------------------------------------------------
def test_the_created_order_and_its_lines():
    customer = QuickCustomerFactory()
    a = SkuFactory(price=1990, stock=10, attributes={"size": "500g"})
    b = SkuFactory(price=500, stock=10)
    with time_machine.travel(T, tick=False):
        coupon = coupon_for(customer, amount=100)
        order = place(
            customer, [(b, 1), (a, 2)], mode="courier", note="ring twice", coupon_ids=[coupon.pk]
        )
    order.refresh_from_db()
    assert re.fullmatch(r"300101\d{14}", order.number)
    assert (
        order.customer_id,
        order.status,
        order.delivery_mode,
        order.community_id,
        order.pickup_point_id,
        order.subtotal,
        order.discount,
        order.total,
        order.coupon_code,
        order.note,
        order.payment_deadline,
        order.pickup_code,
    ) == (
        customer.pk,
        "pending_payment",
        "courier",
        None,
        None,
        4480,
        100,
        4380,
        "",
        "ring twice",
        T + settings.STOCK_RESERVATION_TTL,
        None,
    )
    assert list(
        order.lines.order_by("pk").values_list(
            "sku_id",
            "product_title",
            "sku_code",
            "sku_attributes",
            "unit_price",
            "quantity",
            "line_total",
        )
    ) == [
        (a.pk, a.product.title, a.code, {"size": "500g"}, 1990, 2, 3891),
        (b.pk, b.product.title, b.code, {}, 500, 1, 489),
    ]
    assert list(
        StockReservation.objects.filter(order=order)
        .order_by("sku_id")
        .values_list("sku_id", "quantity", "expires_at")
    ) == [
        (a.pk, 2, T + settings.STOCK_RESERVATION_TTL),
        (b.pk, 1, T + settings.STOCK_RESERVATION_TTL),
    ]
    assert (stock_of(a), stock_of(b)) == (8, 9)
    assert list(
        OrderEvent.objects.filter(order=order).values_list(
            "kind", "actor_id", "actor_kind", "from_status", "to_status"
        )
    ) == [("placed", customer.user_id, "customer", "", "pending_payment")]


# --- payable -------------------------------------------------------------------------------------
def test_a_payable_order_is_returned_until_its_deadline():
    order = place()
    with time_machine.travel(order.payment_deadline - timedelta(seconds=1), tick=False):
        assert order_get_payable(order_id=order.pk, customer=order.customer).pk == order.pk
    with (
        time_machine.travel(order.payment_deadline, tick=False),
        pytest.raises(ApplicationError) as excinfo,
    ):
        order_get_payable(order_id=order.pk, customer=order.customer)
    assert error_of(excinfo) == (
        "Conflict",
        409,
        "order_not_payable",
        "This order cannot be paid.",
        {"status": "pending_payment", "payment_deadline": order.payment_deadline.isoformat()},
    )


def test_a_cancelled_order_is_not_payable_and_anothers_is_not_found():
    order = place()
    with pytest.raises(ApplicationError) as excinfo:
        order_get_payable(order_id=order.pk, customer=QuickCustomerFactory())
    assert error_of(excinfo) == ("NotFound", 404, "not_found", "Order not found.", {})
    order_cancel(order_id=order.pk, customer=order.customer)
    with pytest.raises(ApplicationError) as excinfo:
        order_get_payable(order_id=order.pk, customer=order.customer)
    assert error_of(excinfo)[2:] == (
        "order_not_payable",
        "This order cannot be paid.",
        {"status": "cancelled", "payment_deadline": order.payment_deadline.isoformat()},
    )


# --- paid ----------------------------------------------------------------------------------------
def test_marking_a_pickup_order_paid():
    order = place()
    payment = SucceededPaymentFactory(order=order)
    with time_machine.travel(T, tick=False):
        assert order_mark_paid(order_id=order.pk, payment_id=payment.pk) is True
    order.refresh_from_db()
    assert (order.status, order.paid_at, order.paid_payment_id) == ("paid", T, payment.pk)
    assert re.fullmatch(r"\d{8}", order.pickup_code)
    assert list(StockReservation.objects.filter(order=order).values_list("status", flat=True)) == [
        "committed"
    ]
    assert list(
        OrderEvent.objects.filter(order=order, kind="paid").values_list(
            "actor_id", "actor_kind", "from_status", "to_status", "payment_id", "amount"
        )
    ) == [(None, "system", "pending_payment", "paid", payment.pk, 3980)]
    assert list(
        Notification.objects.filter(user=order.customer.user).values_list(
            "kind", "title", "body", "data", "dedupe_key"
        )
    ) == [
        (
            "order_paid",
            "Payment received",
            f"We received your payment for order {order.number}.",
            {"order_id": order.pk, "pickup_code": order.pickup_code},
            f"order:{order.pk}:paid",
        )
    ]


def test_marking_paid_again_answers_for_this_payment_only():
    order = place(mode="courier")
    payment, other = SucceededPaymentFactory(order=order), SucceededPaymentFactory(order=order)
    assert order_mark_paid(order_id=order.pk, payment_id=payment.pk) is True
    assert order_mark_paid(order_id=order.pk, payment_id=payment.pk) is True
    assert order_mark_paid(order_id=order.pk, payment_id=other.pk) is False
    order.refresh_from_db()
    assert (order.paid_payment_id, order.pickup_code) == (payment.pk, None)
    assert OrderEvent.objects.filter(order=order, kind="paid").count() == 1


def test_a_cancelled_order_takes_no_payment():
    order = place()
    payment = SucceededPaymentFactory(order=order)
    order_cancel(order_id=order.pk, customer=order.customer)
    assert order_mark_paid(order_id=order.pk, payment_id=payment.pk) is False
    order.refresh_from_db()
    assert (order.status, order.paid_payment_id, order.paid_at) == ("cancelled", None, None)


def test_the_payable_order_is_the_one_asked_for():
    customer = QuickCustomerFactory()
    first, second = place(customer), place(customer)
    assert order_get_payable(order_id=second.pk, customer=customer).pk == second.pk
    assert order_get_payable(order_id=first.pk, customer=customer).pk == first.pk
