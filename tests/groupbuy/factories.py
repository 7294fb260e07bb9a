"""Group-buy campaigns and groups for the groupbuy tests, made through the services (campaigns,
which have no service yet, as rows)."""

from datetime import timedelta

from django.utils import timezone

from groupbuy.models import Group, GroupCampaign, GroupCampaignSku
from groupbuy.services.groups import group_join, group_open
from shop.models import Order, PickupPoint
from tests.factories import ProductFactory, SkuFactory
from tests.shop.factories_orders import QuickCustomerFactory, quick_pickup_point


def campaign(
    *,
    size: int = 2,
    price: int = 1990,
    group_price: int = 990,
    leader_price: int | None = 890,
    stock: int = 100,
    status: str = GroupCampaign.Status.ACTIVE,
    starts_in: timedelta = timedelta(hours=-1),
    lasts: timedelta = timedelta(days=7),
    **fields,
) -> GroupCampaign:
    """A campaign (active and running by default) of one product with one SKU offered at
    ``group_price`` (``leader_price`` for leaders)."""
    product = ProductFactory()
    sku = SkuFactory(product=product, price=price, stock=stock)
    start = timezone.now() + starts_in
    made = GroupCampaign.objects.create(
        title="Two buy cheaper",
        product=product,
        status=status,
        starts_at=start,
        ends_at=start + lasts,
        group_size=size,
        **fields,
    )
    GroupCampaignSku.objects.create(
        campaign=made, sku=sku, group_price=group_price, leader_price=leader_price
    )
    return made


def sku_of(made: GroupCampaign) -> int:
    return made.skus.values_list("sku_id", flat=True).get()


def open_group(
    made: GroupCampaign,
    leader=None,
    *,
    point: PickupPoint | None = None,
    quantity: int = 1,
    delivery_mode: str = "pickup",
    **kwargs,
) -> tuple[Group, Order]:
    if delivery_mode == "pickup":
        kwargs["pickup_point_id"] = (point or quick_pickup_point()).pk
    return group_open(
        campaign_id=made.pk,
        customer=leader or QuickCustomerFactory(),
        sku_id=kwargs.pop("sku_id", None) or sku_of(made),
        quantity=quantity,
        delivery_mode=delivery_mode,
        **kwargs,
    )


def join(
    group: Group,
    customer=None,
    *,
    point: PickupPoint | None = None,
    by_id: bool = False,
    quantity: int = 1,
    **kwargs,
) -> tuple[Group, Order]:
    """Join through the share token (or by id)."""
    where = {"group_id": group.pk} if by_id else {"share_token": group.share_token}
    return group_join(
        **where,
        customer=customer or QuickCustomerFactory(),
        sku_id=kwargs.pop("sku_id", None) or sku_of(group.campaign),
        quantity=quantity,
        delivery_mode="pickup",
        pickup_point_id=(point or quick_pickup_point()).pk,
        **kwargs,
    )
