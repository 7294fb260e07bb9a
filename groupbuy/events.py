"""What groupbuy announces to other apps (a contract), recorded through the transactional outbox
(core/outbox.py) inside the transaction of the change, like shop/events.py.

Payloads (every key always present; ids are ``int``):

- ``group_succeeded``: group_id, campaign_id, order_ids (the paid seats' orders, ascending; all
  released from their hold), auto_completed (the expiry sweep completed a group filled enough;
  the rest of its seats were waived)
- ``group_failed``: group_id, campaign_id, order_ids (the paid seats' orders, each refunded in
  full with reason ``group_failed``), auto_completed (always False)
"""

from collections.abc import Sequence

from core import outbox
from groupbuy.models import Group

PUBLISHER = "groupbuy"
GROUP_SUCCEEDED = "group_succeeded"
GROUP_FAILED = "group_failed"
EVENTS = (GROUP_SUCCEEDED, GROUP_FAILED)


def register_events() -> None:
    """Called from ``GroupbuyConfig.ready``."""
    for name in EVENTS:
        outbox.event_register(name, publisher=PUBLISHER)


def _payload(group: Group, order_ids: Sequence[int]) -> dict:
    return {
        "group_id": group.pk,
        "campaign_id": group.campaign_id,
        "order_ids": sorted(order_ids),
        "auto_completed": group.auto_completed,
    }


def group_succeeded(group: Group, order_ids: Sequence[int]) -> None:
    outbox.event_record(GROUP_SUCCEEDED, lambda: _payload(group, order_ids))


def group_failed(group: Group, order_ids: Sequence[int]) -> None:
    outbox.event_record(GROUP_FAILED, lambda: _payload(group, order_ids))
