"""Every lock referral takes, in one place (shop/locks.py explains the project's order; referral's
rows come after the shop's order and customer rows and never together with stock).

Order inside referral, top to bottom::

    tree lock          structural changes of the tree (attach, move): one advisory lock
    -> distributor     a distributor's status and profile (row lock); making a link locks it too,
                       so a distributor's active links are counted one creation at a time
    -> share link      deactivating a link; the click flush locks links in id order
    -> policy          the onboarding policy row
    -> customer        one customer's attributions (advisory, per customer: also covers the
                       binding row before it exists)
    -> rule versions   numbering attribution rule versions (advisory)
    -> lead phone      lead submissions of one phone to one distributor (advisory)
    -> fraud flag      reviewing one flag (row lock)

Advisory locks are transaction-scoped (``pg_advisory_xact_lock``): they end with the transaction
that took them, so each helper must be called inside ``transaction.atomic()``. Their keys live
here, so that no two locks share one. Row-lock helpers return the locked row (None when absent)
and lock only the model's own row (``of=("self",)``) when they join others for reading. After
taking a lock, re-read and re-check state: the work may have been done by its previous holder.
"""

import zlib

from django.db import connection
from django.db.models import QuerySet

from referral.models import Distributor, FraudFlag, ReferralPolicy, ShareLink

TREE_KEY = 7_311_001  # pg_advisory_xact_lock(bigint)
RULE_VERSIONS_KEY = 7_311_003  # pg_advisory_xact_lock(bigint)
CUSTOMER_SPACE = 7_311  # pg_advisory_xact_lock(bigint): CUSTOMER_SPACE << 32 | customer id
LEAD_SPACE = 7_311_002  # pg_advisory_xact_lock(int, int): (LEAD_SPACE, crc of distributor:phone)


def _advisory(*keys: int) -> None:
    placeholders = ", ".join(["%s"] * len(keys))
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT pg_advisory_xact_lock({placeholders})", list(keys))


def tree_lock() -> None:
    """Serialise structural changes of the referral tree until the transaction ends."""
    _advisory(TREE_KEY)


def customer_attribution_lock(customer_id: int) -> None:
    """Serialise the attributions (and the binding) of one customer."""
    _advisory((CUSTOMER_SPACE << 32) | (customer_id & 0xFFFF_FFFF))


def rule_versions_lock() -> None:
    """Serialise the numbering of attribution rule versions."""
    _advisory(RULE_VERSIONS_KEY)


def lead_submissions_lock(distributor_id: int, phone: str) -> None:
    """Serialise lead submissions of one phone to one distributor."""
    _advisory(LEAD_SPACE, zlib.crc32(f"{distributor_id}:{phone}".encode()) - 2**31)


def lock_distributor(distributor_id: int) -> Distributor | None:
    """The distributor row, locked, with its customer (not locked)."""
    return (
        Distributor.objects.select_for_update(of=("self",))
        .select_related("customer")
        .filter(pk=distributor_id)
        .first()
    )


def lock_distributor_of_customer(customer_id: int) -> Distributor | None:
    return (
        Distributor.objects.select_for_update(of=("self",))
        .select_related("customer")
        .filter(customer_id=customer_id)
        .first()
    )


def lock_distributor_status(distributor_id: int) -> Distributor:
    """Only the status column is read; the row is locked so it cannot change meanwhile."""
    return Distributor.objects.select_for_update().only("status").get(pk=distributor_id)


def lock_link(links: QuerySet[ShareLink]) -> ShareLink | None:
    """The one link of ``links`` (a distributor's, filtered by id), locked."""
    return links.select_for_update().first()


def lock_policy(pk: int) -> ReferralPolicy:
    return ReferralPolicy.objects.select_for_update().get(pk=pk)


def lock_fraud_flag(flag_id: int) -> FraudFlag | None:
    return FraudFlag.objects.select_for_update().filter(pk=flag_id).first()
