"""Chain sign-up (接龙): publishing, signing up, what paying or cancelling an entry's order does,
a member withdrawing, the deadline sweep, the pickup sheet and the delivery-arrived notice (on
PostgreSQL, with the shop's events delivered through the outbox after commit)."""

import logging
from datetime import timedelta

import pytest
import time_machine
from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from core import side_effects
from core.errors import ApplicationError
from core.models import Notification, OutboxEvent
from groupbuy import subscribers, tasks
from groupbuy.models import ChainEntry, ChainPost, ChainPostItem
from groupbuy.selectors.chains import pickup_sheet
from groupbuy.services import chains
from groupbuy.services.chains import (
    entry_cancel,
    entry_order_cancelled,
    entry_order_paid,
    post_mark_arrived,
    posts_close_due,
)
from shop import events
from shop.models import Order, OrderEvent, Product, Refund, Sku
from shop.services.orders import order_cancel, order_fulfil, orders_expire_due
from shop.services.payments import payment_succeeded
from shop.services.refunds import refund_issue
from tests.db_snapshot import db_snapshot
from tests.factories import ProductFactory, SkuFactory, StaffFactory, UserFactory
from tests.groupbuy.factories_chains import (
    Pushes,
    board,
    community_with_leader,
    member_of,
    publish,
    sign_up,
)
from tests.shop.factories_orders import QuickCustomerFactory, pay
from tests.shop.factories_payments import PaymentFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def pushed(monkeypatch) -> Pushes:
    pushes = Pushes()
    monkeypatch.setattr(side_effects, "push_now", pushes.record)
    return pushes


def refusal(call) -> ApplicationError:
    with pytest.raises(ApplicationError) as caught:
        call()
    return caught.value


def refused_without_a_write(call) -> ApplicationError:
    before = db_snapshot()
    error = refusal(call)
    assert db_snapshot() == before
    return error


def fresh(row):
    row.refresh_from_db()
    return row


def after_deadline(post: ChainPost):
    return post.deadline + timedelta(seconds=1)


# --- publish --------------------------------------------------------------------------------------
def test_the_leader_publishes_a_post_with_its_items_at_community_prices(committed, pushed):
    community, leader, point = community_with_leader()
    tomatoes, eggs = SkuFactory(price=1990), SkuFactory(price=1200)
    deadline = timezone.now() + timedelta(days=2)

    post = committed(
        chains.post_publish,
        created_by=leader.user,
        author=leader,
        community_id=community.pk,
        pickup_point_id=point.pk,
        title="  Friday lychees  ",
        body=" Picked Thursday. ",
        deadline=deadline,
        max_entries=30,
        items=[(tomatoes.pk, 990, 50), (eggs.pk, 1200, None)],
    )

    post = fresh(post)
    assert (post.community, post.pickup_point, post.author, post.created_by) == (
        community,
        point,
        leader,
        leader.user,
    )
    assert (post.title, post.body, post.status, post.deadline) == (
        "Friday lychees",
        "Picked Thursday.",
        "open",
        deadline,
    )
    assert (post.max_entries, post.live_entries, post.next_seq) == (30, 0, 1)
    items = list(
        ChainPostItem.objects.filter(post=post)
        .order_by("pk")
        .values_list("sku_id", "price", "max_units", "units_taken")
    )
    assert items == [(tomatoes.pk, 990, 50, 0), (eggs.pk, 1200, None, 0)]
    [message] = pushed.to(f"community:{community.pk}")
    assert {k: message[k] for k in ("type", "post_id", "title", "items_count")} == {
        "type": "post_published",
        "post_id": post.pk,
        "title": "Friday lychees",
        "items_count": 2,
    }
    assert message["deadline"] == deadline.isoformat()


def test_an_operator_publishes_without_an_author_and_a_non_staff_user_cannot():
    community, _, point = community_with_leader()
    sku = SkuFactory(price=1990)
    operator = StaffFactory()

    post = publish(community, None, point, [(sku, 990, None)], created_by=operator)

    assert (post.author, post.created_by) == (None, operator)
    shopper = UserFactory()
    error = refused_without_a_write(
        lambda: publish(community, None, point, [(sku, 990, None)], created_by=shopper)
    )
    assert error.code == "not_community_leader"


def test_only_the_communitys_leader_publishes_there():
    community, _, point = community_with_leader()
    member = member_of(community)
    _, other_leader, _ = community_with_leader()
    sku = SkuFactory(price=1990)

    for customer in (member, other_leader):
        error = refused_without_a_write(
            lambda customer=customer: publish(community, customer, point, [(sku, 990, None)])
        )
        assert (error.code, error.status) == ("not_community_leader", 403)
    gone = community.pk + 1000
    error = refusal(
        lambda: chains.post_publish(
            created_by=member.user,
            author=member,
            community_id=gone,
            pickup_point_id=point.pk,
            title="x",
            deadline=timezone.now() + timedelta(hours=1),
            items=[(sku.pk, 990, None)],
        )
    )
    assert error.code == "community_not_found"


