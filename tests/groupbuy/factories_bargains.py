"""Bargain campaigns and bargains for the bargain tests, made through the services (campaigns,
which operators make in the admin, as rows)."""

from datetime import timedelta

from django.utils import timezone

from groupbuy.models import Bargain, BargainCampaign, BargainHelp
from groupbuy.services.bargains import bargain_help, bargain_purchase, bargain_start
from shop.models import Order, PickupPoint
from tests.factories import ProductFactory, SkuFactory
from tests.shop.factories_orders import QuickCustomerFactory, quick_pickup_point


def bargain_campaign(
    *,
    price: int = 1990,
    start_price: int = 1990,
    floor_price: int = 990,
    helps_needed: int = 3,
    stock: int = 100,
    status: str = BargainCampaign.Status.ACTIVE,
    starts_in: timedelta = timedelta(hours=-1),
    lasts: timedelta = timedelta(days=7),
    **fields,
) -> BargainCampaign:
    """A campaign (active and running by default) of one SKU priced ``price``, cut from
    ``start_price`` to ``floor_price`` in ``helps_needed`` helps."""
    product = ProductFactory()
    sku = SkuFactory(product=product, price=price, stock=stock)
    start = timezone.now() + starts_in
    return BargainCampaign.objects.create(
        title="Cut it down",
        product=product,
        sku=sku,
        status=status,
        starts_at=start,
        ends_at=start + lasts,
        start_price=start_price,
        floor_price=floor_price,
        helps_needed=helps_needed,
        **fields,
    )


def start(made: BargainCampaign, initiator=None) -> Bargain:
    return bargain_start(campaign_id=made.pk, customer=initiator or QuickCustomerFactory())


def helped(bargain: Bargain, helper=None, **kwargs) -> BargainHelp:
    return bargain_help(bargain_id=bargain.pk, helper=helper or QuickCustomerFactory(), **kwargs)


def to_floor(bargain: Bargain) -> Bargain:
    """Every help the bargain still needs, each by a new helper; the bargain, refreshed."""
    bargain.refresh_from_db()
    for _ in range(bargain.helps_needed - bargain.helps_done):
        helped(bargain)
    bargain.refresh_from_db()
    return bargain


def buy(bargain: Bargain, *, point: PickupPoint | None = None, **kwargs) -> Order:
    """The initiator buys it, for pickup by default."""
    if "delivery_mode" not in kwargs:
        kwargs["delivery_mode"] = "pickup"
        kwargs["pickup_point_id"] = (point or quick_pickup_point()).pk
    return bargain_purchase(bargain_id=bargain.pk, customer=bargain.initiator, **kwargs)
