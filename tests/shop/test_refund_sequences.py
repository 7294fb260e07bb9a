"""Refunds of any sequence of lines and amounts (hypothesis, on PostgreSQL): no line ever gives
back more than it paid (amount or units), the order never more than its total, each refund's
parts add up to it, and a refused refund is a clear error that changes nothing."""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.errors import ApplicationError
from shop.models import Order, OrderLine, Refund, RefundLine
from shop.services.refunds import refund_issue, refund_mark_succeeded
from tests.factories import SkuFactory, StaffFactory
from tests.shop.factories_coupons import coupon_for
from tests.shop.factories_orders import QuickCustomerFactory, paid

pytestmark = pytest.mark.django_db

step = st.one_of(
    st.tuples(st.just("amount"), st.integers(min_value=-5, max_value=6000)),
    st.tuples(
        st.just("lines"),
        st.lists(
            st.tuples(st.integers(min_value=0, max_value=2), st.integers(min_value=0, max_value=4)),
            min_size=1,
            max_size=3,
        ),
    ),
)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    prices=st.lists(
        st.tuples(st.integers(min_value=1, max_value=2000), st.integers(min_value=1, max_value=3)),
        min_size=1,
        max_size=3,
    ),
    discount=st.integers(min_value=0, max_value=1500),
    steps=st.lists(step, min_size=1, max_size=6),
)
def test_no_sequence_of_refunds_gives_back_more_than_was_paid(prices, discount, steps):
    customer = QuickCustomerFactory()
    skus = [SkuFactory(price=price, stock=10) for price, _ in prices]
    subtotal = sum(price * quantity for price, quantity in prices)
    # a coupon must take something off: at most the subtotal less the 1 fen still payable
    coupon_ids = [coupon_for(customer, amount=discount).pk] if discount and subtotal > 1 else []
    order = paid(
        customer,
        lines=[(sku, quantity) for sku, (_, quantity) in zip(skus, prices, strict=True)],
        mode="courier",
        coupon_ids=coupon_ids,
    )
    lines = list(OrderLine.objects.filter(order=order).order_by("pk"))
    staff = StaffFactory()
    for kind, value in steps:
        before = list(OrderLine.objects.filter(order=order).values_list("refunded_amount"))
        try:
            if kind == "amount":
                refund = refund_issue(order_id=order.pk, staff=staff, amount=value)
            else:
                wanted = [
                    {"order_line_id": lines[i % len(lines)].pk, "quantity": q} for i, q in value
                ]
                refund = refund_issue(order_id=order.pk, staff=staff, lines=wanted)
        except ApplicationError as refused:
            assert 400 <= refused.status < 500
            after = list(OrderLine.objects.filter(order=order).values_list("refunded_amount"))
            assert after == before  # nothing changed
            continue
        parts = list(RefundLine.objects.filter(refund=refund).values_list("amount", flat=True))
        assert sum(parts) == refund.amount > 0
        assert all(type(p) is int and p >= 0 for p in parts)
        refund_mark_succeeded(refund_id=refund.pk)
    order = Order.objects.get(pk=order.pk)
    for line in OrderLine.objects.filter(order=order):
        assert 0 <= line.refunded_amount <= line.line_total
        assert 0 <= line.refunded_quantity <= line.quantity
    succeeded = Refund.objects.filter(order=order, status=Refund.Status.SUCCEEDED)
    assert order.refunded_amount == sum(r.amount for r in succeeded) <= order.total
    # the lines account for every fen and unit given back
    line_rows = list(OrderLine.objects.filter(order=order))
    assert sum(line.refunded_amount for line in line_rows) == order.refunded_amount
    parts = RefundLine.objects.filter(refund__in=succeeded)
    assert sum(line.refunded_quantity for line in line_rows) == sum(
        parts.values_list("quantity", flat=True)
    )