def _invalid_cases():
    def other_point(ctx):
        return {"pickup_point_id": community_with_leader()[2].pk}

    def inactive_point(ctx):
        ctx["point"].is_active = False
        ctx["point"].save()
        return {}

    def inactive_community(ctx):
        ctx["community"].is_active = False
        ctx["community"].save()
        return {}

    def sku_item(**sku_fields):
        return lambda ctx: {"items": [(SkuFactory(price=1990, **sku_fields).pk, 990, None)]}

    def off_sale(ctx):
        product = ProductFactory(status=Product.Status.DRAFT)
        return {"items": [(SkuFactory(product=product, price=1990).pk, 990, None)]}

    def elsewhere(ctx):
        product = ProductFactory()
        product.communities.add(community_with_leader()[0])
        return {"items": [(SkuFactory(product=product, price=1990).pk, 990, None)]}

    return [
        ("community_id", inactive_community),
        ("title", lambda ctx: {"title": "   "}),
        ("title", lambda ctx: {"title": "x" * 201}),
        ("body", lambda ctx: {"body": "x" * 5001}),
        ("deadline", lambda ctx: {"deadline": timezone.now() + timedelta(seconds=50)}),
        ("deadline", lambda ctx: {"deadline": timezone.now() - timedelta(hours=1)}),
        ("deadline", lambda ctx: {"deadline": timezone.now() + timedelta(days=30, minutes=1)}),
        ("pickup_point_id", other_point),
        ("pickup_point_id", inactive_point),
        ("max_entries", lambda ctx: {"max_entries": 0}),
        ("items", lambda ctx: {"items": []}),
        ("items", lambda ctx: {"items": [(SkuFactory().pk, 1, None) for _ in range(21)]}),
        ("items.1.sku_id", lambda ctx: {"items": [(ctx["sku"].pk, 990, None)] * 2}),
        ("items.0.sku_id", lambda ctx: {"items": [(10**9, 990, None)]}),
        ("items.0.sku_id", sku_item(is_active=False)),
        ("items.0.sku_id", off_sale),
        ("items.0.sku_id", elsewhere),
        ("items.0.price", lambda ctx: {"items": [(ctx["sku"].pk, 0, None)]}),
        ("items.0.price", lambda ctx: {"items": [(ctx["sku"].pk, 1991, None)]}),
        ("items.0.max_units", lambda ctx: {"items": [(ctx["sku"].pk, 990, 0)]}),
    ]


@pytest.mark.parametrize(("field", "change"), _invalid_cases())
def test_a_post_that_breaks_a_rule_is_refused_naming_the_field(field, change):
    community, leader, point = community_with_leader()
    ctx = {"community": community, "point": point, "sku": SkuFactory(price=1990)}
    fields = {
        "created_by": leader.user,
        "author": leader,
        "community_id": community.pk,
        "pickup_point_id": point.pk,
        "title": "Friday lychees",
        "body": "",
        "deadline": timezone.now() + timedelta(hours=2),
        "max_entries": None,
        "items": [(ctx["sku"].pk, 990, None)],
    }
    fields.update(change(ctx))

    error = refused_without_a_write(lambda: chains.post_publish(**fields))

    assert (error.code, error.status, error.details["field"]) == ("post_invalid", 422, field)
    assert error.details["reason"]


def test_the_limits_themselves_are_allowed():
    community, leader, point = community_with_leader()
    skus = [SkuFactory(price=1990) for _ in range(20)]
    now = timezone.now()

    with time_machine.travel(now, tick=False):
        soonest = publish(
            community,
            leader,
            point,
            [(skus[0], 1990, 1)],  # the SKU's own price, one unit
            deadline_in=timedelta(minutes=1),
            max_entries=1,
            title="x" * 200,
            body="y" * 5000,
        )
        latest = publish(
            community,
            leader,
            point,
            [(sku, 1, None) for sku in skus],
            deadline_in=timedelta(days=30),
        )

    assert soonest.deadline == now + timedelta(minutes=1)
    assert ChainPostItem.objects.filter(post=latest).count() == 20


