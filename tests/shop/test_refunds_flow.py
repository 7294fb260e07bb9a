"""refund_for_flow: the system's full refund of a flow's order (a failed group, a withdrawn chain
sign-up entry), one per order whatever the flow reason, approved at once and sent after commit."""

import pytest

from shop.models import OrderEvent, Refund
from shop.services.refunds import (
    FLOW_REFUND_REASONS,
    refund_for_flow,
    refund_issue,
    refund_request,
)
from tests.factories import StaffFactory
from tests.shop.factories_orders import paid, place

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("reason", FLOW_REFUND_REASONS)
def test_a_paid_order_is_refunded_in_full_at_once_and_sent(committed, reason):
    order = paid()

    refund = committed(refund_for_flow, order_id=order.pk, reason=reason)

    refund.refresh_from_db()
    assert (refund.reason, refund.amount, refund.status) == (reason, order.total, "succeeded")
    assert refund.requested_by is None and refund.decided_at is not None


def test_one_flow_refund_per_order_whatever_the_reason(committed):
    order = paid()
    first = committed(refund_for_flow, order_id=order.pk, reason=Refund.Reason.ENTRY_CANCELLED)

    again = committed(refund_for_flow, order_id=order.pk, reason=Refund.Reason.GROUP_FAILED)

    assert again == first
    assert Refund.objects.filter(order=order).count() == 1


def test_an_unpaid_order_gets_no_refund():
    order = place()

    assert refund_for_flow(order_id=order.pk, reason=Refund.Reason.ENTRY_CANCELLED) is None
    assert not Refund.objects.filter(order=order).exists()


def test_the_customers_open_request_is_superseded(committed):
    order = paid()
    asked = refund_request(order_id=order.pk, customer=order.customer, amount=100)

    refund = committed(refund_for_flow, order_id=order.pk, reason=Refund.Reason.ENTRY_CANCELLED)

    asked.refresh_from_db()
    assert asked.status == "rejected"
    assert refund.amount == order.total


def test_a_reason_that_is_not_a_flows_is_refused():
    order = paid()

    with pytest.raises(ValueError):
        refund_for_flow(order_id=order.pk, reason=Refund.Reason.STAFF)
    assert not Refund.objects.filter(order=order).exists()


def test_a_superseded_request_says_why_on_the_orders_timeline(committed):
    order = paid()
    asked = refund_request(order_id=order.pk, customer=order.customer, amount=100)

    committed(refund_for_flow, order_id=order.pk, reason=Refund.Reason.ENTRY_CANCELLED)

    event = OrderEvent.objects.get(refund=asked, kind=OrderEvent.Kind.REFUND_REJECTED)
    assert event.reason == "superseded by entry_cancelled"
    asked.refresh_from_db()
    assert asked.decided_at is not None and "Superseded" in asked.failure_message


def test_with_a_staff_refund_on_its_way_the_flow_refunds_only_what_is_left():
    order = paid()  # two units of 1990: total 3980
    on_its_way = refund_issue(order_id=order.pk, staff=StaffFactory(), amount=500)  # unsent

    refund = refund_for_flow(order_id=order.pk, reason=Refund.Reason.ENTRY_CANCELLED)

    assert on_its_way.status == "approved"
    assert (refund.amount, refund.status) == (order.total - 500, "approved")


def test_after_a_partial_refund_the_flow_refunds_the_rest_beyond_what_is_on_its_way(committed):
    order = paid()
    committed(refund_issue, order_id=order.pk, staff=StaffFactory(), amount=700)  # refunded
    on_its_way = refund_issue(order_id=order.pk, staff=StaffFactory(), amount=300)  # unsent

    refund = refund_for_flow(order_id=order.pk, reason=Refund.Reason.ENTRY_CANCELLED)

    assert on_its_way.status == "approved"
    assert refund.amount == order.total - 700 - 300


def test_nothing_left_beyond_what_is_on_its_way_means_no_refund():
    order = paid()
    refund_issue(order_id=order.pk, staff=StaffFactory(), amount=order.total)  # unsent

    assert refund_for_flow(order_id=order.pk, reason=Refund.Reason.ENTRY_CANCELLED) is None
