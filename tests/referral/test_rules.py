"""The pure attribution rules (referral/rules.py): properties of ``choose`` and the level cap,
without a database."""

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from referral.rules import (
    MAX_PAID_LEVELS,
    BindingState,
    Reason,
    RuleView,
    Touch,
    choose,
    paid_levels,
    walk_binding,
)

NOW = datetime(2025, 6, 30, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)
SECOND = timedelta(seconds=1)
EVERYONE = frozenset(range(1, 7))


def rule(model="last_touch", *, binding_days=30, window=7, code_wins=True, self_purchase="self"):
    return RuleView(model, binding_days, window, code_wins, self_purchase)


def touch(distributor_id, ago, kind="click", click_id=None):
    return Touch(distributor_id, NOW - ago, kind, click_id)


def decide(the_rule, touches=(), *, code=None, own=None, binding=None, active=EVERYONE, now=NOW):
    return choose(
        rule=the_rule,
        binding=binding,
        touches=list(touches),
        code_touch=code,
        own_distributor_id=own,
        active_ids=active,
        now=now,
    )


# --- strategies ----------------------------------------------------------------------------------
distributors = st.integers(min_value=1, max_value=6)
ages = st.integers(min_value=0, max_value=90 * 86400).map(lambda s: timedelta(seconds=s))
touch_lists = st.lists(
    st.builds(
        lambda d, age, kind, n: touch(d, age, kind, n),
        distributors,
        ages,
        st.sampled_from(["click", "code"]),
        st.integers(min_value=1, max_value=10**6),
    ),
    max_size=25,
)
rules = st.builds(
    RuleView,
    st.sampled_from(["first_touch", "binding", "last_touch"]),
    st.integers(min_value=1, max_value=60),
    st.integers(min_value=1, max_value=30),
    st.booleans(),
    st.sampled_from(["self", "none"]),
)
codes = st.none() | st.builds(lambda d, age: touch(d, age, "code", 999_999), distributors, ages)
bindings = st.none() | st.builds(
    lambda d, bound, since: BindingState(d, NOW - bound - since, NOW - since, 7),
    distributors,
    ages,
    ages,
)


# --- properties ----------------------------------------------------------------------------------
@given(rules, touch_lists, codes, st.none() | distributors, bindings, st.sets(distributors))
def test_the_winner_is_always_someone_who_touched_the_order(
    the_rule, touches, code, own, binding, active
):
    active = active | {own} if own else active  # the buyer's id is given only when active
    choice = decide(the_rule, touches, code=code, own=own, binding=binding, active=active)

    candidates = {t.distributor_id for t in touches if t.at <= NOW}
    candidates |= {code.distributor_id} if code else set()
    candidates |= {own} if own else set()
    candidates |= {binding.distributor_id} if binding else set()
    assert choice.distributor_id is None or choice.distributor_id in candidates
    assert choice.distributor_id is None or choice.distributor_id in active
    assert (choice.distributor_id is None) == (choice.touch == "none")


@given(touch_lists, st.integers(min_value=1, max_value=30))
def test_last_touch_picks_the_newest_touch_inside_the_window(touches, window):
    choice = decide(rule(window=window), touches)

    in_window = [t for t in touches if NOW - t.at <= window * DAY]
    if not in_window:
        assert choice.distributor_id is None
        assert choice.reason == (Reason.WINDOW_EXPIRED if touches else Reason.NO_TOUCH)
    else:
        newest = max(t.at for t in in_window)
        assert choice.justifying.at == newest
        assert choice.distributor_id == choice.justifying.distributor_id
        assert choice.touch == choice.justifying.kind
        assert choice.reason == Reason.LAST_TOUCH


@given(touch_lists, st.integers(min_value=1, max_value=60))
def test_first_touch_binds_the_first_distributor_for_good(touches, binding_days):
    choice = decide(rule("first_touch", binding_days=binding_days), touches)

    if not touches:
        assert (choice.distributor_id, choice.reason) == (None, Reason.NO_TOUCH)
    else:
        first = min(touches, key=lambda t: (t.at, t.click_id))
        assert choice.distributor_id == first.distributor_id
        assert choice.binding.distributor_id == first.distributor_id
        assert choice.binding.bound_at == first.at
        assert choice.reason == Reason.FIRST_TOUCH


@given(
    st.integers(min_value=2, max_value=60),
    st.lists(st.integers(min_value=0, max_value=10**6), max_size=20),
)
def test_an_intruder_inside_the_binding_window_never_steals(binding_days, offsets):
    # given: bound to 1 by a touch a day ago; 2 touches at any moment up to the window's end
    bound = BindingState(1, NOW - 40 * DAY, NOW - DAY, 5)
    limit = (binding_days * DAY).total_seconds()
    intruders = [
        Touch(2, bound.last_touch_at + timedelta(seconds=o % limit), "click", 100 + i)
        for i, o in enumerate(offsets)
    ]
    # when
    state, decided = walk_binding(bound, intruders, binding_days * DAY)
    # then
    assert state == bound
    assert decided is None


