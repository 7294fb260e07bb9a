"""Chain sign-up and the community feed over HTTP (the Django test client, on PostgreSQL): each
operation's answer, its refusals with documented codes, strict bodies, no partial writes, reads
that change nothing, the pickup sheet as CSV, the announcement rate limit."""

import csv
import io
from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.utils import timezone

from groupbuy.models import ChainEntry, ChainPost, CommunityAnnouncement
from groupbuy.services.chains import posts_close_due
from groupbuy.services.community import announcement_post
from shop.models import Order, Refund
from tests.conftest import ApiClient, token_for
from tests.db_snapshot import db_snapshot
from tests.factories import SkuFactory, StaffFactory, UserFactory
from tests.groupbuy.factories_chains import board, community_with_leader, member_of, sign_up
from tests.shop.factories_orders import QuickCustomerFactory, pay
from tests.test_openapi_errors import _operation, assert_documented

pytestmark = pytest.mark.django_db

API = "/api/v1"
POSTS = "/communities/{community_id}/posts"
POST = "/posts/{post_id}"
ENTRIES = "/posts/{post_id}/entries"
MINE = "/posts/{post_id}/entries/mine"
SHEET = "/posts/{post_id}/pickup-sheet"
SHEET_CSV = "/posts/{post_id}/pickup-sheet.csv"
ARRIVED = "/posts/{post_id}/arrived"
ANNOUNCEMENTS = "/communities/{community_id}/announcements"
FEED = "/communities/{community_id}/feed"
HIDE = "/staff/announcements/{announcement_id}/hide"


def as_(customer) -> ApiClient:
    return ApiClient(token_for(customer.user))


def url(path: str, **ids) -> str:
    return API + path.format(**ids)


def post_body(point, sku, **extra) -> dict:
    return {
        "title": "Friday lychees",
        "pickup_point_id": point.pk,
        "deadline": (timezone.now() + timedelta(hours=3)).isoformat(),
        "items": [{"sku_id": sku.pk, "price": 990, "max_units": 10}],
        **extra,
    }


def assert_refused_unchanged(who, call, method, path, status, code):
    """``call(client)`` as ``who`` (a customer or a client, logged in before the snapshot) is
    refused with a documented ``code`` and changes no row."""
    client = who if isinstance(who, ApiClient) else as_(who)
    before = db_snapshot()
    response = call(client)
    assert_documented(response, method, path, status, code)
    assert db_snapshot() == before
    return response


def closed(made):
    posts_close_due(now=made.post.deadline + timedelta(seconds=1))


# --- publish --------------------------------------------------------------------------------------
def test_the_leader_publishes_over_http_and_a_retry_replays_it():
    community, leader, point = community_with_leader(nickname="Ming")
    sku = SkuFactory(price=1990)
    client = as_(leader)
    body = post_body(point, sku, body="Picked Thursday", max_entries=20)
    key = {"Idempotency-Key": "post-1"}

    response = client.post(url(POSTS, community_id=community.pk), json=body, headers=key)
    replay = client.post(url(POSTS, community_id=community.pk), json=body, headers=key)

    assert response.status_code == 201, response.json()
    shown = response.json()
    post = ChainPost.objects.get()
    assert (shown["id"], shown["title"], shown["status"], shown["author_nickname"]) == (
        post.pk,
        "Friday lychees",
        "open",
        "Ming",
    )
    assert (shown["topic"], shown["max_entries"], shown["entries_left"]) == (
        f"post:{post.pk}",
        20,
        20,
    )
    assert shown["pickup_point"] == {"id": point.pk, "name": point.name, "address": point.address}
    assert shown["items"] == [
        {
            "sku_id": sku.pk,
            "sku_code": sku.code,
            "title": sku.product.title,
            "attributes": {},
            "list_price": 1990,
            "price": 990,
            "max_units": 10,
            "units_taken": 0,
            "units_left": 10,
        }
    ]
    assert (shown["entries"], shown["my_entry"]) == ([], None)
    assert (replay.status_code, replay.json()) == (201, shown)
    assert ChainPost.objects.count() == 1


