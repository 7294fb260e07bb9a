"""seed_demo's group-buy data: a running group with one paid seat, a bargain to help and a chain
sign-up post with a paid entry, usable through the API, and idempotent."""

from io import StringIO

import pytest
from django.core.management import call_command

from groupbuy.models import Bargain, ChainEntry, ChainPost, Group, GroupSeat
from shop.models import Customer
from shop.wechat import sandbox_identity
from tests.conftest import ApiClient, token_for

pytestmark = pytest.mark.django_db


def seed(django_capture_on_commit_callbacks) -> str:
    out = StringIO()
    with django_capture_on_commit_callbacks(execute=True):
        call_command("seed_demo", "--force", stdout=out)
    return out.getvalue()


def counts() -> dict[str, int]:
    return {
        model.__name__: model.objects.count()
        for model in (Group, GroupSeat, Bargain, ChainPost, ChainEntry)
    }


def test_the_demo_has_a_running_group_bargain_and_post_and_seeding_again_adds_nothing(
    django_capture_on_commit_callbacks,
):
    printed = seed(django_capture_on_commit_callbacks)
    first = counts()

    [group] = Group.objects.filter(status="open")
    assert (group.size, group.paid_seats, group.held_seats) == (3, 1, 0)
    [bargain] = Bargain.objects.filter(status="active")
    assert bargain.helps_done == 0 and bargain.current_price < bargain.start_price
    [post] = ChainPost.objects.filter(status="open")
    [entry] = ChainEntry.objects.filter(post=post, status="live")
    assert entry.paid_at is not None
    assert f"/groups/by-token/{group.share_token}/join" in printed
    assert f"/bargains/{bargain.pk}/helps" in printed and f"/posts/{post.pk}" in printed

    seed(django_capture_on_commit_callbacks)
    assert counts() == first


def test_the_demo_shopper_can_join_help_and_sign_up_through_the_api(
    django_capture_on_commit_callbacks,
):
    seed(django_capture_on_commit_callbacks)
    shopper = Customer.objects.get(openid=sandbox_identity("demo-shopper").openid)
    api = ApiClient(token_for(shopper.user))
    group = Group.objects.get(status="open")
    bargain = Bargain.objects.get(status="active")
    post = ChainPost.objects.get(status="open")
    point = post.pickup_point_id
    group_sku = group.campaign.skus.values_list("sku_id", flat=True).get()
    post_sku = post.items.values_list("sku_id", flat=True).first()

    joined = api.post(
        f"/api/v1/groups/by-token/{group.share_token}/join",
        json={
            "sku_id": group_sku,
            "quantity": 1,
            "delivery_mode": "pickup",
            "pickup_point_id": point,
        },
    )
    helped = api.post(f"/api/v1/bargains/{bargain.pk}/helps")
    signed = api.post(
        f"/api/v1/posts/{post.pk}/entries", json={"items": [{"sku_id": post_sku, "quantity": 1}]}
    )

    assert (joined.status_code, helped.status_code, signed.status_code) == (201, 201, 201)
    assert api.get(f"/api/v1/posts/{post.pk}").json()["live_entries"] == 2