# --- sign up --------------------------------------------------------------------------------------
def test_signing_up_places_a_chain_order_at_the_community_price_with_the_next_seq():
    made = board(prices=((1990, 990), (1200, 800)), max_units=10)
    member = member_of(made.community)
    tomatoes, eggs = made.skus

    with time_machine.travel(timezone.now(), tick=False):
        entry, order = sign_up(made, member, [(tomatoes, 2), (eggs, 3)])
        now = timezone.now()

    assert (entry.post, entry.customer, entry.order, entry.seq, entry.status) == (
        made.post,
        member,
        order,
        1,
        "live",
    )
    assert entry.paid_at is None
    order = fresh(order)
    assert (order.source, order.source_ref, order.status) == (
        "chain_signup",
        made.post.pk,
        "pending_payment",
    )
    assert (order.delivery_mode, order.pickup_point, order.community) == (
        "pickup",
        made.point,
        made.community,
    )
    assert order.payment_deadline == now + settings.CHAIN_ENTRY_PAYMENT_TTL
    lines = list(
        order.lines.order_by("sku_id").values_list(
            "sku_id", "list_unit_price", "unit_price", "quantity"
        )
    )
    assert lines == [(tomatoes.pk, 1990, 990, 2), (eggs.pk, 1200, 800, 3)]
    assert (order.subtotal, order.discount, order.total) == (4380, 0, 4380)
    post = fresh(made.post)
    assert (post.live_entries, post.next_seq) == (1, 2)
    taken = dict(ChainPostItem.objects.filter(post=post).values_list("sku_id", "units_taken"))
    assert taken == {tomatoes.pk: 2, eggs.pk: 3}
    assert Sku.objects.get(pk=tomatoes.pk).stock == 98  # reserved until paid or released

    second, _ = sign_up(made)
    assert second.seq == 2
    assert fresh(made.post).live_entries == 2


def test_the_entry_is_pushed_to_the_posts_topic(committed, pushed):
    made = board(max_units=5)
    member = member_of(made.community, nickname="Lan", avatar_url="https://img.example/l.png")

    committed(sign_up, made, member, [(made.skus[0], 2)])

    [message] = pushed.to(f"post:{made.post.pk}")
    assert message == {
        "type": "post_entry_added",
        "post_id": made.post.pk,
        "status": "open",
        "live_entries": 1,
        "max_entries": None,
        "entry": {
            "seq": 1,
            "created_at": ChainEntry.objects.get(post=made.post).created_at.isoformat(),
            "nickname": "Lan",
            "avatar_url": "https://img.example/l.png",
            "items": [
                {"sku_id": made.skus[0].pk, "title": made.skus[0].product.title, "quantity": 2}
            ],
            "paid": False,
        },
        "items": [{"sku_id": made.skus[0].pk, "units_left": 3}],
        "topic": f"post:{made.post.pk}",
        "seq": message["seq"],
    }


def test_an_entrys_order_is_never_held_past_the_deadline():
    made = board(deadline_in=timedelta(minutes=5))

    member = member_of(made.community)

    with time_machine.travel(made.post.deadline - timedelta(minutes=3), tick=False):
        _, order = sign_up(made, member)

    assert order.payment_deadline == made.post.deadline


def test_a_sku_now_cheaper_than_the_community_price_is_charged_at_its_own_price():
    made = board(prices=((1990, 990),))
    Sku.objects.filter(pk=made.skus[0].pk).update(price=700)

    _, order = sign_up(made)

    assert (order.total, order.lines.get().unit_price) == (700, 700)


def test_unknown_posts_strangers_and_items_not_on_the_post_are_refused():
    made = board()
    stranger = QuickCustomerFactory()
    member = member_of(made.community)
    sku = made.skus[0]

    gone = refused_without_a_write(
        lambda: chains.entry_create(
            post_id=made.post.pk + 1000, customer=member, lines=[(sku.pk, 1)]
        )
    )
    outsider = refused_without_a_write(lambda: sign_up(made, stranger))
    elsewhere = SkuFactory()
    other_sku = refused_without_a_write(lambda: sign_up(made, member, [(elsewhere, 1)]))

    assert (gone.code, gone.status) == ("post_not_found", 404)
    assert (outsider.code, outsider.status) == ("not_community_member", 403)
    assert (other_sku.code, other_sku.status) == ("post_item_not_found", 404)


@pytest.mark.parametrize(
    ("lines", "field"),
    [
        ([], "items"),
        ([(0, 1)] * 21, "items"),
        ([(0, 1), (0, 2)], "items.1.sku_id"),
        ([(0, 0)], "items.0.quantity"),
        ([(0, 1000)], "items.0.quantity"),
        ([(0, -1)], "items.0.quantity"),
    ],
)
def test_entry_lines_are_1_to_20_skus_once_each_with_1_to_999_units(lines, field):
    made = board()
    member = member_of(made.community)
    sku_id = made.skus[0].pk

    error = refused_without_a_write(
        lambda: chains.entry_create(
            post_id=made.post.pk,
            customer=member,
            lines=[(sku_id + offset, quantity) for offset, quantity in lines],
        )
    )

    assert (error.code, error.status, error.details["field"]) == ("entry_invalid", 422, field)


def test_999_units_are_allowed():
    made = board(stock=1000)

    _, order = sign_up(made, lines=[(made.skus[0], 999)])

    assert order.lines.get().quantity == 999