def test_publishing_is_refused_with_documented_codes_and_no_write(operator):
    community, leader, point = community_with_leader()
    member = member_of(community)
    sku = SkuFactory(price=1990)
    path = url(POSTS, community_id=community.pk)

    assert_refused_unchanged(
        operator,
        lambda c: c.post(path, json=post_body(point, sku)),
        "post",
        POSTS,
        403,
        "not_a_customer",
    )
    assert_refused_unchanged(
        member,
        lambda c: c.post(path, json=post_body(point, sku)),
        "post",
        POSTS,
        403,
        "not_community_leader",
    )
    assert_refused_unchanged(
        leader,
        lambda c: c.post(url(POSTS, community_id=community.pk + 1000), json=post_body(point, sku)),
        "post",
        POSTS,
        404,
        "community_not_found",
    )
    response = assert_refused_unchanged(
        leader,
        lambda c: c.post(
            path,
            json=post_body(
                point, sku, items=[{"sku_id": sku.pk, "price": 1991, "max_units": None}]
            ),
        ),
        "post",
        POSTS,
        422,
        "post_invalid",
    )
    assert response.json()["error"]["details"]["field"] == "items.0.price"


@pytest.mark.parametrize(
    "change",
    [
        {"items": []},
        {"items": [{"sku_id": "1", "price": 990}]},
        {"items": [{"sku_id": 1, "price": 9.9}]},
        {"items": [{"sku_id": 1, "price": True}]},
        {"items": [{"sku_id": 1, "price": 990, "max_units": "3"}]},
        {"items": [{"sku_id": 1, "price": 990, "discount": 5}]},
        {"max_entries": 1.0},
        {"max_entries": 0},
        {"pickup_point_id": "1"},
        {"deadline": 1900000000},
        {"title": ""},
        {"author_id": 1},
    ],
)
def test_a_hostile_post_body_is_a_422_and_writes_nothing(change):
    community, leader, point = community_with_leader()
    sku = SkuFactory(price=1990)

    assert_refused_unchanged(
        leader,
        lambda c: c.post(
            url(POSTS, community_id=community.pk), json={**post_body(point, sku), **change}
        ),
        "post",
        POSTS,
        422,
        "validation_error",
    )


# --- reading posts --------------------------------------------------------------------------------
def test_members_list_a_communitys_posts_open_first_then_recent_and_strangers_cannot(operator):
    made = board()
    older = made.post
    newer = board().post
    ChainPost.objects.filter(pk=newer.pk).update(community=made.community, pickup_point=made.point)
    closed_one = board(deadline_in=timedelta(minutes=2)).post
    ChainPost.objects.filter(pk=closed_one.pk).update(community=made.community)
    posts_close_due(now=timezone.now() + timedelta(minutes=3))
    newest_closed = ChainPost.objects.get(pk=closed_one.pk)
    member = member_of(made.community)
    path = url(POSTS, community_id=made.community.pk)
    reader = as_(member)
    before = db_snapshot()

    page = reader.get(path).json()
    assert operator.get(path, {"limit": 1}).json()["items"][0]["id"] == newer.pk

    assert db_snapshot() == before
    assert [p["id"] for p in page["items"]] == [newer.pk, older.pk, newest_closed.pk]
    assert page["items"][0]["items_count"] == 1
    stranger = as_(QuickCustomerFactory())
    assert_refused_unchanged(
        stranger, lambda c: c.get(path), "get", POSTS, 403, "not_community_member"
    )
    assert_refused_unchanged(
        member,
        lambda c: c.get(url(POSTS, community_id=made.community.pk + 1000)),
        "get",
        POSTS,
        404,
        "community_not_found",
    )


