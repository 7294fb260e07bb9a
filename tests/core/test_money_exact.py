"""Money primitives: which bad input is refused, and with what message (tests/core/test_money.py
has the properties)."""

import pytest

from core.money import allocate, apply_bps


@pytest.mark.parametrize(("amount", "bps"), [(-1, 100), (100, -1)])
def test_apply_bps_names_what_is_wrong(amount, bps):
    with pytest.raises(ValueError, match=r"^amount and bps must be non-negative$"):
        apply_bps(amount, bps)


@pytest.mark.parametrize(
    ("total", "weights", "message"),
    [
        (-1, [1], "total must be non-negative"),
        (5, [], "weights must not be empty"),
        (5, [1, -1], "weights must be non-negative"),
        (5, [0, 0], "cannot allocate a positive total over zero weights"),
    ],
)
def test_allocate_names_what_is_wrong(total, weights, message):
    with pytest.raises(ValueError, match=f"^{message}$"):
        allocate(total, weights)
