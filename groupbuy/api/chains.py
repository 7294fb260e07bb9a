"""Chain sign-up (接龙) and the community feed over HTTP: a leader's posts, members' entries (each
an order to pay), the pickup sheet (JSON and CSV) and the delivery-arrived notice, the leader's
announcements, the community feed's snapshot, and staff moderation. Parse, call one service or
selector, answer (rules: groupbuy/services/chains.py, groupbuy/services/community.py).

Withdrawing an entry is ``DELETE /posts/{post_id}/entries/mine``: it is idempotent by nature
(the entry drops once, a paid order is refunded once per order), so it takes no
``Idempotency-Key``; a repeat answers 404 ``entry_not_found`` and changes nothing."""

import csv
import io
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from ninja import Router
from ninja.pagination import paginate
from ninja.responses import Status

from core.admin_money import fen_to_yuan
from core.error_codes import CoreErrorCode
from core.http import (
    bearer_auth,
    errors,
    examples,
    idempotent,
    rate_limit,
    request_user,
    require_perm,
    staff_auth,
)
from groupbuy.api.groups import CHECKOUT_CODES, GROUP_ORDER
from groupbuy.error_codes import ChainErrorCode
from groupbuy.schemas.chains import (
    CommunityAnnouncementHideIn,
    CommunityAnnouncementIn,
    CommunityAnnouncementOut,
    CommunityFeedOut,
    EntryCreateIn,
    EntryPlacedOut,
    MyEntryOut,
    PickupSheetOut,
    PostCreateIn,
    PostDetailOut,
    PostOut,
    StaffCommunityAnnouncementOut,
)
from groupbuy.selectors import chains as selectors
from groupbuy.selectors.chains import PickupSheet
from groupbuy.services import chains as services
from groupbuy.services import community as community_services
from shop.error_codes import CommunityErrorCode, CustomerErrorCode
from shop.schemas.orders import OrderOut
from shop.selectors.customers import customer_of
from shop.selectors.orders import order_of_customer

router = Router(tags=["chain sign-up"])

MEMBERS = (CommunityErrorCode.COMMUNITY_NOT_FOUND, ChainErrorCode.NOT_COMMUNITY_MEMBER)
POST_MEMBERS = (ChainErrorCode.POST_NOT_FOUND, ChainErrorCode.NOT_COMMUNITY_MEMBER)
MANAGERS = (
    ChainErrorCode.POST_NOT_FOUND,
    ChainErrorCode.NOT_COMMUNITY_LEADER,
    ChainErrorCode.POST_NOT_CLOSED,
)

