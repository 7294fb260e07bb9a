"""Money primitives: integer minor units (fen), basis points, one largest-remainder allocator.

Pure functions on plain ints; no ORM, no floats. Every split in the system (refunds across lines,
commission levels, pool shares) goes through :func:`allocate`, so parts always sum to the whole.
"""

from collections.abc import Sequence

BPS_DENOMINATOR = 10_000


def apply_bps(amount: int, bps: int) -> int:
    """``amount * bps / 10000``, rounded half-up, for non-negative amounts and rates."""
    if amount < 0 or bps < 0:
        raise ValueError("amount and bps must be non-negative")
    return (amount * bps + BPS_DENOMINATOR // 2) // BPS_DENOMINATOR


def allocate(total: int, weights: Sequence[int]) -> list[int]:
    """Split ``total`` into parts proportional to ``weights`` (largest remainder method).

    Parts are non-negative integers summing exactly to ``total``. Each part gets the floor of its
    exact share; the units left over go one each to the largest fractional remainders, ties broken
    by position (earlier first), so the result is deterministic. Zero weights get zero. If every
    weight is zero the total cannot be split and ``ValueError`` is raised (unless total is 0).
    """
    if total < 0:
        raise ValueError("total must be non-negative")
    if not weights:
        raise ValueError("weights must not be empty")
    if any(w < 0 for w in weights):
        raise ValueError("weights must be non-negative")
    weight_sum = sum(weights)
    if weight_sum == 0:
        if total == 0:
            return [0] * len(weights)
        raise ValueError("cannot allocate a positive total over zero weights")

    floors = [total * w // weight_sum for w in weights]
    remainders = [total * w % weight_sum for w in weights]
    leftover = total - sum(floors)
    order = sorted(range(len(weights)), key=lambda i: (-remainders[i], i))
    for i in order[:leftover]:
        floors[i] += 1
    return floors


def format_minor(amount: int, currency: str = "CNY") -> str:
    """Human display of an amount in minor units, e.g. ``12345 -> "123.45 CNY"`` (2 decimals)."""
    sign = "-" if amount < 0 else ""
    whole, cents = divmod(abs(amount), 100)
    return f"{sign}{whole}.{cents:02d} {currency}"
