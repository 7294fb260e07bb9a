"""Distributors: the operator's onboarding policy, becoming a distributor (one service per way
in), the operator's decisions, the distributor's own profile, and re-parenting in the tree.

A distributor's states (each change under the distributor's row lock, re-checked after it is
taken, and audited by one ``DistributorEvent`` with actor, from/to status, reason and data)::

    (none) --join: everyone / spend reached--> active
    (none) --join: application--> applied --approve--> active
                                  applied --reject (reason)--> rejected --join--> (as a new join)
    (none) --qualify_by_spend (spend_threshold mode, on order_paid)--> active
    (none) | applied | rejected --appoint--> active
    active --suspend (reason)--> suspended --reinstate--> active

Any other change is 409 ``illegal_transition`` (``details.from``, ``details.to``). There is no fee
anywhere: becoming a distributor never costs anything (ReferralPolicy has no field for one).

Onboarding modes (``ReferralPolicy.onboarding``): ``everyone`` (a join is active at once),
``spend_threshold`` (a join is active when the customer's cumulative paid spend reaches the
threshold, else 409 ``spend_threshold_not_met``; and ``distributor_qualify_by_spend`` makes one
automatically on the order that reaches it), ``application`` (a join is ``applied``, an operator
decides), ``appointed`` (joins are 409 ``onboarding_closed``; operators appoint, in any mode).
Paid spend is ``sum(total - refunded_amount)`` of the customer's orders in paid, fulfilled,
completed or partially refunded.

Recruiting (``ReferralPolicy.recruit``): a new distributor row gets an upline when it is made,
also an applied one (the tree is structure; payment needs ``active``): ``last_click`` /
``first_click``, the distributor of the customer's newest / oldest link click (counted or
duplicate, never bot) among those of an *active* distributor (never the customer: a row is
made once); ``none``, no upline. An operator's appointment may name the upline instead. Later,
only an operator moves a distributor (``distributor_reparent``, audited, never touching
attributions: they snapshot their ancestry).

Rules chosen where the brief was silent:
- A rejected customer who joins again reuses their row, with a new event; the outcome follows
  the mode as for a first join (``applied`` in application mode, active in everyone or
  spend mode). Their tree position is kept.
- An appointment of an applied or rejected customer activates that row (onboarding becomes
  ``appointed``); of an active or suspended one is 409 ``already_distributor``. Without
  ``upline_id`` a new row gets its upline from the links as above; an existing row keeps its
  position unless ``upline_id`` names another (then it moves with its subtree, refused on a
  cycle).
- Re-parenting under the current upline changes nothing and records nothing.
- A profile change that changes nothing records nothing.
- The customer is notified (core.notifications, after commit) of every operator decision and
  of an automatic qualification; joins and profile changes answer the caller directly.

Lock order: the tree lock (one advisory lock, referral/services/tree.py) before any distributor
row. Every service that makes a row or changes the tree takes it first; status changes and profile
updates lock only the row. So concurrent joins of one customer serialise on the tree lock and
the OneToOne on ``customer`` refuses the second (409 ``already_distributor``)."""

from collections.abc import Sequence
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from core.errors import Conflict, InvalidInput, NotFound
from core.models import User
from core.notifications import notify
from referral import locks
from referral.error_codes import DistributorErrorCode
from referral.locks import tree_lock
from referral.models import Click, Distributor, DistributorEvent, ReferralPolicy
from referral.selectors.distributors import customer_paid_spend, paid_spend_of_customer
from referral.services.tree import WouldCycle, tree_attach, tree_move
from shop.models import Customer

S = Distributor.Status
E = DistributorEvent.Kind
Mode = ReferralPolicy.Onboarding
Recruit = ReferralPolicy.Recruit

POLICY_PK = 1
CHANNELS = (
    "wechat_group",
    "moments",
    "wecom",
    "official_account",
    "douyin",
    "xiaohongshu",
    "offline",
    "other",
)
MAX_CHANNELS = 8
DISPLAY_NAME_MAX = 64
NOTE_MAX = 500
REASON_MAX = 500
SPEND_THRESHOLD_MAX = 10**12  # fen: ten billion yuan, far beyond any real threshold
RECRUITING_CLICKS = (Click.Status.COUNTED, Click.Status.DUPLICATE)