def test_a_posts_snapshot_shows_entries_by_seq_and_my_entry_and_reading_changes_nothing(
    committed, operator
):
    made = board(max_entries=10)
    ming = member_of(made.community, nickname="Ming")
    lan = member_of(made.community, nickname="Lan")
    _, ming_order = sign_up(made, ming, [(made.skus[0], 2)])
    _, lan_order = sign_up(made, lan)
    committed(pay, ming_order)
    reader = as_(lan)
    before = db_snapshot()

    shown = reader.get(url(POST, post_id=made.post.pk)).json()
    staff_view = operator.get(url(POST, post_id=made.post.pk)).json()

    assert db_snapshot() == before
    title = made.skus[0].product.title
    assert shown["entries"] == [
        {
            "seq": 1,
            "nickname": "Ming",
            "avatar_url": "",
            "items": [{"sku_id": made.skus[0].pk, "title": title, "quantity": 2}],
            "paid": True,
        },
        {
            "seq": 2,
            "nickname": "Lan",
            "avatar_url": "",
            "items": [{"sku_id": made.skus[0].pk, "title": title, "quantity": 1}],
            "paid": False,
        },
    ]
    assert shown["my_entry"] == {"seq": 2, "order_id": lan_order.pk, "paid": False}
    assert (shown["live_entries"], shown["entries_left"], shown["items"][0]["units_taken"]) == (
        2,
        8,
        3,
    )
    assert shown["seconds_left"] > 0
    assert staff_view["my_entry"] is None
    stranger = as_(QuickCustomerFactory())
    assert_refused_unchanged(
        stranger,
        lambda c: c.get(url(POST, post_id=made.post.pk)),
        "get",
        POST,
        403,
        "not_community_member",
    )
    assert_refused_unchanged(
        lan,
        lambda c: c.get(url(POST, post_id=made.post.pk + 1000)),
        "get",
        POST,
        404,
        "post_not_found",
    )


# --- entries --------------------------------------------------------------------------------------
def test_a_member_signs_up_over_http_and_a_retry_replays_the_same_order():
    made = board(prices=((1990, 990),), max_units=5)
    member = member_of(made.community)
    client = as_(member)
    body = {"items": [{"sku_id": made.skus[0].pk, "quantity": 2}]}
    key = {"Idempotency-Key": "entry-1"}

    response = client.post(url(ENTRIES, post_id=made.post.pk), json=body, headers=key)
    replay = client.post(url(ENTRIES, post_id=made.post.pk), json=body, headers=key)

    assert response.status_code == 201, response.json()
    entry, order = response.json()["entry"], response.json()["order"]
    assert {k: entry[k] for k in ("post_id", "seq", "status", "paid", "drop_reason")} == {
        "post_id": made.post.pk,
        "seq": 1,
        "status": "live",
        "paid": False,
        "drop_reason": "",
    }
    assert entry["items"] == [
        {"sku_id": made.skus[0].pk, "title": made.skus[0].product.title, "quantity": 2}
    ]
    assert (order["id"], order["source"], order["source_ref"], order["total"]) == (
        entry["order_id"],
        "chain_signup",
        made.post.pk,
        1980,
    )
    assert (order["delivery_mode"], order["pickup_point"]["id"]) == ("pickup", made.point.pk)
    assert (replay.status_code, replay.json()) == (201, response.json())
    assert (ChainEntry.objects.count(), Order.objects.count()) == (1, 1)


def test_sign_up_refusals_are_documented_and_write_nothing():
    made = board(max_entries=2, max_units=3)
    first = member_of(made.community)
    sign_up(made, first, [(made.skus[0], 2)])
    second = member_of(made.community)
    sku = made.skus[0]

    def attempt(customer, items, post_id=made.post.pk):
        return customer, lambda c: c.post(url(ENTRIES, post_id=post_id), json={"items": items})

    cases = [
        (attempt(first, [{"sku_id": sku.pk, "quantity": 1}]), 409, "already_signed_up"),
        (attempt(second, [{"sku_id": sku.pk, "quantity": 2}]), 409, "post_item_sold_out"),
        (attempt(second, [{"sku_id": sku.pk + 1000, "quantity": 1}]), 404, "post_item_not_found"),
        (
            attempt(second, [{"sku_id": sku.pk, "quantity": 1}, {"sku_id": sku.pk, "quantity": 1}]),
            422,
            "entry_invalid",
        ),
        (
            attempt(QuickCustomerFactory(), [{"sku_id": sku.pk, "quantity": 1}]),
            403,
            "not_community_member",
        ),
        (
            attempt(second, [{"sku_id": sku.pk, "quantity": 1}], made.post.pk + 1000),
            404,
            "post_not_found",
        ),
    ]
    for (who, call), status, code in cases:
        assert_refused_unchanged(who, call, "post", ENTRIES, status, code)
    sign_up(made, second, [(sku, 1)])
    third = member_of(made.community)
    assert_refused_unchanged(
        *attempt(third, [{"sku_id": sku.pk, "quantity": 1}]), "post", ENTRIES, 409, "post_full"
    )
    closed(made)
    assert_refused_unchanged(
        *attempt(member_of(made.community), [{"sku_id": sku.pk, "quantity": 1}]),
        "post",
        ENTRIES,
        409,
        "post_closed",
    )


