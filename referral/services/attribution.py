"""Order attribution: who caused each paid order, under which rule version, and why.

``order_attribute`` is the ``order_paid`` subscriber (referral/subscribers.py). In one
transaction it

1. takes the buyer's attribution lock (a transaction-scoped advisory lock per customer): one
   customer's orders are attributed one after the other, so their binding is read and written
   by one transaction at a time (the row may not exist yet: a row lock could not cover that),
   and a second delivery of the same order, however concurrent, sees the first one's result;
2. reads in one round trip (selectors ``attribution_context``) the order and whether it is
   attributed already (then it returns that attribution and records nothing), the buyer's own
   active distributor, the rule version in force at the payment (as ``rule_current`` defines
   it; that function runs only when no version exists yet, to create the default), the buyer's
   binding and the exclusive code typed at checkout;
3. reads the buyer's touches in one query: the non-bot clicks of the customer and the anonymous
   ones of the checkout's device, none after the payment, only those the rule can use: last
   touch, the newest one (it alone decides: in the window it wins, else the reason is
   ``window_expired``); binding models, those after the binding's ``last_touch_at``, newest
   first, at most ``TOUCH_LIMIT`` (first touch without a binding: the oldest ones instead);
4. records an exclusive code's checkout as a ``code`` click (counted, on the code's hidden link,
   at the order's creation time), so the funnel counts code-driven orders: that click is the
   code touch;
5. decides with the pure ``referral.rules.choose`` and stores the new binding (binding models);
6. snapshots the upline chain (one closure-table lookup) and the paid levels: level 1 the
   distributor, level 2 their direct upline only if active (an inactive upline means no level
   2: never a skip to a further ancestor, never a third level);
7. writes the Attribution and its AttributionLevel rows, asks ``fraud.attribution_signals`` for
   the open flags on it, and records ``order_attributed`` (always; ``distributor_id`` None when
   nobody).

At most 10 statements whatever the tree's size (8 for a plain click under the default rule):
the lock, the context, the touches, the code click, the binding, the ancestry, the attribution
with its levels (one statement), the fraud signals' two and the event; with the transaction's
BEGIN and COMMIT, 12 and 10 round trips. The stored attribution is history: later tree moves,
suspensions or rule versions never rewrite it.

Choices where the brief was silent: ``click`` and ``link`` are the deciding touch's even when no
one was paid (``distributor_inactive`` keeps the inactive distributor's click, for the
operators); ``exclusive_code`` is the code typed at checkout whoever won; the self-purchase rule
leaves the binding as it was.

``attribution_refund`` is the ``order_refunded`` subscriber: once per shop refund (unique
``refund_id``) it records an AttributionRefund and adds the amount to ``refunded_amount``, capped
at ``goods_amount``, then checks the distributor's refund rate (a fraud signal).
"""

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any
from uuid import UUID

from django.db import connection, transaction
from django.db.models import F, Value
from django.db.models.functions import Least
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from referral import events, rules
from referral.locks import customer_attribution_lock
from referral.models import (
    Attribution,
    AttributionRefund,
    AttributionRule,
    Binding,
    Click,
    Distributor,
)
from referral.selectors.attribution import (
    AttributionContext,
    TouchRow,
    ancestry_with_status,
    attribution_context,
    customer_touches,
)
from referral.services import fraud
from referral.services.rules_admin import rule_current

TOUCH_LIMIT = 200
ACTIVE = Distributor.Status.ACTIVE
BINDING_MODELS = (AttributionRule.Model.BINDING, AttributionRule.Model.FIRST_TOUCH)


def _moment(value: Any) -> datetime:
    moment = parse_datetime(value) if isinstance(value, str) else value
    if not isinstance(moment, datetime):
        raise ValueError(f"not a date-time: {value!r}")
    return moment


def _device(value: Any) -> UUID | None:
    try:
        return UUID(str(value)) if value else None
    except ValueError:
        return None


def _rule_view(rule: AttributionRule) -> rules.RuleView:
    return rules.RuleView(
        model=rule.model,
        binding_days=rule.binding_days,
        click_window_days=rule.click_window_days,
        code_overrides_link=rule.code_overrides_link,
        self_purchase=rule.self_purchase,
    )


def _touch(row: TouchRow) -> rules.Touch:
    kind: rules.TouchKind = "code" if row.kind == Click.Kind.CODE else "click"
    return rules.Touch(row.distributor_id, row.occurred_at, kind, row.click_id)


