"""Chain sign-up races on real PostgreSQL with threads, each with its own connection; exact
outcomes. And the lock helpers really lock (seen from a second connection)."""

import logging
import threading
import time
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.utils import timezone

from core.errors import ApplicationError
from core.models import Notification
from groupbuy import locks
from groupbuy.models import ChainEntry, ChainPost, ChainPostItem, CommunityAnnouncement
from groupbuy.services.chains import posts_close_due
from groupbuy.services.community import announcement_hide, announcement_post
from shop.models import Community, Order, OrderEvent, PickupPoint
from tests.conftest import run_in_threads
from tests.factories import StaffFactory
from tests.groupbuy.factories_chains import board, member_of, sign_up
from tests.shop.factories_orders import pay
from tests.shop.test_locks import is_locked

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def outcome(result) -> str:
    return result.code if isinstance(result, ApplicationError) else type(result).__name__


def test_25_members_for_5_places_get_exactly_5_entries_numbered_1_to_5():
    made = board(max_entries=5)
    members = [member_of(made.community) for _ in range(25)]

    results = run_in_threads(25, lambda i: sign_up(made, members[i]))

    assert sorted(outcome(result) for result in results) == ["post_full"] * 20 + ["tuple"] * 5
    post = ChainPost.objects.get(pk=made.post.pk)
    assert (post.live_entries, post.next_seq) == (5, 6)
    entries = ChainEntry.objects.filter(post=post).order_by("seq")
    assert [entry.seq for entry in entries] == [1, 2, 3, 4, 5]
    assert Order.objects.filter(source="chain_signup", source_ref=post.pk).count() == 5
    winners = {result[0].customer_id for result in results if isinstance(result, tuple)}
    assert winners == {entry.customer_id for entry in entries}


def test_7_units_for_20_members_taking_2_each_go_to_exactly_3_of_them():
    made = board(max_units=7)
    members = [member_of(made.community) for _ in range(20)]

    results = run_in_threads(20, lambda i: sign_up(made, members[i], [(made.skus[0], 2)]))

    assert sorted(outcome(result) for result in results) == (
        ["post_item_sold_out"] * 17 + ["tuple"] * 3
    )
    assert ChainPostItem.objects.get(post=made.post).units_taken == 6
    assert ChainEntry.objects.filter(post=made.post, status="live").count() == 3
    refused = [r for r in results if isinstance(r, ApplicationError)]
    assert {r.details["units_left"] for r in refused} == {1}  # each saw what was truly left


def test_one_member_signing_up_from_6_threads_gets_one_entry():
    made = board()
    member = member_of(made.community)

    results = run_in_threads(6, lambda i: sign_up(made, member))

    assert sorted(outcome(result) for result in results) == ["already_signed_up"] * 5 + ["tuple"]
    assert ChainEntry.objects.filter(post=made.post, customer=member).count() == 1
    assert ChainPost.objects.get(pk=made.post.pk).live_entries == 1


def test_two_sweeps_at_once_close_the_post_once_and_cancel_each_unpaid_order_once():
    made = board()
    unpaid = [sign_up(made)[1] for _ in range(3)]
    _, paid_order = sign_up(made)
    pay(paid_order)
    later = made.post.deadline + timedelta(seconds=1)

    results = run_in_threads(2, lambda i: posts_close_due(now=later))

    assert sorted(results) == [0, 1]
    post = ChainPost.objects.get(pk=made.post.pk)
    assert (post.status, post.live_entries) == ("closed", 1)
    for order in unpaid:
        assert Order.objects.get(pk=order.pk).cancel_reason == "post_closed"
        assert OrderEvent.objects.filter(order=order, kind="cancelled").count() == 1
    assert Order.objects.get(pk=paid_order.pk).status == "paid"
    assert Notification.objects.filter(kind="post_closed").count() == 1