def test_a_sold_out_sku_and_the_checkouts_refusals_are_documented():
    made = board(stock=1)
    member = member_of(made.community)

    assert_refused_unchanged(
        member,
        lambda c: c.post(
            url(ENTRIES, post_id=made.post.pk),
            json={"items": [{"sku_id": made.skus[0].pk, "quantity": 2}]},
        ),
        "post",
        ENTRIES,
        409,
        "out_of_stock",
    )
    assert "purchase_limit_exceeded" in str(_operation("post", ENTRIES)["responses"]["409"])


@pytest.mark.parametrize(
    "body",
    [
        {"items": []},
        {"items": [{"sku_id": "1", "quantity": 1}]},
        {"items": [{"sku_id": 1.0, "quantity": 1}]},
        {"items": [{"sku_id": True, "quantity": 1}]},
        {"items": [{"sku_id": 1, "quantity": "2"}]},
        {"items": [{"sku_id": 1, "quantity": 2.0}]},
        {"items": [{"sku_id": 1, "quantity": True}]},
        {"items": [{"sku_id": 1, "quantity": 1000}]},
        {"items": [{"sku_id": 1, "quantity": 0}]},
        {"items": [{"sku_id": 1, "quantity": 1, "price": 1}]},
        {"items": [{"sku_id": 1, "quantity": 1}], "coupon_code": "X"},
        {"items": [{"sku_id": 1, "quantity": 1}] * 21},
        {},
    ],
)
def test_a_hostile_entry_body_is_a_422_and_writes_nothing(body):
    made = board()
    member = member_of(made.community)

    assert_refused_unchanged(
        member,
        lambda c: c.post(url(ENTRIES, post_id=made.post.pk), json=body),
        "post",
        ENTRIES,
        422,
        "validation_error",
    )


def test_a_member_withdraws_over_http_and_a_repeat_is_not_found(committed):
    made = board()
    member = member_of(made.community)
    _, order = sign_up(made, member)
    committed(pay, order)
    path = url(MINE, post_id=made.post.pk)

    response = as_(member).delete(path)

    assert response.status_code == 200, response.json()
    assert {k: response.json()[k] for k in ("seq", "status", "drop_reason", "paid")} == {
        "seq": 1,
        "status": "dropped",
        "drop_reason": "entry_cancelled",
        "paid": True,
    }
    assert Refund.objects.get(order=order).reason == "entry_cancelled"
    assert_refused_unchanged(
        member, lambda c: c.delete(path), "delete", MINE, 404, "entry_not_found"
    )
    _, again = sign_up(made, member)
    committed(pay, again)
    closed(made)  # a paid entry stays on the closed list
    assert_refused_unchanged(member, lambda c: c.delete(path), "delete", MINE, 409, "post_closed")


