"""Exclusive codes (专属优惠码): operator-issued shop coupon codes tied to a distributor
(INTERFACES.md: coupons and codes live in the shop; referral ties a code to who shares it).

``exclusive_code_issue`` makes, in one transaction and through the shop's own services
(shop/services/coupons.py):

1. an active ``code``-channel CouponTemplate in the exclusive slot (``is_exclusive``) with the
   terms: fixed amount or percentage off (with an optional cap), minimum spend, validity,
   ``total_quantity`` = ``total_limit`` and ``per_customer_limit``;
2. one shared CouponCode (``max_redemptions`` = ``total_limit``), of the chosen text or a
   generated one;
3. the code's hidden ShareLink (``is_code_link``; utm ``exclusive_code`` / ``code`` / the code),
   on which attribution records each checkout with the code as a ``code`` click;
4. the ExclusiveCode row tying the code and the link to the distributor.

Everything a customer meets at checkout is the shop's: the discount in the exclusive slot (it
stacks with one platform coupon), the limits, the minimum spend, validity, a cancelled order's
coupon staying with the customer, a fully refunded order's coupon given back while valid, and
the rate limit on wrong codes. Attribution reads the order's ``coupon_code`` and finds the
ExclusiveCode of that CouponCode.

Rules chosen where the issue left room:
- Kinds ``fixed`` and ``percent`` only: a tiered or free-shipping discount is not what a
  distributor hands out (422 ``exclusive_code_invalid``, ``details.field`` ``kind``); the fields
  of the other kind must stay empty.
- The shop redeems a shared code once per customer (the coupon it gives is theirs for good, and
  comes back to them when an order is cancelled or fully refunded), so ``per_customer_limit``
  can only be 1: a larger one could not be honoured and is refused instead of ignored.
- ``valid_from`` is also when the code may first be redeemed (the template's ``claim_starts_at``),
  so that it holds with ``valid_days`` too (the shop's coupon then lasts ``valid_days`` from
  redemption, capped by ``valid_until``). A window that has already ended is refused.
- Deactivating stops new redemptions only (``CouponCode.is_active``): coupons customers already
  redeemed stay theirs, usable by coupon id; the hidden link stays active so that orders placed
  with the code before still attribute.
"""

import logging
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.utils import timezone

from core.errors import Conflict, InvalidInput, NotFound
from core.models import User
from referral.error_codes import DistributorErrorCode, ExclusiveCodeErrorCode
from referral.models import Distributor, ExclusiveCode, ShareLink
from shop.models import CouponCode, CouponTemplate
from shop.services.coupons import coupon_codes_create, coupon_template_create

logger = logging.getLogger(__name__)

T = CouponTemplate
KINDS = (T.Kind.FIXED, T.Kind.PERCENT)
CODE_PATTERN = re.compile(r"^[A-Za-z0-9_-]{4,32}$")  # what the shop's staff API takes
NAME_MAX = 100  # CouponTemplate.name
UTM_MAX = 64  # ShareLink.utm_*
LINK_CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no I, O, 0, 1
LINK_CODE_LENGTH = 8
LINK_CODE_ATTEMPTS = 5
UTM_SOURCE = "exclusive_code"
UTM_MEDIUM = "code"
CODE_LINK_TARGET = "shop"


def _invalid(field: str, reason: str) -> InvalidInput:
    return InvalidInput(
        f"Invalid exclusive code: {field}: {reason}",
        code=ExclusiveCodeErrorCode.EXCLUSIVE_CODE_INVALID,
        details={"field": field, "reason": reason},
    )


@dataclass(frozen=True)
class _Terms:
    code: str
    kind: str
    amount: int
    percent_bps: int
    max_discount: int | None
    min_spend: int
    valid_from: datetime | None
    valid_until: datetime | None
    valid_days: int | None
    total_limit: int | None
    per_customer_limit: int
    name: str


def _check_terms(terms: _Terms, now: datetime) -> None:
    """Referral's own rules on an exclusive code's terms (the shop's template rules are checked
    by the shop: 422 ``coupon_template_invalid``)."""
    if terms.code and not CODE_PATTERN.match(terms.code):
        raise _invalid("code", "4 to 32 letters, digits, '-' or '_'")
    if terms.kind not in KINDS:
        raise _invalid("kind", "fixed or percent")
    if terms.kind == T.Kind.FIXED and (terms.percent_bps or terms.max_discount is not None):
        field = "percent_bps" if terms.percent_bps else "max_discount"
        raise _invalid(field, "a fixed code takes amount only")
    if terms.kind == T.Kind.PERCENT and terms.amount:
        raise _invalid("amount", "a percent code takes percent_bps (and max_discount) only")
    if terms.total_limit is not None and terms.total_limit < 1:
        raise _invalid("total_limit", "at least 1, or empty for no limit")
    if terms.per_customer_limit != 1:
        raise _invalid("per_customer_limit", "a shared code is redeemed once per customer")
    if len(terms.name) > NAME_MAX:
        raise _invalid("name", f"at most {NAME_MAX} characters")
    if terms.valid_until is not None and terms.valid_until <= now:
        raise _invalid("valid_until", "in the future")


def _link_code() -> str:
    return "".join(secrets.choice(LINK_CODE_ALPHABET) for _ in range(LINK_CODE_LENGTH))


