"""Chain sign-up in the admin: an operator publishes a post with its items in yuan through the
service (its rules checked), published posts are read-only with their items and entries, and
announcements are hidden by an action calling the moderation service."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse
from django.utils import timezone

from groupbuy.models import ChainPost, ChainPostItem, CommunityAnnouncement
from groupbuy.services.community import announcement_post
from tests.factories import SkuFactory, StaffFactory
from tests.groupbuy.factories_chains import board, community_with_leader, sign_up

pytestmark = pytest.mark.django_db


def _post_form(community, point, sku, **overrides) -> dict:
    deadline = timezone.localtime() + timedelta(days=1)  # the admin reads local time
    form = {
        "community": str(community.pk),
        "pickup_point": str(point.pk),
        "title": "Friday lychees",
        "body": "At the kiosk from 5 pm.",
        "deadline_0": deadline.strftime("%Y-%m-%d"),
        "deadline_1": deadline.strftime("%H:%M:%S"),
        "max_entries": "30",
        "items-TOTAL_FORMS": "1",
        "items-INITIAL_FORMS": "0",
        "items-0-sku": str(sku.pk),
        "items-0-price": "9.90",
        "items-0-max_units": "50",
    }
    form.update(overrides)
    return form


def test_an_operator_publishes_a_post_with_prices_in_yuan(client, staff):
    community, _, point = community_with_leader()
    sku = SkuFactory(price=1990)
    client.force_login(staff)

    response = client.post(
        reverse("admin:groupbuy_chainpost_add"), _post_form(community, point, sku)
    )

    assert response.status_code == 302, response.content.decode()[:3000]
    post = ChainPost.objects.get()
    assert (post.author, post.created_by, post.community, post.max_entries) == (
        None,
        staff,
        community,
        30,
    )
    item = ChainPostItem.objects.get(post=post)
    assert (item.sku_id, item.price, item.max_units) == (sku.pk, 990, 50)
    assert client.get(reverse("admin:groupbuy_chainpost_changelist")).status_code == 200


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"items-0-price": "19.91"}, "between 1 fen and the SKU&#x27;s price"),
        ({"items-0-price": "9.999"}, "at most two decimals"),
        ({"other_point": True}, "a pickup point of this community"),
        ({"items-TOTAL_FORMS": "0"}, "1 to 20 items"),
    ],
)
def test_the_admin_refuses_a_post_that_breaks_the_rules(client, staff, overrides, message):
    community, _, point = community_with_leader()
    sku = SkuFactory(price=1990)
    if overrides.pop("other_point", False):
        point = community_with_leader()[2]
    client.force_login(staff)

    response = client.post(
        reverse("admin:groupbuy_chainpost_add"), _post_form(community, point, sku, **overrides)
    )

    assert response.status_code == 200
    assert message in response.content.decode()
    assert not ChainPost.objects.exists()


def test_a_published_post_shows_its_items_in_yuan_and_its_entries_read_only(client, staff):
    made = board(prices=((1990, 990),), max_units=10)
    entry, _ = sign_up(made, lines=[(made.skus[0], 3)])
    client.force_login(staff)
    change = reverse("admin:groupbuy_chainpost_change", args=[made.post.pk])

    page = client.get(change)

    assert page.status_code == 200
    text = page.content.decode()
    assert "¥9.90" in text
    assert 'name="items-0-price"' not in text  # no price, counter or status field to write
    assert 'name="live_entries"' not in text
    assert 'name="entries-0-status"' not in text
    assert str(entry.order) in text
    before = ChainPost.objects.values_list("title", "live_entries").get(pk=made.post.pk)
    client.post(change, {"title": "changed", "live_entries": "0"})
    assert ChainPost.objects.values_list("title", "live_entries").get(pk=made.post.pk) == before
    filtered = client.get(
        reverse("admin:groupbuy_chainpost_changelist"),
        {"status__exact": "open", "community__id__exact": made.community.pk},
    )
    assert filtered.status_code == 200
    assert made.post.title in filtered.content.decode()


def test_the_hide_action_hides_announcements_through_the_moderation_service(client, staff):
    community, leader, _ = community_with_leader()
    spam = announcement_post(author=leader, community_id=community.pk, body="Buy elsewhere")
    kept = announcement_post(author=leader, community_id=community.pk, body="Truck at 5")
    client.force_login(staff)
    changelist = reverse("admin:groupbuy_communityannouncement_changelist")

    response = client.post(changelist, {"action": "hide", "_selected_action": [str(spam.pk)]})

    assert response.status_code == 302
    spam.refresh_from_db()
    assert (spam.status, spam.hidden_by, spam.hidden_reason) == (
        "hidden",
        staff,
        "Hidden by an operator in the admin.",
    )
    assert CommunityAnnouncement.objects.get(pk=kept.pk).status == "published"
    assert client.get(changelist, {"status__exact": "hidden"}).status_code == 200
    assert client.get(changelist, {"community__id__exact": community.pk}).status_code == 200
    page = client.get(reverse("admin:groupbuy_communityannouncement_change", args=[spam.pk]))
    assert page.status_code == 200


def test_hiding_from_the_admin_needs_the_change_permission(client):
    community, leader, _ = community_with_leader()
    made = announcement_post(author=leader, community_id=community.pk, body="Hi")
    viewer = StaffFactory(is_superuser=False)
    viewer.user_permissions.add(Permission.objects.get(codename="view_communityannouncement"))
    client.force_login(viewer)
    changelist = reverse("admin:groupbuy_communityannouncement_changelist")

    assert 'value="hide"' not in client.get(changelist).content.decode()
    client.post(changelist, {"action": "hide", "_selected_action": [str(made.pk)]})

    assert CommunityAnnouncement.objects.get(pk=made.pk).status == "published"