# --- the leader's side ----------------------------------------------------------------------------
def test_the_leader_reads_the_pickup_sheet_once_closed_and_others_cannot(committed, operator):
    made = board(prices=((500, 333),))
    member = member_of(made.community, nickname="Ming", phone="13800000001")
    _, order = sign_up(made, member, [(made.skus[0], 3)])
    committed(pay, order)
    leader = as_(made.leader)
    path = url(SHEET, post_id=made.post.pk)

    assert_refused_unchanged(leader, lambda c: c.get(path), "get", SHEET, 409, "post_not_closed")
    closed(made)
    before = db_snapshot()
    sheet = leader.get(path).json()
    assert operator.get(path).status_code == 200
    assert db_snapshot() == before

    assert sheet["members"] == [
        {
            "seq": 1,
            "nickname": "Ming",
            "phone": "13800000001",
            "pickup_code": Order.objects.get(pk=order.pk).pickup_code,
            "order_id": order.pk,
            "items": [
                {
                    "sku_id": made.skus[0].pk,
                    "sku_code": made.skus[0].code,
                    "title": made.skus[0].product.title,
                    "quantity": 3,
                    "amount": 999,
                }
            ],
            "total": 999,
        }
    ]
    assert (sheet["total_units"], sheet["total_amount"]) == (3, 999)
    assert_refused_unchanged(
        member, lambda c: c.get(path), "get", SHEET, 403, "not_community_leader"
    )
    assert_refused_unchanged(
        leader,
        lambda c: c.get(url(SHEET, post_id=made.post.pk + 1000)),
        "get",
        SHEET,
        404,
        "post_not_found",
    )


def test_staff_need_the_view_permission_for_the_sheet():
    made = board()
    closed(made)
    clerk = UserFactory(is_staff=True)
    client = ApiClient(token_for(clerk))
    path = url(SHEET, post_id=made.post.pk)

    assert_refused_unchanged(
        client, lambda c: c.get(path), "get", SHEET, 403, "not_community_leader"
    )
    clerk.user_permissions.add(Permission.objects.get(codename="view_chainpost"))
    assert ApiClient(token_for(clerk)).get(path).status_code == 200


def test_the_pickup_sheet_as_csv_is_excel_ready_and_escapes_formulas(committed):
    made = board(prices=((500, 333), (300, 250)))
    lychees, eggs = made.skus
    hostile = ['=HYPERLINK("x")', "+1", "-2", "@SUM(A1)", "\tTab", "\rCR"]
    orders = []
    for nickname in hostile:
        member = member_of(made.community, nickname=nickname, phone="+86 138")
        orders.append(sign_up(made, member, [(lychees, 1), (eggs, 2)])[1])
    for order in orders:
        committed(pay, order)
    closed(made)

    response = as_(made.leader).get(url(SHEET_CSV, post_id=made.post.pk))

    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == (
        f'attachment; filename="post-{made.post.pk}-pickup.csv"'
    )
    raw = response.content
    assert raw.startswith("\ufeff".encode())
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))
    assert rows[0] == ["Post", made.post.title]
    assert rows[3] == [
        "Seq",
        "Nickname",
        "Phone",
        "Pickup code",
        "SKU",
        "Product",
        "Units",
        "Amount (yuan)",
        "Member total (yuan)",
    ]
    members = rows[4 : 4 + 2 * len(hostile)]
    assert [row[1] for row in members[::2]] == ["'" + nickname for nickname in hostile]
    assert {row[2] for row in members} == {"'+86 138"}
    first_code = Order.objects.get(pk=orders[0].pk).pickup_code
    assert members[0] == [
        "1",
        '\'=HYPERLINK("x")',
        "'+86 138",
        first_code,
        lychees.code,
        lychees.product.title,
        "1",
        "3.33",
        "8.33",
    ]
    assert members[1][4:] == [eggs.code, eggs.product.title, "2", "5.00", "8.33"]
    summary = rows[4 + 2 * len(hostile) + 1 :]
    assert summary == [
        ["SKU", "Product", "Units", "Amount (yuan)"],
        [lychees.code, lychees.product.title, "6", "19.98"],
        [eggs.code, eggs.product.title, "12", "30.00"],
        ["Total", "", "18", "49.98"],
    ]
    assert_refused_unchanged(
        member_of(made.community),
        lambda c: c.get(url(SHEET_CSV, post_id=made.post.pk)),
        "get",
        SHEET_CSV,
        403,
        "not_community_leader",
    )