# --- examples -------------------------------------------------------------------------------------
_POINT = {"id": 1, "name": "North gate kiosk", "address": "1 Garden Road"}
_ENTRY_ITEMS = [{"sku_id": 1, "title": "Organic tomatoes", "quantity": 2}]
POST_BRIEF: dict[str, Any] = {
    "id": 9,
    "community_id": 1,
    "title": "Friday lychees from Zengcheng",
    "status": "open",
    "author_nickname": "Ming",
    "deadline": "2025-06-05T12:00:00Z",
    "pickup_point": _POINT,
    "items_count": 1,
    "live_entries": 2,
    "max_entries": 30,
    "entries_left": 28,
    "created_at": "2025-06-03T08:00:00Z",
    "closed_at": None,
    "arrived_at": None,
}
POST: dict[str, Any] = {
    **{k: v for k, v in POST_BRIEF.items() if k != "items_count"},
    "body": "Picked Thursday, at the kiosk Friday from 5 pm.",
    "seconds_left": 86400,
    "items": [
        {
            "sku_id": 1,
            "sku_code": "LYCHEE-1KG",
            "title": "Lychees",
            "attributes": {"weight": "1kg"},
            "list_price": 2990,
            "price": 1990,
            "max_units": 50,
            "units_taken": 3,
            "units_left": 47,
        }
    ],
    "entries": [
        {
            "seq": 1,
            "nickname": "Ming",
            "avatar_url": "https://img.example/m.png",
            "items": _ENTRY_ITEMS,
            "paid": True,
        },
        {"seq": 3, "nickname": "Lan", "avatar_url": "", "items": _ENTRY_ITEMS, "paid": False},
    ],
    "my_entry": {"seq": 3, "order_id": 42, "paid": False},
    "topic": "post:9",
    "seq": 4,
}
POST_REQUEST = {
    "title": "Friday lychees from Zengcheng",
    "body": "Picked Thursday, at the kiosk Friday from 5 pm.",
    "pickup_point_id": 1,
    "deadline": "2025-06-05T12:00:00Z",
    "max_entries": 30,
    "items": [{"sku_id": 1, "price": 1990, "max_units": 50}],
}
MY_ENTRY = {
    "post_id": 9,
    "seq": 3,
    "status": "live",
    "order_id": 42,
    "paid": False,
    "items": _ENTRY_ITEMS,
    "created_at": "2025-06-03T09:30:00Z",
    "paid_at": None,
    "dropped_at": None,
    "drop_reason": "",
}
ENTRY_ORDER = {**GROUP_ORDER, "source": "chain_signup", "source_ref": 9, "fulfilment_held": False}
ANNOUNCEMENT = {
    "id": 5,
    "community_id": 1,
    "body": "The lychee truck is 30 minutes late: pickup from 5:30 pm.",
    "author_nickname": "Ming",
    "author_avatar_url": "https://img.example/m.png",
    "created_at": "2025-06-05T16:40:00Z",
}
SHEET = {
    "post_id": 9,
    "title": "Friday lychees from Zengcheng",
    "status": "closed",
    "closed_at": "2025-06-05T12:00:00Z",
    "arrived_at": None,
    "pickup_point": _POINT,
    "members": [
        {
            "seq": 1,
            "nickname": "Ming",
            "phone": "13800138000",
            "pickup_code": "48213377",
            "order_id": 41,
            "items": [
                {
                    "sku_id": 1,
                    "sku_code": "LYCHEE-1KG",
                    "title": "Lychees",
                    "quantity": 2,
                    "amount": 3980,
                }
            ],
            "total": 3980,
        }
    ],
    "skus": [
        {"sku_id": 1, "sku_code": "LYCHEE-1KG", "title": "Lychees", "units": 2, "amount": 3980}
    ],
    "total_units": 2,
    "total_amount": 3980,
}

POST_TEXT = (
    "its items with the community price and what is left (`units_left`, null without a cap), "
    "the live entries by `seq` (nickname, avatar, items, paid), `live_entries` / `max_entries` / "
    "`entries_left`, my own live entry (`my_entry`, null if none) and the pickup point. It is "
    "the snapshot of the WebSocket topic `topic` (`post:<id>`, for the community's members: "
    "`post_entry_added`, `post_entry_paid`, `post_entry_dropped`, `post_closed`), current to "
    "`seq`: on a gap in the topic's `seq`, fetch it again."
)
LEADER_TEXT = (
    "For the community's leader (bearer token), or operators with `{perm}` (the same bearer "
    "scheme); anyone else 403 `not_community_leader`. Before the list closes: 409 "
    "`post_not_closed`. Unknown post: 404 `post_not_found`."
)


def _detail(request: HttpRequest, post_id: int) -> PostDetailOut:
    detail = selectors.post_detail(
        post_id=post_id, viewer=request_user(request), now=timezone.now()
    )
    return PostDetailOut.from_orm(detail)