def test_a_closed_or_ended_post_takes_no_entry_even_when_its_item_is_sold_out():
    made = board(stock=0)
    member = member_of(made.community)
    ChainPost.objects.filter(pk=made.post.pk).update(status="closed", closed_at=timezone.now())

    error = refused_without_a_write(lambda: sign_up(made, member))
    assert (error.code, error.details) == (
        "post_closed",
        {"post_id": made.post.pk, "status": "closed"},
    )


def test_past_or_under_a_second_before_the_deadline_the_post_is_closed():
    made = board(deadline_in=timedelta(minutes=10))
    member = member_of(made.community)

    with time_machine.travel(made.post.deadline - timedelta(milliseconds=500)):
        assert refused_without_a_write(lambda: sign_up(made, member)).code == "post_closed"
    with time_machine.travel(after_deadline(made.post)):
        assert refused_without_a_write(lambda: sign_up(made, member)).code == "post_closed"
    with time_machine.travel(made.post.deadline - timedelta(seconds=2)):
        _, order = sign_up(made, member)
    assert order.payment_deadline <= made.post.deadline


def test_a_member_signs_up_once_while_their_entry_is_live():
    made = board()
    member = member_of(made.community)
    sign_up(made, member)

    error = refused_without_a_write(lambda: sign_up(made, member))

    assert (error.code, error.status) == ("already_signed_up", 409)
    assert error.details == {"post_id": made.post.pk}


def test_one_live_entry_per_member_is_also_a_database_rule():
    made = board()
    first, _ = sign_up(made)
    second, _ = sign_up(made)

    with pytest.raises(IntegrityError), transaction.atomic():
        ChainEntry.objects.filter(pk=second.pk).update(customer=first.customer)


def test_a_full_post_refuses_another_member():
    made = board(max_entries=2)
    sign_up(made)
    sign_up(made)

    late = member_of(made.community)

    error = refused_without_a_write(lambda: sign_up(made, late))

    assert (error.code, error.status) == ("post_full", 409)
    assert error.details == {"post_id": made.post.pk, "max_entries": 2}
    assert fresh(made.post).live_entries == 2


def test_an_item_with_fewer_units_left_than_asked_is_sold_out_and_says_what_is_left():
    made = board(max_units=5)
    sign_up(made, lines=[(made.skus[0], 3)])
    member = member_of(made.community)

    error = refused_without_a_write(lambda: sign_up(made, member, [(made.skus[0], 3)]))

    assert (error.code, error.status) == ("post_item_sold_out", 409)
    assert error.details == {"sku_id": made.skus[0].pk, "units_left": 2}
    sign_up(made, member, [(made.skus[0], 2)])  # exactly what is left
    assert ChainPostItem.objects.get(post=made.post).units_taken == 5


def test_a_sold_out_sku_is_refused_before_any_write():
    made = board(stock=1)
    member = member_of(made.community)

    with CaptureQueriesContext(connection) as queries:
        error = refused_without_a_write(lambda: sign_up(made, member, [(made.skus[0], 2)]))

    assert not [q for q in queries if "FOR UPDATE" in q["sql"] or "SAVEPOINT" in q["sql"]]

    assert (error.code, error.details) == (
        "out_of_stock",
        {"sku_id": made.skus[0].pk, "available": 1},
    )


def test_a_refused_checkout_leaves_no_entry():
    made = board()
    product = made.skus[0].product
    product.purchase_limit = 1
    product.save()
    member = member_of(made.community)

    error = refused_without_a_write(lambda: sign_up(made, member, [(made.skus[0], 2)]))

    assert error.code == "purchase_limit_exceeded"
    assert (ChainEntry.objects.count(), fresh(made.post).next_seq) == (0, 1)


# --- paid -----------------------------------------------------------------------------------------
def test_paying_the_order_marks_the_entry_paid_through_the_outbox(committed, pushed):
    made = board()
    committed(sign_up, made)
    entry, order = committed(sign_up, made)

    committed(pay, order)

    entry = fresh(entry)
    assert entry.paid_at == fresh(order).paid_at
    assert entry.status == "live"
    *_, paid = pushed.to(f"post:{made.post.pk}")
    assert (paid["type"], paid["entry_seq"], paid["live_entries"]) == ("post_entry_paid", 2, 2)
    assert paid["seq"] == 3  # the topic's own sequence, after two entries added


def test_a_second_delivery_of_order_paid_changes_nothing(committed, pushed, caplog):
    made = board()
    _, order = sign_up(made)
    committed(pay, order)
    before = db_snapshot()
    caplog.clear()

    for event in OutboxEvent.objects.filter(name=events.ORDER_PAID):
        committed(subscribers.on_order_paid, **event.payload)

    assert db_snapshot() == before
    assert pushed.types(f"post:{made.post.pk}") == ["post_entry_paid"]  # told once
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []


