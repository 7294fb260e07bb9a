"""Order pricing on plain values: exact ints, the hooks' contract, the discount's allocation."""

import re

import pytest

from shop.services import pricing
from shop.services.pricing import Pricing, PricingContext, PricingLine, order_price


def context(*lines: tuple[int, int], coupon_code: str = "") -> PricingContext:
    return PricingContext(
        customer="customer",
        community="community",
        coupon_code=coupon_code,
        lines=tuple(
            PricingLine(sku_id=10 + i, product_id=20 + i, unit_price=price, quantity=quantity)
            for i, (price, quantity) in enumerate(lines)
        ),
    )


def assert_ints(result: Pricing) -> None:
    values = [result.subtotal, result.discount, result.total, *result.line_totals]
    assert all(type(value) is int for value in values), values


def test_without_hooks_the_order_costs_its_subtotal(monkeypatch):
    monkeypatch.setattr(pricing, "DISCOUNT_HOOKS", [])
    ctx = context((1000, 1), (300, 2), (1, 1))
    assert [line.subtotal for line in ctx.lines] == [1000, 600, 1]
    assert ctx.subtotal == 1601

    result = order_price(context=ctx)

    assert result == Pricing(subtotal=1601, discount=0, total=1601, line_totals=(1000, 600, 1))
    assert_ints(result)


def test_the_hooks_discounts_are_added_and_spread_over_the_lines_by_largest_remainder(
    monkeypatch,
):
    seen = []

    def coupon(ctx):
        seen.append(ctx)
        return 150

    monkeypatch.setattr(pricing, "DISCOUNT_HOOKS", [coupon, lambda ctx: 50, lambda ctx: 0])
    ctx = context((1000, 1), (300, 2), (1, 1), coupon_code="SPRING")

    result = order_price(context=ctx)

    # exact shares of 200: 124.92, 74.95, 0.12 -> floors 124, 74, 0; the 2 left over go to .95, .92
    assert result == Pricing(subtotal=1601, discount=200, total=1401, line_totals=(875, 525, 1))
    assert_ints(result)
    assert seen == [ctx]


def test_a_discount_is_capped_at_the_subtotal(monkeypatch):
    monkeypatch.setattr(pricing, "DISCOUNT_HOOKS", [lambda ctx: 1000, lambda ctx: 700])
    result = order_price(context=context((1000, 1), (300, 2)))
    assert result == Pricing(subtotal=1600, discount=1600, total=0, line_totals=(0, 0))
    assert_ints(result)


def test_a_discount_equal_to_the_subtotal_is_kept(monkeypatch):
    monkeypatch.setattr(pricing, "DISCOUNT_HOOKS", [lambda ctx: 1599])
    result = order_price(context=context((1000, 1), (300, 2)))
    assert result == Pricing(subtotal=1600, discount=1599, total=1, line_totals=(1, 0))


@pytest.mark.parametrize("bad", [-1, 1.5, 10.0, True, "5", None])
def test_a_hook_must_return_an_int_of_zero_or_more(monkeypatch, bad):
    def hook(ctx):
        return bad

    monkeypatch.setattr(pricing, "DISCOUNT_HOOKS", [hook])
    message = f"discount hook {hook!r} returned {bad!r}, not an int >= 0"
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        order_price(context=context((1000, 1)))


def test_an_empty_context_costs_nothing(monkeypatch):
    monkeypatch.setattr(pricing, "DISCOUNT_HOOKS", [])
    assert order_price(context=context()) == Pricing(
        subtotal=0, discount=0, total=0, line_totals=()
    )
