from datetime import timedelta

import pytest
import time_machine
from django.conf import settings
from django.contrib.auth.models import Permission
from django.utils import timezone

from core.errors import ApplicationError
from core.models import Notification
from shop.models import Order, StockReservation
from shop.services.orders import (
    order_cancel,
    order_complete,
    order_fulfil,
    order_get_payable,
    order_mark_paid,
    orders_complete_due,
    orders_expire_due,
)
from shop.services.refunds import refund_request
from tests.core.utils import assert_error
from tests.factories import (
    CommunityFactory,
    CustomerFactory,
    PickupPointFactory,
    SkuFactory,
    StaffFactory,
    UserFactory,
)
from tests.shop.factories_orders import (
    SucceededPaymentFactory,
    fulfilled,
    paid,
    pay,
    place,
    stock_of,
)

pytestmark = pytest.mark.django_db

VERIFY = "/api/v1/pickup/verify"


def fulfil_url(order):
    return f"/api/v1/staff/orders/{order.pk}/fulfil"


def notifications(user, kind):
    return list(Notification.objects.filter(user=user, kind=kind))


# --- payment ----------------------------------------------------------------------------------
def test_mark_paid_commits_the_reservation_and_gives_a_pickup_code():
    # given
    sku = SkuFactory(stock=10)
    order = place(lines=[(sku, 3)])
    payment = SucceededPaymentFactory(order=order)
    # when
    assert order_mark_paid(order_id=order.pk, payment_id=payment.pk) is True
    # then
    order.refresh_from_db()
    assert order.status == "paid"
    assert order.paid_at is not None
    assert order.paid_payment_id == payment.pk
    assert len(order.pickup_code) == 8 and order.pickup_code.isdigit()
    assert set(order.reservations.values_list("status", flat=True)) == {"committed"}
    assert stock_of(sku) == 7
    [note] = notifications(order.customer.user, "order_paid")
    assert note.title == "Payment received"
    assert note.data["order_id"] == order.pk


def test_mark_paid_is_idempotent_for_the_same_payment_and_refuses_another():
    order = place()
    first = pay(order)
    code = order.pickup_code

    assert order_mark_paid(order_id=order.pk, payment_id=first.pk) is True
    second = SucceededPaymentFactory(order=order)
    assert order_mark_paid(order_id=order.pk, payment_id=second.pk) is False

    order.refresh_from_db()
    assert (order.paid_payment_id, order.pickup_code) == (first.pk, code)
    assert len(notifications(order.customer.user, "order_paid")) == 1


def test_courier_orders_get_no_pickup_code():
    order = paid(mode="courier")
    assert order.pickup_code is None


def test_a_cancelled_order_refuses_payment_and_keeps_its_stock_released():
    sku = SkuFactory(stock=5)
    order = place(lines=[(sku, 2)])
    order_cancel(order_id=order.pk)
    payment = SucceededPaymentFactory(order=order)

    assert order_mark_paid(order_id=order.pk, payment_id=payment.pk) is False

    order.refresh_from_db()
    assert order.status == "cancelled"
    assert stock_of(sku) == 5


def test_payment_after_the_deadline_is_accepted_until_the_expiry_job_ran():
    order = place()
    with time_machine.travel(
        timezone.now() + settings.STOCK_RESERVATION_TTL + timedelta(minutes=1)
    ):
        payment = SucceededPaymentFactory(order=order)
        assert order_mark_paid(order_id=order.pk, payment_id=payment.pk) is True
        assert orders_expire_due() == 0
    order.refresh_from_db()
    assert order.status == "paid"


def test_get_payable():
    customer = CustomerFactory()
    order = place(customer)
    assert order_get_payable(order_id=order.pk, customer=customer) == order

    with pytest.raises(ApplicationError) as exc:
        order_get_payable(order_id=order.pk, customer=CustomerFactory())
    assert (exc.value.status, exc.value.code) == (404, "not_found")

    with (
        time_machine.travel(order.payment_deadline + timedelta(seconds=1)),
        pytest.raises(ApplicationError) as exc,
    ):
        order_get_payable(order_id=order.pk, customer=customer)
    assert (exc.value.status, exc.value.code) == (409, "order_not_payable")

    pay(order)
    with pytest.raises(ApplicationError) as exc:
        order_get_payable(order_id=order.pk, customer=customer)
    assert exc.value.details["status"] == "paid"


# --- expiry -------------------------------------------------------------------------------------
def test_expiry_job_cancels_due_orders_releases_stock_and_notifies_once():
    # given: one order past its deadline, one not yet, one paid
    sku = SkuFactory(stock=10)
    due = place(lines=[(sku, 2)])
    with time_machine.travel(timezone.now() + timedelta(minutes=10)):
        fresh = place(lines=[(sku, 1)])
    settled = paid(lines=[(sku, 3)])
    # when
    with time_machine.travel(due.payment_deadline + timedelta(seconds=1)):
        assert orders_expire_due() == 1
        assert orders_expire_due() == 0  # a rerun is harmless
    # then
    due.refresh_from_db()
    assert (due.status, due.cancel_reason) == ("cancelled", "expired")
    assert due.cancelled_at is not None
    assert Order.objects.get(pk=fresh.pk).status == "pending_payment"
    assert Order.objects.get(pk=settled.pk).status == "paid"
    assert stock_of(sku) == 10 - 1 - 3
    assert set(due.reservations.values_list("status", flat=True)) == {"released"}
    [note] = notifications(due.customer.user, "order_cancelled")
    assert note.title == "Order expired"


