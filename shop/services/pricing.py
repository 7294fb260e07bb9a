"""Order pricing: price snapshot per line, discount hooks, exact allocation of the discount.

Pure of the ORM apart from what the hooks themselves read. Later features (coupons, campaign
prices) extend ``DISCOUNT_HOOKS``: each hook receives the ``PricingContext`` and returns a
discount in fen (an ``int >= 0``), or raises an ``ApplicationError`` to refuse the order (e.g. an
unknown coupon). The discounts of all hooks are added and capped at the subtotal; the sum is then
spread over the lines in proportion to their subtotals with ``core.money.allocate``, so the line
totals always add up to the order total exactly.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from core.money import allocate


@dataclass(frozen=True)
class PricingLine:
    sku_id: int
    product_id: int
    unit_price: int
    quantity: int

    @property
    def subtotal(self) -> int:
        return self.unit_price * self.quantity


@dataclass(frozen=True)
class PricingContext:
    customer: Any
    community: Any
    coupon_code: str
    lines: tuple[PricingLine, ...]

    @property
    def subtotal(self) -> int:
        return sum(line.subtotal for line in self.lines)


@dataclass(frozen=True)
class Pricing:
    subtotal: int
    discount: int
    total: int
    line_totals: tuple[int, ...]  # same order as the context's lines; sums to ``total``


DiscountHook = Callable[[PricingContext], int]

# Extended by later features (``DISCOUNT_HOOKS.append(coupon_discount)``); empty: no discount.
DISCOUNT_HOOKS: list[DiscountHook] = []

# Extended by promotions: each check says whether it knows a coupon code. A code that no check
# knows is refused (422 ``coupon_invalid``) before anything is priced or stored.
COUPON_CHECKS: list[Callable[[str], bool]] = []


def order_price(*, context: PricingContext) -> Pricing:
    subtotal = context.subtotal
    discount = 0
    for hook in DISCOUNT_HOOKS:
        amount = hook(context)
        if not isinstance(amount, int) or isinstance(amount, bool) or amount < 0:
            raise ValueError(f"discount hook {hook!r} returned {amount!r}, not an int >= 0")
        discount += amount
    discount = min(discount, subtotal)
    subtotals = [line.subtotal for line in context.lines]
    shares = allocate(discount, subtotals) if discount else [0] * len(subtotals)
    line_totals = tuple(s - d for s, d in zip(subtotals, shares, strict=True))
    return Pricing(
        subtotal=subtotal, discount=discount, total=subtotal - discount, line_totals=line_totals
    )