def test_a_payment_reaching_an_entry_the_member_withdrew_changes_nothing(caplog):
    made = board()
    entry, order = sign_up(made)
    pay(order)  # paid, its order_paid not delivered yet
    entry_cancel(post_id=made.post.pk, customer=entry.customer)
    caplog.set_level(logging.ERROR, logger="groupbuy.services.chains")
    before = db_snapshot()

    entry_order_paid(order_id=order.pk, post_id=made.post.pk)

    assert db_snapshot() == before
    assert "was paid for dropped entry 1" in caplog.text
    assert Refund.objects.filter(order=order, reason="entry_cancelled").count() == 1


def test_a_payment_for_an_expired_entrys_order_is_refunded_by_the_shop(committed):
    made = board()
    entry, order = sign_up(made)
    payment = PaymentFactory(order=order)
    with time_machine.travel(order.payment_deadline + timedelta(seconds=1)):
        committed(orders_expire_due)
    assert fresh(entry).status == "dropped"
    before = ChainEntry.objects.values_list("status", "paid_at").get(pk=entry.pk)

    committed(payment_succeeded, payment_id=payment.pk)

    [refund] = Refund.objects.filter(payment=payment)
    assert (refund.reason, refund.amount) == ("late_payment", order.total)
    assert fresh(order).status == "cancelled"
    assert ChainEntry.objects.values_list("status", "paid_at").get(pk=entry.pk) == before


def test_orders_of_unknown_or_other_posts_are_logged_and_ignored(caplog):
    made = board()
    other = board()
    _, order = sign_up(made)
    before = db_snapshot()

    subscribers.on_order_paid(order_id=order.pk, source="chain_signup", source_ref=10**9)
    subscribers.on_order_paid(order_id=order.pk, source="chain_signup", source_ref=other.post.pk)
    subscribers.on_order_cancelled(order_id=order.pk, source="chain_signup", source_ref=None)

    assert db_snapshot() == before
    assert "has no entry on post" in caplog.text


# --- cancelled / expired --------------------------------------------------------------------------
def test_an_expired_entry_drops_off_gives_its_place_and_units_back_and_may_sign_up_again(
    committed, pushed
):
    made = board(max_entries=1, max_units=3)
    member = member_of(made.community)
    entry, order = sign_up(made, member, [(made.skus[0], 3)])
    stock = Sku.objects.get(pk=made.skus[0].pk).stock

    with time_machine.travel(order.payment_deadline + timedelta(seconds=1)):
        assert committed(orders_expire_due) == 1

    entry = fresh(entry)
    assert (entry.status, entry.drop_reason, entry.dropped_at is not None) == (
        "dropped",
        "expired",
        True,
    )
    assert fresh(made.post).live_entries == 0
    assert ChainPostItem.objects.get(post=made.post).units_taken == 0
    assert Sku.objects.get(pk=made.skus[0].pk).stock == stock + 3
    dropped = [m for m in pushed.to(f"post:{made.post.pk}") if m["type"] == "post_entry_dropped"]
    assert [(m["entry_seq"], m["live_entries"], m["items"]) for m in dropped] == [
        (1, 0, [{"sku_id": made.skus[0].pk, "units_left": 3}])
    ]
    again, _ = sign_up(made, member, [(made.skus[0], 3)])
    assert (again.seq, again.status) == (2, "live")  # numbers are never reused


def test_an_order_the_member_cancels_in_the_shop_drops_the_entry(committed):
    made = board()
    entry, order = sign_up(made)

    committed(order_cancel, order_id=order.pk, customer=entry.customer)

    assert (fresh(entry).status, fresh(entry).drop_reason) == ("dropped", "customer")


def test_a_second_delivery_of_order_cancelled_changes_nothing(committed):
    made = board()
    _, order = sign_up(made)
    sign_up(made)
    committed(order_cancel, order_id=order.pk)
    before = db_snapshot()

    [event] = OutboxEvent.objects.filter(name=events.ORDER_CANCELLED)
    subscribers.on_order_cancelled(**event.payload)
    entry_order_cancelled(order_id=order.pk, post_id=order.source_ref)

    assert db_snapshot() == before
    assert fresh(made.post).live_entries == 1


def test_an_order_cancelled_event_for_an_order_that_is_not_cancelled_changes_nothing(caplog):
    made = board()
    _, order = sign_up(made)
    before = db_snapshot()

    entry_order_cancelled(order_id=order.pk, post_id=made.post.pk)

    assert db_snapshot() == before
    assert "reported cancelled is pending_payment" in caplog.text


