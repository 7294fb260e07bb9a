"""The closure table stays exact through attach and move; cycles are refused."""

import pytest
from django.db import IntegrityError, transaction

from referral.locks import tree_lock
from referral.models import Distributor, DistributorAncestry
from referral.services.tree import (
    WouldCycle,
    tree_ancestors,
    tree_is_in_subtree,
    tree_move,
)
from tests.referral.factories import make_chain, make_distributor

pytestmark = pytest.mark.django_db


def _closure() -> set[tuple[int, int, int]]:
    return set(DistributorAncestry.objects.values_list("ancestor_id", "descendant_id", "depth"))


def _expected_closure() -> set[tuple[int, int, int]]:
    """Recomputed from the ``upline`` pointers alone."""
    uplines = dict(Distributor.objects.values_list("pk", "upline_id"))
    rows = set()
    for node in uplines:
        depth, up = 1, uplines[node]
        while up is not None:
            rows.add((up, node, depth))
            depth, up = depth + 1, uplines[up]
    return rows


def _depths_consistent() -> bool:
    return all(
        d.depth == DistributorAncestry.objects.filter(descendant=d).count()
        for d in Distributor.objects.all()
    )


def test_ancestors_nearest_first():
    a, b, c, d = make_chain(4)
    assert tree_ancestors(d.pk) == [c.pk, b.pk, a.pk]
    assert tree_ancestors(a.pk) == []
    assert d.depth == 3
    assert _closure() == _expected_closure()


def test_move_a_subtree_rewrites_exactly_its_rows():
    a, b, c, d = make_chain(4)
    other = make_distributor()
    leaf = make_distributor(upline=d)
    with transaction.atomic():
        tree_lock()
        tree_move(distributor=Distributor.objects.get(pk=c.pk), upline=other)
    assert tree_ancestors(leaf.pk) == [d.pk, c.pk, other.pk]
    assert tree_ancestors(b.pk) == [a.pk]
    assert _closure() == _expected_closure()
    assert _depths_consistent()


def test_move_to_root_and_back():
    a, b, c = make_chain(3)
    with transaction.atomic():
        tree_move(distributor=Distributor.objects.get(pk=b.pk), upline=None)
    assert Distributor.objects.get(pk=c.pk).depth == 1
    assert Distributor.objects.get(pk=b.pk).depth == 0
    assert _closure() == _expected_closure()
    with transaction.atomic():
        tree_move(
            distributor=Distributor.objects.get(pk=b.pk), upline=Distributor.objects.get(pk=a.pk)
        )
    assert _closure() == _expected_closure()
    assert _depths_consistent()


def test_moving_under_own_descendant_is_refused_and_changes_nothing():
    _root, b, c = make_chain(3)
    before = _closure()
    for target in (c, b):
        with pytest.raises(WouldCycle), transaction.atomic():
            tree_move(
                distributor=Distributor.objects.get(pk=b.pk),
                upline=Distributor.objects.get(pk=target.pk),
            )
    assert _closure() == before
    assert tree_is_in_subtree(root_id=b.pk, node_id=c.pk)
    assert not tree_is_in_subtree(root_id=c.pk, node_id=b.pk)


def test_database_refuses_own_upline_and_self_ancestry():
    a = make_distributor()
    with pytest.raises(IntegrityError), transaction.atomic():
        Distributor.objects.filter(pk=a.pk).update(upline=a, depth=1)
    with pytest.raises(IntegrityError), transaction.atomic():
        DistributorAncestry.objects.create(ancestor=a, descendant=a, depth=1)
