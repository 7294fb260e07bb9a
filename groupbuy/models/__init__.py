"""Group-buy's models, one module per flow: group-buy (groups.py), bargain (bargains.py) and
community chain sign-up with announcements (chains.py). Money is integer fen."""

from groupbuy.models.bargains import Bargain, BargainCampaign, BargainHelp
from groupbuy.models.chains import ChainEntry, ChainPost, ChainPostItem, CommunityAnnouncement
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
    "Bargain",
    "BargainCampaign",
    "BargainHelp",
    "ChainEntry",
    "ChainPost",
    "ChainPostItem",
    "CommunityAnnouncement",
    "Group",
    "GroupCampaign",
    "GroupCampaignSku",
    "GroupSeat",
    "new_share_token",
]
