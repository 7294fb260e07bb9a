"""Group-buy's models, one module per flow: group-buy (groups.py), bargain (bargains.py) and
community chain sign-up with announcements (chains.py). Money is integer fen."""

from groupbuy.models.groups import (
    BPS_FULL,
    Group,
    GroupCampaign,
    GroupCampaignSku,
    GroupSeat,
    new_share_token,
)

__all__ = [
    "BPS_FULL",
    "Group",
    "GroupCampaign",
    "GroupCampaignSku",
    "GroupSeat",
    "new_share_token",
]
