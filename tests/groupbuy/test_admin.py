"""Group-buy in the admin: campaigns with their SKUs in yuan (checked by the service's rules),
ending a campaign and force-failing a group through the services, groups read-only."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from groupbuy.models import Group, GroupCampaign, GroupCampaignSku
from groupbuy.services.groups import campaign_end, group_force_fail
from shop.models import Refund
from tests.factories import ProductFactory, SkuFactory
from tests.groupbuy.factories import campaign, join, open_group
from tests.shop.factories_orders import pay

pytestmark = pytest.mark.django_db


def _campaign_form(product, sku, **overrides) -> dict:
    start = timezone.localtime() + timedelta(hours=1)  # the admin reads local time
    form = {
        "title": "Two buy cheaper",
        "product": str(product.pk),
        "status": "active",
        "starts_at_0": start.strftime("%Y-%m-%d"),
        "starts_at_1": start.strftime("%H:%M:%S"),
        "ends_at_0": (start + timedelta(days=7)).strftime("%Y-%m-%d"),
        "ends_at_1": (start + timedelta(days=7)).strftime("%H:%M:%S"),
        "group_size": "3",
        "group_ttl_seconds": "86400",
        "seat_payment_ttl_seconds": "900",
        "max_open_groups_per_customer": "1",
        "max_quantity_per_order": "1",
        "join_mode": "share_token",
        "auto_complete_min_fill_bps": "10000",
        "skus-TOTAL_FORMS": "1",
        "skus-INITIAL_FORMS": "0",
        "skus-0-sku": str(sku.pk),
        "skus-0-group_price": "9.90",
        "skus-0-leader_price": "8.90",
    }
    form.update(overrides)
    return form


def test_an_operator_creates_a_campaign_with_prices_in_yuan(client, staff):
    client.force_login(staff)
    product = ProductFactory()
    sku = SkuFactory(product=product, price=1990)

    response = client.post(
        reverse("admin:groupbuy_groupcampaign_add"), _campaign_form(product, sku)
    )

    assert response.status_code == 302, response.content.decode()[:3000]
    offer = GroupCampaignSku.objects.get()
    assert (offer.sku_id, offer.group_price, offer.leader_price) == (sku.pk, 990, 890)
    assert offer.campaign.group_size == 3
    assert client.get(reverse("admin:groupbuy_groupcampaign_changelist")).status_code == 200
    assert (
        client.get(reverse("admin:groupbuy_groupcampaign_change", args=[offer.campaign_id]))
    ).status_code == 200


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"skus-0-group_price": "19.90"}, "below the SKU&#x27;s price"),
        ({"skus-0-leader_price": "9.91"}, "between 1 fen and the group price"),
        ({"other_product": True}, "not of the campaign&#x27;s product"),
        ({"group_size": "1"}, "group_campaign_size_at_least_two"),
    ],
)
def test_the_admin_refuses_a_campaign_that_breaks_the_rules(client, staff, overrides, message):
    client.force_login(staff)
    product = ProductFactory()
    sku = SkuFactory(product=product, price=1990)
    if overrides.pop("other_product", False):
        sku = SkuFactory(price=1990)

    response = client.post(
        reverse("admin:groupbuy_groupcampaign_add"), _campaign_form(product, sku, **overrides)
    )

    assert response.status_code == 200
    assert message in response.content.decode()
    assert not GroupCampaign.objects.exists()


def test_ending_a_campaign_stops_new_groups_and_keeps_open_ones(django_capture_on_commit_callbacks):
    made = campaign(size=2)
    group, _ = open_group(made)

    assert campaign_end(campaign_id=made.pk).status == "ended"
    assert campaign_end(campaign_id=made.pk).status == "ended"  # idempotent

    with pytest.raises(Exception) as refused:
        open_group(made)
    assert getattr(refused.value, "code", None) == "campaign_not_active"
    assert join(group)[0].pk == group.pk  # the open group still takes its last member


def test_force_failing_a_group_refunds_its_paid_members_and_never_auto_completes(
    client, staff, django_capture_on_commit_callbacks
):
    made = campaign(size=3, auto_complete=True, auto_complete_min_fill_bps=0)
    group, leader_order = open_group(made)
    with django_capture_on_commit_callbacks(execute=True):
        pay(leader_order)
    client.force_login(staff)

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            reverse("admin:groupbuy_group_changelist"),
            {"action": "force_fail", "_selected_action": [str(group.pk)]},
        )

    assert response.status_code == 302
    group.refresh_from_db()
    assert (group.status, group.auto_completed) == ("failed", False)
    [refund] = Refund.objects.filter(order=leader_order, reason=Refund.Reason.GROUP_FAILED)
    assert refund.amount == leader_order.total
    assert group_force_fail(group_id=group.pk) is False  # closed already: nothing more
    assert Refund.objects.filter(order=leader_order).count() == 1
    assert client.get(reverse("admin:groupbuy_group_change", args=[group.pk])).status_code == 200


def test_a_full_group_is_not_failed_by_force(django_capture_on_commit_callbacks):
    made = campaign(size=2)
    group, leader_order = open_group(made)
    member_order = join(group)[1]
    with django_capture_on_commit_callbacks(execute=True):
        pay(leader_order)
        pay(member_order)

    assert group_force_fail(group_id=group.pk) is False
    assert Group.objects.get(pk=group.pk).status == "succeeded"
    assert not Refund.objects.exists()


def test_the_campaign_admin_action_ends_campaigns(client, staff):
    made = campaign()
    client.force_login(staff)

    response = client.post(
        reverse("admin:groupbuy_groupcampaign_changelist"),
        {"action": "end_campaigns", "_selected_action": [str(made.pk)]},
    )

    assert response.status_code == 302
    assert GroupCampaign.objects.get(pk=made.pk).status == "ended"
