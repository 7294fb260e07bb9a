"""Leads (KOS): someone who left their name and phone, with consent, on a distributor's lead form
(a ShareLink of target kind ``lead_form``), attributed to that distributor. A lead moves through::

    new --> contacted --> converted | lost
    new --> converted | lost

``converted`` and ``lost`` are final (409 ``lead_illegal_transition``, ``details.from`` /
``details.to``). Each change is a ``LeadEvent`` (who, from, to, note). A conversion names the
order: a paid one (paid, fulfilled, completed, partially refunded) attributed to this
distributor (referral's ``Attribution`` of the order names them at level 1), else 422
``lead_invalid`` (``details.field`` ``order_id``); one order converts at most one of their leads.

``lead_submit`` takes the form: the link must exist, be active, be a ``lead_form`` link and
belong to an active distributor (else 404 ``link_not_found``: which of these failed is not
told); consent must be given (422 ``consent_required``); name 1-64 characters, phone digits with
an optional leading ``+`` (spaces and ``-`` between them are dropped), 5-20 digits, interest at
most 500 characters (422 ``lead_invalid``, ``details.field``). The stored ``consent_text`` is
``CONSENT_TEXT``, what the visitor agreed to. The same phone for the same distributor while a
lead of it is still open (new or contacted) gives back that lead, unchanged: no duplicate (two
submissions at once are serialised by a transaction-scoped advisory lock on distributor and
phone).

``leads_convert_on_attribution`` (the ``order_attributed`` subscriber) converts the attributed
distributor's open lead whose phone is the buyer's, with that order (``LeadEvent`` with no actor,
note ``auto: attributed order``); idempotent, nothing when no distributor was attributed.

Lead rows are changed by conditional UPDATEs on their current status (compare-and-set: the UPDATE
takes the row's lock, and of two concurrent changes from one state exactly one applies; the
other is answered from the state it lost to)."""

import re
from collections.abc import Mapping
from typing import Any

from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from core.errors import Conflict, InvalidInput, NotFound
from core.models import User
from referral.error_codes import LeadErrorCode, LinkErrorCode
from referral.locks import lead_submissions_lock
from referral.models import Attribution, Distributor, Lead, LeadEvent, ShareLink
from shop.models import Customer, Order

S = Lead.Status
LEAD_FORM = "lead_form"
NAME_MAX = 64
INTEREST_MAX = 500
NOTE_MAX = 500
PHONE_DIGITS = (5, 20)
OPEN = (S.NEW, S.CONTACTED)
TRANSITIONS: dict[str, tuple[str, ...]] = {
    S.NEW: (S.CONTACTED, S.CONVERTED, S.LOST),
    S.CONTACTED: (S.CONVERTED, S.LOST),
    S.CONVERTED: (),
    S.LOST: (),
}
PAID_STATUSES = (
    Order.Status.PAID,
    Order.Status.FULFILLED,
    Order.Status.COMPLETED,
    Order.Status.PARTIALLY_REFUNDED,
)
CONSENT_TEXT = (
    "I agree that the distributor who shared this form may contact me, by phone, about the "
    "brand's products, and that my name, phone number and interest are given to them for that "
    "purpose only."
)
AUTO_NOTE = "auto: attributed order"
_PHONE = re.compile(r"^\+?[0-9]+$")  # ASCII digits only: \d would take other scripts' digits
_PHONE_SEPARATORS = re.compile(r"[ \-]")


def _invalid(field: str, reason: str) -> InvalidInput:
    return InvalidInput(
        f"Invalid lead: {field}: {reason}",
        code=LeadErrorCode.LEAD_INVALID,
        details={"field": field, "reason": reason},
    )


def phone_normalized(raw: str) -> str | None:
    """The phone as stored and compared (``+`` and digits, separators dropped), or None when it
    is not 5-20 digits with an optional leading ``+``."""
    phone = _PHONE_SEPARATORS.sub("", raw.strip())
    if not _PHONE.match(phone):
        return None
    digits = len(phone.lstrip("+"))
    low, high = PHONE_DIGITS
    return phone if low <= digits <= high else None


def _lead_form_link(short_code: str) -> ShareLink:
    link = (
        ShareLink.objects.select_related("distributor")
        .filter(
            short_code=short_code,
            is_active=True,
            target_kind=LEAD_FORM,
            distributor__status=Distributor.Status.ACTIVE,
        )
        .first()
    )
    if link is None:
        raise NotFound("No such lead form.", code=LinkErrorCode.LINK_NOT_FOUND)
    return link


def lead_submit(
    *,
    short_code: str,
    name: str,
    phone: str,
    interest: str = "",
    consent: bool,
    customer: Customer | None = None,
    ip_hash: str = "",
) -> Lead:
    """A visitor's lead form (see the module docstring): a new lead, or the same phone's open
    lead of this distributor. 404 ``link_not_found``, 422 ``consent_required``, 422
    ``lead_invalid`` (``details.field``)."""
    link = _lead_form_link(short_code.strip())
    if consent is not True:
        raise InvalidInput(
            "Consent to be contacted is required.",
            code=LeadErrorCode.CONSENT_REQUIRED,
            details={"consent_text": CONSENT_TEXT},
        )
    name = name.strip()
    if not 1 <= len(name) <= NAME_MAX:
        raise _invalid("name", f"1 to {NAME_MAX} characters")
    normalized = phone_normalized(phone)
    if normalized is None:
        raise _invalid("phone", "5 to 20 digits, optionally after a leading +")
    interest = interest.strip()
    if len(interest) > INTEREST_MAX:
        raise _invalid("interest", f"at most {INTEREST_MAX} characters")
    with transaction.atomic():
        lead_submissions_lock(link.distributor_id, normalized)
        existing = (
            Lead.objects.filter(
                distributor_id=link.distributor_id, phone=normalized, status__in=OPEN
            )
            .order_by("id")
            .first()
        )
        if existing is not None:
            return existing
        lead = Lead.objects.create(
            distributor_id=link.distributor_id,
            link=link,
            name=name,
            phone=normalized,
            interest=interest,
            consent=True,
            consent_text=CONSENT_TEXT,
            customer=customer,
            ip_hash=ip_hash,
        )
        LeadEvent.objects.create(lead=lead, from_status="", to_status=S.NEW)
    return lead


