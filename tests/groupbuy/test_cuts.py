"""Bargain cut plans (groupbuy.cuts): pure, no database."""

import re
from itertools import pairwise

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.money import apply_bps
from groupbuy.cuts import cut_plan, new_seed, price_after

MAX_PRICE = 10**7


@st.composite
def plans(draw):
    """Keyword arguments for cut_plan over the whole valid range."""
    helps = draw(st.integers(min_value=2, max_value=200))
    floor_price = draw(st.integers(min_value=1, max_value=MAX_PRICE - helps - 1))
    start_price = draw(st.integers(min_value=floor_price + helps + 1, max_value=MAX_PRICE))
    min_bps, max_bps = sorted(draw(st.lists(st.integers(0, 10_000), min_size=2, max_size=2)))
    return {
        "seed": draw(st.integers()),
        "start_price": start_price,
        "floor_price": floor_price,
        "helps": helps,
        "first_cut_min_bps": min_bps,
        "first_cut_max_bps": max_bps,
    }


VALID = {"seed": 7, "start_price": 10_000, "floor_price": 100, "helps": 10}


@given(kwargs=plans())
def test_every_cut_is_positive_and_the_cuts_sum_to_the_total(kwargs):
    first_cut, help_cuts = cut_plan(**kwargs)
    assert len(help_cuts) == kwargs["helps"]
    assert first_cut >= 1
    assert all(cut >= 1 for cut in help_cuts)
    assert first_cut + sum(help_cuts) == kwargs["start_price"] - kwargs["floor_price"]


@given(kwargs=plans())
def test_price_reaches_the_floor_exactly_at_the_last_help(kwargs):
    first_cut, help_cuts = cut_plan(**kwargs)
    start, floor, helps = kwargs["start_price"], kwargs["floor_price"], kwargs["helps"]
    prices = [
        price_after(start_price=start, first_cut=first_cut, help_cuts=help_cuts, helped=k)
        for k in range(helps + 1)
    ]
    assert prices[0] == start - first_cut
    assert all(prices[k] - prices[k + 1] == help_cuts[k] for k in range(helps))
    assert all(price > floor for price in prices[:-1])
    assert prices[-1] == floor


@given(kwargs=plans())
def test_first_cut_is_within_its_bps_bounds_and_leaves_a_fen_per_help(kwargs):
    first_cut, _ = cut_plan(**kwargs)
    total = kwargs["start_price"] - kwargs["floor_price"]
    low = apply_bps(total, kwargs["first_cut_min_bps"])
    high = apply_bps(total, kwargs["first_cut_max_bps"])
    most = total - kwargs["helps"]
    assert 1 <= first_cut <= most
    if low >= 1 and high <= most:  # the clamp does not apply
        assert low <= first_cut <= high
    else:
        assert min(max(low, 1), most) <= first_cut <= min(max(high, 1), most)


@pytest.mark.parametrize(
    ("min_bps", "max_bps", "expected_first_cut"),
    [(0, 0, 1), (10_000, 10_000, 9_900 - 10), (0, 10_000, None)],
)
def test_first_cut_is_clamped_to_one_fen_and_to_a_fen_per_help(
    min_bps, max_bps, expected_first_cut
):
    kwargs = {**VALID, "first_cut_min_bps": min_bps, "first_cut_max_bps": max_bps}
    for seed in range(50):
        first_cut, help_cuts = cut_plan(**{**kwargs, "seed": seed})
        assert 1 <= first_cut <= 9_900 - 10
        assert all(cut >= 1 for cut in help_cuts)
        if expected_first_cut is not None:
            assert first_cut == expected_first_cut


@given(kwargs=plans())
def test_help_cuts_never_increase(kwargs):
    # The weights never increase and allocate keeps their order, so neither do the cuts;
    # in particular the first half of the helps cuts at least as much as the second half.
    _, help_cuts = cut_plan(**kwargs)
    assert all(a >= b for a, b in pairwise(help_cuts))
    half = len(help_cuts) // 2
    assert sum(help_cuts[:half]) >= sum(help_cuts[-half:])


def test_early_helps_cut_more_than_late_ones():
    _, help_cuts = cut_plan(**{**VALID, "start_price": 1_000_100, "helps": 20})
    assert help_cuts[0] > 2 * help_cuts[-1]


@given(kwargs=plans())
def test_same_seed_and_inputs_give_the_same_plan(kwargs):
    assert cut_plan(**kwargs) == cut_plan(**dict(kwargs))


def test_different_seeds_give_different_plans():
    seeds = range(20)
    plans_by_seed = {cut_plan(**{**VALID, "seed": seed}) for seed in seeds}
    assert len(plans_by_seed) == len(seeds)


