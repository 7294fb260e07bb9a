"""Bargain (砍价): starting a bargain, friends' helps, buying it. (Being written.)"""


def bargain_order_paid(*, order_id: int, bargain_id: int | None) -> None:
    """The bargain's purchase order was paid (outbox subscriber, idempotent)."""


def bargain_order_cancelled(*, order_id: int, bargain_id: int | None) -> None:
    """The bargain's purchase order was cancelled or expired unpaid (idempotent)."""


def bargains_expire_due() -> int:
    return 0
