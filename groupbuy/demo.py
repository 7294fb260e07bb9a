"""Group-buy's demo data for ``manage.py seed_demo`` (shop/management/commands/seed_demo.py finds
this module by name): a running group-buy with an open group one neighbour has paid for, a
bargain that neighbour started for friends to help, and the leader's chain sign-up post with the
neighbour's paid entry. Idempotent: what is still running from an earlier run is reused.

Everything goes through the services (and the sandbox payment provider), as a user would."""

from datetime import timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone

from groupbuy.models import (
    Bargain,
    BargainCampaign,
    ChainEntry,
    ChainPost,
    Group,
    GroupCampaign,
    GroupCampaignSku,
)
from groupbuy.services.bargains import bargain_start
from groupbuy.services.chains import entry_create, post_publish
from groupbuy.services.groups import group_open
from shop.models import Community, CommunityMembership, Customer, Order, Sku
from shop.services.customers import customer_get_or_create
from shop.services.payments import payment_confirm_sandbox, payment_start
from shop.wechat import sandbox_identity

NEIGHBOUR_CODE = "demo-neighbour"
GROUP_TITLE = "Sunny Garden: three buy cheaper tomatoes"
GROUP_SKU = "DEMO-TOMATO-500"
BARGAIN_TITLE = "Cut the price of a mango box"
BARGAIN_SKU = "DEMO-MANGO-5KG"
POST_TITLE = "Saturday dairy run: milk and eggs"
POST_ITEMS = [("DEMO-MILK-950", 1290, 100), ("DEMO-EGGS-30", 2790, 40)]


def _neighbour(community: Community) -> Customer:
    identity = sandbox_identity(NEIGHBOUR_CODE)
    customer, _ = customer_get_or_create(openid=identity.openid, unionid=identity.unionid)
    if not customer.nickname:
        customer.nickname = "Neighbour Li"
        customer.save(update_fields=["nickname"])
    CommunityMembership.objects.get_or_create(community=community, customer=customer)
    return customer


def _pay(order: Order, customer: Customer) -> None:
    """Pay in the sandbox, as the shopper's two calls would (start, then confirm)."""
    payment = payment_start(order_id=order.pk, customer=customer)
    payment_confirm_sandbox(payment_id=payment.pk, customer=customer)


def _group(shop: dict[str, Any], neighbour: Customer) -> Group:
    sku = Sku.objects.get(code=GROUP_SKU)
    now = timezone.now()
    campaign = GroupCampaign.objects.filter(
        title=GROUP_TITLE, status=GroupCampaign.Status.ACTIVE, ends_at__gt=now + timedelta(days=1)
    ).first()
    if campaign is None:
        campaign = GroupCampaign.objects.create(
            title=GROUP_TITLE,
            product=sku.product,
            status=GroupCampaign.Status.ACTIVE,
            starts_at=now - timedelta(minutes=1),
            ends_at=now + timedelta(days=7),
            group_size=3,
            join_mode=GroupCampaign.JoinMode.COMMUNITY,
            auto_complete=True,
            auto_complete_min_fill_bps=6667,
            max_quantity_per_order=3,
        )
        GroupCampaignSku.objects.create(
            campaign=campaign, sku=sku, group_price=690, leader_price=590
        )
    group = Group.objects.filter(
        campaign=campaign, leader=neighbour, status=Group.Status.OPEN, expires_at__gt=now
    ).first()
    if group is None:
        group, order = group_open(
            campaign_id=campaign.pk,
            customer=neighbour,
            sku_id=sku.pk,
            quantity=1,
            delivery_mode="pickup",
            pickup_point_id=shop["pickup_point_id"],
        )
        _pay(order, neighbour)
    return group


def _bargain(neighbour: Customer) -> Bargain:
    sku = Sku.objects.get(code=BARGAIN_SKU)
    now = timezone.now()
    campaign = BargainCampaign.objects.filter(
        title=BARGAIN_TITLE,
        status=BargainCampaign.Status.ACTIVE,
        ends_at__gt=now + timedelta(days=1),
    ).first()
    if campaign is None:
        campaign = BargainCampaign.objects.create(
            title=BARGAIN_TITLE,
            product=sku.product,
            sku=sku,
            status=BargainCampaign.Status.ACTIVE,
            starts_at=now - timedelta(minutes=1),
            ends_at=now + timedelta(days=7),
            start_price=sku.price,
            floor_price=1990,
            helps_needed=5,
            buy_at_any_price=True,
            max_bargains_per_customer=3,
        )
    bargain = Bargain.objects.filter(
        campaign=campaign, initiator=neighbour, status=Bargain.Status.ACTIVE, expires_at__gt=now
    ).first()
    return bargain or bargain_start(campaign_id=campaign.pk, customer=neighbour)


def _post(shop: dict[str, Any], neighbour: Customer) -> ChainPost:
    now = timezone.now()
    post = ChainPost.objects.filter(
        title=POST_TITLE,
        community_id=shop["community_id"],
        status=ChainPost.Status.OPEN,
        deadline__gt=now + timedelta(hours=1),
    ).first()
    if post is None:
        leader = Customer.objects.select_related("user").get(pk=shop["leader_customer_id"])
        skus = {sku.code: sku.pk for sku in Sku.objects.filter(code__in=[i[0] for i in POST_ITEMS])}
        post = post_publish(
            created_by=leader.user,
            author=leader,
            community_id=shop["community_id"],
            pickup_point_id=shop["pickup_point_id"],
            title=POST_TITLE,
            body="Sign up by Friday night; pick up Saturday from 9:00 at the gatehouse.",
            deadline=now + timedelta(days=2),
            max_entries=50,
            items=[(skus[code], price, units) for code, price, units in POST_ITEMS],
        )
    if not ChainEntry.objects.filter(post=post, customer=neighbour, status="live").exists():
        milk = Sku.objects.get(code=POST_ITEMS[0][0])
        _, order = entry_create(post_id=post.pk, customer=neighbour, lines=[(milk.pk, 2)])
        _pay(order, neighbour)
    return post


def seed(shop: dict[str, Any]) -> list[str]:
    """Create (or find) the demo group, bargain and post; return the lines seed_demo prints."""
    community = Community.objects.get(pk=shop["community_id"])
    with transaction.atomic():
        neighbour = _neighbour(community)
    group = _group(shop, neighbour)
    bargain = _bargain(neighbour)
    post = _post(shop, neighbour)
    return [
        f"Group-buy #{group.campaign_id}: group #{group.pk} has 1 of 3 seats paid; join it with "
        f"POST /api/v1/groups/by-token/{group.share_token}/join (topic group:{group.pk})",
        f"Bargain #{bargain.pk} by Neighbour Li: help it with POST /api/v1/bargains/{bargain.pk}"
        f"/helps (topic bargain:{bargain.pk} once you helped)",
        f"Chain sign-up post #{post.pk} in the demo community: GET /api/v1/posts/{post.pk}, "
        f"sign up with POST /api/v1/posts/{post.pk}/entries (topic post:{post.pk})",
    ]
