"""Attribution races on real PostgreSQL, threads released on a barrier, exact outcomes: one
order delivered many times at once, one customer's orders attributed at once, rule versions
saved at once."""

from contextlib import contextmanager
from datetime import timedelta

import pytest
from django.utils import timezone

from core import outbox
from core.models import OutboxEvent
from referral import subscribers
from referral.models import Attribution, AttributionLevel, AttributionRule, Binding, Click
from referral.services.attribution import order_attribute
from referral.services.rules_admin import rule_version_create
from shop import events as shop_events
from shop.models import Order
from tests.conftest import run_in_threads
from tests.referral.factories import make_distributor
from tests.referral.test_attribution import click, exclusive_code, link_of, use_rule
from tests.shop.factories_orders import QuickCustomerFactory, pay, place

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

DAY = timedelta(days=1)


@contextmanager
def attribution_held_back():
    """Orders paid inside are not attributed by the outbox (their payloads are handed to the
    threads instead)."""
    outbox.unsubscribe(shop_events.ORDER_PAID, subscribers.on_order_paid_attribute)
    try:
        yield
    finally:
        outbox.subscribe(shop_events.ORDER_PAID, subscribers.on_order_paid_attribute)


def paid_payload(customer, **order_fields) -> dict:
    order = place(customer, **order_fields)
    pay(order)
    return shop_events.order_paid_payload(Order.objects.get(pk=order.pk))


def failures(results) -> list:
    return [r for r in results if isinstance(r, Exception)]


@pytest.mark.parametrize("model", ["last_touch", "binding"])
def test_one_order_paid_delivered_by_10_threads_at_once_is_attributed_once(model):
    # given
    use_rule(model)
    upline = make_distributor()
    koc = make_distributor(upline=upline)
    buyer = QuickCustomerFactory()
    click(link_of(koc), at=timezone.now() - DAY, customer=buyer)
    exclusive_code(koc, "RACE-CODE")
    with attribution_held_back():
        payload = paid_payload(buyer, coupon_code="RACE-CODE")
    # when
    results = run_in_threads(10, lambda _: order_attribute(order_paid=payload).pk)
    # then
    assert failures(results) == []
    assert len(set(results)) == 1
    assert Attribution.objects.filter(order_id=payload["order_id"]).count() == 1
    assert AttributionLevel.objects.filter(attribution_id=results[0]).count() == 2
    events = OutboxEvent.objects.filter(
        name="order_attributed", payload__order_id=payload["order_id"]
    )
    assert events.count() == 1
    assert Click.objects.filter(kind="code", customer=buyer).count() == 1
    assert Binding.objects.filter(customer=buyer).count() == (1 if model == "binding" else 0)


def test_ten_orders_of_one_customer_attributed_at_once_share_one_consistent_binding():
    # given: bound by the first click; another distributor's later click is inside the window
    use_rule("binding", binding_days=30)
    first, intruder = make_distributor(), make_distributor()
    buyer = QuickCustomerFactory()
    now = timezone.now()
    first_click = click(link_of(first), at=now - 3 * DAY, customer=buyer)
    click(link_of(intruder), at=now - DAY, customer=buyer)
    with attribution_held_back():
        payloads = [paid_payload(buyer) for _ in range(10)]
    # when
    results = run_in_threads(10, lambda i: order_attribute(order_paid=payloads[i]).distributor_id)
    # then
    assert failures(results) == []
    assert results == [first.pk] * 10
    [binding] = Binding.objects.filter(customer=buyer)
    assert (binding.distributor_id, binding.click_id) == (first.pk, first_click.pk)
    assert binding.bound_at == binding.last_touch_at == first_click.occurred_at
    assert Attribution.objects.filter(customer=buyer).count() == 10


def test_rule_versions_saved_at_once_get_consecutive_numbers():
    # given
    use_rule("last_touch")
    starts = timezone.now() + DAY
    # when
    results = run_in_threads(
        10,
        lambda i: (
            rule_version_create(
                actor=None,
                model="binding",
                binding_days=10 + i,
                click_window_days=7,
                code_overrides_link=True,
                self_purchase="self",
                effective_from=starts,
                note=f"operator {i}",
            ).version
        ),
    )
    # then
    assert failures(results) == []
    assert sorted(results) == list(range(2, 12))
    assert AttributionRule.objects.count() == 11