def test_the_leader_marks_the_delivery_arrived_once(committed):
    made = board()
    _, order = sign_up(made)
    committed(pay, order)
    leader = as_(made.leader)
    path = url(ARRIVED, post_id=made.post.pk)

    assert_refused_unchanged(
        leader, lambda c: c.post(path), "post", ARRIVED, 409, "post_not_closed"
    )
    closed(made)
    first = leader.post(path)
    second = leader.post(path)

    assert first.status_code == 200, first.json()
    assert first.json()["arrived_at"] is not None
    assert (first.json()["status"], second.json()["arrived_at"]) == (
        "closed",
        first.json()["arrived_at"],
    )
    assert_refused_unchanged(
        order.customer, lambda c: c.post(path), "post", ARRIVED, 403, "not_community_leader"
    )


# --- announcements and the feed -------------------------------------------------------------------
def test_the_leader_posts_announcements_until_the_rate_limit(settings):
    settings.ANNOUNCEMENT_RATE = "2/h"
    community, leader, _ = community_with_leader(nickname="Ming")
    client = as_(leader)
    path = url(ANNOUNCEMENTS, community_id=community.pk)

    made = [client.post(path, json={"body": f"note {n}"}) for n in range(2)]
    over = assert_refused_unchanged(
        client,
        lambda c: c.post(path, json={"body": "one more"}),
        "post",
        ANNOUNCEMENTS,
        429,
        "rate_limited",
    )

    assert [r.status_code for r in made] == [201, 201]
    assert {k: made[0].json()[k] for k in ("community_id", "body", "author_nickname")} == {
        "community_id": community.pk,
        "body": "note 0",
        "author_nickname": "Ming",
    }
    assert int(over["Retry-After"]) >= 1
    assert CommunityAnnouncement.objects.count() == 2


def test_announcement_refusals_are_documented(operator):
    community, leader, _ = community_with_leader()
    member = member_of(community)
    path = url(ANNOUNCEMENTS, community_id=community.pk)

    assert_refused_unchanged(
        member,
        lambda c: c.post(path, json={"body": "hi"}),
        "post",
        ANNOUNCEMENTS,
        403,
        "not_community_leader",
    )
    assert_refused_unchanged(
        operator,
        lambda c: c.post(path, json={"body": "hi"}),
        "post",
        ANNOUNCEMENTS,
        403,
        "not_a_customer",
    )
    assert_refused_unchanged(
        leader,
        lambda c: c.post(path, json={"body": "   "}),
        "post",
        ANNOUNCEMENTS,
        422,
        "announcement_invalid",
    )
    for body in ({"body": ""}, {"body": "x" * 1001}, {"body": 5}, {"body": "hi", "pinned": True}):
        assert_refused_unchanged(
            leader,
            lambda c, body=body: c.post(path, json=body),
            "post",
            ANNOUNCEMENTS,
            422,
            "validation_error",
        )
    assert_refused_unchanged(
        leader,
        lambda c: c.post(url(ANNOUNCEMENTS, community_id=community.pk + 1000), json={"body": "hi"}),
        "post",
        ANNOUNCEMENTS,
        404,
        "community_not_found",
    )


def test_members_read_published_announcements_newest_first_and_the_feed(operator):
    made = board()
    community = made.community
    first = announcement_post(author=made.leader, community_id=community.pk, body="first")
    hidden = announcement_post(author=made.leader, community_id=community.pk, body="spam")
    last = announcement_post(author=made.leader, community_id=community.pk, body="last")
    operator.post(url(HIDE, announcement_id=hidden.pk), json={"reason": "spam"})
    member = as_(member_of(community))
    before = db_snapshot()

    listed = member.get(url(ANNOUNCEMENTS, community_id=community.pk)).json()
    feed = member.get(url(FEED, community_id=community.pk)).json()

    assert db_snapshot() == before
    assert [a["id"] for a in listed["items"]] == [last.pk, first.pk]
    assert (feed["topic"], feed["community_id"]) == (f"community:{community.pk}", community.pk)
    assert [a["id"] for a in feed["announcements"]] == [last.pk, first.pk]
    assert [p["id"] for p in feed["posts"]] == [made.post.pk]
    assert feed["groups"] == []
    stranger = as_(QuickCustomerFactory())
    for path in (ANNOUNCEMENTS, FEED):
        assert_refused_unchanged(
            stranger,
            lambda c, path=path: c.get(url(path, community_id=community.pk)),
            "get",
            path,
            403,
            "not_community_member",
        )
        assert_refused_unchanged(
            member,
            lambda c, path=path: c.get(url(path, community_id=community.pk + 1000)),
            "get",
            path,
            404,
            "community_not_found",
        )