@given(st.integers(min_value=1, max_value=60), st.integers(min_value=1, max_value=10**5))
def test_after_expiry_the_next_touch_binds(binding_days, late_by):
    bound = BindingState(1, NOW - 400 * DAY, NOW - 200 * DAY, 5)
    later = bound.last_touch_at + binding_days * DAY + timedelta(seconds=late_by)
    newcomer = Touch(2, later, "click", 9)

    state, decided = walk_binding(bound, [newcomer], binding_days * DAY)

    assert state == BindingState(2, later, later, 9)
    assert decided == newcomer


@given(rules, touch_lists, distributors, bindings)
def test_a_configured_code_wins_over_every_link_and_binding(the_rule, touches, coder, binding):
    code = touch(coder, 2 * SECOND, "code", 999_999)
    overriding = replace(the_rule, code_overrides_link=True, self_purchase="self")

    choice = decide(overriding, touches, code=code, binding=binding)

    assert (choice.distributor_id, choice.touch, choice.reason) == (
        coder,
        "code",
        Reason.CODE_OVERRIDES_LINK,
    )
    assert choice.click_id == 999_999


@given(touch_lists, distributors)
def test_a_code_that_does_not_override_joins_the_touches_as_the_newest(touches, coder):
    code = touch(coder, 0 * SECOND, "code", 10**7)  # newest, also among touches made right now

    last = decide(rule(code_wins=False), touches, code=code)
    first = decide(rule("first_touch", code_wins=False), touches, code=code)

    assert (last.distributor_id, last.touch, last.reason) == (coder, "code", Reason.LAST_TOUCH)
    expected_first = min([*touches, code], key=lambda t: (t.at, t.click_id or 0))
    assert first.distributor_id == expected_first.distributor_id


def test_a_code_inside_another_distributors_binding_does_not_steal_it_unless_configured():
    bound = BindingState(1, NOW - 10 * DAY, NOW - 2 * DAY, 5)
    code = touch(2, SECOND, "code", 77)

    kept = decide(rule("binding", code_wins=False), code=code, binding=bound)
    overridden = decide(rule("binding", code_wins=True), code=code, binding=bound)

    assert (kept.distributor_id, kept.touch, kept.reason) == (1, "binding", Reason.BINDING)
    assert kept.click_id == 5  # the stored binding's click justifies it
    assert (overridden.distributor_id, overridden.touch) == (2, "code")
    assert overridden.binding == bound  # the code won the order, not the customer


@given(rules, touch_lists, codes, distributors, bindings)
def test_self_purchase_counts_for_the_buyer_or_for_nobody(the_rule, touches, code, own, binding):
    as_self = replace(the_rule, self_purchase="self")
    as_none = replace(the_rule, self_purchase="none")

    mine = decide(as_self, touches, code=code, own=own, binding=binding)
    nobody = decide(as_none, touches, code=code, own=own, binding=binding)

    assert (mine.distributor_id, mine.touch, mine.reason) == (own, "self", Reason.SELF_PURCHASE)
    assert (nobody.distributor_id, nobody.touch, nobody.reason) == (
        None,
        "none",
        Reason.SELF_PURCHASE_EXCLUDED,
    )
    assert mine.binding == binding and nobody.binding == binding


@given(rules, touch_lists, codes, bindings)
def test_an_inactive_winner_gives_nobody_and_no_fall_back(the_rule, touches, code, binding):
    everyone = decide(the_rule, touches, code=code, binding=binding)
    if everyone.distributor_id is None:
        return
    without_winner = EVERYONE - {everyone.distributor_id}

    choice = decide(the_rule, touches, code=code, binding=binding, active=without_winner)

    assert (choice.distributor_id, choice.touch) == (None, "none")
    assert choice.reason == Reason.DISTRIBUTOR_INACTIVE
    assert choice.justifying == everyone.justifying


# --- edges, exactly ------------------------------------------------------------------------------
def test_the_click_window_edge_is_inclusive_to_the_second():
    at_edge = decide(rule(window=7), [touch(3, 7 * DAY, click_id=1)])
    past_edge = decide(rule(window=7), [touch(3, 7 * DAY + SECOND, click_id=1)])

    assert (at_edge.distributor_id, at_edge.touch, at_edge.click_id) == (3, "click", 1)
    assert (past_edge.distributor_id, past_edge.reason) == (None, Reason.WINDOW_EXPIRED)