def test_a_stored_seed_reproduces_its_plan():
    # Pins the algorithm: changing it (or the order it draws from the seed) would make plans of
    # bargains already under way impossible to reproduce from their stored seeds.
    assert cut_plan(**VALID) == (
        1653,
        (1293, 1285, 1068, 941, 878, 711, 580, 561, 511, 419),
    )


def test_smallest_possible_bargain_cuts_one_fen_each_time():
    for seed in range(20):
        first_cut, help_cuts = cut_plan(seed=seed, start_price=12, floor_price=1, helps=10)
        assert first_cut == 1
        assert help_cuts == (1,) * 10


TOO_SMALL = "cannot give 1 fen to the first cut and each of"


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"helps": 1}, "helps must be at least 2"),
        ({"helps": 0}, "helps must be at least 2"),
        ({"helps": -3}, "helps must be at least 2"),
        ({"start_price": 100}, "start_price 100 must be above floor_price 100"),  # == floor_price
        ({"start_price": 99}, "start_price 99 must be above floor_price 100"),
        ({"floor_price": 0}, "floor_price must be at least 1 fen"),
        ({"floor_price": -1, "start_price": 50}, "floor_price must be at least 1 fen"),
        (
            {"start_price": 110},
            f"a cut of 10 fen {TOO_SMALL} 10 helps",
        ),  # total 10 == helps: no fen for the first cut
        ({"start_price": 105}, f"a cut of 5 fen {TOO_SMALL} 10 helps"),  # total 5 < helps
        ({"first_cut_min_bps": -1}, "first_cut_min_bps must be within 0..10000, got -1"),
        ({"first_cut_max_bps": 10_001}, "first_cut_max_bps must be within 0..10000, got 10001"),
        (
            {"first_cut_min_bps": 10_001, "first_cut_max_bps": 10_001},
            "first_cut_min_bps must be within",
        ),
        ({"first_cut_min_bps": -1, "first_cut_max_bps": -1}, "first_cut_min_bps must be within"),
        (
            {"first_cut_min_bps": 3001, "first_cut_max_bps": 3000},
            "first_cut_min_bps 3001 exceeds first_cut_max_bps 3000",
        ),
        ({"seed": True}, "seed must be an int, got bool"),
        ({"start_price": True}, "start_price must be an int, got bool"),
        ({"floor_price": True, "start_price": 50}, "floor_price must be an int, got bool"),
        ({"helps": True}, "helps must be an int, got bool"),
        ({"first_cut_min_bps": False}, "first_cut_min_bps must be an int, got bool"),
        ({"first_cut_max_bps": True}, "first_cut_max_bps must be an int, got bool"),
        ({"seed": 1.0}, "seed must be an int, got float"),
        ({"start_price": 10_000.0}, "start_price must be an int, got float"),
        ({"floor_price": "100"}, "floor_price must be an int, got str"),
        ({"helps": None}, "helps must be an int, got NoneType"),
        ({"first_cut_max_bps": 3000.0}, "first_cut_max_bps must be an int, got float"),
    ],
)
def test_invalid_arguments_raise_value_error(override, message):
    with pytest.raises(ValueError, match=f"^{re.escape(message)}"):
        cut_plan(**{**VALID, **override})


@pytest.mark.parametrize(
    ("helped", "message"),
    [
        (-1, "helped must be within 0..2, got -1"),
        (3, "helped must be within 0..2, got 3"),
        (True, "helped must be an int, got bool"),
        (1.0, "helped must be an int, got float"),
    ],
)
def test_price_after_rejects_a_count_outside_the_plan(helped, message):
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        price_after(start_price=100, first_cut=10, help_cuts=(5, 3), helped=helped)


def test_the_first_cut_bounds_default_to_10_and_30_percent():
    for seed in range(30):
        kwargs = {**VALID, "seed": seed, "start_price": 1_000_100}
        assert cut_plan(**kwargs) == cut_plan(
            **kwargs, first_cut_min_bps=1000, first_cut_max_bps=3000
        )


def test_each_default_bound_is_the_one_documented():
    # pinning the other bound leaves one possible first cut: 30 % and 10 % of the total
    for seed in range(20):
        kwargs = {**VALID, "seed": seed, "start_price": 10_100}  # total 10 000
        assert cut_plan(**kwargs, first_cut_min_bps=3000)[0] == 3000
        assert cut_plan(**kwargs, first_cut_max_bps=1000)[0] == 1000


def test_new_seed_fits_a_bigint_and_varies():
    seeds = [new_seed() for _ in range(20)]
    assert all(type(seed) is int and 0 <= seed < 2**63 for seed in seeds)
    assert len(set(seeds)) > 1
    cut_plan(**{**VALID, "seed": seeds[0]})
