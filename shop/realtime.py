"""Realtime topics owned by the shop."""

from core.realtime import register_topic


def _may_follow_community(user, ident: str) -> bool:
    from shop.models import CommunityMembership

    if user.is_staff:
        return True
    return CommunityMembership.objects.filter(community_id=int(ident), customer__user=user).exists()


register_topic("community", _may_follow_community)


def _may_follow_flash(user, ident: str) -> bool:
    """Any logged-in customer (or operator) may follow a published flash sale."""
    from shop.models import Customer, FlashSession

    if not (user.is_staff or Customer.objects.filter(user=user).exists()):
        return False
    return FlashSession.objects.filter(pk=int(ident), is_published=True).exists()


register_topic("flash", _may_follow_flash)
