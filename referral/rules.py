"""Pure rules of referral (no ORM): the paid-level cap, and the choice of a distributor from a
customer's touches under one version of the attribution rule (``choose``).

A *touch* is a moment a distributor reached the customer: a share link's click (non-bot: status
counted or duplicate), or an exclusive code typed at checkout (a touch at the order's creation
time). ``choose`` decides an order paid at ``now`` from these inputs:

1. Self purchase. ``own_distributor_id`` is the buyer's own distributor id, given only when that
   distributor is active. Then, whatever the touches or the code: rule ``self_purchase`` "self"
   attributes the order to the buyer (touch ``self``, reason ``self_purchase``); "none" to
   nobody (touch ``none``, reason ``self_purchase_excluded``). The binding is left as it is.
2. Exclusive code. With ``code_overrides_link`` the code's distributor wins (touch ``code``,
   reason ``code_overrides_link``); otherwise the code joins the touches as the newest one and
   the model decides. Either way, under the binding models the code is walked like any touch
   (so it can bind, or refresh its own distributor's binding, never steal another's).
3. The model:

   - ``last_touch``: the newest touch with ``now - at <= click_window_days`` wins (the edge is
     inclusive: exactly N days old still counts, N days and a second does not); touch ``click``
     or ``code`` by what it was, reason ``last_touch``. None in the window: reason
     ``window_expired`` if there were touches (all older), ``no_touch`` if none.
   - ``binding`` (锁客): walk the touches newer than the binding's ``last_touch_at`` in time
     order. While bound and ``t - last_touch_at <= binding_days``, a touch of the bound
     distributor refreshes ``last_touch_at``; another distributor's is ignored (it cannot steal
     the customer). Once the binding has expired, the next touch binds its distributor
     (``bound_at = t``). At ``now``: bound and ``now - last_touch_at <= binding_days`` → the
     bound distributor (touch ``binding``, or ``code`` when the code touch is what bound or
     refreshed it; reason ``binding``); else reason ``binding_expired`` (or ``no_touch`` when
     never bound).
   - ``first_touch``: the same walk with an infinite window: the first touch binds for good
     (touch ``binding``/``code``, reason ``first_touch``).

4. The winner must be active (``active_ids``: the active distributors among the candidates):
   an inactive winner gives nobody, reason ``distributor_inactive``. There is no fall-back to
   another distributor: the rule chose that one.

Touches later than ``now`` are ignored (a click after the payment did not cause it). The result
carries the new binding state; the caller stores it when it differs from the old one."""

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Literal

MAX_PAID_LEVELS = 2  # level 1: the attributed distributor; level 2: their upline. Never a third.

TouchKind = Literal["click", "code"]


class Model:
    FIRST_TOUCH = "first_touch"
    BINDING = "binding"
    LAST_TOUCH = "last_touch"


class SelfPurchase:
    SELF = "self"
    NONE = "none"


class Touched:
    """How the order was attributed: the values of ``Attribution.Touch``."""

    CLICK = "click"
    CODE = "code"
    BINDING = "binding"
    SELF = "self"
    NONE = "none"


class Reason:
    """The stable ``Attribution.reason`` codes."""

    SELF_PURCHASE = "self_purchase"
    SELF_PURCHASE_EXCLUDED = "self_purchase_excluded"
    CODE_OVERRIDES_LINK = "code_overrides_link"
    LAST_TOUCH = "last_touch"
    BINDING = "binding"
    FIRST_TOUCH = "first_touch"
    NO_TOUCH = "no_touch"
    WINDOW_EXPIRED = "window_expired"
    BINDING_EXPIRED = "binding_expired"
    DISTRIBUTOR_INACTIVE = "distributor_inactive"


@dataclass(frozen=True)
class Touch:
    distributor_id: int
    at: datetime
    kind: TouchKind = "click"
    click_id: int | None = None


@dataclass(frozen=True)
class RuleView:
    model: str
    binding_days: int
    click_window_days: int
    code_overrides_link: bool
    self_purchase: str


@dataclass(frozen=True)
class BindingState:
    """A customer's binding: bound to ``distributor_id`` since ``bound_at``; ``last_touch_at`` is
    that distributor's latest touch (``click_id`` the click of it)."""

    distributor_id: int
    bound_at: datetime
    last_touch_at: datetime
    click_id: int | None = None


