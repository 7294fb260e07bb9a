"""Bargains in the admin: campaigns in yuan (checked by the service's rules), ending campaigns
through the service, bargains and helps read-only (seed, device ids and IP hashes shown for
farming review, searchable)."""

import uuid
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from groupbuy.models import Bargain, BargainCampaign, BargainHelp
from tests.factories import ProductFactory, SkuFactory
from tests.groupbuy.factories_bargains import bargain_campaign, helped, start
from tests.shop.factories_orders import QuickCustomerFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client, staff):
    client.force_login(staff)
    return client


def _campaign_form(product, sku, **overrides) -> dict:
    begin = timezone.localtime() + timedelta(hours=1)  # the admin reads local time
    end = begin + timedelta(days=7)
    form = {
        "title": "Cut it to 9.90",
        "product": str(product.pk),
        "sku": str(sku.pk),
        "status": "active",
        "starts_at_0": begin.strftime("%Y-%m-%d"),
        "starts_at_1": begin.strftime("%H:%M:%S"),
        "ends_at_0": end.strftime("%Y-%m-%d"),
        "ends_at_1": end.strftime("%H:%M:%S"),
        "start_price": "19.90",
        "floor_price": "9.90",
        "helps_needed": "5",
        "first_cut_min_bps": "1000",
        "first_cut_max_bps": "3000",
        "bargain_ttl_seconds": "86400",
        "payment_ttl_seconds": "3600",
        "max_bargains_per_customer": "1",
        "helps_per_helper_per_day": "3",
        "helps_per_device_per_day": "5",
    }
    form.update(overrides)
    return form


def test_an_operator_creates_a_campaign_with_prices_in_yuan(admin_client):
    product = ProductFactory()
    sku = SkuFactory(product=product, price=1990)

    response = admin_client.post(
        reverse("admin:groupbuy_bargaincampaign_add"), _campaign_form(product, sku)
    )

    assert response.status_code == 302, response.content.decode()[:3000]
    made = BargainCampaign.objects.get()
    assert (made.sku, made.start_price, made.floor_price, made.helps_needed) == (sku, 1990, 990, 5)
    changelist = admin_client.get(reverse("admin:groupbuy_bargaincampaign_changelist"))
    assert changelist.status_code == 200 and "¥19.90" in changelist.content.decode()
    change = admin_client.get(reverse("admin:groupbuy_bargaincampaign_change", args=[made.pk]))
    assert change.status_code == 200 and 'value="19.90"' in change.content.decode()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"start_price": "19.91"}, "at most the SKU&#x27;s price"),
        ({"floor_price": "0"}, "at least 1 fen"),
        ({"floor_price": "19.86"}, "for the first cut and each help"),
        ({"helps_needed": "1"}, "at least 2 helps"),
        ({"first_cut_min_bps": "3001"}, "at most the first cut&#x27;s maximum"),
        ({"first_cut_max_bps": "10000"}, "below 10000"),
        ({"other_product": True}, "not of the campaign&#x27;s product"),
        ({"start_price": "19.901"}, "at most two decimals"),
        ({"ends_at_0": "2000-01-01"}, "bargain_campaign_ends_after_start"),
    ],
)
def test_the_admin_refuses_a_campaign_that_breaks_the_rules(admin_client, overrides, message):
    product = ProductFactory()
    sku = SkuFactory(product=product, price=1990)
    if overrides.pop("other_product", False):
        sku = SkuFactory(price=1990)

    response = admin_client.post(
        reverse("admin:groupbuy_bargaincampaign_add"), _campaign_form(product, sku, **overrides)
    )

    assert response.status_code == 200
    assert message in response.content.decode()
    assert not BargainCampaign.objects.exists()


def test_the_end_action_ends_campaigns_through_the_service(admin_client):
    made = bargain_campaign()
    running = start(made)

    response = admin_client.post(
        reverse("admin:groupbuy_bargaincampaign_changelist"),
        {"action": "end_campaigns", "_selected_action": [str(made.pk)]},
    )

    assert response.status_code == 302
    assert BargainCampaign.objects.get(pk=made.pk).status == "ended"
    helped(running)  # started bargains run on
    assert Bargain.objects.get(pk=running.pk).helps_done == 1


def test_bargains_are_read_only_with_their_seed_and_helps_for_review(admin_client):
    bargain = start(bargain_campaign(helps_needed=3))
    device = uuid.uuid4()
    helped(bargain, device_id=device, ip_hash="f" * 64)
    url = reverse("admin:groupbuy_bargain_change", args=[bargain.pk])

    page = admin_client.get(url)

    assert page.status_code == 200
    text = page.content.decode()
    assert str(bargain.seed) in text and str(device) in text and "f" * 64 in text
    before = Bargain.objects.values().get(pk=bargain.pk)
    assert admin_client.post(url, {"status": "floor_reached"}).status_code == 403
    assert Bargain.objects.values().get(pk=bargain.pk) == before
    assert admin_client.get(reverse("admin:groupbuy_bargain_add")).status_code == 403
    delete = reverse("admin:groupbuy_bargain_delete", args=[bargain.pk])
    assert admin_client.post(delete, {"post": "yes"}).status_code == 403
    listed = admin_client.get(
        reverse("admin:groupbuy_bargain_changelist"),
        {"status__exact": "active", "campaign__id__exact": str(bargain.campaign_id)},
    )
    assert listed.status_code == 200 and f">{bargain.pk}<" in listed.content.decode()


def test_helps_are_searchable_by_device_and_ip_hash(admin_client):
    made = bargain_campaign(helps_needed=5)
    device, other_device = uuid.uuid4(), uuid.uuid4()
    farmed = [start(made) for _ in range(2)]
    for bargain in farmed:
        helped(bargain, device_id=device, ip_hash="a" * 64)
    elsewhere = helped(start(made), QuickCustomerFactory(nickname="Lan"), device_id=other_device)
    changelist = reverse("admin:groupbuy_bargainhelp_changelist")

    def found(term: str) -> set[int]:
        response = admin_client.get(changelist, {"q": term})
        assert response.status_code == 200
        return {row.pk for row in response.context["cl"].result_list}

    from_device = set(BargainHelp.objects.filter(device_id=device).values_list("pk", flat=True))
    assert found(str(device)) == from_device and len(from_device) == 2
    assert found(str(device).upper()) == from_device
    assert found("a" * 64) == from_device
    assert found("Lan") == {elsewhere.pk}  # not a UUID: no error, the nickname matches
    help_page = admin_client.get(reverse("admin:groupbuy_bargainhelp_change", args=[elsewhere.pk]))
    assert help_page.status_code == 200 and str(other_device) in help_page.content.decode()
    assert admin_client.get(reverse("admin:groupbuy_bargainhelp_add")).status_code == 403
    filtered = admin_client.get(changelist, {"bargain__campaign__id__exact": str(made.pk)})
    assert len(filtered.context["cl"].result_list) == 3