def test_staff_hide_an_announcement_over_http_with_the_permission(operator, shopper):
    community, leader, _ = community_with_leader()
    made = announcement_post(author=leader, community_id=community.pk, body="Buy elsewhere")
    path = url(HIDE, announcement_id=made.pk)
    clerk = StaffFactory(is_superuser=False)

    assert_refused_unchanged(
        shopper, lambda c: c.post(path, json={"reason": "ads"}), "post", HIDE, 403, "staff_only"
    )
    assert_refused_unchanged(
        ApiClient(token_for(clerk)),
        lambda c: c.post(path, json={"reason": "ads"}),
        "post",
        HIDE,
        403,
        "permission_denied",
    )
    assert_refused_unchanged(
        operator,
        lambda c: c.post(url(HIDE, announcement_id=made.pk + 1000), json={"reason": "ads"}),
        "post",
        HIDE,
        404,
        "announcement_not_found",
    )
    assert_refused_unchanged(
        operator,
        lambda c: c.post(path, json={"reason": " "}),
        "post",
        HIDE,
        422,
        "announcement_invalid",
    )
    assert_refused_unchanged(
        operator, lambda c: c.post(path, json={}), "post", HIDE, 422, "validation_error"
    )

    response = operator.post(path, json={"reason": "Advertises another shop."})

    assert response.status_code == 200, response.json()
    assert {k: response.json()[k] for k in ("id", "status", "hidden_reason")} == {
        "id": made.pk,
        "status": "hidden",
        "hidden_reason": "Advertises another shop.",
    }
    assert operator.post(path, json={"reason": "again"}).json()["hidden_reason"] == (
        "Advertises another shop."
    )


def test_every_chain_operation_has_examples_and_documents_its_errors():
    paths = [POSTS, POST, ENTRIES, MINE, SHEET, ARRIVED, ANNOUNCEMENTS, FEED, HIDE]
    methods = {
        POSTS: ["get", "post"],
        POST: ["get"],
        ENTRIES: ["post"],
        MINE: ["delete"],
        SHEET: ["get"],
        ARRIVED: ["post"],
        ANNOUNCEMENTS: ["get", "post"],
        FEED: ["get"],
        HIDE: ["post"],
    }
    for path in paths:
        for method in methods[path]:
            operation = _operation(method, path)
            success = min((s for s in operation["responses"] if str(s).startswith("2")), key=str)
            assert "example" in operation["responses"][success]["content"]["application/json"]
            assert operation["tags"]
    sheet_csv = _operation("get", SHEET_CSV)
    assert "text/csv" in sheet_csv["responses"]["200"]["content"]
    assert "post_not_closed" in str(sheet_csv["responses"]["409"])
    assert "rate_limited" in str(_operation("post", ANNOUNCEMENTS)["responses"]["429"])


def test_the_chain_schemas_shadow_no_other_schema_in_the_document():
    """The OpenAPI document names components by class name: a second ``PickupPointBriefOut``
    would silently replace the shop's in every operation that uses it."""
    from ninja import Schema

    from groupbuy.schemas import chains as module

    def subclasses(cls):
        for sub in cls.__subclasses__():
            yield sub
            yield from subclasses(sub)

    mine = {
        cls.__name__
        for cls in vars(module).values()
        if isinstance(cls, type) and issubclass(cls, Schema) and cls.__module__ == module.__name__
    }
    others = {cls.__name__ for cls in subclasses(Schema) if cls.__module__ != module.__name__}
    assert mine and mine & others == set()