# --- a member withdraws ---------------------------------------------------------------------------
def test_withdrawing_an_unpaid_entry_cancels_its_order_at_once(committed, pushed):
    made = board(max_entries=1, max_units=2)
    member = member_of(made.community)
    entry, order = sign_up(made, member, [(made.skus[0], 2)])

    dropped = committed(entry_cancel, post_id=made.post.pk, customer=member)

    assert dropped.pk == entry.pk
    entry = fresh(entry)
    assert (entry.status, entry.drop_reason) == ("dropped", "entry_cancelled")
    assert (fresh(order).status, fresh(order).cancel_reason) == ("cancelled", "entry_cancelled")
    assert fresh(made.post).live_entries == 0
    assert ChainPostItem.objects.get(post=made.post).units_taken == 0
    types = pushed.types(f"post:{made.post.pk}")
    assert types.count("post_entry_dropped") == 1  # the subscriber's call was a no-op
    again, _ = sign_up(made, member, [(made.skus[0], 2)])
    assert again.seq == 2


def test_withdrawing_a_paid_entry_refunds_its_order_in_full_once(committed):
    made = board(prices=((1990, 990), (1200, 800)))
    member = member_of(made.community)
    entry, order = sign_up(made, member, [(made.skus[0], 2), (made.skus[1], 1)])
    committed(pay, order)

    entry_cancel(post_id=made.post.pk, customer=member)

    [refund] = Refund.objects.filter(order=order)
    assert (refund.reason, refund.status, refund.amount) == ("entry_cancelled", "approved", 2780)
    assert refund.amount == order.total
    assert fresh(entry).status == "dropped"
    assert fresh(made.post).live_entries == 0
    again, _ = sign_up(made, member)
    assert again.seq == 2
    entry_cancel(post_id=made.post.pk, customer=member)
    assert Refund.objects.filter(order=order).count() == 1


def test_a_paid_entry_withdrawn_is_refunded_by_the_provider_after_commit(committed):
    made = board()
    entry, order = sign_up(made)
    committed(pay, order)

    committed(entry_cancel, post_id=made.post.pk, customer=entry.customer)

    assert Refund.objects.get(order=order).status == "succeeded"
    assert fresh(order).status == "refunded"


def test_only_a_live_entry_of_an_open_post_is_withdrawn():
    made = board()
    member = member_of(made.community)
    assert refused_without_a_write(
        lambda: entry_cancel(post_id=made.post.pk, customer=member)
    ).code == ("entry_not_found")
    assert refused_without_a_write(
        lambda: entry_cancel(post_id=made.post.pk + 1000, customer=member)
    ).code == ("post_not_found")
    sign_up(made, member)

    with time_machine.travel(after_deadline(made.post)):
        error = refused_without_a_write(lambda: entry_cancel(post_id=made.post.pk, customer=member))
    assert (error.code, error.status) == ("post_closed", 409)
    ChainPost.objects.filter(pk=made.post.pk).update(status="closed", closed_at=timezone.now())
    assert refused_without_a_write(
        lambda: entry_cancel(post_id=made.post.pk, customer=member)
    ).code == ("post_closed")


def test_an_entry_whose_order_was_handed_over_cannot_be_withdrawn(committed):
    made = board()
    entry, order = sign_up(made)
    committed(pay, order)
    order_fulfil(order_id=order.pk, actor=StaffFactory())

    error = refused_without_a_write(
        lambda: entry_cancel(post_id=made.post.pk, customer=entry.customer)
    )

    assert (error.code, error.status) == ("entry_not_cancellable", 409)


# --- the deadline sweep ---------------------------------------------------------------------------
def test_the_sweep_closes_a_post_cancelling_unpaid_entries_and_keeping_paid_ones(committed, pushed):
    made = board(max_units=10)
    unpaid, unpaid_order = sign_up(made, lines=[(made.skus[0], 2)])
    paid, paid_order = sign_up(made, lines=[(made.skus[0], 3)])
    committed(pay, paid_order)
    late, late_order = sign_up(made, lines=[(made.skus[0], 1)])
    pay(late_order)  # paid in time; its order_paid not delivered yet
    later = after_deadline(made.post)

    assert committed(posts_close_due, now=later) == 1

    post = fresh(made.post)
    assert (post.status, post.closed_at, post.live_entries) == ("closed", later, 2)
    assert (fresh(unpaid).status, fresh(unpaid).drop_reason) == ("dropped", "post_closed")
    assert (fresh(unpaid_order).status, fresh(unpaid_order).cancel_reason) == (
        "cancelled",
        "post_closed",
    )
    assert (fresh(paid).status, fresh(paid_order).status) == ("live", "paid")
    assert (fresh(late).status, fresh(late).paid_at) == ("live", fresh(late_order).paid_at)
    assert ChainPostItem.objects.get(post=post).units_taken == 4
    [note] = Notification.objects.filter(kind="post_closed")
    assert (note.user_id, note.data) == (
        made.leader.user_id,
        {"post_id": post.pk, "live_entries": 2},
    )
    assert "2 entries" in note.body
    types = pushed.types(f"post:{post.pk}")
    assert types[-1] == "post_closed"
    assert pushed.to(f"post:{post.pk}")[-1]["live_entries"] == 2

    assert committed(posts_close_due, now=later + timedelta(minutes=1)) == 0
    assert Notification.objects.filter(kind="post_closed").count() == 1
    assert OrderEvent.objects.filter(order=unpaid_order, kind="cancelled").count() == 1


