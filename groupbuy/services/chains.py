"""Community chain sign-up (接龙): posts, entries, the pickup sheet. (Being written.)"""


def entry_order_paid(*, order_id: int, post_id: int | None) -> None:
    """An entry's order was paid (outbox subscriber, idempotent)."""


def entry_order_cancelled(*, order_id: int, post_id: int | None) -> None:
    """An entry's order was cancelled or expired unpaid: the entry drops off (idempotent)."""


def posts_close_due() -> int:
    return 0
