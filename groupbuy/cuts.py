"""Bargain (砍价) cut plans: how far each cut lowers the price, in integer fen.

A bargain runs from ``start_price`` down to ``floor_price`` (at least 1 fen) in exactly ``helps``
helps. The initiator makes a first cut when the bargain starts; then each helper makes one cut.
With ``total = start_price - floor_price``:

- every cut is at least 1 fen and ``first_cut + sum(help_cuts) == total`` exactly, so the price
  is above the floor after every help but the last and lands on the floor at the N-th help;
- the first cut is drawn between ``first_cut_min_bps`` and ``first_cut_max_bps`` of ``total``,
  clamped to at least 1 fen and to leave at least 1 fen per help;
- each help gets 1 fen plus a share of the rest, split by :func:`core.money.allocate` over
  random integer weights that never increase from one help to the next (each keeps 80-100% of
  the previous), so early helpers cut the most, as bargain apps do, and no cut ever exceeds the
  one before it.

The plan is a pure function of its arguments: the randomness comes from ``random.Random(seed)``,
so storing the seed on the bargain makes every cut reproducible and auditable later. Only the
seed itself comes from :mod:`secrets` (:func:`new_seed`). No floats are used anywhere.
"""

import random
import secrets
from collections.abc import Sequence

from core.money import BPS_DENOMINATOR, allocate, apply_bps

_FIRST_WEIGHT = 1_000_000_000
_KEEP_MIN_BPS = 8_000  # each help's weight keeps 80-100% of the previous help's weight


def new_seed() -> int:
    """A fresh seed for a new bargain; 63 bits so it fits a PostgreSQL bigint."""
    return secrets.randbits(63)


def cut_plan(
    *,
    seed: int,
    start_price: int,
    floor_price: int,
    helps: int,
    first_cut_min_bps: int = 1000,
    first_cut_max_bps: int = 3000,
) -> tuple[int, tuple[int, ...]]:
    """``(first_cut, help_cuts)`` for a bargain; ``help_cuts`` has one cut per help, in order."""
    for name, value in (
        ("seed", seed),
        ("start_price", start_price),
        ("floor_price", floor_price),
        ("helps", helps),
        ("first_cut_min_bps", first_cut_min_bps),
        ("first_cut_max_bps", first_cut_max_bps),
    ):
        _require_int(name, value)
    if helps < 2:
        raise ValueError(f"helps must be at least 2, got {helps}")
    if floor_price < 1:
        raise ValueError(f"floor_price must be at least 1 fen, got {floor_price}")
    if start_price <= floor_price:
        raise ValueError(f"start_price {start_price} must be above floor_price {floor_price}")
    for name, bps in (
        ("first_cut_min_bps", first_cut_min_bps),
        ("first_cut_max_bps", first_cut_max_bps),
    ):
        if not 0 <= bps <= BPS_DENOMINATOR:
            raise ValueError(f"{name} must be within 0..{BPS_DENOMINATOR}, got {bps}")
    if first_cut_min_bps > first_cut_max_bps:
        raise ValueError(
            f"first_cut_min_bps {first_cut_min_bps} exceeds first_cut_max_bps {first_cut_max_bps}"
        )
    total = start_price - floor_price
    if total < helps + 1:
        raise ValueError(
            f"a cut of {total} fen cannot give 1 fen to the first cut and each of {helps} helps"
        )

    rng = random.Random(seed)
    most = total - helps  # the first cut leaves at least 1 fen per help
    low = min(max(apply_bps(total, first_cut_min_bps), 1), most)
    high = min(max(apply_bps(total, first_cut_max_bps), 1), most)
    first_cut = rng.randint(low, high)

    weights = [_FIRST_WEIGHT]
    for _ in range(helps - 1):
        weights.append(apply_bps(weights[-1], rng.randint(_KEEP_MIN_BPS, BPS_DENOMINATOR)))
    shares = allocate(total - first_cut - helps, weights)
    return first_cut, tuple(1 + share for share in shares)


def price_after(*, start_price: int, first_cut: int, help_cuts: Sequence[int], helped: int) -> int:
    """The price once the first cut and the first ``helped`` help cuts are made."""
    _require_int("helped", helped)
    if not 0 <= helped <= len(help_cuts):
        raise ValueError(f"helped must be within 0..{len(help_cuts)}, got {helped}")
    return start_price - first_cut - sum(help_cuts[:helped])


def _require_int(name: str, value: object) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"{name} must be an int, got {type(value).__name__}")
