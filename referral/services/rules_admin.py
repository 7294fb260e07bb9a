"""Versions of the attribution rule (referral/rules.py says what each field means).

A version is never edited: a change is a new row, ``version`` one more than the last, in force
from ``effective_from``. The rule in force at a moment is the highest version whose
``effective_from`` is at or before it (``rule_current``), so every attribution can name the
version it applied and an old one can be explained later.

- Version 1 is the default (last touch, 7-day click window, 30-day binding, an exclusive code
  overrides a link, a distributor's own order counts for themselves), in force from the epoch.
  It is created on first use (the first attribution, listing or new version), race-safely
  (``get_or_create`` on ``version=1``), so some version is always in force.
- ``rule_version_create`` numbers versions under a transaction-scoped advisory lock: two
  operators saving at once get two consecutive versions, never the same one (a row lock on the
  latest row would not do: both would read the same latest version).
- History is not rewritten: ``effective_from`` may not lie in the past (a minute of clock skew
  is tolerated) nor before the latest version's ``effective_from``.
- Nothing about paid levels is configurable here: the cap of two is code (referral/rules.py).
"""

from datetime import UTC, datetime, timedelta

from django.db import transaction
from django.utils import timezone

from core.errors import InvalidInput
from core.models import User
from referral.error_codes import AttributionErrorCode
from referral.locks import rule_versions_lock
from referral.models import AttributionRule

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
CLOCK_SKEW = timedelta(minutes=1)
BINDING_DAYS = (1, 3650)
CLICK_WINDOW_DAYS = (1, 365)
NOTE_MAX = 500

DEFAULT_RULE = {
    "model": AttributionRule.Model.LAST_TOUCH,
    "binding_days": 30,
    "click_window_days": 7,
    "code_overrides_link": True,
    "self_purchase": AttributionRule.SelfPurchase.SELF,
    "effective_from": EPOCH,
    "note": "Default rule",
}


def _default_rule() -> AttributionRule:
    rule, _ = AttributionRule.objects.get_or_create(version=1, defaults=DEFAULT_RULE)
    return rule


def rule_current(*, now: datetime | None = None) -> AttributionRule:
    """The version in force at ``now`` (default: now); creates the default version 1 when no
    version exists yet. One query once a version exists."""
    now = now or timezone.now()
    rule = AttributionRule.objects.filter(effective_from__lte=now).order_by("-version").first()
    return rule or _default_rule()


def _invalid(field: str, reason: str, message: str) -> InvalidInput:
    return InvalidInput(
        message, code=AttributionErrorCode.RULE_INVALID, details={"field": field, "reason": reason}
    )


def _check_days(field: str, value: object, bounds: tuple[int, int]) -> None:
    low, high = bounds
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        message = f"{field} must be a whole number from {low} to {high}."
        raise _invalid(field, "out_of_range", message)


def rule_version_create(
    *,
    actor: User | None,
    model: str,
    binding_days: int,
    click_window_days: int,
    code_overrides_link: bool,
    self_purchase: str,
    effective_from: datetime | None = None,
    note: str = "",
) -> AttributionRule:
    """A new version of the attribution rule (``effective_from`` default: now). A value out of
    its range: 422 ``attribution_rule_invalid`` with ``details.field`` and ``details.reason``."""
    now = timezone.now()
    if model not in AttributionRule.Model.values:
        raise _invalid("model", "unknown", f"model must be one of {AttributionRule.Model.values}.")
    _check_days("binding_days", binding_days, BINDING_DAYS)
    _check_days("click_window_days", click_window_days, CLICK_WINDOW_DAYS)
    if not isinstance(code_overrides_link, bool):
        raise _invalid("code_overrides_link", "not_boolean", "code_overrides_link is true/false.")
    if self_purchase not in AttributionRule.SelfPurchase.values:
        raise _invalid(
            "self_purchase",
            "unknown",
            f"self_purchase must be one of {AttributionRule.SelfPurchase.values}.",
        )
    note = (note or "").strip()
    if len(note) > NOTE_MAX:
        raise _invalid("note", "too_long", f"note must be at most {NOTE_MAX} characters.")
    if effective_from is not None and timezone.is_naive(effective_from):
        raise _invalid("effective_from", "naive", "effective_from needs a time zone.")
    starts = effective_from or now
    if starts < now - CLOCK_SKEW:
        raise _invalid(
            "effective_from", "in_the_past", "A new version cannot take effect in the past."
        )

    with transaction.atomic():
        rule_versions_lock()
        latest = AttributionRule.objects.order_by("-version").first() or _default_rule()
        if starts < latest.effective_from:
            raise _invalid(
                "effective_from",
                "before_latest_version",
                f"effective_from must not be before version {latest.version}'s "
                f"({latest.effective_from.isoformat()}).",
            )
        return AttributionRule.objects.create(
            version=latest.version + 1,
            model=model,
            binding_days=binding_days,
            click_window_days=click_window_days,
            code_overrides_link=code_overrides_link,
            self_purchase=self_purchase,
            effective_from=starts,
            note=note,
            created_by=actor,
        )
