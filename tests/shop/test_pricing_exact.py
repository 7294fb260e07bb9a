"""Order pricing on plain values (shop/services/pricing.py): list price → campaign price →
coupons → shipping, exact ints, the allocation of every discount over the lines, stacking and
the best combination. Properties with hypothesis, exact cases by hand."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shop.services import pricing
from shop.services.pricing import (
    FIXED,
    FREE_SHIPPING,
    PERCENT,
    THRESHOLD,
    Applied,
    Offer,
    Pricing,
    PricingLine,
    StackingError,
    best_combination,
    order_price,
)


def lines(*specs: tuple) -> tuple[PricingLine, ...]:
    """``(unit_price, quantity)`` or ``(list_unit_price, unit_price, quantity)`` per line."""
    made = []
    for i, spec in enumerate(specs):
        list_price, price, quantity = spec if len(spec) == 3 else (spec[0], *spec)
        made.append(
            PricingLine(
                sku_id=10 + i,
                product_id=20 + i,
                category_id=30,
                list_unit_price=list_price,
                unit_price=price,
                quantity=quantity,
            )
        )
    return tuple(made)


def assert_ints(result: Pricing) -> None:
    values = [
        result.list_subtotal,
        result.subtotal,
        result.discount,
        result.shipping_fee,
        result.total,
        *result.line_discounts,
        *result.line_totals,
        *(a.discount for a in result.applied),
        *(a.shipping_waived for a in result.applied),
    ]
    assert all(type(value) is int for value in values), values


# --- exact cases ----------------------------------------------------------------------------------
def test_without_coupons_the_order_costs_its_subtotal():
    result = order_price(lines=lines((1000, 1), (300, 2), (1, 1)))
    assert_ints(result)
    assert result == Pricing(
        list_subtotal=1601,
        subtotal=1601,
        discount=0,
        shipping_fee=0,
        total=1601,
        line_discounts=(0, 0, 0),
        line_totals=(1000, 600, 1),
        applied=(),
    )


def test_a_campaign_price_is_charged_and_the_list_price_kept():
    result = order_price(lines=lines((1990, 990, 2), (500, 500, 1)))
    assert_ints(result)
    assert (result.list_subtotal, result.subtotal, result.total) == (4480, 2480, 2480)
    assert result.campaign_discount == 2000
    assert result.line_totals == (1980, 500)


def test_a_fixed_coupon_is_spread_over_the_lines_by_largest_remainder():
    offer = Offer(key=1, kind=FIXED, amount=200)
    result = order_price(lines=lines((1000, 1), (300, 2), (1, 1)), offers=[offer])
    assert_ints(result)
    # shares of 200 over (1000, 600, 1) / 1601: 124.92, 74.95, 0.12 → 124, 74, 0 + 2 leftover
    # to the largest remainders (74.95, then 124.92)
    assert result.line_discounts == (125, 75, 0)
    assert result.line_totals == (875, 525, 1)
    assert (result.discount, result.total) == (200, 1401)
    assert result.applied == (Applied(1, FIXED, 200, 0, (125, 75, 0)),)


def test_a_percentage_coupon_rounds_half_up_and_stops_at_its_cap():
    ten_percent = Offer(key=1, kind=PERCENT, bps=1000)
    assert order_price(lines=lines((1005, 1)), offers=[ten_percent]).discount == 101  # 100.5
    assert order_price(lines=lines((1004, 1)), offers=[ten_percent]).discount == 100  # 100.4
    capped = Offer(key=1, kind=PERCENT, bps=5000, cap=300)
    assert order_price(lines=lines((1000, 1)), offers=[capped]).discount == 300
    assert order_price(lines=lines((500, 1)), offers=[capped]).discount == 250


def test_a_threshold_coupon_takes_its_best_tier_reached():
    tiers = Offer(key=1, kind=THRESHOLD, tiers=((10000, 1000), (20000, 2500), (5000, 300)))
    assert order_price(lines=lines((4999, 1)), offers=[tiers]).discount == 0
    assert order_price(lines=lines((5000, 1)), offers=[tiers]).discount == 300
    assert order_price(lines=lines((19999, 1)), offers=[tiers]).discount == 1000
    assert order_price(lines=lines((20000, 1)), offers=[tiers]).discount == 2500


def test_min_spend_counts_only_the_eligible_lines():
    offer = Offer(key=1, kind=FIXED, amount=100, min_spend=1000, eligible=frozenset({11}))
    # line 10 (2000) is not eligible; line 11 (999) is, and is short of 1000
    assert order_price(lines=lines((2000, 1), (999, 1)), offers=[offer]).discount == 0
    result = order_price(lines=lines((2000, 1), (1000, 1)), offers=[offer])
    assert result.line_discounts == (0, 100)


def test_a_scoped_coupon_discounts_only_its_lines():
    offer = Offer(key=1, kind=PERCENT, bps=5000, eligible=frozenset({10}))
    result = order_price(lines=lines((1000, 1), (1000, 1)), offers=[offer])
    assert result.line_discounts == (500, 0)
    assert result.total == 1500


def test_coupons_never_take_the_goods_below_the_minimum_payable():
    result = order_price(
        lines=lines((1000, 1), (300, 2)), offers=[Offer(key=1, kind=FIXED, amount=10**9)]
    )
    assert (result.discount, result.total) == (1599, 1)
    assert result.line_totals == (1, 0)
    free = order_price(
        lines=lines((1000, 1)), offers=[Offer(key=1, kind=FIXED, amount=5000)], min_payable=0
    )
    assert free.total == 0


def test_the_exclusive_code_applies_on_what_the_platform_coupon_left():
    platform = Offer(key=1, kind=PERCENT, bps=1000)  # 10 % of 2000 = 200
    exclusive = Offer(key="code:KOC", kind=FIXED, slot="exclusive", amount=500)
    result = order_price(lines=lines((1000, 2)), offers=[exclusive, platform])
    assert [a.key for a in result.applied] == [1, "code:KOC"]
    assert [a.discount for a in result.applied] == [200, 500]
    assert result.total == 1300


def test_free_shipping_waives_the_fee_from_its_minimum_spend():
    ship = Offer(key=2, kind=FREE_SHIPPING, slot="shipping", min_spend=1500)
    short = order_price(lines=lines((1000, 1)), offers=[ship], shipping_fee=800)
    assert (short.shipping_fee, short.total, short.applied[0].shipping_waived) == (800, 1800, 0)
    enough = order_price(lines=lines((1500, 1)), offers=[ship], shipping_fee=800)
    assert (enough.shipping_fee, enough.total, enough.saved) == (0, 1500, 800)
    assert enough.line_totals == (1500,)  # shipping belongs to no line


@pytest.mark.parametrize(
    "offers",
    [
        [Offer(key=1, kind=FIXED, amount=1), Offer(key=2, kind=PERCENT, bps=1)],  # one platform
        [Offer(key=1, kind=FIXED, amount=1), Offer(key=1, kind=FIXED, slot="exclusive", amount=1)],
        [
            Offer(key=1, kind=FIXED, amount=1, stackable=False),
            Offer(key=2, kind=FREE_SHIPPING, slot="shipping"),
        ],
        [
            Offer(key=1, kind=FREE_SHIPPING, slot="shipping"),
            Offer(key=2, kind=FREE_SHIPPING, slot="shipping"),
        ],
    ],
)
def test_offers_that_do_not_stack_are_refused(offers):
    with pytest.raises(StackingError) as excinfo:
        order_price(lines=lines((1000, 1)), offers=offers)
    assert excinfo.value.code == "coupon_not_stackable"


def test_a_platform_coupon_and_an_exclusive_code_and_free_shipping_stack():
    offers = [
        Offer(key=1, kind=FIXED, amount=100),
        Offer(key=2, kind=PERCENT, slot="exclusive", bps=1000),
        Offer(key=3, kind=FREE_SHIPPING, slot="shipping"),
    ]
    result = order_price(lines=lines((1000, 1)), offers=offers, shipping_fee=600)
    assert (result.discount, result.shipping_fee, result.total) == (190, 0, 810)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (dict(kind="bogus"), "unknown coupon kind 'bogus'"),
        (dict(kind=FIXED, slot="bogus"), "unknown coupon slot 'bogus'"),
        (dict(kind=FREE_SHIPPING), "free shipping, and only it, takes the shipping slot"),
        (dict(kind=FIXED, slot="shipping"), "free shipping, and only it, takes the shipping slot"),
        (dict(kind=FIXED, amount=-1), "coupon amounts and rates are non-negative integers"),
        (dict(kind=FIXED, amount=1.0), "coupon amounts and rates are non-negative integers"),
        (dict(kind=FIXED, amount=True), "coupon amounts and rates are non-negative integers"),
        (dict(kind=PERCENT, bps=10_001), "a percentage coupon takes at most 100 %"),
        (dict(kind=PERCENT, bps=100, cap=-1), "coupon amounts and rates are non-negative integers"),
    ],
)
def test_malformed_offers_are_programming_errors(bad, message):
    with pytest.raises(ValueError) as excinfo:
        Offer(key=1, **bad)
    assert str(excinfo.value) == message


def test_what_an_offer_reaches_at_the_edges():
    assert Offer(key=1, kind=FIXED, amount=5).reach(1) == 1
    assert Offer(key=1, kind=FIXED, amount=5).reach(0) == 0
    assert Offer(key=1, kind=FREE_SHIPPING, slot="shipping").reach(1000) == 0
    assert Offer(key=1, kind=PERCENT, bps=10_000, cap=500).reach(300) == 300


def test_a_stacking_error_says_why():
    with pytest.raises(StackingError) as excinfo:
        order_price(
            lines=lines((1000, 1)),
            offers=[Offer(key=1, kind=FIXED, amount=1), Offer(key=2, kind=PERCENT, bps=1)],
        )
    assert str(excinfo.value) == (
        "At most one platform coupon, one exclusive code and one free-shipping coupon."
    )


def test_the_best_combination_passes_shipping_and_the_minimum_payable_on():
    cart = lines((1000, 1))
    ship = Offer(key="ship", kind=FREE_SHIPPING, slot="shipping")
    big = Offer(key="big", kind=FIXED, amount=5000)
    best = best_combination(lines=cart, offers=[ship, big], shipping_fee=600, min_payable=0)
    assert [a.key for a in best.applied] == ["big", "ship"]
    assert (best.shipping_fee, best.total, best.saved) == (0, 0, 1600)
    plain = best_combination(lines=cart, offers=[big])
    assert (plain.shipping_fee, plain.total) == (0, 1)  # defaults: no fee, 1 fen payable


def test_among_equal_combinations_the_first_offered_wins():
    cart = lines((1000, 1))
    a = Offer(key="a", kind=FIXED, amount=100)
    b = Offer(key="b", kind=FIXED, amount=100)
    assert [x.key for x in best_combination(lines=cart, offers=[a, b]).applied] == ["a"]
    assert [x.key for x in best_combination(lines=cart, offers=[b, a]).applied] == ["b"]


@pytest.mark.parametrize(
    "bad",
    [
        lines((1000, 0)),
        lines((1000, 1001, 1)),  # a campaign price above the list price
        lines((1000, -1, 1)),
        (PricingLine(sku_id=1, product_id=1, list_unit_price=10, unit_price=1.5, quantity=1),),
        (),
    ],
)
def test_malformed_lines_are_programming_errors(bad):
    with pytest.raises(ValueError):
        order_price(lines=bad)


def test_negative_shipping_or_minimum_is_refused():
    with pytest.raises(ValueError):
        order_price(lines=lines((1, 1)), shipping_fee=-1)
    with pytest.raises(ValueError):
        order_price(lines=lines((1, 1)), min_payable=-1)


def test_the_best_combination_saves_most_and_breaks_ties_by_fewer_coupons_then_rank():
    cart = lines((6000, 1))
    small = Offer(key="small", kind=FIXED, amount=300, rank=(1,))
    big = Offer(key="big", kind=THRESHOLD, tiers=((5000, 800),), rank=(2,))
    useless = Offer(key="useless", kind=FIXED, amount=100, min_spend=99999, rank=(0,))
    code = Offer(key="code", kind=FIXED, slot="exclusive", amount=200, rank=(3,))
    ship = Offer(key="ship", kind=FREE_SHIPPING, slot="shipping", rank=(4,))
    best = best_combination(lines=cart, offers=[small, big, useless, code, ship], shipping_fee=0)
    # free shipping saves nothing without a fee: not used
    assert [a.key for a in best.applied] == ["big", "code"]
    assert best.total == 5000
    # ties: the same saving from either coupon → the lower rank (earlier expiry) wins
    early = Offer(key="early", kind=FIXED, amount=300, rank=(1,))
    late = Offer(key="late", kind=FIXED, amount=300, rank=(9,))
    assert [a.key for a in best_combination(lines=cart, offers=[late, early]).applied] == ["early"]
    # a saving of 0 is no combination at all
    assert best_combination(lines=cart, offers=[useless]).applied == ()


def test_every_allowed_combination_is_enumerated_once():
    offers = [
        Offer(key=1, kind=FIXED, amount=1),
        Offer(key=2, kind=PERCENT, bps=1),
        Offer(key=3, kind=FIXED, slot="exclusive", amount=1),
        Offer(key=4, kind=FREE_SHIPPING, slot="shipping"),
    ]
    combos = pricing.combinations(offers)
    # platform: none/1/2, exclusive: none/3, shipping: none/4
    keys = sorted(tuple(o.key for o in combo) for combo in combos)
    assert keys == sorted(
        [(), (1,), (2,), (3,), (4,), (1, 3), (1, 4), (2, 3), (2, 4), (3, 4), (1, 3, 4), (2, 3, 4)]
    )
    # a coupon that does not stack stands alone
    alone = Offer(key=5, kind=PERCENT, bps=1, stackable=False)
    keys = sorted(tuple(o.key for o in c) for c in pricing.combinations([alone, offers[2]]))
    assert keys == [(), (3,), (5,)]


# --- properties -----------------------------------------------------------------------------------
line_specs = st.lists(
    st.tuples(
        st.integers(min_value=1, max_value=100_000),  # list price
        st.integers(min_value=0, max_value=100),  # campaign share of the list price, %
        st.integers(min_value=1, max_value=999),  # quantity
    ),
    min_size=1,
    max_size=8,
)
platform_offers = st.one_of(
    st.builds(Offer, key=st.just(1), kind=st.just(FIXED), amount=st.integers(0, 10**7)),
    st.builds(
        Offer,
        key=st.just(1),
        kind=st.just(PERCENT),
        bps=st.integers(0, 10_000),
        cap=st.one_of(st.none(), st.integers(0, 10**7)),
    ),
    st.builds(
        Offer,
        key=st.just(1),
        kind=st.just(THRESHOLD),
        tiers=st.lists(st.tuples(st.integers(0, 10**7), st.integers(0, 10**7)), max_size=3).map(
            tuple
        ),
    ),
)


def cart_of(specs) -> tuple[PricingLine, ...]:
    return lines(*((p, max(p * share // 100, 1), q) for p, share, q in specs))


@given(
    specs=line_specs,
    platform=st.one_of(st.none(), platform_offers),
    exclusive=st.one_of(st.none(), st.integers(0, 10**7)),
    eligible=st.one_of(st.none(), st.frozensets(st.integers(10, 17))),
    shipping=st.integers(0, 2000),
    free_shipping=st.booleans(),
    min_payable=st.integers(0, 100),
)
def test_no_line_goes_below_zero_and_every_discount_adds_up_exactly(
    specs, platform, exclusive, eligible, shipping, free_shipping, min_payable
):
    cart = cart_of(specs)
    offers = []
    if platform is not None:
        offers.append(
            Offer(**{**platform.__dict__, "eligible": eligible})  # same offer, scoped
        )
    if exclusive is not None:
        offers.append(Offer(key=2, kind=FIXED, slot="exclusive", amount=exclusive))
    if free_shipping:
        offers.append(Offer(key=3, kind=FREE_SHIPPING, slot="shipping"))
    result = order_price(lines=cart, offers=offers, shipping_fee=shipping, min_payable=min_payable)
    assert_ints(result)
    assert all(paid >= 0 for paid in result.line_totals)
    assert all(0 <= d <= line.subtotal for d, line in zip(result.line_discounts, cart))
    assert sum(result.line_discounts) == result.discount == sum(a.discount for a in result.applied)
    assert sum(result.line_totals) == result.subtotal - result.discount
    assert result.total == sum(result.line_totals) + result.shipping_fee
    assert result.subtotal <= result.list_subtotal
    assert sum(result.line_totals) >= min(min_payable, result.subtotal)
    for applied in result.applied:
        assert sum(applied.line_discounts) == applied.discount
        if eligible is not None and applied.key == 1:
            assert all(
                share == 0
                for share, line in zip(applied.line_discounts, cart)
                if line.sku_id not in eligible
            )
    assert 0 <= result.shipping_fee <= shipping


@given(specs=line_specs, amounts=st.lists(st.integers(0, 10**6), min_size=1, max_size=4))
def test_the_best_combination_is_never_beaten_by_a_single_offer(specs, amounts):
    cart = cart_of(specs)
    offers = [Offer(key=i, kind=FIXED, amount=a, rank=(i,)) for i, a in enumerate(amounts)]
    best = best_combination(lines=cart, offers=offers)
    for offer in offers:
        assert best.saved >= order_price(lines=cart, offers=[offer]).saved