_NOTICES: dict[str, str] = {
    E.APPROVED: "Your distributor application was approved",
    E.REJECTED: "Your distributor application was not approved",
    E.SUSPENDED: "Your distributor account was suspended",
    E.REINSTATED: "Your distributor account was reinstated",
    E.APPOINTED: "You were made a distributor",
    E.QUALIFIED: "You are now a distributor",
}


# --- checks -------------------------------------------------------------------------------------
def _invalid(field: str, reason: str) -> InvalidInput:
    return InvalidInput(
        f"{field}: {reason}",
        code=DistributorErrorCode.PROFILE_INVALID,
        details={"field": field, "reason": reason},
    )


def check_display_name(value: Any) -> str:
    text = value.strip() if isinstance(value, str) else ""
    if not 1 <= len(text) <= DISPLAY_NAME_MAX:
        raise _invalid("display_name", f"1 to {DISPLAY_NAME_MAX} characters")
    return text


def check_channels(value: Any) -> list[str]:
    if not isinstance(value, list | tuple) or len(value) > MAX_CHANNELS:
        raise _invalid("channels", f"a list of at most {MAX_CHANNELS}")
    if any(channel not in CHANNELS for channel in value) or len(set(value)) != len(value):
        raise _invalid("channels", "each once, from: " + ", ".join(CHANNELS))
    return list(value)


def _check_note(value: Any) -> str:
    text = value.strip() if isinstance(value, str) else None
    if text is None or len(text) > NOTE_MAX:
        raise _invalid("note", f"at most {NOTE_MAX} characters")
    return text


def _check_kind(value: Any) -> str:
    if value not in Distributor.Kind.values:
        raise _invalid("kind", "one of " + ", ".join(Distributor.Kind.values))
    return value


def _check_reason(value: Any, *, required: bool) -> str:
    text = value.strip() if isinstance(value, str) else ""
    if (required and not text) or len(text) > REASON_MAX or not isinstance(value, str):
        needed = "required, " if required else ""
        raise InvalidInput(
            f"reason: {needed}at most {REASON_MAX} characters",
            code=DistributorErrorCode.REASON_INVALID,
            details={"field": "reason", "required": required},
        )
    return text


def _policy_invalid(field: str, reason: str) -> InvalidInput:
    return InvalidInput(
        f"{field}: {reason}",
        code=DistributorErrorCode.POLICY_INVALID,
        details={"field": field, "reason": reason},
    )


# --- policy ---------------------------------------------------------------------------------------
def policy_get() -> ReferralPolicy:
    """The one policy row (made with the defaults on first use: application, last click, 0)."""
    policy, _ = ReferralPolicy.objects.get_or_create(pk=POLICY_PK)
    return policy


def policy_update(
    *,
    actor: User | None,
    onboarding: str | None = None,
    spend_threshold: int | None = None,
    recruit: str | None = None,
) -> ReferralPolicy:
    """Change the fields given; each change appends ``{at, by, changes: {field: [old, new]}}`` to
    ``history`` (nothing when nothing changes). 422 ``referral_policy_invalid``."""
    wanted: dict[str, Any] = {}
    if onboarding is not None:
        if onboarding not in Mode.values:
            raise _policy_invalid("onboarding", "one of " + ", ".join(Mode.values))
        wanted["onboarding"] = onboarding
    if spend_threshold is not None:
        if type(spend_threshold) is not int or not 0 <= spend_threshold <= SPEND_THRESHOLD_MAX:
            raise _policy_invalid("spend_threshold", f"whole fen, 0 to {SPEND_THRESHOLD_MAX}")
        wanted["spend_threshold"] = spend_threshold
    if recruit is not None:
        if recruit not in Recruit.values:
            raise _policy_invalid("recruit", "one of " + ", ".join(Recruit.values))
        wanted["recruit"] = recruit
    with transaction.atomic():
        policy_get()
        policy = locks.lock_policy(POLICY_PK)
        changes = {
            field: [getattr(policy, field), value]
            for field, value in wanted.items()
            if getattr(policy, field) != value
        }
        if changes:
            for field, (_, value) in changes.items():
                setattr(policy, field, value)
            entry = {
                "at": timezone.now().isoformat(),
                "by": actor.pk if actor else None,
                "changes": changes,
            }
            policy.history = [*policy.history, entry]
            policy.save(update_fields=[*changes, "history", "updated_at"])
    return policy