def test_the_binding_edge_is_inclusive_to_the_second():
    bound_at_edge = BindingState(4, NOW - 40 * DAY, NOW - 30 * DAY, 1)
    bound_past_edge = BindingState(4, NOW - 40 * DAY, NOW - 30 * DAY - SECOND, 1)

    kept = decide(rule("binding"), binding=bound_at_edge)
    lost = decide(rule("binding"), binding=bound_past_edge)

    assert (kept.distributor_id, kept.touch, kept.reason) == (4, "binding", Reason.BINDING)
    assert (lost.distributor_id, lost.reason) == (None, Reason.BINDING_EXPIRED)


def test_a_refresh_at_the_edge_extends_the_binding_and_a_later_one_rebinds():
    bound = BindingState(1, NOW - 100 * DAY, NOW - 70 * DAY, 1)
    refresh = Touch(1, bound.last_touch_at + 30 * DAY, "click", 2)  # exactly 30 days after
    intruder = Touch(2, refresh.at + 30 * DAY, "click", 3)  # inside the refreshed window
    newcomer = Touch(3, refresh.at + 30 * DAY + SECOND, "click", 4)  # just expired

    state, decided = walk_binding(bound, [refresh, intruder, newcomer], 30 * DAY)

    assert state == BindingState(3, newcomer.at, newcomer.at, 4)
    assert decided == newcomer


def test_touches_after_the_payment_are_ignored():
    choice = decide(rule(), [touch(1, DAY), Touch(2, NOW + SECOND, "click", 9)])

    assert choice.distributor_id == 1


def test_no_touch_at_all():
    assert decide(rule()).reason == Reason.NO_TOUCH
    assert decide(rule("binding")).reason == Reason.NO_TOUCH
    assert decide(rule("first_touch")).reason == Reason.NO_TOUCH


# --- the level cap -------------------------------------------------------------------------------
@given(st.integers(min_value=1, max_value=10**6), st.lists(st.integers(min_value=1), max_size=50))
def test_paid_levels_never_exceed_two_whatever_the_chain(distributor_id, uplines):
    levels = paid_levels(distributor_id, uplines)

    assert len(levels) <= MAX_PAID_LEVELS == 2
    assert levels[0] == (1, distributor_id)
    assert [level for level, _ in levels] == list(range(1, len(levels) + 1))
    if uplines:
        assert levels[1] == (2, uplines[0])


# --- from surviving mutants: what the binding walk hands back ----------------------------------
def test_the_touch_of_the_stored_binding_is_not_walked_again():
    binding = BindingState(1, NOW - 3 * DAY, NOW - 3 * DAY, 7)

    choice = decide(rule("binding"), [touch(1, 3 * DAY, click_id=7)], binding=binding)

    assert (choice.distributor_id, choice.touch, choice.justifying) == (1, "binding", None)
    assert choice.binding == binding
    assert choice.click_id == 7


def test_a_refresh_records_the_refreshing_click():
    binding = BindingState(1, NOW - 10 * DAY, NOW - 10 * DAY, 7)

    choice = decide(rule("binding"), [touch(1, 2 * DAY, click_id=42)], binding=binding)

    assert choice.binding == BindingState(1, NOW - 10 * DAY, NOW - 2 * DAY, 42)
    assert choice.click_id == 42


def test_under_the_binding_model_an_expired_binding_goes_to_the_next_toucher():
    old = [touch(1, 40 * DAY, click_id=1), touch(2, 5 * DAY, click_id=2)]

    choice = decide(rule("binding", binding_days=30), old)

    assert (choice.distributor_id, choice.reason) == (2, "binding")
    assert choice.binding == BindingState(2, NOW - 5 * DAY, NOW - 5 * DAY, 2)


def test_an_expired_binding_is_kept_for_the_record():
    old = [touch(1, 40 * DAY, click_id=1)]

    choice = decide(rule("binding", binding_days=30), old)

    assert (choice.distributor_id, choice.reason) == (None, "binding_expired")
    assert choice.binding == BindingState(1, NOW - 40 * DAY, NOW - 40 * DAY, 1)


def test_under_last_touch_an_overriding_code_leaves_the_binding_alone():
    binding = BindingState(3, NOW - 50 * DAY, NOW - 50 * DAY, 7)
    code = touch(2, DAY, "code", 99)

    choice = decide(rule("last_touch"), [touch(1, 2 * DAY)], code=code, binding=binding)

    assert (choice.distributor_id, choice.touch) == (2, "code")
    assert choice.binding is binding


def test_under_the_binding_model_an_overriding_code_still_walks_the_binding():
    code = touch(2, DAY, "code", 99)

    choice = decide(rule("binding"), [touch(1, 2 * DAY, click_id=5)], code=code)

    assert (choice.distributor_id, choice.touch) == (2, "code")
    assert choice.binding == BindingState(1, NOW - 2 * DAY, NOW - 2 * DAY, 5)
