"""Realtime topics owned by the shop."""

from core.realtime import register_topic


def _may_follow_community(user, ident: str) -> bool:
    from shop.models import CommunityMembership

    if user.is_staff:
        return True
    return CommunityMembership.objects.filter(community_id=int(ident), customer__user=user).exists()


register_topic("community", _may_follow_community)