def test_the_sweep_leaves_posts_before_their_deadline_and_runs_as_a_task():
    made = board(deadline_in=timedelta(minutes=10))
    sign_up(made)

    assert posts_close_due() == 0
    assert tasks.posts_close_due.delay().get() == 0
    with time_machine.travel(after_deadline(made.post)):
        assert tasks.posts_close_due.delay().get() == 1
    assert fresh(made.post).status == "closed"


def test_an_order_cancelled_whose_event_is_on_its_way_drops_its_entry_at_close():
    made = board()
    entry, order = sign_up(made)
    order_cancel(order_id=order.pk)  # its order_cancelled not delivered yet

    posts_close_due(now=after_deadline(made.post))

    assert (fresh(entry).status, fresh(entry).drop_reason) == ("dropped", "customer")
    assert fresh(made.post).live_entries == 0


def test_an_operators_post_tells_the_operator_who_posted_it():
    community, _, point = community_with_leader()
    operator = StaffFactory()
    post = publish(community, None, point, [(SkuFactory(), 990, None)], created_by=operator)

    posts_close_due(now=after_deadline(post))

    assert Notification.objects.get(kind="post_closed").user_id == operator.pk


def test_one_post_that_cannot_close_does_not_stop_the_others(monkeypatch, caplog):
    first, second = board(), board()
    real = chains._close

    def broken(post_id, now):
        if post_id == first.post.pk:
            raise RuntimeError("boom")
        return real(post_id, now)

    monkeypatch.setattr(chains, "_close", broken)

    assert posts_close_due(now=after_deadline(second.post) + timedelta(hours=1)) == 1
    assert (fresh(first.post).status, fresh(second.post).status) == ("open", "closed")
    assert f"closing chain post {first.post.pk} failed" in caplog.text


# --- the pickup sheet -----------------------------------------------------------------------------
def _closed_board_with_three_buyers(committed):
    """Lychees 333 fen (list 500), eggs 1 fen (list 2): Ming 3 lychees + 2 eggs, Lan 1 lychee,
    Hua unpaid (dropped at close), Zhu withdrew; then closed."""
    made = board(prices=((500, 333), (2, 1)))
    lychees, eggs = made.skus
    ming = member_of(made.community, nickname="Ming", phone="13800000001")
    lan = member_of(made.community, nickname="Lan", phone="13800000002")
    _, ming_order = sign_up(made, ming, [(lychees, 3), (eggs, 2)])
    _, zhu_order = sign_up(made, lines=[(lychees, 5)])
    _, lan_order = sign_up(made, lan, [(lychees, 1)])
    sign_up(made, lines=[(eggs, 7)])
    for order in (ming_order, lan_order, zhu_order):
        committed(pay, order)
    entry_cancel(post_id=made.post.pk, customer=zhu_order.customer)
    posts_close_due(now=after_deadline(made.post))
    return made, fresh(ming_order), fresh(lan_order)


def test_the_pickup_sheet_lists_paid_members_by_seq_with_exact_totals_in_fen(committed):
    made, ming_order, lan_order = _closed_board_with_three_buyers(committed)
    lychees, eggs = made.skus

    sheet = pickup_sheet(post_id=made.post.pk, viewer_user=made.leader.user)

    assert [(m.seq, m.nickname, m.phone, m.total) for m in sheet.members] == [
        (1, "Ming", "13800000001", 1001),
        (3, "Lan", "13800000002", 333),
    ]
    ming = sheet.members[0]
    assert (ming.pickup_code, ming.order_id) == (ming_order.pickup_code, ming_order.pk)
    assert len(ming.pickup_code) == 8
    assert [(line.sku_id, line.sku_code, line.quantity, line.amount) for line in ming.items] == [
        (lychees.pk, lychees.code, 3, 999),
        (eggs.pk, eggs.code, 2, 2),
    ]
    assert [(s.sku_id, s.units, s.amount) for s in sheet.skus] == [
        (lychees.pk, 4, 1332),
        (eggs.pk, 2, 2),
    ]
    assert (sheet.total_units, sheet.total_amount) == (6, 1334)
    assert sheet.total_amount == ming_order.total + lan_order.total
    assert (sheet.pickup_point.id, sheet.status) == (made.point.pk, "closed")


