"""Exact outcomes of the order services (shop/services/orders.py): every error's code, message
and details, who the timeline names, what the customer is told, and the order in which the
sweeps handle due orders. Written to kill the mutants `make mutate` left alive there."""

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.conf import settings
from django.contrib.auth.models import Permission

from core.errors import ApplicationError
from core.models import Notification
from shop.models import Address, CouponTemplate, Order, OrderEvent
from shop.services.orders import (
    lock_order,
    order_cancel,
    order_complete,
    order_fulfil,
    order_verify_pickup,
    orders_complete_due,
    orders_expire_due,
)
from shop.services.refunds import refund_request
from tests.factories import (
    AddressFactory,
    CommunityFactory,
    SkuFactory,
    StaffFactory,
    UserFactory,
)
from tests.shop.factories_coupons import coupon_for
from tests.shop.factories_orders import (
    QuickCustomerFactory,
    QuickUserFactory,
    fulfilled,
    paid,
    place,
    quick_pickup_point,
)

pytestmark = pytest.mark.django_db

T = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
Kind = OrderEvent.Kind


def error_of(excinfo) -> tuple:
    error = excinfo.value
    return (type(error).__name__, error.status, error.code, error.message, error.details)


def timeline(order) -> list[tuple]:
    return list(
        OrderEvent.objects.filter(order=order)
        .order_by("pk")
        .values_list("kind", "actor_id", "actor_kind", "from_status", "to_status", "reason")
    )


def notes(user) -> list[tuple]:
    return list(
        Notification.objects.filter(user=user)
        .order_by("pk")
        .values_list("kind", "title", "body", "data", "dedupe_key")
    )


def clerk():
    """Staff with ``shop.change_order`` only: not a superuser, so the permission itself counts."""
    user = UserFactory(is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="change_order"))
    return user


# --- lookups and create ---------------------------------------------------------------------------
def test_a_missing_order_is_not_found():
    with pytest.raises(ApplicationError) as excinfo:
        lock_order(order_id=10**9)
    assert error_of(excinfo) == ("NotFound", 404, "not_found", "Order not found.", {})


@pytest.mark.parametrize("mode", ["courier", "leader_delivery"])
def test_an_order_in_an_inactive_community_is_refused(mode):
    community = CommunityFactory(leader=QuickCustomerFactory(), is_active=False)
    sku = SkuFactory(stock=10)
    with pytest.raises(ApplicationError) as excinfo:
        place(lines=[(sku, 1)], mode=mode, community_id=community.pk)
    assert error_of(excinfo) == (
        "InvalidInput",
        422,
        "community_inactive",
        "This community is not active.",
        {},
    )
    assert Order.objects.count() == 0


def test_an_order_in_an_unknown_community_is_refused():
    with pytest.raises(ApplicationError) as excinfo:
        place(mode="courier", community_id=10**9)
    assert error_of(excinfo) == (
        "NotFound",
        404,
        "community_not_found",
        "Community not found.",
        {},
    )


# --- cancel -------------------------------------------------------------------------------------
def test_the_customer_cancelling_is_the_actor_and_is_not_notified():
    order = place()
    order_cancel(order_id=order.pk, customer=order.customer)
    assert timeline(order)[-1] == (
        Kind.CANCELLED,
        order.customer.user_id,
        "customer",
        "pending_payment",
        "cancelled",
        "customer",
    )
    assert notes(order.customer.user) == []


def test_an_explicit_actor_is_kept_even_with_the_customer_given():
    order = place()
    staff = StaffFactory()
    order_cancel(order_id=order.pk, customer=order.customer, reason="staff", actor=staff)
    assert timeline(order)[-1] == (
        Kind.CANCELLED,
        staff.pk,
        "staff",
        "pending_payment",
        "cancelled",
        "staff",
    )
    assert notes(order.customer.user) == [
        (
            "order_cancelled",
            "Order cancelled",
            f"Order {order.number} has been cancelled.",
            {"order_id": order.pk, "reason": "staff"},
            f"order:{order.pk}:cancelled",
        )
    ]