# --- posts ----------------------------------------------------------------------------------------
@router.post(
    "/communities/{community_id}/posts",
    response={201: PostDetailOut},
    auth=bearer_auth,
    summary="Community leader: publish a sign-up list (接龙)",
    description=(
        "Publish a sign-up list in the community I lead: items (SKUs on sale) at community "
        "prices (1 fen up to the SKU's price) with optional caps on units, an optional cap on "
        "entries, a pickup point of the community and a deadline 1 minute to 30 days ahead. "
        "Members are told on the community's topic (`post_published`). Shopper (bearer token of "
        "a customer; `not_a_customer` otherwise) who leads the community (else 403 "
        "`not_community_leader`). Idempotent with `Idempotency-Key`: a retry replays the first "
        "201. Main errors: 404 `community_not_found`, 422 `post_invalid` (`details.field`, e.g. "
        "`items.0.price`, and `details.reason`). Answers the post as `GET /posts/{id}` does."
    ),
)
@examples(request=POST_REQUEST, response={**POST, "entries": [], "my_entry": None, "seq": 0})
@errors(
    CustomerErrorCode.NOT_A_CUSTOMER,
    CommunityErrorCode.COMMUNITY_NOT_FOUND,
    ChainErrorCode.NOT_COMMUNITY_LEADER,
    ChainErrorCode.POST_INVALID,
)
@idempotent
def post_publish(request: HttpRequest, community_id: int, payload: PostCreateIn):
    customer = customer_of(request_user(request))
    post = services.post_publish(
        created_by=request_user(request),
        author=customer,
        community_id=community_id,
        pickup_point_id=payload.pickup_point_id,
        title=payload.title,
        body=payload.body,
        deadline=payload.deadline,
        max_entries=payload.max_entries,
        items=[(item.sku_id, item.price, item.max_units) for item in payload.items],
    )
    return Status(201, _detail(request, post.pk))


@router.get(
    "/communities/{community_id}/posts",
    response=list[PostOut],
    auth=bearer_auth,
    summary="A community's sign-up lists: open ones first",
    description=(
        "The community's sign-up posts, open ones first, then the most recent, paginated. For "
        "the community's members and operators (bearer token); anyone else 403 "
        "`not_community_member`. Unknown community: 404 `community_not_found`. Read-only."
    ),
)
@examples(response={"items": [POST_BRIEF], "count": 1, "limit": 20, "offset": 0})
@errors(*MEMBERS)
@paginate
def post_list(request: HttpRequest, community_id: int):
    community = selectors.community_for_member(
        community_id=community_id, user=request_user(request)
    )
    return selectors.posts_of_community(community=community)


@router.get(
    "/posts/{post_id}",
    response=PostDetailOut,
    auth=bearer_auth,
    summary="A sign-up list: items, entries, my entry",
    description=(
        "A sign-up post: "
        + POST_TEXT
        + " For the community's members and operators (bearer token); anyone else 403 "
        "`not_community_member`. Unknown: 404 `post_not_found`. Read-only."
    ),
)
@examples(response=POST)
@errors(*POST_MEMBERS)
def post_get(request: HttpRequest, post_id: int):
    selectors.post_for_member(post_id=post_id, user=request_user(request))
    return _detail(request, post_id)


# --- entries --------------------------------------------------------------------------------------
@router.post(
    "/posts/{post_id}/entries",
    response={201: EntryPlacedOut},
    auth=bearer_auth,
    summary="Sign up: add myself to the list with quantities (an order to pay)",
    description=(
        "Add myself to an open list with quantities of its items: my entry takes the next "
        "`seq` and is held by an unpaid pickup order at the post's pickup point (source "
        "`chain_signup`, `source_ref` the post) at the community price, until its "
        "`payment_deadline` (the entry payment time, never past the post's deadline); unpaid, "
        "the order expires and my entry drops off. Coupons do not apply. For members of the "
        "post's community (403 `not_community_member`): shopper bearer token of a customer "
        "(`not_a_customer` otherwise). Idempotent with `Idempotency-Key`: a retry replays the "
        "first 201 (one order). Main errors: 404 `post_not_found` / `post_item_not_found`, 422 "
        "`entry_invalid` (`details.field`: 1 to 20 items, no SKU twice, 1 to 999 units), 409 "
        "`post_closed` (past or under a second before the deadline), 409 `already_signed_up` "
        "(one live entry each), 409 `post_full`, 409 `post_item_sold_out` (`details.sku_id`, "
        "`details.units_left`), 409 `out_of_stock`, 409 `purchase_limit_exceeded`."
    ),
)
@examples(
    request={"items": [{"sku_id": 1, "quantity": 2}]},
    response={"entry": MY_ENTRY, "order": ENTRY_ORDER},
)
@errors(
    CustomerErrorCode.NOT_A_CUSTOMER,
    *POST_MEMBERS,
    ChainErrorCode.ENTRY_INVALID,
    ChainErrorCode.POST_ITEM_NOT_FOUND,
    ChainErrorCode.POST_CLOSED,
    ChainErrorCode.ALREADY_SIGNED_UP,
    ChainErrorCode.POST_FULL,
    ChainErrorCode.POST_ITEM_SOLD_OUT,
    *CHECKOUT_CODES,
)
@idempotent
def entry_create(request: HttpRequest, post_id: int, payload: EntryCreateIn):
    customer = customer_of(request_user(request))
    entry, order = services.entry_create(
        post_id=post_id,
        customer=customer,
        lines=[(line.sku_id, line.quantity) for line in payload.items],
    )
    return Status(
        201,
        EntryPlacedOut(
            entry=MyEntryOut.from_orm(selectors.entry_detail(entry_id=entry.pk)),
            order=OrderOut.from_orm(order_of_customer(order_id=order.pk, customer=customer)),
        ),
    )