def test_expiry_job_runs_through_batches(monkeypatch):
    from shop.services import orders as orders_service

    monkeypatch.setattr(orders_service, "SWEEP_BATCH", 2)
    sku = SkuFactory(stock=10)
    for _ in range(5):
        place(lines=[(sku, 1)])
    with time_machine.travel(
        timezone.now() + settings.STOCK_RESERVATION_TTL + timedelta(seconds=1)
    ):
        assert orders_expire_due() == 5
    assert stock_of(sku) == 10
    assert not StockReservation.objects.filter(status="active").exists()


def test_expiry_task_is_the_service():
    from shop.tasks import orders_expire_due as task

    place()
    with time_machine.travel(
        timezone.now() + settings.STOCK_RESERVATION_TTL + timedelta(seconds=1)
    ):
        assert task.delay().get(disable_sync_subtasks=False) == 1


# --- fulfilment: staff, leader, pickup code ------------------------------------------------
def test_staff_fulfil_a_courier_order_which_starts_the_after_sale_window(operator):
    order = paid(mode="courier")
    now = timezone.now()
    with time_machine.travel(now, tick=False):
        r = operator.post(fulfil_url(order))
    assert r.status_code == 200, r.content
    assert r.json()["status"] == "fulfilled"
    order.refresh_from_db()
    assert order.fulfilled_at == now
    assert order.auto_complete_at == now + settings.AFTER_SALE_WINDOW
    assert len(notifications(order.customer.user, "order_fulfilled")) == 1
    # fulfilling again returns it unchanged
    assert operator.post(fulfil_url(order)).json()["fulfilled_at"] == r.json()["fulfilled_at"]


def test_fulfilling_an_unpaid_order_is_an_illegal_transition(operator):
    order = place(mode="courier")
    r = operator.post(fulfil_url(order))
    assert r.status_code == 409
    assert r.json()["error"] == {
        "code": "illegal_transition",
        "message": "An order that is pending_payment cannot become fulfilled.",
        "details": {"from": "pending_payment", "to": "fulfilled"},
    }


def test_staff_without_change_order_cannot_fulfil(client_for):
    order = paid(mode="courier")
    clerk = UserFactory(is_staff=True)
    assert client_for(clerk).post(fulfil_url(order)).status_code == 403
    clerk.user_permissions.add(Permission.objects.get(codename="change_order"))
    assert client_for(clerk).post(fulfil_url(order)).status_code == 200


def test_the_community_leader_fulfils_leader_delivery_orders_only(client_for):
    community = CommunityFactory()
    leader = client_for(community.leader.user)
    delivery = paid(mode="leader_delivery", community_id=community.pk)
    courier = paid(mode="courier", community_id=community.pk)
    elsewhere = paid(mode="leader_delivery")

    assert leader.post(fulfil_url(delivery)).status_code == 200
    r = leader.post(fulfil_url(courier))
    assert (r.status_code, r.json()["error"]["code"]) == (403, "fulfilment_not_allowed")
    r = leader.post(fulfil_url(elsewhere))
    assert (r.status_code, r.json()["error"]["code"]) == (403, "not_community_leader")


def test_a_shopper_cannot_fulfil(shopper):
    order = paid(mode="courier")
    assert shopper.post(fulfil_url(order)).status_code == 403
    assert Order.objects.get(pk=order.pk).status == "paid"


def test_leader_verifies_a_pickup_code_and_the_order_is_fulfilled(client_for):
    # given
    point = PickupPointFactory()
    order = paid(pickup_point=point)
    leader = client_for(point.community.leader.user)
    # when
    r = leader.post(VERIFY, json={"code": order.pickup_code})
    # then
    assert r.status_code == 200, r.content
    assert (r.json()["id"], r.json()["status"]) == (order.pk, "fulfilled")
    order.refresh_from_db()
    assert order.auto_complete_at == order.fulfilled_at + settings.AFTER_SALE_WINDOW
    # a second scan is refused, saying when the code was redeemed
    again = leader.post(VERIFY, json={"code": order.pickup_code})
    error = assert_error(again, 409, "already_redeemed")
    assert error["details"] == {"redeemed_at": order.fulfilled_at.isoformat()}


def test_wrong_pickup_code_is_404(client_for):
    point = PickupPointFactory()
    order = paid(pickup_point=point)
    wrong = "0" * 8 if order.pickup_code != "0" * 8 else "1" * 8
    r = client_for(point.community.leader.user).post(VERIFY, json={"code": wrong})
    assert (r.status_code, r.json()["error"]["code"]) == (404, "pickup_code_invalid")