# --- helpers --------------------------------------------------------------------------------------
def _recruiter(*, customer_id: int, recruit: str) -> Distributor | None:
    """The upline the links give a new distributor under the recruit rule (one query). Never
    the customer themselves: they have no distributor row yet when this runs."""
    if recruit == Recruit.NONE:
        return None
    newest_first = recruit == Recruit.LAST_CLICK
    click = (
        Click.objects.filter(
            customer_id=customer_id,
            kind=Click.Kind.LINK,
            status__in=RECRUITING_CLICKS,
            distributor__status=S.ACTIVE,
        )
        .select_related("distributor")
        .order_by(*(("-occurred_at", "-id") if newest_first else ("occurred_at", "id")))
        .first()
    )
    return click.distributor if click else None


def _lock(distributor_id: int) -> Distributor:
    """The distributor row, locked for this transaction, with its customer (not locked)."""
    distributor = locks.lock_distributor(distributor_id)
    if distributor is None:
        raise NotFound("No such distributor.", code=DistributorErrorCode.DISTRIBUTOR_NOT_FOUND)
    return distributor


def _distributor(distributor_id: int) -> Distributor:
    distributor = Distributor.objects.filter(pk=distributor_id).first()
    if distributor is None:
        raise NotFound(
            "No such distributor.",
            code=DistributorErrorCode.DISTRIBUTOR_NOT_FOUND,
            details={"distributor_id": distributor_id},
        )
    return distributor


def _cycle(distributor_id: int, upline_id: int | None) -> Conflict:
    return Conflict(
        "The new upline is this distributor or one of its downline.",
        code=DistributorErrorCode.WOULD_CYCLE,
        details={"distributor_id": distributor_id, "upline_id": upline_id},
    )


def _record(
    distributor: Distributor,
    kind: str,
    *,
    from_status: str,
    actor: User | None = None,
    actor_id: int | None = None,
    reason: str = "",
    data: dict[str, Any] | None = None,
    tell: bool = False,
) -> DistributorEvent:
    """The audit row; with ``tell``, the customer is notified too (stored, pushed after
    commit)."""
    event = DistributorEvent.objects.create(
        distributor=distributor,
        kind=kind,
        from_status=from_status,
        to_status=distributor.status,
        actor_id=actor.pk if actor else actor_id,
        reason=reason,
        data=data or {},
    )
    title = _NOTICES.get(kind)
    if tell and title:
        notify(
            user_id=distributor.customer.user_id,
            kind=f"referral_distributor_{kind}",
            title=title,
            body=reason,
            data={"distributor_id": distributor.pk, "status": distributor.status},
            dedupe_key=f"referral_distributor_event:{event.pk}",
        )
    return event


def _create(
    *,
    customer_id: int,
    display_name: str,
    status: str,
    onboarding: str,
    event: str,
    recruit: str,
    kind: str = Distributor.Kind.KOC,
    channels: Sequence[str] = (),
    note: str = "",
    upline: Distributor | None = None,
    actor: User | None = None,
    actor_id: int | None = None,
    reason: str = "",
    data: dict[str, Any] | None = None,
    tell: bool = False,
) -> Distributor:
    """A new distributor row attached in the tree, in one transaction under the tree lock.
    ``upline`` None: the recruit rule's. Raises IntegrityError if the customer already has one
    (the OneToOne on ``customer``)."""
    with transaction.atomic():
        tree_lock()
        distributor = Distributor.objects.create(
            customer_id=customer_id,
            display_name=display_name,
            kind=kind,
            channels=list(channels),
            status=status,
            onboarding=onboarding,
            application_note=note,
            decision_reason=reason if actor else "",
            joined_at=timezone.now() if status == S.ACTIVE else None,
        )
        if upline is None:
            upline = _recruiter(customer_id=customer_id, recruit=recruit)
        tree_attach(distributor=distributor, upline=upline)
        _record(
            distributor,
            event,
            from_status="",
            actor=actor,
            actor_id=actor_id,
            reason=reason,
            data={**(data or {}), "upline_id": distributor.upline_id},
            tell=tell,
        )
    return distributor


def _already(existing_status: str) -> Conflict:
    return Conflict(
        "This customer is already a distributor.",
        code=DistributorErrorCode.ALREADY_DISTRIBUTOR,
        details={"status": existing_status},
    )