def _code_link(*, distributor: Distributor, code_text: str) -> ShareLink:
    """The code's hidden link, with a fresh short code (drawn again on a clash)."""
    for _attempt in range(LINK_CODE_ATTEMPTS):
        try:
            with transaction.atomic():
                return ShareLink.objects.create(
                    distributor=distributor,
                    short_code=_link_code(),
                    target_kind=CODE_LINK_TARGET,
                    target_id=None,
                    title=f"Exclusive code {code_text}"[:200],
                    utm_source=UTM_SOURCE,
                    utm_medium=UTM_MEDIUM,
                    utm_campaign=code_text[:UTM_MAX],
                    is_code_link=True,
                )
        except IntegrityError:
            continue  # short code taken: 32^8 codes, practically never twice
    raise RuntimeError("could not draw a free short code")


def exclusive_code_issue(
    *,
    actor: User | None,
    distributor_id: int,
    code: str = "",
    kind: str,
    amount: int = 0,
    percent_bps: int = 0,
    max_discount: int | None = None,
    min_spend: int = 0,
    valid_from: datetime | None = None,
    valid_until: datetime | None,
    valid_days: int | None = None,
    total_limit: int | None = None,
    per_customer_limit: int = 1,
    name: str = "",
) -> ExclusiveCode:
    """Issue an exclusive code for an active distributor (see the module docstring). 404
    ``distributor_not_found``; 409 ``distributor_not_active``; 422 ``exclusive_code_invalid``
    (``details.field``); the shop's 422 ``coupon_template_invalid`` and 409
    ``coupon_code_taken`` pass through. Nothing is written unless everything is."""
    terms = _Terms(
        code=code.strip(),
        kind=kind,
        amount=amount,
        percent_bps=percent_bps,
        max_discount=max_discount,
        min_spend=min_spend,
        valid_from=valid_from,
        valid_until=valid_until,
        valid_days=valid_days,
        total_limit=total_limit,
        per_customer_limit=per_customer_limit,
        name=name.strip(),
    )
    _check_terms(terms, timezone.now())
    distributor = Distributor.objects.filter(pk=distributor_id).first()
    if distributor is None:
        raise NotFound("Distributor not found.", code=DistributorErrorCode.DISTRIBUTOR_NOT_FOUND)
    if distributor.status != Distributor.Status.ACTIVE:
        raise Conflict(
            "Exclusive codes are issued to active distributors only.",
            code=DistributorErrorCode.DISTRIBUTOR_NOT_ACTIVE,
            details={"status": distributor.status},
        )
    fields: dict[str, Any] = {
        "name": terms.name or f"Exclusive: {distributor.display_name}"[:NAME_MAX],
        "kind": terms.kind,
        "amount": terms.amount,
        "percent_bps": terms.percent_bps,
        "max_discount": terms.max_discount,
        "min_spend": terms.min_spend,
        "valid_from": terms.valid_from,
        "valid_until": terms.valid_until,
        "valid_days": terms.valid_days,
        "claim_starts_at": terms.valid_from,
        "channel": T.Channel.CODE,
        "is_exclusive": True,
        "total_quantity": terms.total_limit,
        "per_customer_limit": terms.per_customer_limit,
    }
    with transaction.atomic():
        template = coupon_template_create(staff=actor, activate=True, **fields)
        [coupon_code] = coupon_codes_create(
            template_id=template.pk,
            kind=CouponCode.Kind.SHARED,
            code=terms.code,
            max_redemptions=terms.total_limit,
        )
        link = _code_link(distributor=distributor, code_text=coupon_code.code)
        exclusive = ExclusiveCode.objects.create(
            distributor=distributor, coupon_code=coupon_code, link=link, created_by=actor
        )
    logger.info(
        "exclusive code %s (%s) issued to distributor %s by %s",
        exclusive.pk,
        coupon_code.code,
        distributor.pk,
        actor,
    )
    return exclusive_code_get(exclusive_code_id=exclusive.pk)


def exclusive_code_deactivate(*, actor: User | None, exclusive_code_id: int) -> ExclusiveCode:
    """Stop new redemptions of an exclusive code (its shop code becomes inactive); coupons
    already redeemed stay with their customers. Idempotent. 404 ``exclusive_code_not_found``."""
    exclusive = exclusive_code_get(exclusive_code_id=exclusive_code_id)
    with transaction.atomic():
        changed = CouponCode.objects.filter(pk=exclusive.coupon_code_id, is_active=True).update(
            is_active=False
        )
    if changed:
        logger.info("exclusive code %s deactivated by %s", exclusive.pk, actor)
    return exclusive_code_get(exclusive_code_id=exclusive_code_id)


# --- reads -------------------------------------------------------------------------------------
def exclusive_codes(*, distributor_id: int | None = None) -> QuerySet[ExclusiveCode]:
    """Exclusive codes, newest first, with their shop code, template, link and distributor."""
    found = ExclusiveCode.objects.select_related(
        "coupon_code__template", "link", "distributor"
    ).order_by("-id")
    if distributor_id is not None:
        found = found.filter(distributor_id=distributor_id)
    return found


def exclusive_code_get(*, exclusive_code_id: int) -> ExclusiveCode:
    exclusive = exclusive_codes().filter(pk=exclusive_code_id).first()
    if exclusive is None:
        raise NotFound(
            "Exclusive code not found.", code=ExclusiveCodeErrorCode.EXCLUSIVE_CODE_NOT_FOUND
        )
    return exclusive


def exclusive_code_usable(exclusive: ExclusiveCode, now: datetime) -> bool:
    """Whether a customer who never redeemed it could redeem the code at ``now``."""
    code = exclusive.coupon_code
    template = code.template
    return (
        code.is_active
        and template.status == T.Status.ACTIVE
        and (template.valid_from is None or template.valid_from <= now)
        and (template.claim_starts_at is None or template.claim_starts_at <= now)
        and (template.valid_until is None or now < template.valid_until)
        and (code.max_redemptions is None or code.redemptions < code.max_redemptions)
        and (template.total_quantity is None or template.issued_count < template.total_quantity)
    )
