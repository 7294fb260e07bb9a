"""The link targets group-buy owns (core/link_targets.py): group-buy and bargain campaigns, and
chain sign-up posts."""

from django.utils import timezone

from core.link_targets import LinkTarget, register_target


def _live_campaign(campaign, now) -> bool:
    return (
        campaign.status == campaign.Status.ACTIVE and campaign.starts_at <= now < campaign.ends_at
    )


def _group_campaign(ident: int | None) -> LinkTarget | None:
    from groupbuy.models import GroupCampaign

    if ident is None:
        return None
    campaign = (
        GroupCampaign.objects.filter(pk=ident).exclude(status=GroupCampaign.Status.DRAFT).first()
    )
    if campaign is None:
        return None
    return LinkTarget(
        kind="group_campaign",
        id=ident,
        path=f"pages/groupbuy/campaign?id={ident}",
        title=campaign.title,
        live=_live_campaign(campaign, timezone.now()),
    )


def _bargain_campaign(ident: int | None) -> LinkTarget | None:
    from groupbuy.models import BargainCampaign

    if ident is None:
        return None
    campaign = (
        BargainCampaign.objects.filter(pk=ident)
        .exclude(status=BargainCampaign.Status.DRAFT)
        .first()
    )
    if campaign is None:
        return None
    return LinkTarget(
        kind="bargain_campaign",
        id=ident,
        path=f"pages/bargain/campaign?id={ident}",
        title=campaign.title,
        live=_live_campaign(campaign, timezone.now()),
    )


def _chain_post(ident: int | None) -> LinkTarget | None:
    from groupbuy.models import ChainPost

    if ident is None:
        return None
    post = ChainPost.objects.filter(pk=ident).exclude(status=ChainPost.Status.CANCELLED).first()
    if post is None:
        return None
    return LinkTarget(
        kind="chain_post",
        id=ident,
        path=f"pages/chain/post?id={ident}",
        title=post.title,
        live=post.status == ChainPost.Status.OPEN and timezone.now() < post.deadline,
    )


def register() -> None:
    register_target("group_campaign", _group_campaign)
    register_target("bargain_campaign", _bargain_campaign)
    register_target("chain_post", _chain_post)