def test_an_expired_order_is_cancelled_by_the_system_and_the_customer_told():
    order = place()
    with time_machine.travel(order.payment_deadline + timedelta(seconds=1), tick=False):
        assert orders_expire_due() == 1
    order.refresh_from_db()
    assert (order.status, order.cancel_reason) == ("cancelled", "expired")
    assert timeline(order)[-1] == (
        Kind.CANCELLED,
        None,
        "system",
        "pending_payment",
        "cancelled",
        "expired",
    )
    assert notes(order.customer.user) == [
        (
            "order_cancelled",
            "Order expired",
            f"Order {order.number} was not paid in time and has been cancelled.",
            {"order_id": order.pk, "reason": "expired"},
            f"order:{order.pk}:cancelled",
        )
    ]


def _cancelled_order_ids() -> list[int]:
    return list(
        OrderEvent.objects.filter(kind=Kind.CANCELLED)
        .order_by("pk")
        .values_list("order_id", flat=True)
    )


def test_the_expiry_sweep_handles_the_oldest_deadline_first():
    first, second = place(), place()
    Order.objects.filter(pk=first.pk).update(payment_deadline=T + timedelta(minutes=5))
    Order.objects.filter(pk=second.pk).update(payment_deadline=T)
    with time_machine.travel(T + timedelta(hours=1), tick=False):
        assert orders_expire_due() == 2
    assert _cancelled_order_ids() == [second.pk, first.pk]


def test_the_expiry_sweep_breaks_deadline_ties_by_id():
    with time_machine.travel(T, tick=False):
        first, second = place(), place()
    # the first row is rewritten last, so a scan meets it after the second one
    Order.objects.filter(pk=first.pk).update(note="rewritten")
    with time_machine.travel(T + timedelta(hours=1), tick=False):
        assert orders_expire_due() == 2
    assert _cancelled_order_ids() == [first.pk, second.pk]


# --- fulfil ------------------------------------------------------------------------------------
def test_fulfilment_names_the_staff_member_and_tells_the_customer():
    order = paid(mode="courier")
    staff = StaffFactory()
    with time_machine.travel(T, tick=False):
        order_fulfil(order_id=order.pk, actor=staff)
    order.refresh_from_db()
    assert (order.status, order.fulfilled_at, order.auto_complete_at) == (
        "fulfilled",
        T,
        T + settings.AFTER_SALE_WINDOW,
    )
    assert timeline(order)[-1] == (Kind.FULFILLED, staff.pk, "staff", "paid", "fulfilled", "")
    assert notes(order.customer.user)[-1] == (
        "order_fulfilled",
        "Order delivered",
        f"Order {order.number} has been handed over.",
        {"order_id": order.pk},
        f"order:{order.pk}:fulfilled",
    )


def test_fulfilment_waits_for_an_open_refund():
    order = paid(mode="courier")
    refund_request(order_id=order.pk, customer=order.customer)
    with pytest.raises(ApplicationError) as excinfo:
        order_fulfil(order_id=order.pk, actor=StaffFactory())
    assert error_of(excinfo) == (
        "Conflict",
        409,
        "refund_in_progress",
        "Decide the open refund of this order first.",
        {},
    )
    assert Order.objects.get(pk=order.pk).status == "paid"


def test_a_leader_of_another_community_may_not_fulfil():
    order = paid(mode="leader_delivery")
    outsider = CommunityFactory(leader=QuickCustomerFactory()).leader.user
    with pytest.raises(ApplicationError) as excinfo:
        order_fulfil(order_id=order.pk, actor=outsider)
    assert error_of(excinfo) == (
        "PermissionDenied",
        403,
        "not_community_leader",
        "Only the leader of this order's community or staff may do this.",
        {},
    )