# --- the customer asks ----------------------------------------------------------------------------
def distributor_join(
    *, customer: Customer, display_name: str, channels: Sequence[str], note: str = ""
) -> Distributor:
    """The customer asks to become a distributor, under the policy's onboarding mode: everyone
    and spend reached: active now; application: applied. 409 ``onboarding_closed`` (appointed
    mode), ``spend_threshold_not_met`` (``details.spent``, ``details.threshold``),
    ``already_distributor``; 422 ``distributor_profile_invalid``."""
    display_name = check_display_name(display_name)
    channels = check_channels(channels)
    note = _check_note(note)
    policy = policy_get()
    if policy.onboarding == Mode.APPOINTED:
        raise Conflict(
            "Distributors are appointed by an operator.",
            code=DistributorErrorCode.ONBOARDING_CLOSED,
        )
    existing = Distributor.objects.filter(customer=customer).values_list("pk", "status").first()
    if existing and existing[1] != S.REJECTED:
        raise _already(existing[1])
    data: dict[str, Any] = {"mode": policy.onboarding}
    if policy.onboarding == Mode.SPEND_THRESHOLD:
        spent = customer_paid_spend(customer_id=customer.pk)
        data.update(spent=spent, threshold=policy.spend_threshold)
        if spent < policy.spend_threshold:
            raise Conflict(
                "Your paid spend has not reached the threshold yet.",
                code=DistributorErrorCode.SPEND_THRESHOLD_NOT_MET,
                details={"spent": spent, "threshold": policy.spend_threshold},
            )
    status, onboarding, event = {
        Mode.EVERYONE: (S.ACTIVE, Distributor.Onboarding.JOINED, E.JOINED),
        Mode.SPEND_THRESHOLD: (S.ACTIVE, Distributor.Onboarding.SPEND, E.QUALIFIED),
        Mode.APPLICATION: (S.APPLIED, Distributor.Onboarding.APPLICATION, E.APPLIED),
    }[Mode(policy.onboarding)]
    if existing:
        return _rejoin(
            distributor_id=existing[0],
            display_name=display_name,
            channels=channels,
            note=note,
            status=status,
            onboarding=onboarding,
            event=event,
            data=data,
        )
    try:
        return _create(
            customer_id=customer.pk,
            display_name=display_name,
            channels=channels,
            note=note,
            status=status,
            onboarding=onboarding,
            event=event,
            recruit=policy.recruit,
            actor_id=customer.user_id,
            data=data,
        )
    except IntegrityError:
        current = Distributor.objects.filter(customer=customer).values_list("status", flat=True)
        if not current:
            raise
        raise _already(current[0]) from None


def _rejoin(
    *,
    distributor_id: int,
    display_name: str,
    channels: list[str],
    note: str,
    status: str,
    onboarding: str,
    event: str,
    data: dict[str, Any],
) -> Distributor:
    """A rejected customer asks again: the same row, a new event."""
    with transaction.atomic():
        distributor = _lock(distributor_id)
        if distributor.status != S.REJECTED:
            raise _already(distributor.status)
        distributor.display_name = display_name
        distributor.channels = channels
        distributor.application_note = note
        distributor.status = status
        distributor.onboarding = onboarding
        fields = ["display_name", "channels", "application_note", "status", "onboarding"]
        if status == S.ACTIVE and distributor.joined_at is None:
            distributor.joined_at = timezone.now()
            fields.append("joined_at")
        distributor.save(update_fields=fields)
        _record(
            distributor,
            event,
            from_status=S.REJECTED,
            actor_id=distributor.customer.user_id,
            data=data,
        )
    return distributor