@router.delete(
    "/posts/{post_id}/entries/mine",
    response=MyEntryOut,
    auth=bearer_auth,
    summary="Withdraw my entry (unpaid: order cancelled; paid: refunded in full)",
    description=(
        "Take my live entry off an open list before its deadline: an unpaid order is cancelled, "
        "a paid one refunded in full (reason `entry_cancelled`); the place and units go back at "
        "once and I may sign up again (a new `seq`). Answers my entry, now `dropped`. Shopper "
        "(bearer token of a customer; `not_a_customer` otherwise). Idempotent by nature: a "
        "repeat is 404 `entry_not_found` and changes nothing. Main errors: 404 `post_not_found` "
        "/ `entry_not_found`, 409 `post_closed`, 409 `entry_not_cancellable` (the order was "
        "already handed over: ask for a refund of the order instead)."
    ),
)
@examples(
    response={
        **MY_ENTRY,
        "status": "dropped",
        "dropped_at": "2025-06-03T10:00:00Z",
        "drop_reason": "entry_cancelled",
    }
)
@errors(
    CustomerErrorCode.NOT_A_CUSTOMER,
    ChainErrorCode.POST_NOT_FOUND,
    ChainErrorCode.ENTRY_NOT_FOUND,
    ChainErrorCode.POST_CLOSED,
    ChainErrorCode.ENTRY_NOT_CANCELLABLE,
)
def entry_cancel(request: HttpRequest, post_id: int):
    entry = services.entry_cancel(post_id=post_id, customer=customer_of(request_user(request)))
    return selectors.entry_detail(entry_id=entry.pk)


# --- the leader's side ----------------------------------------------------------------------------
@router.get(
    "/posts/{post_id}/pickup-sheet",
    response=PickupSheetOut,
    auth=bearer_auth,
    summary="Community leader: the pickup sheet of a closed list",
    description=(
        "Who collects what once the list closed: each paid entry by `seq` (nickname, phone, "
        "pickup code, items with the units and amount paid, net of refunds, and a total), each "
        "item of the post with its units and amount, and the grand totals, in fen. "
        + LEADER_TEXT.format(perm="groupbuy.view_chainpost")
        + " Read-only; `GET /posts/{post_id}/pickup-sheet.csv` is the same as a spreadsheet."
    ),
)
@examples(response=SHEET)
@errors(*MANAGERS)
def pickup_sheet(request: HttpRequest, post_id: int):
    return selectors.pickup_sheet(post_id=post_id, viewer_user=request_user(request))


