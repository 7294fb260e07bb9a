"""Order pricing, pure (no ORM): list price → campaign price → coupons → shipping.

- Each line starts at its ``list_unit_price``; a flow (flash sale, group-buy, ...) may have set a
  campaign ``unit_price`` below it. ``subtotal`` is what the lines cost at their unit prices.
- Coupons (``Offer``) apply in slot order: the platform coupon, then the exclusive code, each on
  the amount its eligible lines still owe; then a free-shipping coupon waives the shipping fee.
  Each coupon's discount is spread over its eligible lines in proportion to what they still owe
  (``core.money.allocate``, largest remainder), so no line goes below zero and the line
  discounts add up to the order discount exactly. Goods never go below ``min_payable`` (1 fen by
  default) through coupons: the last coupon's discount is cut to keep it.
- Stacking: at most one coupon of each kind of coupon, i.e. per slot: one platform coupon, one
  exclusive (distributor) code, one free-shipping coupon; a coupon that is not ``stackable``
  stands alone.
- ``best_combination`` picks, among the offers a customer holds, the valid combination that
  saves most (ties: fewer coupons, then the earliest to expire, by ``Offer.rank``).

Shipping belongs to no line: refunds, commission bases and ROI read the lines' paid amounts.
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from itertools import product

from core.money import allocate, apply_bps

FIXED = "fixed"
PERCENT = "percent"
THRESHOLD = "threshold"
FREE_SHIPPING = "free_shipping"
KINDS = (FIXED, PERCENT, THRESHOLD, FREE_SHIPPING)
SLOTS = ("platform", "exclusive", "shipping")  # the order coupons apply in


@dataclass(frozen=True)
class PricingLine:
    sku_id: int
    product_id: int
    list_unit_price: int
    unit_price: int
    quantity: int
    category_id: int | None = None

    @property
    def subtotal(self) -> int:
        return self.unit_price * self.quantity

    @property
    def list_subtotal(self) -> int:
        return self.list_unit_price * self.quantity


@dataclass(frozen=True)
class Offer:
    """A coupon that may apply to this cart.

    ``key`` identifies it to the caller (a customer coupon id, or ``"code:<CODE>"``);
    ``eligible`` is the set of SKU ids it applies to (``None``: every line). ``rank`` orders ties
    (e.g. the expiry time as a sortable value: earlier first)."""

    key: object
    kind: str
    slot: str = "platform"
    stackable: bool = True
    amount: int = 0
    bps: int = 0
    cap: int | None = None
    min_spend: int = 0
    tiers: tuple[tuple[int, int], ...] = ()  # (threshold, off) in fen
    eligible: frozenset[int] | None = None
    rank: tuple = ()

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown coupon kind {self.kind!r}")
        if self.slot not in SLOTS:
            raise ValueError(f"unknown coupon slot {self.slot!r}")
        if (self.kind == FREE_SHIPPING) != (self.slot == "shipping"):
            raise ValueError("free shipping, and only it, takes the shipping slot")
        for value in (self.amount, self.bps, self.min_spend, self.cap or 0):
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError("coupon amounts and rates are non-negative integers")
        if self.bps > 10_000:
            raise ValueError("a percentage coupon takes at most 100 %")

    def applies_to(self, line: PricingLine) -> bool:
        return self.eligible is None or line.sku_id in self.eligible

    def reach(self, base: int) -> int:
        """What this coupon takes off ``base`` (the eligible lines' amount still owed), before
        the order-wide caps; 0 when ``base`` is below its minimum spend or lowest tier."""
        if base <= 0 or base < self.min_spend:
            return 0
        if self.kind == FIXED:
            return min(self.amount, base)
        if self.kind == PERCENT:
            off = apply_bps(base, self.bps)
            return min(off, self.cap, base) if self.cap is not None else min(off, base)
        if self.kind == THRESHOLD:
            reached = [off for threshold, off in self.tiers if base >= threshold]
            return min(max(reached), base) if reached else 0
        return 0  # free shipping takes nothing off the goods


@dataclass(frozen=True)
class Applied:
    key: object
    kind: str
    discount: int  # off the goods, fen
    shipping_waived: int  # off the shipping fee, fen
    line_discounts: tuple[int, ...]  # per line of the cart, summing to ``discount``


@dataclass(frozen=True)
class Pricing:
    list_subtotal: int  # lines at list prices
    subtotal: int  # lines at their unit prices (campaign price where set)
    discount: int  # coupons off the goods
    shipping_fee: int  # charged, after any waiver
    total: int  # subtotal - discount + shipping_fee
    line_discounts: tuple[int, ...]  # same order as the lines; sums to ``discount``
    line_totals: tuple[int, ...]  # what each line pays; sums to ``subtotal - discount``
    applied: tuple[Applied, ...] = field(default=())

    @property
    def campaign_discount(self) -> int:
        return self.list_subtotal - self.subtotal

    @property
    def saved(self) -> int:
        """What the coupons save the customer in all (goods and shipping)."""
        return self.discount + sum(a.shipping_waived for a in self.applied)


class StackingError(ValueError):
    """The offers cannot be used together (``code`` says why)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def stacking_problem(offers: Sequence[Offer]) -> StackingError | None:
    """Why these offers cannot be combined, or None."""
    slots = [offer.slot for offer in offers]
    if len(set(slots)) != len(slots):
        return StackingError(
            "coupon_not_stackable",
            "At most one platform coupon, one exclusive code and one free-shipping coupon.",
        )
    if len(offers) > 1 and not all(offer.stackable for offer in offers):
        return StackingError("coupon_not_stackable", "This coupon cannot be combined.")
    keys = [offer.key for offer in offers]
    if len(set(keys)) != len(keys):
        return StackingError("coupon_not_stackable", "A coupon can be used once.")
    return None


def _check_lines(lines: Sequence[PricingLine]) -> None:
    if not lines:
        raise ValueError("nothing to price")
    for line in lines:
        for value in (line.list_unit_price, line.unit_price, line.quantity):
            if not isinstance(value, int) or isinstance(value, bool):
                raise ValueError("prices and quantities are integers")
        if line.quantity < 1 or line.unit_price < 0 or line.unit_price > line.list_unit_price:
            raise ValueError(f"bad line {line!r}: 0 <= unit price <= list price, quantity >= 1")


def order_price(
    *,
    lines: Sequence[PricingLine],
    offers: Sequence[Offer] = (),
    shipping_fee: int = 0,
    min_payable: int = 1,
) -> Pricing:
    """Price ``lines`` with exactly these ``offers`` (raises ``StackingError`` if they do not
    combine; an offer that does not reach this cart applies with a discount of 0: callers that
    must refuse it check ``Applied.discount`` / ``shipping_waived``)."""
    _check_lines(lines)
    if shipping_fee < 0 or min_payable < 0:
        raise ValueError("shipping fee and minimum payable are non-negative")
    problem = stacking_problem(offers)
    if problem is not None:
        raise problem
    owed = [line.subtotal for line in lines]
    subtotal = sum(owed)
    floor = min(min_payable, subtotal)  # goods never go below this through coupons
    applied: list[Applied] = []
    shipping = shipping_fee
    for offer in sorted(offers, key=lambda o: SLOTS.index(o.slot)):
        if offer.kind == FREE_SHIPPING:
            waived = shipping if sum(owed) >= offer.min_spend else 0
            shipping -= waived
            applied.append(Applied(offer.key, offer.kind, 0, waived, (0,) * len(lines)))
            continue
        weights = [o if offer.applies_to(line) else 0 for o, line in zip(owed, lines, strict=True)]
        discount = min(offer.reach(sum(weights)), max(sum(owed) - floor, 0))
        shares = allocate(discount, weights) if discount else [0] * len(lines)
        owed = [o - s for o, s in zip(owed, shares, strict=True)]
        applied.append(Applied(offer.key, offer.kind, discount, 0, tuple(shares)))
    line_discounts = tuple(line.subtotal - o for line, o in zip(lines, owed, strict=True))
    discount = sum(line_discounts)
    return Pricing(
        list_subtotal=sum(line.list_subtotal for line in lines),
        subtotal=subtotal,
        discount=discount,
        shipping_fee=shipping,
        total=subtotal - discount + shipping,
        line_discounts=line_discounts,
        line_totals=tuple(owed),
        applied=tuple(applied),
    )


def is_useful(pricing: Pricing) -> bool:
    """Every applied coupon takes something off (a coupon that reaches nothing is not used)."""
    return all(a.discount or a.shipping_waived for a in pricing.applied)


def combinations(offers: Iterable[Offer]) -> list[tuple[Offer, ...]]:
    """Every combination allowed by the stacking rules (at most one per slot), empty included."""
    per_slot = [[None, *(o for o in offers if o.slot == slot)] for slot in SLOTS]
    found = []
    for picked in product(*per_slot):
        combo = tuple(o for o in picked if o is not None)
        if stacking_problem(combo) is None:
            found.append(combo)
    return found


def best_combination(
    *,
    lines: Sequence[PricingLine],
    offers: Sequence[Offer],
    shipping_fee: int = 0,
    min_payable: int = 1,
) -> Pricing:
    """The pricing with the combination of ``offers`` that saves most; ties: fewer coupons,
    then the lowest ranks (earliest expiry)."""
    best: tuple | None = None
    for combo in combinations(offers):
        priced = order_price(
            lines=lines, offers=combo, shipping_fee=shipping_fee, min_payable=min_payable
        )
        if not is_useful(priced):
            continue
        key = (-priced.saved, len(combo), sorted(o.rank for o in combo))
        if best is None or key < best[0]:
            best = (key, priced)
    assert best is not None  # the empty combination is always useful
    return best[1]