def distributor_qualify_by_spend(*, customer_id: int) -> Distributor | None:
    """spend_threshold mode, on every paid order (referral/subscribers.py): a customer who is not
    a distributor and whose paid spend reached the threshold becomes an active one (onboarding
    ``spend``, event ``qualified``, named after their nickname or ``KOC <id>``). Idempotent; one
    query when the mode is another, two when nothing applies."""
    policy = ReferralPolicy.objects.filter(pk=POLICY_PK).first()
    if policy is None or policy.onboarding != Mode.SPEND_THRESHOLD:
        return None
    customer = (
        Customer.objects.filter(pk=customer_id)
        .annotate(
            is_distributor=Exists(Distributor.objects.filter(customer_id=OuterRef("pk"))),
            spent=paid_spend_of_customer(OuterRef("pk")),
        )
        .values("nickname", "is_distributor", "spent")
        .first()
    )
    if customer is None or customer["is_distributor"]:
        return None
    if customer["spent"] < policy.spend_threshold:
        return None
    display_name = (customer["nickname"].strip() or f"KOC {customer_id}")[:DISPLAY_NAME_MAX]
    try:
        return _create(
            customer_id=customer_id,
            display_name=display_name,
            status=S.ACTIVE,
            onboarding=Distributor.Onboarding.SPEND,
            event=E.QUALIFIED,
            recruit=policy.recruit,
            data={"spent": customer["spent"], "threshold": policy.spend_threshold},
            tell=True,
        )
    except IntegrityError:  # made meanwhile (a join, another delivery): nothing left to do
        if Distributor.objects.filter(customer_id=customer_id).exists():
            return None
        raise


# --- the operator decides -------------------------------------------------------------------------
def _transition(
    *,
    distributor_id: int,
    actor: User | None,
    reason: str,
    allowed_from: Sequence[str],
    to: str,
    event: str,
) -> Distributor:
    with transaction.atomic():
        distributor = _lock(distributor_id)
        if distributor.status not in allowed_from:
            raise Conflict(
                f"A {distributor.status} distributor cannot become {to}.",
                code=DistributorErrorCode.ILLEGAL_TRANSITION,
                details={"from": distributor.status, "to": to},
            )
        from_status = distributor.status
        distributor.status = to
        distributor.decision_reason = reason
        fields = ["status", "decision_reason"]
        if to == S.ACTIVE and distributor.joined_at is None:
            distributor.joined_at = timezone.now()
            fields.append("joined_at")
        distributor.save(update_fields=fields)
        _record(distributor, event, from_status=from_status, actor=actor, reason=reason, tell=True)
    return distributor


def distributor_approve(
    *, distributor_id: int, actor: User | None, reason: str = ""
) -> Distributor:
    """applied -> active (``joined_at`` set the first time). 404 ``distributor_not_found``, 409
    ``illegal_transition``."""
    return _transition(
        distributor_id=distributor_id,
        actor=actor,
        reason=_check_reason(reason, required=False),
        allowed_from=(S.APPLIED,),
        to=S.ACTIVE,
        event=E.APPROVED,
    )


def distributor_reject(*, distributor_id: int, actor: User | None, reason: str) -> Distributor:
    """applied -> rejected, with a reason (422 ``distributor_reason_invalid``); 409
    ``illegal_transition``."""
    return _transition(
        distributor_id=distributor_id,
        actor=actor,
        reason=_check_reason(reason, required=True),
        allowed_from=(S.APPLIED,),
        to=S.REJECTED,
        event=E.REJECTED,
    )


def distributor_suspend(*, distributor_id: int, actor: User | None, reason: str) -> Distributor:
    """active -> suspended, with a reason; 409 ``illegal_transition``."""
    return _transition(
        distributor_id=distributor_id,
        actor=actor,
        reason=_check_reason(reason, required=True),
        allowed_from=(S.ACTIVE,),
        to=S.SUSPENDED,
        event=E.SUSPENDED,
    )


def distributor_reinstate(
    *, distributor_id: int, actor: User | None, reason: str = ""
) -> Distributor:
    """suspended -> active; 409 ``illegal_transition``."""
    return _transition(
        distributor_id=distributor_id,
        actor=actor,
        reason=_check_reason(reason, required=False),
        allowed_from=(S.SUSPENDED,),
        to=S.ACTIVE,
        event=E.REINSTATED,
    )


