"""Races on the referral tree and onboarding, on real PostgreSQL with threads released on a
barrier, each with its own connection; exact outcomes."""

import pytest

from core.errors import ApplicationError
from referral.models import Distributor, DistributorEvent
from referral.services import distributors as services
from tests.conftest import run_in_threads
from tests.factories import CustomerFactory
from tests.referral.factories import make_distributor
from tests.referral.test_distributors import (
    closure,
    depths_match_uplines,
    expected_closure,
    link_click,
)

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def outcomes(results) -> list[str]:
    return sorted(r.code if isinstance(r, ApplicationError) else type(r).__name__ for r in results)


def test_ten_concurrent_joins_of_one_customer_make_one_distributor():
    services.policy_update(actor=None, onboarding="everyone")
    recruiter = make_distributor()
    customer = CustomerFactory()
    link_click(customer, recruiter)

    def join(i: int):
        return services.distributor_join(
            customer=customer, display_name=f"Mei {i}", channels=["moments"]
        )

    results = run_in_threads(10, join)

    assert outcomes(results) == ["Distributor"] + ["already_distributor"] * 9
    made = Distributor.objects.get(customer=customer)
    assert DistributorEvent.objects.filter(distributor=made).count() == 1
    assert made.upline_id == recruiter.pk
    assert Distributor.objects.count() == 2
    assert closure() == expected_closure()


def test_concurrent_joins_under_one_recruiter_keep_the_closure_exact():
    services.policy_update(actor=None, onboarding="everyone")
    root = make_distributor()
    recruiter = make_distributor(upline=root)
    customers = [CustomerFactory() for _ in range(12)]
    for customer in customers:
        link_click(customer, recruiter)

    results = run_in_threads(
        12,
        lambda i: services.distributor_join(
            customer=customers[i], display_name=f"KOC {i}", channels=[]
        ),
    )

    assert outcomes(results) == ["Distributor"] * 12
    assert Distributor.objects.filter(upline=recruiter, depth=2).count() == 12
    assert closure() == expected_closure()
    assert depths_match_uplines()


def test_two_reparents_that_together_make_a_cycle_one_wins():
    a, b = make_distributor(), make_distributor()
    moves = [(a.pk, b.pk), (b.pk, a.pk)]

    results = run_in_threads(
        2,
        lambda i: services.distributor_reparent(
            distributor_id=moves[i][0], upline_id=moves[i][1], actor=None, reason="Race"
        ),
    )

    assert outcomes(results) == ["Distributor", "referral_cycle"]
    assert closure() == expected_closure()
    assert depths_match_uplines()
    roots = Distributor.objects.filter(upline__isnull=True).values_list("pk", flat=True)
    assert len(roots) == 1
    assert DistributorEvent.objects.filter(kind="reparented").count() == 1


def test_many_crossing_reparents_never_make_a_cycle():
    """Six roots, every one asked to go under every other at once: whatever wins, the tree stays
    a forest whose closure matches its upline pointers."""
    nodes = [make_distributor() for _ in range(6)]
    moves = [(x.pk, y.pk) for x in nodes for y in nodes if x.pk != y.pk][:24]

    results = run_in_threads(
        len(moves),
        lambda i: services.distributor_reparent(
            distributor_id=moves[i][0], upline_id=moves[i][1], actor=None, reason="Race"
        ),
    )

    assert set(outcomes(results)) <= {"Distributor", "referral_cycle"}
    assert closure() == expected_closure()
    assert depths_match_uplines()
    assert Distributor.objects.filter(upline__isnull=True).count() >= 1
    moved = DistributorEvent.objects.filter(kind="reparented").count()
    assert moved == outcomes(results).count("Distributor")


def test_ten_concurrent_approvals_of_one_application_approve_it_once():
    applied = make_distributor(status=Distributor.Status.APPLIED)

    results = run_in_threads(
        10,
        lambda i: services.distributor_approve(distributor_id=applied.pk, actor=None),
    )

    assert outcomes(results) == ["Distributor"] + ["illegal_transition"] * 9
    assert DistributorEvent.objects.filter(distributor=applied, kind="approved").count() == 1


def test_joins_under_a_recruiter_that_moves_meanwhile_follow_it():
    services.policy_update(actor=None, onboarding="everyone")
    old_root, new_root = make_distributor(), make_distributor()
    recruiter = make_distributor(upline=old_root)
    customers = [CustomerFactory() for _ in range(9)]
    for customer in customers:
        link_click(customer, recruiter)

    def act(i: int):
        if i == 0:
            return services.distributor_reparent(
                distributor_id=recruiter.pk, upline_id=new_root.pk, actor=None, reason="Move"
            )
        return services.distributor_join(
            customer=customers[i - 1], display_name=f"KOC {i}", channels=[]
        )

    results = run_in_threads(10, act)

    assert outcomes(results) == ["Distributor"] * 10
    assert closure() == expected_closure()
    assert depths_match_uplines()
    assert Distributor.objects.filter(upline=recruiter).count() == 9
