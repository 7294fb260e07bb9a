"""Coupon races on real PostgreSQL, threads with their own connections, exact outcomes: the last
coupons of a limited batch, one customer's limit, one coupon on concurrent orders, the last
redemption of a shared code, two workers running one issuance."""

import pytest

from core.errors import ApplicationError
from shop.models import CouponCode, CouponIssuance, CouponTemplate, CustomerCoupon, Order
from shop.services.coupons import coupon_claim, coupon_issuance_run
from shop.services.orders import order_create
from tests.conftest import run_in_threads
from tests.factories import SkuFactory
from tests.shop.factories_coupons import CouponCodeFactory, CouponTemplateFactory, coupon_for
from tests.shop.factories_orders import QuickCustomerFactory, quick_pickup_point
from tests.shop.test_order_races import codes, gated

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]
N = 20


def test_the_last_coupon_of_a_limited_batch_goes_to_exactly_one_claimer():
    template = CouponTemplateFactory(total_quantity=5, issued_count=4)
    claimers = [QuickCustomerFactory() for _ in range(N)]

    results = run_in_threads(
        N, gated(lambda i: coupon_claim(customer=claimers[i], template_id=template.pk))
    )

    winners = [r for r in results if isinstance(r, CustomerCoupon)]
    assert len(winners) == 1
    assert codes(results) == ["CustomerCoupon"] + ["coupon_sold_out"] * (N - 1)
    template.refresh_from_db()
    assert template.issued_count == 5
    assert CustomerCoupon.objects.filter(template=template).count() == 1


def test_a_batch_of_seven_among_twenty_claimers():
    template = CouponTemplateFactory(total_quantity=7)
    claimers = [QuickCustomerFactory() for _ in range(N)]

    results = run_in_threads(
        N, gated(lambda i: coupon_claim(customer=claimers[i], template_id=template.pk))
    )

    assert codes(results) == ["CustomerCoupon"] * 7 + ["coupon_sold_out"] * (N - 7)
    assert CustomerCoupon.objects.filter(template=template).count() == 7
    assert CouponTemplate.objects.get(pk=template.pk).issued_count == 7


def test_one_customer_claiming_at_once_stays_within_the_limit():
    template = CouponTemplateFactory(per_customer_limit=2)
    customer = QuickCustomerFactory()

    results = run_in_threads(
        10, gated(lambda i: coupon_claim(customer=customer, template_id=template.pk))
    )

    assert codes(results) == ["CustomerCoupon"] * 2 + ["coupon_limit_reached"] * 8
    assert CustomerCoupon.objects.filter(template=template, customer=customer).count() == 2
    assert CouponTemplate.objects.get(pk=template.pk).issued_count == 2


def test_one_coupon_on_concurrent_orders_pays_exactly_one():
    customer = QuickCustomerFactory()
    coupon = coupon_for(customer, amount=100)
    sku = SkuFactory(stock=100)
    point = quick_pickup_point()

    results = run_in_threads(
        10,
        gated(
            lambda i: order_create(
                customer=customer,
                lines=[(sku.pk, 1)],
                delivery_mode="pickup",
                pickup_point_id=point.pk,
                coupon_ids=[coupon.pk],
            )
        ),
    )

    winners = [r for r in results if isinstance(r, Order)]
    losers = [r for r in results if isinstance(r, ApplicationError)]
    assert len(winners) == 1 and len(losers) == 9
    assert {r.code for r in losers} == {"coupon_unavailable"}
    assert {r.details["reason"] for r in losers} <= {"race_lost", "locked"}
    coupon.refresh_from_db()
    assert (coupon.status, coupon.order_id) == ("locked", winners[0].pk)
    assert Order.objects.count() == 1
    assert Order.objects.get().discount == 100


def test_the_last_redemption_of_a_shared_code_goes_to_exactly_one_order():
    code = CouponCodeFactory(code="LAST", max_redemptions=5, redemptions=4)
    sku = SkuFactory(stock=100)
    point = quick_pickup_point()
    buyers = [QuickCustomerFactory() for _ in range(N)]

    results = run_in_threads(
        N,
        gated(
            lambda i: order_create(
                customer=buyers[i],
                lines=[(sku.pk, 1)],
                delivery_mode="pickup",
                pickup_point_id=point.pk,
                coupon_code="LAST",
            )
        ),
    )

    assert codes(results) == ["Order"] + ["coupon_unavailable"] * (N - 1)
    assert CouponCode.objects.get(pk=code.pk).redemptions == 5
    assert CustomerCoupon.objects.filter(code=code).count() == 1
    assert Order.objects.filter(coupon_code="LAST").count() == 1


def test_two_workers_running_one_issuance_give_each_customer_one_coupon():
    customers = [QuickCustomerFactory() for _ in range(30)]
    template = CouponTemplateFactory(channel="issued", per_customer_limit=3, total_quantity=25)
    issuance = CouponIssuance.objects.create(
        template=template, segment="customers", params={"customer_ids": [c.pk for c in customers]}
    )

    results = run_in_threads(
        3, gated(lambda i: coupon_issuance_run(issuance_id=issuance.pk, batch_size=4))
    )

    assert all(isinstance(r, CouponIssuance) for r in results), results
    issuance.refresh_from_db()
    assert (issuance.status, issuance.issued, issuance.skipped) == ("done", 25, 5)
    given = list(
        CustomerCoupon.objects.filter(issuance=issuance).values_list("customer_id", flat=True)
    )
    assert len(given) == len(set(given)) == 25
    assert CouponTemplate.objects.get(pk=template.pk).issued_count == 25


# --- the lock helpers the coupon services use ----------------------------------------------------
def test_the_coupon_lock_helpers_hold_their_rows_until_commit():
    from django.db import transaction

    from shop import locks
    from shop.models import Customer
    from tests.shop.test_locks import is_locked

    template = CouponTemplateFactory(channel="issued")
    issuance = CouponIssuance.objects.create(template=template, segment="new_customers")
    a, b = QuickCustomerFactory(), QuickCustomerFactory()

    with transaction.atomic():
        assert locks.lock_coupon_template(template.pk) == template
        assert locks.lock_coupon_issuance(issuance.pk) == issuance
        assert locks.lock_customers([b.pk, a.pk, 10**9]) == sorted([a.pk, b.pk])
        assert is_locked(CouponTemplate, template.pk)
        assert is_locked(CouponIssuance, issuance.pk)
        assert is_locked(Customer, a.pk) and is_locked(Customer, b.pk)
    assert not is_locked(CouponTemplate, template.pk)
    assert not is_locked(Customer, a.pk)


def test_one_customer_typing_a_code_in_two_checkouts_at_once_gets_one_coupon():
    """Each round: one buyer, 8 checkouts at once with the same shared code. The customer's lock
    makes them one after the other: one order, the others a clear 409 (never a unique-index
    error from two coupons of one code)."""
    code = CouponCodeFactory(code="TWICE", max_redemptions=100)
    sku = SkuFactory(stock=100)
    point = quick_pickup_point()
    for _round in range(3):
        buyer = QuickCustomerFactory()
        results = run_in_threads(
            8,
            gated(
                lambda i, buyer=buyer: order_create(
                    customer=buyer,
                    lines=[(sku.pk, 1)],
                    delivery_mode="pickup",
                    pickup_point_id=point.pk,
                    coupon_code="TWICE",
                )
            ),
        )
        assert codes(results) == ["Order"] + ["coupon_unavailable"] * 7
        assert CustomerCoupon.objects.filter(code=code, customer=buyer).count() == 1
    assert CouponCode.objects.get(pk=code.pk).redemptions == 3