def _wait_for_a_lock_waiter(timeout: float = 10) -> None:
    """Until another connection waits for a row lock (the sign-up, blocked on the post)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_stat_clear_snapshot()")  # read afresh inside a transaction
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE wait_event_type = 'Lock' AND datname = current_database()"
            )
            if cursor.fetchone()[0]:
                return
        time.sleep(0.02)
    raise AssertionError("nobody waited for the lock")


def test_a_sign_up_that_read_the_post_open_is_refused_once_the_close_it_waited_for_commits():
    made = board()
    member = member_of(made.community)
    closing = threading.Event()
    result: list[object] = []

    def sign_up_while_closing() -> None:
        closing.wait()
        try:
            result.append(sign_up(made, member))
        except ApplicationError as exc:
            result.append(exc)
        finally:
            connection.close()

    worker = threading.Thread(target=sign_up_while_closing)
    worker.start()
    with transaction.atomic():  # another writer closes the post, holding its lock
        post = locks.lock_post(made.post.pk)
        post.status, post.closed_at = "closed", timezone.now()
        post.save(update_fields=["status", "closed_at"])
        closing.set()  # the sign-up reads the post (still open to it) and waits for the lock
        _wait_for_a_lock_waiter()
    worker.join()

    assert [outcome(r) for r in result] == ["post_closed"]
    assert not ChainEntry.objects.exists()


def _in_another_thread(action):
    """Start ``action()`` in a thread with its own connection; ``join()`` returns its result."""
    result: list[object] = []

    def run() -> None:
        try:
            result.append(action())
        except Exception as exc:  # collected for the test to assert on
            result.append(exc)
        finally:
            connection.close()

    worker = threading.Thread(target=run)
    worker.start()

    def join() -> object:
        worker.join()
        return result[0]

    return join


def test_a_sweep_that_found_the_post_due_waits_for_the_one_closing_it_and_does_nothing(caplog):
    made = board()
    unpaid = [sign_up(made)[1] for _ in range(2)]
    later = made.post.deadline + timedelta(seconds=1)

    with transaction.atomic():  # the first sweep closes the post and has not committed yet
        assert posts_close_due(now=later) == 1
        second = _in_another_thread(lambda: posts_close_due(now=later))
        _wait_for_a_lock_waiter()

    assert second() == 0
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
    for order in unpaid:
        assert OrderEvent.objects.filter(order=order, kind="cancelled").count() == 1
    assert ChainPost.objects.get(pk=made.post.pk).live_entries == 0
    assert ChainEntry.objects.filter(post=made.post, drop_reason="post_closed").count() == 2


def test_a_second_moderator_hiding_the_same_announcement_waits_and_changes_nothing():
    made = board()
    spam = announcement_post(author=made.leader, community_id=made.community.pk, body="ads")
    first, second = StaffFactory(), StaffFactory()

    with transaction.atomic():
        announcement_hide(announcement_id=spam.pk, staff=first, reason="advertising")
        other = _in_another_thread(
            lambda: announcement_hide(announcement_id=spam.pk, staff=second, reason="spam")
        )
        _wait_for_a_lock_waiter()

    assert other().hidden_by == first
    spam.refresh_from_db()
    assert (spam.hidden_by, spam.hidden_reason) == (first, "advertising")


def test_sign_ups_and_the_close_at_once_leave_no_unpaid_entry_on_a_closed_post():
    made = board(deadline_in=timedelta(minutes=5))
    members = [member_of(made.community) for _ in range(12)]
    later = timezone.now() + timedelta(minutes=10)  # the sweep's clock: past the deadline

    results = run_in_threads(
        13, lambda i: posts_close_due(now=later) if i == 12 else sign_up(made, members[i])
    )

    assert results[12] == 1
    post = ChainPost.objects.get(pk=made.post.pk)
    assert (post.status, post.live_entries) == ("closed", 0)
    placed = [r for r in results[:12] if isinstance(r, tuple)]
    assert all(outcome(r) == "post_closed" for r in results[:12] if not isinstance(r, tuple))
    for entry, order in placed:  # placed before the close: cancelled by it
        assert ChainEntry.objects.get(pk=entry.pk).drop_reason == "post_closed"
        assert Order.objects.get(pk=order.pk).status == "cancelled"


# --- the helpers lock their rows ------------------------------------------------------------------
def test_each_lock_helper_holds_its_row_until_commit():
    made = board()
    entry, order = sign_up(made)
    announcement = announcement_post(
        author=made.leader, community_id=made.community.pk, body="Truck at 5"
    )
    rows = [
        (ChainPost, made.post.pk, lambda: locks.lock_post(made.post.pk)),
        (ChainEntry, entry.pk, lambda: locks.lock_entry_by_order(order.pk)),
        (
            ChainEntry,
            entry.pk,
            lambda: locks.lock_live_entry(post_id=made.post.pk, customer_id=entry.customer_id),
        ),
        (CommunityAnnouncement, announcement.pk, lambda: locks.lock_announcement(announcement.pk)),
    ]
    for model, pk, take in rows:
        assert not is_locked(model, pk)
        with transaction.atomic():
            assert take().pk == pk
            assert is_locked(model, pk)
        assert not is_locked(model, pk)


def test_a_post_lock_leaves_its_community_and_pickup_point_unlocked():
    made = board()

    with transaction.atomic():
        post = locks.lock_post(made.post.pk)
        assert (post.community.pk, post.pickup_point.pk) == (made.community.pk, made.point.pk)
        assert not is_locked(Community, made.community.pk)
        assert not is_locked(PickupPoint, made.point.pk)


def test_a_missing_row_is_none():
    with transaction.atomic():
        assert locks.lock_post(10**9) is None
        assert locks.lock_entry_by_order(10**9) is None
        assert locks.lock_live_entry(post_id=10**9, customer_id=10**9) is None
        assert locks.lock_announcement(10**9) is None