def test_a_leader_may_not_fulfil_a_courier_order_by_hand():
    community = CommunityFactory(leader=QuickCustomerFactory())
    order = paid(mode="courier", community_id=community.pk)
    with pytest.raises(ApplicationError) as excinfo:
        order_fulfil(order_id=order.pk, actor=community.leader.user)
    assert error_of(excinfo) == (
        "PermissionDenied",
        403,
        "fulfilment_not_allowed",
        "Community leaders may not fulfil this kind of order.",
        {"delivery_mode": "courier"},
    )
    assert Order.objects.get(pk=order.pk).status == "paid"


# --- pickup codes ------------------------------------------------------------------------------
def test_staff_redeeming_a_code_is_recorded_as_staff():
    order = paid()
    user = clerk()
    with time_machine.travel(T, tick=False):
        order_verify_pickup(code=f" {order.pickup_code} ", actor=user)
    order.refresh_from_db()
    assert (order.status, order.fulfilled_at) == ("fulfilled", T)
    assert timeline(order)[-1] == (
        Kind.PICKUP_VERIFIED,
        user.pk,
        "staff",
        "paid",
        "fulfilled",
        "",
    )


def test_a_leader_redeeming_a_code_is_recorded_as_leader():
    point = quick_pickup_point()
    order = paid(pickup_point=point)
    leader = point.community.leader.user
    order_verify_pickup(code=order.pickup_code, actor=leader)
    assert timeline(order)[-1] == (
        Kind.PICKUP_VERIFIED,
        leader.pk,
        "leader",
        "paid",
        "fulfilled",
        "",
    )


def test_someone_who_leads_no_community_may_not_redeem_codes():
    order = paid()
    with pytest.raises(ApplicationError) as excinfo:
        order_verify_pickup(code=order.pickup_code, actor=QuickUserFactory())
    assert error_of(excinfo) == (
        "PermissionDenied",
        403,
        "not_community_leader",
        "Only community leaders and staff redeem pickup codes.",
        {},
    )
    assert Order.objects.get(pk=order.pk).status == "paid"


@pytest.mark.parametrize("code", [None, "", "   "])
def test_no_code_is_an_invalid_code(code):
    paid()
    with pytest.raises(ApplicationError) as excinfo:
        order_verify_pickup(code=code, actor=clerk())
    assert error_of(excinfo) == (
        "NotFound",
        404,
        "pickup_code_invalid",
        "No order has this pickup code.",
        {},
    )


def test_a_code_on_an_order_that_is_not_for_pickup_is_invalid():
    order = paid(mode="courier")
    Order.objects.filter(pk=order.pk).update(pickup_code="12345678")
    with pytest.raises(ApplicationError) as excinfo:
        order_verify_pickup(code="12345678", actor=clerk())
    assert error_of(excinfo)[2] == "pickup_code_invalid"
    assert Order.objects.get(pk=order.pk).status == "paid"


def test_a_redeemed_code_is_refused_with_when():
    order = paid()
    with time_machine.travel(T, tick=False):
        order_verify_pickup(code=order.pickup_code, actor=clerk())
    with pytest.raises(ApplicationError) as excinfo:
        order_verify_pickup(code=order.pickup_code, actor=clerk())
    assert error_of(excinfo) == (
        "Conflict",
        409,
        "already_redeemed",
        "This pickup code was already redeemed.",
        {"redeemed_at": "2030-01-01T12:00:00+00:00"},
    )


# --- complete ----------------------------------------------------------------------------------
def test_the_customer_confirming_receipt_is_recorded():
    order = fulfilled(mode="courier")
    order_complete(order_id=order.pk, customer=order.customer)
    assert timeline(order)[-1] == (
        Kind.COMPLETED,
        order.customer.user_id,
        "customer",
        "fulfilled",
        "completed",
        "receipt_confirmed",
    )


def test_staff_completing_is_recorded_without_an_actor():
    order = fulfilled(mode="courier")
    with time_machine.travel(T, tick=False):
        order_complete(order_id=order.pk)
    order.refresh_from_db()
    assert (order.status, order.completed_at) == ("completed", T)
    assert timeline(order)[-1] == (
        Kind.COMPLETED,
        None,
        "system",
        "fulfilled",
        "completed",
        "completed",
    )