def _touch_rows(
    *, context: AttributionContext, rule: AttributionRule, device: UUID | None, now: datetime
) -> list[TouchRow]:
    """Only the touches the rule can use (module docstring, step 3)."""
    bounds: dict[str, Any] = {"limit": TOUCH_LIMIT}
    if rule.model == AttributionRule.Model.LAST_TOUCH:
        bounds["limit"] = 1
    elif context.binding is not None:
        bounds["after"] = context.binding.last_touch_at
    elif rule.model == AttributionRule.Model.FIRST_TOUCH:
        bounds["oldest_first"] = True
    return customer_touches(customer_id=context.customer_id, device_id=device, until=now, **bounds)


def _record_code_click(
    *, context: AttributionContext, device: UUID | None, ip_hash: str
) -> rules.Touch | None:
    code = context.code
    if code is None:
        return None
    click = Click.objects.create(
        link_id=code.link_id,
        distributor_id=code.distributor_id,
        kind=Click.Kind.CODE,
        status=Click.Status.COUNTED,
        occurred_at=context.order_created_at,
        customer_id=context.customer_id,
        device_id=device,
        ip_hash=ip_hash[:64],
        visitor_key=f"c:{context.customer_id}",
        flushed=False,
    )
    return rules.Touch(code.distributor_id, context.order_created_at, "code", click.pk)


def _store_binding(
    *, context: AttributionContext, old: rules.BindingState | None, new: rules.BindingState | None
) -> None:
    if new is None or new == old:
        return
    fields = {
        "distributor_id": new.distributor_id,
        "click_id": new.click_id,
        "bound_at": new.bound_at,
        "last_touch_at": new.last_touch_at,
    }
    if context.binding is None:
        Binding.objects.create(customer_id=context.customer_id, **fields)
    else:
        Binding.objects.filter(pk=context.binding.pk).update(**fields, updated_at=timezone.now())


# The attribution and its paid levels in one round trip (the levels' INSERT is a data-modifying
# CTE: it runs with no level too, and the check constraint still refuses a third).
_INSERT_ATTRIBUTION = """
WITH attribution AS (
    INSERT INTO referral_attribution (order_id, customer_id, distributor_id, rule_id,
        rule_version, touch, reason, click_id, exclusive_code_id, link_id, ancestry,
        self_purchase, source, goods_amount, refunded_amount, paid_at, attributed_at)
    VALUES (%(order_id)s, %(customer_id)s, %(distributor_id)s, %(rule_id)s, %(rule_version)s,
        %(touch)s, %(reason)s, %(click_id)s, %(exclusive_code_id)s, %(link_id)s,
        %(ancestry)s::jsonb, %(self_purchase)s, %(source)s, %(goods_amount)s,
        %(refunded_amount)s, %(paid_at)s, %(attributed_at)s)
    RETURNING id
), levels AS (
    INSERT INTO referral_attributionlevel (attribution_id, level, distributor_id)
    SELECT attribution.id, paid.level, paid.distributor_id
    FROM attribution, unnest(%(levels)s::int[], %(level_distributors)s::bigint[])
        AS paid(level, distributor_id)
)
SELECT id FROM attribution
"""


def _attribution_insert(attribution: Attribution, levels: list[tuple[int, int]]) -> Attribution:
    """Write ``attribution`` (unsaved) and its ``(level, distributor_id)`` rows; returns it."""
    attribution.attributed_at = timezone.now()
    fields = {
        field.attname: getattr(attribution, field.attname)
        for field in Attribution._meta.concrete_fields
        if not field.primary_key
    }
    fields["ancestry"] = json.dumps(attribution.ancestry)
    with connection.cursor() as cursor:
        cursor.execute(
            _INSERT_ATTRIBUTION,
            {
                **fields,
                "levels": [level for level, _ in levels],
                "level_distributors": [ident for _, ident in levels],
            },
        )
        (attribution.pk,) = cursor.fetchone()
    attribution._state.adding = False
    attribution._state.db = connection.alias
    return attribution