def test_another_communitys_code_answers_like_an_unknown_code(client_for):
    order = paid(pickup_point=PickupPointFactory())
    other_leader = client_for(CommunityFactory().leader.user)
    unknown = "0" * 8 if order.pickup_code != "0" * 8 else "1" * 8
    theirs = other_leader.post(VERIFY, json={"code": order.pickup_code})
    missing = other_leader.post(VERIFY, json={"code": unknown})
    assert (theirs.status_code, theirs.json()) == (missing.status_code, missing.json())
    assert_error(theirs, 404, "pickup_code_invalid")
    # someone who leads no community is refused before any code is looked up
    assert (
        client_for(CustomerFactory().user)
        .post(VERIFY, json={"code": order.pickup_code})
        .status_code
        == 403
    )
    assert Order.objects.get(pk=order.pk).status == "paid"


def test_staff_with_change_order_verify_any_pickup_code(operator):
    order = paid()
    r = operator.post(VERIFY, json={"code": order.pickup_code})
    assert r.json()["status"] == "fulfilled"


def test_fulfilment_waits_for_an_open_refund(operator):
    order = paid(mode="courier")
    refund_request(order_id=order.pk, customer=order.customer)
    r = operator.post(fulfil_url(order))
    assert (r.status_code, r.json()["error"]["code"]) == (409, "refund_in_progress")


# --- completion ----------------------------------------------------------------------------------
def test_customer_confirms_receipt(client_for):
    order = fulfilled(mode="courier")
    shopper = client_for(order.customer.user)
    r = shopper.post(f"/api/v1/orders/{order.pk}/confirm-receipt")
    assert r.status_code == 200
    assert r.json()["status"] == "completed"
    assert r.json()["completed_at"] is not None
    assert shopper.post(f"/api/v1/orders/{order.pk}/confirm-receipt").status_code == 200


def test_fulfilled_orders_complete_after_the_after_sale_window():
    order = fulfilled(mode="courier")
    early = paid(mode="courier")
    with time_machine.travel(order.auto_complete_at - timedelta(seconds=1)):
        assert orders_complete_due() == 0
    with time_machine.travel(order.auto_complete_at + timedelta(seconds=1)):
        assert orders_complete_due() == 1
        assert orders_complete_due() == 0
    order.refresh_from_db()
    assert order.status == "completed"
    assert Order.objects.get(pk=early.pk).status == "paid"


def test_completed_order_cannot_be_cancelled_or_fulfilled_again():
    order = fulfilled(mode="courier")
    order_complete(order_id=order.pk)
    with pytest.raises(ApplicationError) as exc:
        order_cancel(order_id=order.pk)
    assert exc.value.details == {"from": "completed", "to": "cancelled"}
    assert order_fulfil(order_id=order.pk, actor=StaffFactory()).status == "completed"


# --- admin ------------------------------------------------------------------------------------
def test_admin_lists_orders_and_its_actions_call_the_services():
    from django.test import Client

    admin = Client()
    admin.force_login(StaffFactory())
    courier = paid(mode="courier")
    unpaid = place()
    refund = refund_request(order_id=courier.pk, customer=courier.customer, amount=100)

    assert admin.get("/admin/shop/order/", {"q": courier.number}).status_code == 200
    assert admin.get(f"/admin/shop/order/{courier.pk}/change/").status_code == 200
    assert admin.get("/admin/shop/refund/").status_code == 200
    assert admin.get(f"/admin/shop/refund/{refund.pk}/change/").status_code == 200

    # fulfilling waits for the open refund: reported, nothing changes
    admin.post(
        "/admin/shop/order/", {"action": "fulfil", "_selected_action": [courier.pk]}, follow=True
    )
    assert Order.objects.get(pk=courier.pk).status == "paid"

    admin.post("/admin/shop/refund/", {"action": "reject", "_selected_action": [refund.pk]})
    admin.post("/admin/shop/order/", {"action": "fulfil", "_selected_action": [courier.pk]})
    admin.post("/admin/shop/order/", {"action": "cancel", "_selected_action": [unpaid.pk]})
    assert Order.objects.get(pk=courier.pk).status == "fulfilled"
    assert Order.objects.get(pk=unpaid.pk).cancel_reason == "staff"


def test_admin_approves_a_refund(django_capture_on_commit_callbacks):
    from django.test import Client

    from shop.models import Payment, Refund

    operator = StaffFactory()
    admin = Client()
    admin.force_login(operator)
    order = paid()  # through the sandbox provider, which pays a refund back at once
    refund = refund_request(order_id=order.pk, customer=order.customer, amount=100)
    # when: the admin action approves it; the real refund_send task runs after commit (eager)
    with django_capture_on_commit_callbacks(execute=True):
        admin.post("/admin/shop/refund/", {"action": "approve", "_selected_action": [refund.pk]})
    # then: sent to the provider and applied to the order, once
    refund = Refund.objects.get(pk=refund.pk)
    assert (refund.status, refund.decided_by_id, refund.provider_ref) == (
        "succeeded",
        operator.pk,
        f"sandbox_re_{refund.pk}",
    )
    order.refresh_from_db()
    assert (order.status, order.refunded_amount) == ("partially_refunded", 100)
    assert Payment.objects.get(pk=order.paid_payment_id).refunded_amount == 100
