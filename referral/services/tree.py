"""The referral tree's structure: a closure table (``DistributorAncestry``) beside each
distributor's ``upline`` and ``depth``.

- ``tree_attach`` hangs a new distributor (a leaf) under an upline: one INSERT copies the
  upline's ancestry.
- ``tree_move`` re-parents a distributor with its whole subtree (an operator's action): the rows
  linking the subtree to its old ancestors go, the cross product with the new ancestors comes,
  in three set-based statements whatever the subtree's size.
- ``tree_ancestors`` is one index lookup (``descendant, depth``): O(1) in the size of the tree.

Cycles are impossible: a distributor is never attached or moved under itself or one of its
descendants (checked under the tree lock, and a check constraint refuses a self-upline). Every
structural change takes the tree lock (``referral.locks.tree_lock``), so two moves never
interleave; attaching a leaf is rare enough to share it. Attribution only reads the tree."""

from django.db import connection

from referral.models import Distributor, DistributorAncestry


class WouldCycle(Exception):
    """The new upline is the distributor itself or one of its descendants."""


def tree_ancestors(distributor_id: int) -> list[int]:
    """Ids of the distributor's uplines, nearest first (the whole chain)."""
    return list(
        DistributorAncestry.objects.filter(descendant_id=distributor_id)
        .order_by("depth")
        .values_list("ancestor_id", flat=True)
    )


def tree_is_in_subtree(*, root_id: int, node_id: int) -> bool:
    """True if ``node_id`` is ``root_id`` or one of its descendants."""
    return node_id == root_id or (
        DistributorAncestry.objects.filter(ancestor_id=root_id, descendant_id=node_id).exists()
    )


_ATTACH_SQL = """
INSERT INTO referral_distributorancestry (ancestor_id, descendant_id, depth)
SELECT %(upline)s, %(node)s, 1
UNION ALL
SELECT ancestor_id, %(node)s, depth + 1 FROM referral_distributorancestry
WHERE descendant_id = %(upline)s
"""


def tree_attach(*, distributor: Distributor, upline: Distributor | None) -> None:
    """Inside the caller's transaction, under the tree lock: make ``upline`` the upline of a
    distributor that has none and no downline yet (a new one). Saves ``upline`` and ``depth``."""
    if upline is None:
        return
    if upline.pk == distributor.pk:
        raise WouldCycle
    distributor.upline = upline
    distributor.depth = upline.depth + 1
    distributor.save(update_fields=["upline", "depth"])
    with connection.cursor() as cursor:
        cursor.execute(_ATTACH_SQL, {"upline": upline.pk, "node": distributor.pk})


_DETACH_SQL = """
DELETE FROM referral_distributorancestry
WHERE descendant_id IN (
        SELECT %(node)s UNION ALL
        SELECT descendant_id FROM referral_distributorancestry WHERE ancestor_id = %(node)s)
    AND ancestor_id IN (
        SELECT ancestor_id FROM referral_distributorancestry WHERE descendant_id = %(node)s)
"""

_REATTACH_SQL = """
INSERT INTO referral_distributorancestry (ancestor_id, descendant_id, depth)
SELECT a.ancestor_id, s.descendant_id, a.depth + s.depth
FROM (
    SELECT %(upline)s AS ancestor_id, 1 AS depth
    UNION ALL
    SELECT ancestor_id, depth + 1 FROM referral_distributorancestry
    WHERE descendant_id = %(upline)s
) a
CROSS JOIN (
    SELECT %(node)s AS descendant_id, 0 AS depth
    UNION ALL
    SELECT descendant_id, depth FROM referral_distributorancestry WHERE ancestor_id = %(node)s
) s
"""

_SHIFT_DEPTH_SQL = """
UPDATE referral_distributor SET depth = depth + %(delta)s
WHERE id IN (SELECT descendant_id FROM referral_distributorancestry WHERE ancestor_id = %(node)s)
"""


def tree_move(*, distributor: Distributor, upline: Distributor | None) -> None:
    """Inside the caller's transaction, under the tree lock, with both rows freshly read: move
    ``distributor`` and its subtree under ``upline`` (``None``: make it a root). Raises
    ``WouldCycle`` if ``upline`` is in the subtree."""
    if upline is not None and tree_is_in_subtree(root_id=distributor.pk, node_id=upline.pk):
        raise WouldCycle
    new_depth = 0 if upline is None else upline.depth + 1
    with connection.cursor() as cursor:
        cursor.execute(_DETACH_SQL, {"node": distributor.pk})
        if upline is not None:
            cursor.execute(_REATTACH_SQL, {"upline": upline.pk, "node": distributor.pk})
        if new_depth != distributor.depth:
            cursor.execute(
                _SHIFT_DEPTH_SQL, {"delta": new_depth - distributor.depth, "node": distributor.pk}
            )
    distributor.upline = upline
    distributor.depth = new_depth
    distributor.save(update_fields=["upline", "depth"])  # one UPDATE: the pair stays consistent
