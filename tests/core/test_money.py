from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.money import allocate, apply_bps, format_minor

weights_st = st.lists(st.integers(min_value=0, max_value=10**9), min_size=1, max_size=50).filter(
    lambda ws: sum(ws) > 0
)


@given(total=st.integers(min_value=0, max_value=10**15), weights=weights_st)
def test_allocate_parts_sum_to_total_and_are_non_negative(total, weights):
    parts = allocate(total, weights)
    assert sum(parts) == total
    assert len(parts) == len(weights)
    assert all(p >= 0 for p in parts)


@given(total=st.integers(min_value=0, max_value=10**15), weights=weights_st)
def test_allocate_each_part_within_one_unit_of_exact_share(total, weights):
    parts = allocate(total, weights)
    s = sum(weights)
    for part, w in zip(parts, weights, strict=True):
        # exact share = total*w/s; the part is its floor or floor + 1
        assert total * w // s <= part <= total * w // s + 1
        if w == 0:
            assert part == 0


@given(total=st.integers(min_value=0, max_value=10**12), weights=weights_st)
def test_allocate_is_deterministic(total, weights):
    assert allocate(total, weights) == allocate(total, list(weights))


@given(total=st.integers(min_value=0, max_value=10**12), weights=weights_st, k=st.integers(1, 1000))
def test_allocate_is_scale_invariant_in_weights(total, weights, k):
    assert allocate(total, weights) == allocate(total, [w * k for w in weights])


def test_allocate_ties_go_to_earlier_positions():
    assert allocate(100, [1, 1, 1]) == [34, 33, 33]
    assert allocate(2, [1, 1, 1]) == [1, 1, 0]


def test_allocate_largest_remainder_wins_the_leftover():
    # exact shares 3.3, 3.6, 3.1 -> floors 3, 3, 3 and the one leftover goes to the .6
    assert allocate(10, [33, 36, 31]) == [3, 4, 3]


@pytest.mark.parametrize(("total", "weights"), [(-1, [1]), (5, []), (5, [1, -1]), (5, [0, 0])])
def test_allocate_rejects_bad_input(total, weights):
    with pytest.raises(ValueError):
        allocate(total, weights)


def test_allocate_zero_over_zero_weights_is_zeros():
    assert allocate(0, [0, 0]) == [0, 0]


def _is_int(value) -> bool:
    """Money is an int, never a float that happens to compare equal (123.0 == 123)."""
    return type(value) is int


def test_apply_bps_rounds_half_up():
    assert apply_bps(10_000, 1_000) == 1_000
    assert apply_bps(5, 1_000) == 1  # 0.5 -> 1
    assert apply_bps(4, 1_000) == 0  # 0.4 -> 0
    assert apply_bps(15, 1_000) == 2  # 1.5 -> 2
    assert apply_bps(14, 1_000) == 1  # 1.4 -> 1
    assert all(_is_int(apply_bps(a, b)) for a, b in [(10_000, 1_000), (5, 1_000), (1, 1)])


@pytest.mark.parametrize(
    ("amount", "bps", "expected"),
    [(0, 0, 0), (0, 10_000, 0), (12_345, 0, 0), (12_345, 10_000, 12_345), (1, 5_000, 1)],
)
def test_apply_bps_boundaries(amount, bps, expected):
    result = apply_bps(amount, bps)
    assert result == expected
    assert _is_int(result)


@pytest.mark.parametrize(("amount", "bps"), [(-1, 100), (100, -1), (-1, -1)])
def test_apply_bps_refuses_negative_input(amount, bps):
    with pytest.raises(ValueError, match="non-negative"):
        apply_bps(amount, bps)


@given(amount=st.integers(0, 10**15), bps=st.integers(0, 100_000))
def test_apply_bps_is_exact_half_up_rounding_as_an_int(amount, bps):
    exact = Fraction(amount * bps, 10_000)
    result = apply_bps(amount, bps)
    assert _is_int(result)
    assert result - exact < Fraction(1, 2) + Fraction(1, 10**9)
    assert exact - result <= Fraction(1, 2)
    assert result == int(exact + Fraction(1, 2))  # ties go up


@given(total=st.integers(min_value=0, max_value=10**15), weights=weights_st)
def test_allocate_parts_are_ints(total, weights):
    assert all(_is_int(part) for part in allocate(total, weights))


def test_format_minor():
    assert format_minor(12345) == "123.45 CNY"
    assert format_minor(-5) == "-0.05 CNY"
    assert format_minor(0) == "0.00 CNY"
    assert format_minor(100, "USD") == "1.00 USD"
    assert format_minor(-12345) == "-123.45 CNY"
