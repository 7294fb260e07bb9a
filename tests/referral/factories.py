"""Factories of referral rows for tests (the tree through its own service, so the closure table
is always right)."""

from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from referral.locks import tree_lock
from referral.models import Distributor
from referral.services.tree import tree_attach
from tests.factories import CustomerFactory


def make_distributor(
    *,
    upline: Distributor | None = None,
    customer=None,
    status: str = Distributor.Status.ACTIVE,
    display_name: str = "",
    kind: str = Distributor.Kind.KOC,
) -> Distributor:
    """An active (by default) distributor under ``upline``, with its ancestry rows."""
    customer = customer or CustomerFactory()
    with transaction.atomic():
        tree_lock()
        distributor = Distributor.objects.create(
            customer=customer,
            display_name=display_name or f"KOC {customer.pk}",
            kind=kind,
            status=status,
            onboarding=Distributor.Onboarding.APPOINTED,
            joined_at=timezone.now() if status == Distributor.Status.ACTIVE else None,
        )
        tree_attach(distributor=distributor, upline=upline)
    return distributor


def make_chain(length: int) -> list[Distributor]:
    """``length`` distributors, each the upline of the next (root first)."""
    chain: list[Distributor] = []
    for _ in range(length):
        chain.append(make_distributor(upline=chain[-1] if chain else None))
    return chain


def referral_world(*, shopper, order) -> dict:
    """Referral rows behind every referral path parameter of the API (the OpenAPI contract
    tests aim hostile requests at them): the shopper is an active distributor with a product
    link, a lead form and a lead; ``order`` (paid) is attributed to them and flagged."""
    from referral.models import Attribution, AttributionLevel, FraudFlag, Lead, ShareLink
    from referral.services.codes import exclusive_code_issue
    from referral.services.rules_admin import rule_current

    me = make_distributor(customer=shopper)
    link = ShareLink.objects.create(
        distributor=me, short_code="WORLD234", target_kind="shop", title="Shop"
    )
    form = ShareLink.objects.create(
        distributor=me, short_code="FORM2345", target_kind="lead_form", title="Contact me"
    )
    lead = Lead.objects.create(
        distributor=me,
        link=form,
        name="Wang",
        phone="13900000000",
        consent=True,
        consent_text="May be contacted",
    )
    rule = rule_current()
    # with commit hooks running (transactional tests) the subscriber has attributed it already
    attribution, _ = Attribution.objects.update_or_create(
        order=order,
        defaults={
            "customer": order.customer,
            "distributor": me,
            "rule": rule,
            "rule_version": rule.version,
            "touch": Attribution.Touch.CLICK,
            "link": link,
            "source": order.source,
            "goods_amount": order.total - order.shipping_fee,
            "paid_at": order.paid_at or timezone.now(),
        },
    )
    AttributionLevel.objects.update_or_create(
        attribution=attribution, level=1, defaults={"distributor": me}
    )
    flag = FraudFlag.objects.create(
        kind=FraudFlag.Kind.CLICK_SPAM,
        distributor=me,
        attribution=attribution,
        dedupe_key=f"world:{attribution.pk}",
    )
    code = exclusive_code_issue(
        actor=None,
        distributor_id=me.pk,
        kind="fixed",
        amount=100,
        valid_until=timezone.now() + timedelta(days=30),
    )
    return {
        "distributor_id": me.pk,
        "link_id": link.pk,
        "short_code": link.short_code,
        "lead_id": lead.pk,
        "attribution_id": attribution.pk,
        "flag_id": flag.pk,
        "exclusive_code_id": code.pk,
    }