def test_the_pickup_sheet_counts_lines_net_of_refunds(committed):
    made, ming_order, lan_order = _closed_board_with_three_buyers(committed)
    eggs_line = ming_order.lines.get(sku=made.skus[1])
    staff = StaffFactory()
    committed(
        refund_issue,
        order_id=ming_order.pk,
        staff=staff,
        lines=[{"order_line_id": eggs_line.pk, "quantity": 2}],
    )
    committed(refund_issue, order_id=ming_order.pk, staff=staff, amount=99)  # money back only
    committed(refund_issue, order_id=lan_order.pk, staff=staff)

    sheet = pickup_sheet(post_id=made.post.pk, viewer_user=made.leader.user)

    [ming] = sheet.members  # Lan was refunded in full: nothing to hand over
    assert [(line.sku_id, line.quantity, line.amount) for line in ming.items] == [
        (made.skus[0].pk, 3, 900)
    ]
    assert (ming.total, sheet.total_units, sheet.total_amount) == (900, 3, 900)


def test_the_pickup_sheet_is_for_the_leader_and_permitted_staff_once_the_list_closed():
    made = board()
    member = member_of(made.community)
    plain_staff = UserFactory(is_staff=True)

    early = refusal(lambda: pickup_sheet(post_id=made.post.pk, viewer_user=made.leader.user))
    assert (early.code, early.status) == ("post_not_closed", 409)
    posts_close_due(now=after_deadline(made.post))
    for user in (member.user, plain_staff):
        error = refusal(lambda user=user: pickup_sheet(post_id=made.post.pk, viewer_user=user))
        assert (error.code, error.status) == ("not_community_leader", 403)
    assert refusal(
        lambda: pickup_sheet(post_id=made.post.pk + 1000, viewer_user=made.leader.user)
    ).code == ("post_not_found")
    assert pickup_sheet(post_id=made.post.pk, viewer_user=StaffFactory()).members == []


# --- delivery arrived -----------------------------------------------------------------------------
def test_marking_the_delivery_arrived_tells_the_community_and_each_paid_member_once(
    committed, pushed
):
    made, ming_order, lan_order = _closed_board_with_three_buyers(committed)

    post = committed(post_mark_arrived, post_id=made.post.pk, viewer_user=made.leader.user)

    assert post.arrived_at is not None
    notes = Notification.objects.filter(kind="pickup_ready").order_by("user_id")
    assert sorted((n.user_id, n.data["pickup_code"], n.data["order_id"]) for n in notes) == sorted(
        [
            (ming_order.customer.user_id, ming_order.pickup_code, ming_order.pk),
            (lan_order.customer.user_id, lan_order.pickup_code, lan_order.pk),
        ]
    )
    assert all(ming_order.pickup_code in n.body or lan_order.pickup_code in n.body for n in notes)
    assert {(n.data["post_id"], n.data["pickup_point_id"]) for n in notes} == {
        (made.post.pk, made.point.pk)
    }
    [ready] = [
        m for m in pushed.to(f"community:{made.community.pk}") if m["type"] == "pickup_ready"
    ]
    assert (ready["post_id"], ready["pickup_point"]) == (
        made.post.pk,
        {"id": made.point.pk, "name": made.point.name, "address": made.point.address},
    )
    first = fresh(made.post).arrived_at
    sent = len(pushed.sent)

    again = committed(post_mark_arrived, post_id=made.post.pk, viewer_user=StaffFactory())

    assert again.arrived_at == first
    assert Notification.objects.filter(kind="pickup_ready").count() == 2
    assert len(pushed.sent) == sent


def test_only_the_leader_or_permitted_staff_mark_a_closed_post_arrived():
    made = board()
    member = member_of(made.community)

    error = refused_without_a_write(
        lambda: post_mark_arrived(post_id=made.post.pk, viewer_user=made.leader.user)
    )
    assert (error.code, error.status) == ("post_not_closed", 409)
    posts_close_due(now=after_deadline(made.post))
    error = refused_without_a_write(
        lambda: post_mark_arrived(post_id=made.post.pk, viewer_user=member.user)
    )
    assert (error.code, error.status) == ("not_community_leader", 403)
    assert refusal(
        lambda: post_mark_arrived(post_id=made.post.pk + 1000, viewer_user=made.leader.user)
    ).code == ("post_not_found")


def test_the_subscribers_dispatch_chain_orders_only():
    made = board()
    entry, order = sign_up(made)
    Order.objects.filter(pk=order.pk).update(status="paid", paid_at=timezone.now())

    subscribers.on_order_paid(order_id=order.pk, source="normal", source_ref=made.post.pk)
    assert fresh(entry).paid_at is None
    subscribers.on_order_paid(order_id=order.pk, source="chain_signup", source_ref=made.post.pk)
    assert fresh(entry).paid_at is not None
