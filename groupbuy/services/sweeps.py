"""The shape every groupbuy sweep shares (groups, bargains, chain posts): close each due row in
its own transaction, so that one that fails (logged) never stops the others, and the next run
retries it."""

import logging
from collections.abc import Callable, Iterable

logger = logging.getLogger(__name__)


def close_each(ids: Iterable[int], close: Callable[[int], bool], *, what: str) -> int:
    """``close(id)`` for every id, in order; how many it closed (returned True)."""
    closed = 0
    for pk in ids:
        try:
            closed += close(pk)
        except Exception:  # one broken row must not stop the others; the next run retries it
            logger.exception("closing %s %s failed", what, pk)
    return closed