@dataclass(frozen=True)
class Choice:
    distributor_id: int | None
    touch: str
    justifying: Touch | None
    reason: str
    binding: BindingState | None

    @property
    def click_id(self) -> int | None:
        """The click (or code click) that justified the choice: the deciding touch, else the
        stored binding's click."""
        if self.justifying is not None:
            return self.justifying.click_id
        if self.touch == Touched.BINDING and self.binding is not None:
            return self.binding.click_id
        return None


def paid_levels(distributor_id: int, active_uplines: Sequence[int]) -> list[tuple[int, int]]:
    """``[(level, distributor_id)]``: the attributed distributor, then their nearest uplines
    that may be paid, never more than ``MAX_PAID_LEVELS`` in all."""
    chain = [distributor_id, *active_uplines]
    return [(level, ident) for level, ident in enumerate(chain[:MAX_PAID_LEVELS], start=1)]


def _in_time_order(touches: Iterable[Touch]) -> list[Touch]:
    return sorted(touches, key=lambda t: (t.at, t.click_id or 0))


def walk_binding(
    binding: BindingState | None, touches: Iterable[Touch], window: timedelta | None
) -> tuple[BindingState | None, Touch | None]:
    """The binding after ``touches`` (``window`` None: never expires), and the touch that last
    bound or refreshed it in this walk (None: unchanged)."""
    state, decided = binding, None
    for t in _in_time_order(touches):
        if state is not None and t.at <= state.last_touch_at:
            continue  # already part of the stored binding
        expired = state is None or (window is not None and t.at - state.last_touch_at > window)
        if expired:
            state = BindingState(t.distributor_id, t.at, t.at, t.click_id)
            decided = t
        elif state is not None and t.distributor_id == state.distributor_id:
            state = replace(state, last_touch_at=t.at, click_id=t.click_id)
            decided = t
        # else: another distributor inside the window cannot steal the customer
    return state, decided


def _nobody(reason: str, binding: BindingState | None, justifying: Touch | None = None) -> Choice:
    return Choice(None, Touched.NONE, justifying, reason, binding)


def _by_code(code_touch: Touch, binding: BindingState | None) -> Choice:
    return Choice(
        code_touch.distributor_id, Touched.CODE, code_touch, Reason.CODE_OVERRIDES_LINK, binding
    )


def choose(
    *,
    rule: RuleView,
    binding: BindingState | None,
    touches: Sequence[Touch],
    code_touch: Touch | None,
    own_distributor_id: int | None,
    active_ids: Collection[int],
    now: datetime,
) -> Choice:
    """The distributor of an order paid at ``now`` (module docstring: the semantics)."""
    if own_distributor_id is not None:
        if rule.self_purchase == SelfPurchase.SELF:
            return Choice(own_distributor_id, Touched.SELF, None, Reason.SELF_PURCHASE, binding)
        return _nobody(Reason.SELF_PURCHASE_EXCLUDED, binding)

    usable = [t for t in touches if t.at <= now]
    if code_touch is not None:
        usable.append(code_touch)

    overriding = code_touch if rule.code_overrides_link else None

    if rule.model == Model.LAST_TOUCH:  # the binding is not this model's business
        click_window = timedelta(days=rule.click_window_days)
        in_window = [t for t in usable if now - t.at <= click_window]
        if overriding is not None:
            chosen = _by_code(overriding, binding)
        elif not in_window:
            return _nobody(Reason.WINDOW_EXPIRED if usable else Reason.NO_TOUCH, binding)
        else:
            newest = _in_time_order(in_window)[-1]
            chosen = Choice(newest.distributor_id, newest.kind, newest, Reason.LAST_TOUCH, binding)
    else:
        first_touch = rule.model == Model.FIRST_TOUCH
        binding_window = None if first_touch else timedelta(days=rule.binding_days)
        new_binding, decided = walk_binding(binding, usable, binding_window)
        if overriding is not None:
            chosen = _by_code(overriding, new_binding)
        elif new_binding is None:
            return _nobody(Reason.NO_TOUCH, new_binding)
        elif binding_window is not None and now - new_binding.last_touch_at > binding_window:
            return _nobody(Reason.BINDING_EXPIRED, new_binding)
        else:
            by_code = decided is not None and decided.kind == Touched.CODE
            chosen = Choice(
                new_binding.distributor_id,
                Touched.CODE if by_code else Touched.BINDING,
                decided,
                Reason.FIRST_TOUCH if first_touch else Reason.BINDING,
                new_binding,
            )

    if chosen.distributor_id not in active_ids:
        return _nobody(Reason.DISTRIBUTOR_INACTIVE, chosen.binding, chosen.justifying)
    return chosen