def _illegal(from_status: str, to_status: str) -> Conflict:
    return Conflict(
        f"A {from_status} lead cannot become {to_status}.",
        code=LeadErrorCode.LEAD_ILLEGAL_TRANSITION,
        details={"from": from_status, "to": to_status},
    )


def _conversion_order(*, distributor: Distributor, order_id: int | None, lead_id: int) -> Order:
    if order_id is None:
        raise _invalid("order_id", "a conversion names the order")
    order = Order.objects.filter(pk=order_id, status__in=PAID_STATUSES).first()
    attributed = (
        order is not None
        and Attribution.objects.filter(order_id=order_id, distributor_id=distributor.pk).exists()
    )
    if order is None or not attributed:
        raise _invalid("order_id", "a paid order attributed to you")
    taken = Lead.objects.filter(distributor=distributor, order_id=order_id).exclude(pk=lead_id)
    if taken.exists():
        raise _invalid("order_id", "this order already converts another lead")
    return order


def lead_set_status(
    *,
    distributor: Distributor,
    lead_id: int,
    status: str,
    note: str = "",
    order_id: int | None = None,
    actor: User | None,
) -> Lead:
    """Move one of the distributor's leads (see the module docstring). 404 ``lead_not_found``
    (another distributor's lead too), 409 ``lead_illegal_transition``, 422 ``lead_invalid``."""
    lead = Lead.objects.filter(pk=lead_id, distributor=distributor).first()
    if lead is None:
        raise NotFound("Lead not found.", code=LeadErrorCode.LEAD_NOT_FOUND)
    if status not in S.values:
        raise _invalid("status", f"one of {', '.join(S.values)}")
    note = note.strip()
    if len(note) > NOTE_MAX:
        raise _invalid("note", f"at most {NOTE_MAX} characters")
    if status not in TRANSITIONS[lead.status]:
        raise _illegal(lead.status, status)
    if status != S.CONVERTED and order_id is not None:
        raise _invalid("order_id", "only a conversion names an order")
    changes: dict[str, Any] = {"status": status, "updated_at": timezone.now()}
    if status == S.CONVERTED:
        order = _conversion_order(distributor=distributor, order_id=order_id, lead_id=lead.pk)
        changes["order"] = order
        if lead.customer_id is None:
            changes["customer_id"] = order.customer_id
    with transaction.atomic():
        applied = Lead.objects.filter(pk=lead.pk, status=lead.status).update(**changes)
        if not applied:  # another change got there first: answer from the state it left
            current = Lead.objects.values_list("status", flat=True).get(pk=lead.pk)
            raise _illegal(current, status)
        LeadEvent.objects.create(
            lead=lead, from_status=lead.status, to_status=status, actor=actor, note=note
        )
    return lead_get(lead_id=lead.pk)


def leads_convert_on_attribution(*, order_attributed: Mapping[str, Any]) -> None:
    """``order_attributed``: the attributed distributor's open lead with the buyer's phone
    becomes converted with the order. Idempotent (a converted lead is no longer open)."""
    distributor_id = order_attributed.get("distributor_id")
    order_id = order_attributed.get("order_id")
    if distributor_id is None or order_id is None:
        return
    order = (
        Order.objects.select_related("customer")
        .filter(pk=order_id, status__in=PAID_STATUSES)
        .first()
    )
    if order is None:
        return
    phone = phone_normalized(order.customer.phone)
    if phone is None:
        return
    with transaction.atomic():
        lead = (
            Lead.objects.filter(distributor_id=distributor_id, phone=phone, status__in=OPEN)
            .order_by("id")
            .first()
        )
        if (
            lead is None
            or Lead.objects.filter(distributor_id=distributor_id, order_id=order_id).exists()
        ):
            return
        changes: dict[str, Any] = {
            "status": S.CONVERTED,
            "order_id": order.pk,
            "updated_at": timezone.now(),
        }
        if lead.customer_id is None:
            changes["customer_id"] = order.customer_id
        if not Lead.objects.filter(pk=lead.pk, status=lead.status).update(**changes):
            return  # changed meanwhile by its distributor: theirs stands
        LeadEvent.objects.create(
            lead=lead, from_status=lead.status, to_status=S.CONVERTED, actor=None, note=AUTO_NOTE
        )


# --- reads -------------------------------------------------------------------------------------
def leads(*, distributor_id: int | None = None, status: str | None = None) -> QuerySet[Lead]:
    """Leads, newest first, with their history."""
    found = Lead.objects.select_related("link").prefetch_related("events").order_by("-id")
    if distributor_id is not None:
        found = found.filter(distributor_id=distributor_id)
    if status is not None:
        found = found.filter(status=status)
    return found


def lead_get(*, lead_id: int) -> Lead:
    return leads().get(pk=lead_id)