def order_attribute(*, order_paid: Mapping[str, Any]) -> Attribution:
    """Attribute one paid order (module docstring); idempotent per order: a second delivery
    returns the first attribution and records nothing."""
    order_id = order_paid["order_id"]
    paid_at = _moment(order_paid["paid_at"])
    device = _device(order_paid.get("device_id"))
    with transaction.atomic():
        customer_attribution_lock(order_paid["customer_id"])
        context = attribution_context(
            order_id=order_id, paid_at=paid_at, codes=order_paid.get("codes") or []
        )
        if context is None:
            raise ValueError(f"order {order_id} does not exist")
        if context.attribution_id is not None:
            return Attribution.objects.get(pk=context.attribution_id)
        rule = context.rule or rule_current(now=paid_at)

        touch_rows = _touch_rows(context=context, rule=rule, device=device, now=paid_at)
        code_touch = _record_code_click(
            context=context, device=device, ip_hash=order_paid.get("ip_hash") or ""
        )
        stored = context.binding
        old_binding = (
            rules.BindingState(
                stored.distributor_id, stored.bound_at, stored.last_touch_at, stored.click_id
            )
            if stored is not None and rule.model in BINDING_MODELS
            else None
        )
        active_ids = {row.distributor_id for row in touch_rows if row.distributor_status == ACTIVE}
        if context.code is not None and context.code.distributor_status == ACTIVE:
            active_ids.add(context.code.distributor_id)
        if stored is not None and stored.distributor_status == ACTIVE:
            active_ids.add(stored.distributor_id)

        choice = rules.choose(
            rule=_rule_view(rule),
            binding=old_binding,
            touches=[_touch(row) for row in touch_rows],
            code_touch=code_touch,
            own_distributor_id=context.own_distributor_id,
            active_ids=active_ids,
            now=paid_at,
        )
        if rule.model in BINDING_MODELS:
            _store_binding(context=context, old=old_binding, new=choice.binding)

        links: dict[int | None, int | None] = {row.click_id: row.link_id for row in touch_rows}
        if code_touch is not None and context.code is not None:
            links[code_touch.click_id] = context.code.link_id
        if stored is not None and stored.click_id is not None:
            links.setdefault(stored.click_id, stored.link_id)

        ancestry: list[tuple[int, str]] = []
        levels: list[tuple[int, int]] = []
        if choice.distributor_id is not None:
            ancestry = ancestry_with_status(choice.distributor_id)
            direct_upline = [ident for ident, status in ancestry[:1] if status == ACTIVE]
            levels = rules.paid_levels(choice.distributor_id, direct_upline)

        attribution = _attribution_insert(
            Attribution(
                order_id=order_id,
                customer_id=context.customer_id,
                distributor_id=choice.distributor_id,
                rule_id=rule.pk,
                rule_version=rule.version,
                touch=choice.touch,
                reason=choice.reason,
                click_id=choice.click_id,
                exclusive_code_id=context.code.pk if context.code is not None else None,
                link_id=links.get(choice.click_id) if choice.click_id is not None else None,
                ancestry=[ident for ident, _ in ancestry],
                self_purchase=context.own_distributor_id is not None,
                source=order_paid["source"],
                goods_amount=sum(line["paid_amount"] for line in order_paid.get("lines", [])),
                refunded_amount=0,
                paid_at=paid_at,
            ),
            levels,
        )
        flags = fraud.attribution_signals(attribution=attribution, order_paid=order_paid)
        events.order_attributed(attribution, order_paid, flags, levels=levels)
    return attribution


def attribution_refund(*, order_refunded: Mapping[str, Any]) -> AttributionRefund | None:
    """Record one shop refund against the order's attribution (None if the order has none, or
    the refund was recorded already, or it took nothing)."""
    amount = int(order_refunded["amount"])
    if amount <= 0:
        return None
    with transaction.atomic():
        attribution = (
            Attribution.objects.filter(order_id=order_refunded["order_id"])
            .values("pk", "distributor_id")
            .first()
        )
        if attribution is None:
            return None
        refund, created = AttributionRefund.objects.get_or_create(
            refund_id=order_refunded["refund_id"],
            defaults={
                "attribution_id": attribution["pk"],
                "amount": amount,
                "refunded_at": _moment(order_refunded.get("refunded_at") or timezone.now()),
            },
        )
        if not created:
            return None
        Attribution.objects.filter(pk=attribution["pk"]).update(
            refunded_amount=Least(F("refunded_amount") + Value(amount), F("goods_amount"))
        )
        check = getattr(fraud, "refund_rate_check", None)
        if attribution["distributor_id"] is not None and check is not None:
            check(distributor_id=attribution["distributor_id"])
    return refund
