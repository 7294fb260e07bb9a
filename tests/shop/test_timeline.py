"""The order timeline: one row per transition, payment, refund step and pickup, with who, when,
from -> to and why; in the staff order API and the admin."""

from datetime import timedelta

import pytest
import time_machine
from django.test import Client

from shop.models import OrderEvent
from shop.services.orders import orders_complete_due, orders_expire_due
from tests.factories import StaffFactory
from tests.shop.factories_orders import place, quick_pickup_point

pytestmark = pytest.mark.django_db


def _timeline(operator, order_id: int) -> list[tuple]:
    response = operator.get(f"/api/v1/staff/orders/{order_id}")
    assert response.status_code == 200, response.content
    return [
        (e["kind"], e["actor_kind"], e["actor_id"], e["from_status"], e["to_status"], e["reason"])
        for e in response.json()["timeline"]
    ]


def test_a_whole_journey_through_the_api(
    customer, shopper, operator, staff, client_for, django_capture_on_commit_callbacks
):
    point = quick_pickup_point()
    sku_body = {"delivery_mode": "pickup", "pickup_point_id": point.pk}
    from tests.factories import SkuFactory

    sku = SkuFactory(price=1000, stock=10)
    order = shopper.post(
        "/api/v1/orders", json={**sku_body, "lines": [{"sku_id": sku.pk, "quantity": 2}]}
    ).json()
    payment = shopper.post(f"/api/v1/orders/{order['id']}/pay").json()
    with django_capture_on_commit_callbacks(execute=True):
        shopper.post(f"/api/v1/payments/{payment['id']}/confirm")
    code = shopper.get(f"/api/v1/orders/{order['id']}").json()["pickup_code"]
    leader = point.community.leader.user
    assert client_for(leader).post("/api/v1/pickup/verify", json={"code": code}).status_code == 200
    refund = shopper.post(f"/api/v1/orders/{order['id']}/refunds", json={"amount": 500}).json()
    with django_capture_on_commit_callbacks(execute=True):
        operator.post(f"/api/v1/staff/refunds/{refund['id']}/approve")
    shopper.post(f"/api/v1/orders/{order['id']}/confirm-receipt")

    user = customer.user_id
    assert _timeline(operator, order["id"]) == [
        ("placed", "customer", user, "", "pending_payment", ""),
        ("payment_started", "customer", user, "pending_payment", "pending_payment", "sandbox"),
        ("paid", "system", None, "pending_payment", "paid", ""),
        ("pickup_verified", "leader", leader.pk, "paid", "fulfilled", ""),
        ("refund_requested", "customer", user, "fulfilled", "fulfilled", "customer_request"),
        ("refund_approved", "staff", staff.pk, "fulfilled", "fulfilled", "customer_request"),
        ("refund_succeeded", "system", None, "fulfilled", "fulfilled", "customer_request"),
        ("completed", "customer", user, "fulfilled", "completed", "receipt_confirmed"),
    ]
    events = operator.get(f"/api/v1/staff/orders/{order['id']}").json()["timeline"]
    assert [e["payment_id"] for e in events[1:3]] == [payment["id"], payment["id"]]
    assert (events[6]["refund_id"], events[6]["amount"]) == (refund["id"], 500)
    assert events[3]["actor_name"] == leader.username
    assert all(e["at"] for e in events)


def test_staff_cancel_and_the_expiry_sweep_are_recorded_with_their_actor(operator, staff):
    by_staff, expired = place(), place()

    operator.post(f"/api/v1/staff/orders/{by_staff.pk}/cancel")
    with time_machine.travel(expired.payment_deadline + timedelta(seconds=1)):
        orders_expire_due()

    assert _timeline(operator, by_staff.pk)[-1] == (
        "cancelled",
        "staff",
        staff.pk,
        "pending_payment",
        "cancelled",
        "staff",
    )
    assert _timeline(operator, expired.pk)[-1] == (
        "cancelled",
        "system",
        None,
        "pending_payment",
        "cancelled",
        "expired",
    )


def test_a_staff_refund_of_units_and_the_auto_completion(
    operator, staff, django_capture_on_commit_callbacks
):
    from tests.shop.factories_orders import fulfilled

    refunded, kept = fulfilled(mode="courier"), fulfilled(mode="courier")
    line_id = refunded.lines.get().pk
    with django_capture_on_commit_callbacks(execute=True):
        operator.post(
            f"/api/v1/staff/orders/{refunded.pk}/refunds",
            json={"lines": [{"order_line_id": line_id, "quantity": 2}]},
        )
    with time_machine.travel(kept.auto_complete_at + timedelta(days=30)):
        orders_complete_due()

    assert [row[:5] for row in _timeline(operator, refunded.pk)][-2:] == [
        ("refund_approved", "staff", staff.pk, "fulfilled", "fulfilled"),
        ("refund_succeeded", "system", None, "fulfilled", "refunded"),
    ]
    assert _timeline(operator, kept.pk)[-1] == (
        "completed",
        "system",
        None,
        "fulfilled",
        "completed",
        "after_sale_window",
    )


def test_a_rolled_back_transition_leaves_no_row(operator):
    order = place()
    operator.post(f"/api/v1/staff/orders/{order.pk}/fulfil")  # unpaid: 409

    assert list(OrderEvent.objects.filter(order=order).values_list("kind", flat=True)) == ["placed"]


def test_the_admin_shows_the_timeline(staff):
    order = place()
    admin = Client()
    admin.force_login(StaffFactory())

    page = admin.get(f"/admin/shop/order/{order.pk}/change/").content.decode()

    assert "timeline" in page.lower()
    assert "Order placed" in page