def distributor_appoint(
    *,
    customer_id: int,
    actor: User | None,
    display_name: str,
    kind: str = Distributor.Kind.KOC,
    upline_id: int | None = None,
    reason: str = "",
) -> Distributor:
    """An operator makes a customer an active distributor, in any mode: a new row, or their
    applied or rejected one. ``upline_id`` (an existing distributor) places them under it; a new
    row without it gets the recruit rule's upline. 404 ``customer_not_found`` /
    ``distributor_not_found`` (the upline), 409 ``already_distributor`` (active or suspended),
    ``referral_cycle``; 422 ``distributor_profile_invalid`` / ``distributor_reason_invalid``."""
    display_name = check_display_name(display_name)
    kind = _check_kind(kind)
    reason = _check_reason(reason, required=False)
    if not Customer.objects.filter(pk=customer_id).exists():
        raise NotFound(
            "No such customer.",
            code=DistributorErrorCode.CUSTOMER_NOT_FOUND,
            details={"customer_id": customer_id},
        )
    policy = policy_get()
    data: dict[str, Any] = {"kind": kind}
    with transaction.atomic():
        tree_lock()
        upline = None if upline_id is None else _distributor(upline_id)
        existing = locks.lock_distributor_of_customer(customer_id)
        if existing is None:
            return _create(
                customer_id=customer_id,
                display_name=display_name,
                kind=kind,
                status=S.ACTIVE,
                onboarding=Distributor.Onboarding.APPOINTED,
                event=E.APPOINTED,
                recruit=policy.recruit,
                upline=upline,
                actor=actor,
                reason=reason,
                data=data,
                tell=True,
            )
        if existing.status not in (S.APPLIED, S.REJECTED):
            raise _already(existing.status)
        if upline is not None and upline.pk != existing.upline_id:
            data["from_upline_id"] = existing.upline_id
            try:
                tree_move(distributor=existing, upline=upline)
            except WouldCycle:
                raise _cycle(existing.pk, upline.pk) from None
        from_status = existing.status
        existing.status = S.ACTIVE
        existing.onboarding = Distributor.Onboarding.APPOINTED
        existing.display_name = display_name
        existing.kind = kind
        existing.decision_reason = reason
        existing.joined_at = existing.joined_at or timezone.now()
        existing.save(
            update_fields=[
                "status",
                "onboarding",
                "display_name",
                "kind",
                "decision_reason",
                "joined_at",
            ]
        )
        _record(
            existing,
            E.APPOINTED,
            from_status=from_status,
            actor=actor,
            reason=reason,
            data={**data, "upline_id": existing.upline_id},
            tell=True,
        )
    return existing


def distributor_reparent(
    *, distributor_id: int, upline_id: int | None, actor: User | None, reason: str
) -> Distributor:
    """An operator moves a distributor, with its whole subtree, under another upline (``None``:
    makes it a root), under the tree lock; audited (event ``reparented``: ``from_upline_id``,
    ``to_upline_id``, with the reason, required). Attributions are never touched. 404
    ``distributor_not_found``, 409 ``referral_cycle`` (the upline is the distributor itself or
    in its subtree: nothing changes), 422 ``distributor_reason_invalid``."""
    reason = _check_reason(reason, required=True)
    with transaction.atomic():
        tree_lock()
        distributor = _lock(distributor_id)
        upline = None if upline_id is None else _distributor(upline_id)
        if upline_id == distributor.upline_id:
            return distributor
        from_upline_id, from_depth = distributor.upline_id, distributor.depth
        try:
            tree_move(distributor=distributor, upline=upline)
        except WouldCycle:
            raise _cycle(distributor.pk, upline_id) from None
        _record(
            distributor,
            E.REPARENTED,
            from_status=distributor.status,
            actor=actor,
            reason=reason,
            data={
                "from_upline_id": from_upline_id,
                "to_upline_id": upline_id,
                "from_depth": from_depth,
                "to_depth": distributor.depth,
            },
        )
    return distributor


# --- the distributor's profile --------------------------------------------------------------------
def distributor_profile_update(
    *,
    distributor: Distributor,
    display_name: str | None = None,
    channels: Sequence[str] | None = None,
) -> Distributor:
    """Change the display name and/or channels (up to 8 of ``CHANNELS``, each once); event
    ``profile_updated`` with ``changes: {field: [old, new]}``. 422
    ``distributor_profile_invalid``."""
    wanted: dict[str, Any] = {}
    if display_name is not None:
        wanted["display_name"] = check_display_name(display_name)
    if channels is not None:
        wanted["channels"] = check_channels(channels)
    with transaction.atomic():
        locked = _lock(distributor.pk)
        changes = {
            field: [getattr(locked, field), value]
            for field, value in wanted.items()
            if getattr(locked, field) != value
        }
        if changes:
            for field, (_, value) in changes.items():
                setattr(locked, field, value)
            locked.save(update_fields=list(changes))
            _record(
                locked,
                E.PROFILE_UPDATED,
                from_status=locked.status,
                actor_id=locked.customer.user_id,
                data={"changes": changes},
            )
    return locked