def _completed_order_ids() -> list[int]:
    return list(
        OrderEvent.objects.filter(kind=Kind.COMPLETED)
        .order_by("pk")
        .values_list("order_id", flat=True)
    )


def test_the_completion_sweep_handles_the_oldest_window_first():
    first, second = fulfilled(mode="courier"), fulfilled(mode="courier")
    Order.objects.filter(pk=first.pk).update(auto_complete_at=T + timedelta(minutes=5))
    Order.objects.filter(pk=second.pk).update(auto_complete_at=T)
    with time_machine.travel(T + timedelta(hours=1), tick=False):
        assert orders_complete_due() == 2
    assert _completed_order_ids() == [second.pk, first.pk]
    assert timeline(first)[-1] == (
        Kind.COMPLETED,
        None,
        "system",
        "fulfilled",
        "completed",
        "after_sale_window",
    )


def test_the_completion_sweep_breaks_window_ties_by_id():
    first, second = fulfilled(mode="courier"), fulfilled(mode="courier")
    Order.objects.filter(pk__in=[first.pk, second.pk]).update(auto_complete_at=T)
    Order.objects.filter(pk=first.pk).update(note="rewritten")
    with time_machine.travel(T + timedelta(hours=1), tick=False):
        assert orders_complete_due() == 2
    assert _completed_order_ids() == [first.pk, second.pk]


def test_an_open_refund_of_another_order_does_not_hold_fulfilment():
    other = paid(mode="courier")
    refund_request(order_id=other.pk, customer=other.customer)
    order = paid(mode="courier")
    assert order_fulfil(order_id=order.pk, actor=StaffFactory()).status == "fulfilled"


def test_a_pickup_code_is_eight_digits_drawn_below_ten_to_the_eighth(monkeypatch):
    # the largest draw secrets can make for each bound: the code must still be 8 digits
    bounds = []

    def highest(bound):
        bounds.append(bound)
        return bound - 1

    monkeypatch.setattr("shop.services.orders.secrets.randbelow", highest)
    with time_machine.travel(T, tick=False):
        order = paid()
    assert order.pickup_code == "99999999"
    assert order.number == "300101" + "9" * 14
    assert bounds == [10**14, 10**8]


def test_checkout_prices_each_line_for_the_customer_s_coupon_in_the_order_s_community():
    # given: a coupon of the customer, for this community and this SKU's category only
    point = quick_pickup_point()
    customer = QuickCustomerFactory()
    sku = SkuFactory(price=700, stock=10)
    other = SkuFactory(price=300, stock=10)
    coupon = coupon_for(
        customer,
        amount=150,
        scope=CouponTemplate.Scope.CATEGORIES,
        categories=[sku.product.category],
        communities=[point.community],
    )
    # when
    order = place(customer, [(sku, 3), (other, 1)], pickup_point=point, coupon_ids=[coupon.pk])
    # then: the discount sits on the eligible line only, the note defaults to ""
    assert list(
        order.lines.order_by("sku_id").values_list("sku_id", "unit_price", "discount", "line_total")
    ) == [(sku.pk, 700, 150, 1950), (other.pk, 300, 0, 300)]
    assert (order.community_id, order.discount, order.total) == (point.community_id, 150, 2250)
    assert (order.note, Order.objects.get(pk=order.pk).note) == ("", "")


def test_nine_hundred_ninety_nine_units_is_the_most_a_line_may_hold():
    sku = SkuFactory(price=1, stock=1000)
    order = place(lines=[(sku, 999)])
    assert list(order.lines.values_list("quantity", flat=True)) == [999]


def test_the_chosen_address_is_the_one_snapshotted():
    customer = QuickCustomerFactory()
    AddressFactory(customer=customer, detail="1 First Road")
    chosen = AddressFactory(customer=customer, detail="2 Second Road")
    order = place(customer, mode="courier", address_id=chosen.pk)
    assert Order.objects.get(pk=order.pk).shipping_address == chosen.snapshot()
    assert Address.objects.filter(customer=customer).count() == 2