@router.get(
    "/posts/{post_id}/pickup-sheet.csv",
    auth=bearer_auth,
    summary="Community leader: the pickup sheet as a CSV file (for Excel)",
    openapi_extra={
        "responses": {
            "200": {
                "description": "The pickup sheet, UTF-8 CSV with a byte order mark",
                "content": {"text/csv": {"schema": {"type": "string"}}},
            }
        }
    },
    description=(
        "The pickup sheet as a download (`post-<id>-pickup.csv`): one row per member's item "
        "(seq, nickname, phone, pickup code, SKU, product, units, amount and the member's total, "
        "in yuan), then each item's units and amount, then the grand total. UTF-8 with a byte "
        "order mark so Excel reads Chinese text; a cell that would start with `=`, `+`, `-`, "
        "`@`, a tab or a carriage return is prefixed with `'` (no formula runs). "
        + LEADER_TEXT.format(perm="groupbuy.view_chainpost")
        + " Read-only."
    ),
)
@errors(*MANAGERS)
def pickup_sheet_csv(request: HttpRequest, post_id: int):
    sheet = selectors.pickup_sheet(post_id=post_id, viewer_user=request_user(request))
    response = HttpResponse("\ufeff" + _sheet_csv(sheet), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="post-{sheet.post_id}-pickup.csv"'
    return response


_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: object) -> str:
    """A cell as text, never read by a spreadsheet as a formula (CSV injection)."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


def _sheet_csv(sheet: PickupSheet) -> str:
    out = io.StringIO()
    writer = csv.writer(out)

    def row(*cells: object) -> None:
        writer.writerow([_cell(cell) for cell in cells])

    point = sheet.pickup_point
    row("Post", sheet.title)
    row("Pickup point", point.name, point.address)
    row()
    row(
        "Seq",
        "Nickname",
        "Phone",
        "Pickup code",
        "SKU",
        "Product",
        "Units",
        "Amount (yuan)",
        "Member total (yuan)",
    )
    for member in sheet.members:
        for line in member.items:
            row(
                member.seq,
                member.nickname,
                member.phone,
                member.pickup_code,
                line.sku_code,
                line.title,
                line.quantity,
                fen_to_yuan(line.amount),
                fen_to_yuan(member.total),
            )
    row()
    row("SKU", "Product", "Units", "Amount (yuan)")
    for sku in sheet.skus:
        row(sku.sku_code, sku.title, sku.units, fen_to_yuan(sku.amount))
    row("Total", "", sheet.total_units, fen_to_yuan(sheet.total_amount))
    return out.getvalue()


@router.post(
    "/posts/{post_id}/arrived",
    response=PostDetailOut,
    auth=bearer_auth,
    summary="Community leader: the delivery is at the pickup point",
    description=(
        "Say the goods of a closed list have arrived: the community's topic gets "
        "`pickup_ready` (the pickup point's id, name and address) and each paid member a "
        "notification with their pickup code. Once: a second call changes nothing and tells "
        "nobody again. "
        + LEADER_TEXT.format(perm="groupbuy.change_chainpost")
        + " Answers the post as `GET /posts/{id}` does."
    ),
)
@examples(
    response={
        **POST,
        "status": "closed",
        "seconds_left": 0,
        "closed_at": "2025-06-05T12:00:00Z",
        "arrived_at": "2025-06-05T17:02:00Z",
        "my_entry": None,
    }
)
@errors(*MANAGERS)
def post_arrived(request: HttpRequest, post_id: int):
    services.post_mark_arrived(post_id=post_id, viewer_user=request_user(request))
    return _detail(request, post_id)


# --- announcements and the feed -------------------------------------------------------------------
@router.post(
    "/communities/{community_id}/announcements",
    response={201: CommunityAnnouncementOut},
    auth=bearer_auth,
    summary="Community leader: post an announcement to my community",
    description=(
        "Post a message to the community I lead: stored (`GET "
        "/communities/{community_id}/announcements`) and pushed on the community's topic "
        "(`announcement`). Plain text, 1 to 1000 characters once stripped (else 422 "
        "`announcement_invalid`). Shopper (bearer token of a customer; `not_a_customer` "
        "otherwise) who leads the community (else 403 `not_community_leader`); rate-limited per "
        "user (`ANNOUNCEMENT_RATE`, 5/h by default: 429 `rate_limited` with `Retry-After`). "
        "Idempotent with `Idempotency-Key`. Unknown community: 404 `community_not_found`."
    ),
)
@examples(request={"body": ANNOUNCEMENT["body"]}, response=ANNOUNCEMENT)
@errors(
    CustomerErrorCode.NOT_A_CUSTOMER,
    CoreErrorCode.RATE_LIMITED,
    CommunityErrorCode.COMMUNITY_NOT_FOUND,
    ChainErrorCode.NOT_COMMUNITY_LEADER,
    ChainErrorCode.ANNOUNCEMENT_INVALID,
)
@idempotent
def announcement_post(request: HttpRequest, community_id: int, payload: CommunityAnnouncementIn):
    rate_limit(request, group="announcement", rate=settings.ANNOUNCEMENT_RATE, key="user")
    announcement = community_services.announcement_post(
        author=customer_of(request_user(request)), community_id=community_id, body=payload.body
    )
    return Status(201, CommunityAnnouncementOut.from_orm(announcement))


@router.get(
    "/communities/{community_id}/announcements",
    response=list[CommunityAnnouncementOut],
    auth=bearer_auth,
    summary="A community's announcements, newest first",
    description=(
        "The leader's announcements to the community, newest first, paginated; those hidden by "
        "moderators are left out. For the community's members and operators (bearer token); "
        "anyone else 403 `not_community_member`. Unknown community: 404 `community_not_found`. "
        "Read-only."
    ),
)
@examples(response={"items": [ANNOUNCEMENT], "count": 1, "limit": 20, "offset": 0})
@errors(*MEMBERS)
@paginate
def announcement_list(request: HttpRequest, community_id: int):
    community = selectors.community_for_member(
        community_id=community_id, user=request_user(request)
    )
    return selectors.announcements_of_community(community=community)


@router.get(
    "/communities/{community_id}/feed",
    response=CommunityFeedOut,
    auth=bearer_auth,
    summary="A community's feed: announcements, open lists, open groups",
    description=(
        f"The snapshot of the community's WebSocket topic `topic` (`community:<id>`), current "
        f"to `seq`: the latest {selectors.FEED_LIMIT} announcements, the open sign-up posts "
        "(closing soonest first) and the open group-buy groups of the community a neighbour "
        "may join by id (community join mode, a seat free, expiring soonest first). The topic "
        "carries `announcement`, `announcement_hidden`, `post_published`, `pickup_ready` and "
        "`group_opened`; on a gap in its `seq`, fetch this again. For the community's members "
        "and operators (bearer token); anyone else 403 `not_community_member`. Unknown "
        "community: 404 `community_not_found`. Read-only."
    ),
)
@examples(
    response={
        "community_id": 1,
        "topic": "community:1",
        "seq": 12,
        "announcements": [ANNOUNCEMENT],
        "posts": [POST_BRIEF],
        "groups": [
            {
                "id": 17,
                "campaign_id": 3,
                "campaign_title": "Two buy cheaper: organic tomatoes",
                "size": 3,
                "seats_left": 2,
                "expires_at": "2025-06-02T09:30:00Z",
                "leader_nickname": "Ming",
            }
        ],
    }
)
@errors(*MEMBERS)
def community_feed(request: HttpRequest, community_id: int):
    community = selectors.community_for_member(
        community_id=community_id, user=request_user(request)
    )
    return selectors.community_feed(community=community, now=timezone.now())


# --- staff ----------------------------------------------------------------------------------------
@router.post(
    "/staff/announcements/{announcement_id}/hide",
    response=StaffCommunityAnnouncementOut,
    auth=staff_auth,
    tags=["staff: community"],
    summary="Hide a community announcement (moderation)",
    description=(
        "Hide a leader's announcement with a reason (kept on record): it leaves every feed and "
        "list at once and the community's topic gets `announcement_hidden`. Hiding it again "
        "changes nothing. Operators (staff bearer token) with "
        "`groupbuy.change_communityannouncement`. Unknown: 404 `announcement_not_found`; a "
        "blank reason: 422 `announcement_invalid`."
    ),
)
@examples(
    request={"reason": "Advertises another shop."},
    response={
        **ANNOUNCEMENT,
        "status": "hidden",
        "hidden_at": "2025-06-05T17:00:00Z",
        "hidden_reason": "Advertises another shop.",
        "hidden_by_id": 2,
    },
)
@errors(ChainErrorCode.ANNOUNCEMENT_NOT_FOUND, ChainErrorCode.ANNOUNCEMENT_INVALID)
def announcement_hide(
    request: HttpRequest, announcement_id: int, payload: CommunityAnnouncementHideIn
):
    require_perm(request, "groupbuy.change_communityannouncement")
    announcement = community_services.announcement_hide(
        announcement_id=announcement_id, staff=request_user(request), reason=payload.reason
    )
    return StaffCommunityAnnouncementOut.from_orm(announcement)
