"""The transactional outbox (core/outbox.py): recording, delivery, retries, sweep, prune, admin."""

import threading
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.db import connection, transaction
from django.test import Client
from django.utils import timezone
from hypothesis import given
from hypothesis import strategies as st
from kombu.exceptions import OperationalError

from core import outbox
from core import tasks as core_tasks
from core.models import Notification, OutboxDelivery, OutboxEvent
from tests.conftest import run_in_threads
from tests.factories import StaffFactory, UserFactory

THING = "test_thing_happened"
D = OutboxDelivery.Status
T0 = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)

calls: list[tuple[str, dict]] = []
calls_lock = threading.Lock()


def first(**payload):
    with calls_lock:
        calls.append(("first", payload))


def second(**payload):
    with calls_lock:
        calls.append(("second", payload))


@pytest.fixture(autouse=True)
def _registered():
    outbox.event_register(THING, publisher="tests")
    calls.clear()
    yield
    for handler in list(outbox.subscribers(THING).values()):
        outbox.unsubscribe(THING, handler)
    calls.clear()


@pytest.fixture
def two_subscribers():
    outbox.subscribe(THING, first)
    outbox.subscribe(THING, second)


@pytest.fixture
def outbox_settings(settings):
    settings.OUTBOX_MAX_ATTEMPTS = 4
    settings.OUTBOX_RETRY_BASE = timedelta(seconds=10)
    settings.OUTBOX_RETRY_MAX = timedelta(seconds=25)
    settings.OUTBOX_RETENTION = timedelta(days=7)
    return settings


def record(payload):
    with transaction.atomic():
        return outbox.event_record(THING, payload)


def deliveries(event):
    return list(
        OutboxDelivery.objects.filter(event=event)
        .order_by("subscriber")
        .values_list("subscriber", "status", "attempts")
    )


def broker_down(*args, **kwargs):
    raise OperationalError("Error 111 connecting to redis:6379. Connection refused.")


FIRST = outbox.handler_name(first)
SECOND = outbox.handler_name(second)


# --- registry -------------------------------------------------------------------------------------
@pytest.mark.django_db
def test_unknown_events_are_refused_everywhere():
    with pytest.raises(ValueError):
        outbox.subscribe("order_teleported", first)
    with pytest.raises(ValueError), transaction.atomic():
        outbox.event_record("order_teleported", {})


@pytest.mark.django_db
def test_an_event_has_one_publisher():
    outbox.event_register(THING, publisher="tests")  # again from the same app: fine
    with pytest.raises(ValueError):
        outbox.event_register(THING, publisher="another_app")
    assert outbox.registered_events()[THING] == "tests"


def test_the_shop_registers_its_events_in_ready():
    assert {
        name: publisher
        for name, publisher in outbox.registered_events().items()
        if publisher == "shop"
    } == {
        "order_paid": "shop",
        "order_fulfilled": "shop",
        "order_completed": "shop",
        "order_cancelled": "shop",
        "order_refunded": "shop",
    }


# --- recording ------------------------------------------------------------------------------------
@pytest.mark.django_db
def test_an_event_is_one_row_carrying_its_pending_subscribers(two_subscribers):
    event = record({"thing_id": 7})

    stored = OutboxEvent.objects.get()
    assert (stored.pk, stored.name, stored.payload, stored.pending_subscribers) == (
        event.pk,
        THING,
        {"thing_id": 7},
        [FIRST, SECOND],
    )
    assert OutboxDelivery.objects.count() == 0  # made by the dispatcher, not the paying request


@pytest.mark.django_db
def test_an_event_nobody_subscribes_to_is_not_stored_nor_built():
    built = []

    assert record(lambda: built.append(1) or {"thing_id": 1}) is None
    assert OutboxEvent.objects.count() == 0
    assert built == []


@pytest.mark.django_db
def test_a_rolled_back_transaction_records_and_announces_nothing(
    two_subscribers, django_capture_on_commit_callbacks
):
    with (
        django_capture_on_commit_callbacks(execute=True) as callbacks,
        pytest.raises(RuntimeError),
        transaction.atomic(),
    ):
        outbox.event_record(THING, {"thing_id": 1})
        raise RuntimeError("the change failed")

    assert OutboxEvent.objects.count() == 0
    assert callbacks == []
    assert calls == []


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_recording_outside_a_transaction_is_refused(two_subscribers):
    with pytest.raises(RuntimeError):
        outbox.event_record(THING, {"thing_id": 1})
    assert OutboxEvent.objects.count() == 0


# --- delivery after commit ------------------------------------------------------------------------
@pytest.mark.django_db
def test_after_commit_each_subscriber_gets_the_event_once(
    two_subscribers, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        event = record({"thing_id": 7})

    assert sorted(calls) == [("first", {"thing_id": 7}), ("second", {"thing_id": 7})]
    assert deliveries(event) == [(FIRST, D.DONE, 1), (SECOND, D.DONE, 1)]
    assert OutboxEvent.objects.get().pending_subscribers == []


@pytest.mark.django_db
def test_broker_unreachable_at_commit_then_the_sweep_delivers(
    two_subscribers, monkeypatch, django_capture_on_commit_callbacks
):
    # given: the broker refuses the kick
    monkeypatch.setattr(core_tasks.outbox_dispatch, "delay", broker_down)
    # when
    with django_capture_on_commit_callbacks(execute=True):
        event = record({"thing_id": 7})  # the commit itself must not fail
    # then: nothing delivered yet, but nothing lost
    assert calls == []
    assert OutboxEvent.objects.get().pending_subscribers == [FIRST, SECOND]
    # when: the periodic sweep runs
    assert outbox.outbox_sweep() == 2
    # then
    assert sorted(calls) == [("first", {"thing_id": 7}), ("second", {"thing_id": 7})]
    assert deliveries(event) == [(FIRST, D.DONE, 1), (SECOND, D.DONE, 1)]
    assert outbox.outbox_sweep() == 0


# --- coalesced kicks ------------------------------------------------------------------------------
@pytest.fixture
def not_eager():
    """Celery as in production (kicks go to the broker), restored afterwards."""
    conf = core_tasks.outbox_dispatch.app.conf
    saved = conf.task_always_eager
    conf.task_always_eager = False
    yield
    conf.task_always_eager = saved


@given(
    gaps=st.lists(st.integers(min_value=0, max_value=120), min_size=1, max_size=60),
    window=st.integers(min_value=1, max_value=100),
)
def test_every_kick_plan_covers_its_event_and_a_burst_costs_two_messages_per_window(gaps, window):
    # times in milliseconds (integers keep the arithmetic exact), each hook after the last
    plan = outbox._KickWindow()
    now, trailing_runs, immediate = 1000, [], 0
    for gap in gaps:
        now += gap
        countdown = plan.plan(now, window)
        if countdown == 0:
            immediate += 1  # this event's own kick, sent after its commit
        elif countdown is None:
            # covered: a trailing drain, scheduled earlier, runs after this event committed
            assert trailing_runs and trailing_runs[-1] > now
        else:
            assert countdown > 0
            trailing_runs.append(now + countdown)
    span = now - 1000
    assert immediate + len(trailing_runs) <= 2 * (span // window + 1)
    assert immediate >= 1


@pytest.mark.django_db
def test_a_burst_of_events_is_kicked_once_then_drained_by_one_trailing_kick(
    two_subscribers, monkeypatch, django_capture_on_commit_callbacks, settings, not_eager
):
    # given: a real broker (not eager), a 50 ms window, and a clock we hold
    settings.OUTBOX_KICK_WINDOW = 0.05
    monkeypatch.setattr(outbox, "_kick_window", outbox._KickWindow())
    sent: list[tuple] = []
    monkeypatch.setattr(core_tasks.outbox_dispatch, "delay", lambda *a: sent.append(("now", a)))
    monkeypatch.setattr(
        core_tasks.outbox_dispatch,
        "apply_async",
        lambda **kw: sent.append(("later", round(kw["countdown"], 3))),
    )
    clock = iter([500.0, 500.01, 500.02, 500.06])
    monkeypatch.setattr(outbox, "_clock", lambda: next(clock))
    # when: three events commit within 20 ms, a fourth after the window
    events = []
    for thing_id in (1, 2, 3, 4):
        with django_capture_on_commit_callbacks(execute=True):
            events.append(record({"thing_id": thing_id}))
    # then: the first is kicked at once, the second schedules one drain at the window's end, the
    # third rides on it, the fourth (window over) is kicked at once again
    assert sent == [("now", (events[0].pk,)), ("later", 0.04), ("now", (events[3].pk,))]
    # when: the trailing kick runs (no id: drain everything undispatched)
    assert core_tasks.outbox_dispatch() == 8
    # then: every event reached both subscribers once
    assert Counter((name, p["thing_id"]) for name, p in calls) == Counter(
        (name, n) for n in (1, 2, 3, 4) for name in ("first", "second")
    )


@pytest.mark.django_db
def test_in_eager_mode_or_with_no_window_every_event_is_kicked_on_its_own(
    two_subscribers, monkeypatch, django_capture_on_commit_callbacks, settings, not_eager
):
    core_tasks.outbox_dispatch.app.conf.task_always_eager = True
    settings.OUTBOX_KICK_WINDOW = 0.05
    monkeypatch.setattr(outbox, "_kick_window", outbox._KickWindow())
    monkeypatch.setattr(outbox, "_clock", lambda: 500.0)  # one instant: all in a window
    for thing_id in (1, 2, 3):
        with django_capture_on_commit_callbacks(execute=True):
            record({"thing_id": thing_id})
    assert len(calls) == 6  # eager (the tests' default): each kick ran at once
    settings.OUTBOX_KICK_WINDOW = 0
    core_tasks.outbox_dispatch.app.conf.task_always_eager = False  # restored by the fixture
    sent: list = []
    monkeypatch.setattr(core_tasks.outbox_dispatch, "delay", lambda *a: sent.append(a))
    for thing_id in (4, 5):
        with django_capture_on_commit_callbacks(execute=True):
            record({"thing_id": thing_id})
    assert len(sent) == 2


@pytest.mark.django_db
def test_the_same_event_handed_over_twice_runs_each_handler_once(
    two_subscribers, django_capture_on_commit_callbacks
):
    # given: a delivered event
    with django_capture_on_commit_callbacks(execute=True):
        event = record({"thing_id": 7})
    # when: the broker redelivers the kick, and a sweep comes by
    assert core_tasks.outbox_dispatch.delay(event.pk).get(disable_sync_subtasks=False) == 0
    assert outbox.outbox_sweep() == 0
    for delivery in OutboxDelivery.objects.filter(event=event):
        assert outbox.delivery_run(delivery_id=delivery.pk) is False
    # then
    assert sorted(calls) == [("first", {"thing_id": 7}), ("second", {"thing_id": 7})]
    assert deliveries(event) == [(FIRST, D.DONE, 1), (SECOND, D.DONE, 1)]


@pytest.mark.django_db
def test_a_delivery_naming_no_subscribed_handler_runs_nothing(outbox_settings, two_subscribers):
    event = record({"command": "true"})
    OutboxEvent.objects.filter(pk=event.pk).update(pending_subscribers=["os.system"])

    with time_machine.travel(T0, tick=False):
        assert outbox.outbox_sweep() == 0

    [delivery] = OutboxDelivery.objects.filter(event=event)
    assert (delivery.subscriber, delivery.status, delivery.attempts) == ("os.system", D.PENDING, 1)
    assert delivery.last_error == f"LookupError: os.system is not subscribed to {THING}"
    assert calls == []


# --- failures, backoff, dead ----------------------------------------------------------------------
def test_retry_delay_doubles_from_the_base_up_to_the_cap(outbox_settings):
    assert [outbox.retry_delay(n).total_seconds() for n in (1, 2, 3, 4)] == [10, 20, 25, 25]
    outbox_settings.OUTBOX_RETRY_MAX = timedelta(hours=1)
    assert [outbox.retry_delay(n).total_seconds() for n in (1, 2, 3, 4, 5, 9, 30)] == [
        10,
        20,
        40,
        80,
        160,
        2560,
        3600,
    ]


@pytest.mark.django_db
def test_a_handler_failing_twice_then_succeeding_has_one_effect(outbox_settings):
    # given: a handler that writes its effect, then fails on its first two calls
    user = UserFactory()
    attempts = []

    def flaky_notify(**payload):
        attempts.append(timezone.now())
        Notification.objects.create(user=user, kind="thing", title=str(payload["thing_id"]))
        if len(attempts) <= 2:
            raise ConnectionError(f"downstream hiccup {len(attempts)}")

    outbox.subscribe(THING, flaky_notify)
    with time_machine.travel(T0, tick=False):
        event = record({"thing_id": 7})
        # when: the first attempt fails
        assert outbox.outbox_sweep() == 0
    [delivery] = OutboxDelivery.objects.filter(event=event)
    assert (delivery.status, delivery.attempts, delivery.last_error) == (
        D.PENDING,
        1,
        "ConnectionError: downstream hiccup 1",
    )
    assert delivery.next_attempt_at == T0 + timedelta(seconds=10)
    assert Notification.objects.count() == 0  # the failed attempt's writes were rolled back
    # when: a sweep before the backoff is over does nothing
    with time_machine.travel(T0 + timedelta(seconds=9), tick=False):
        assert outbox.outbox_sweep() == 0
    assert len(attempts) == 1
    # when: the second attempt fails, the third succeeds
    with time_machine.travel(T0 + timedelta(seconds=10), tick=False):
        assert outbox.outbox_sweep() == 0
    delivery.refresh_from_db()
    assert (delivery.attempts, delivery.next_attempt_at) == (2, T0 + timedelta(seconds=30))
    with time_machine.travel(T0 + timedelta(seconds=30), tick=False):
        assert outbox.outbox_sweep() == 1
    # then: one effect, one done delivery after three attempts
    assert len(attempts) == 3
    assert list(Notification.objects.values_list("title", flat=True)) == ["7"]
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.delivered_at) == (
        D.DONE,
        3,
        T0 + timedelta(seconds=30),
    )
    assert delivery.last_error == "ConnectionError: downstream hiccup 2"


def always_broken(**payload):
    with calls_lock:
        calls.append(("broken", payload))
    raise RuntimeError("subscriber bug")


@pytest.mark.django_db
def test_a_delivery_that_keeps_failing_becomes_dead_and_an_operator_retries_it(
    outbox_settings, two_subscribers, django_capture_on_commit_callbacks
):
    # given: a broken subscriber next to two working ones
    outbox.subscribe(THING, always_broken)
    broken = outbox.handler_name(always_broken)
    with time_machine.travel(T0, tick=False), django_capture_on_commit_callbacks(execute=True):
        event = record({"thing_id": 7})
    # when: attempts 2 and 3 fail too
    for at in (10, 30):
        with time_machine.travel(T0 + timedelta(seconds=at), tick=False):
            outbox.outbox_sweep()
        assert OutboxDelivery.objects.get(subscriber=broken).status == D.PENDING
    # when: the fourth (OUTBOX_MAX_ATTEMPTS) fails
    with time_machine.travel(T0 + timedelta(seconds=55), tick=False):
        outbox.outbox_sweep()
    # then: dead, never tried again; the others were delivered once
    assert deliveries(event) == [
        (broken, D.DEAD, 4),
        (FIRST, D.DONE, 1),
        (SECOND, D.DONE, 1),
    ]
    with time_machine.travel(T0 + timedelta(days=1), tick=False):
        assert outbox.outbox_sweep() == 0
    assert [name for name, _ in calls].count("broken") == 4
    # when: the bug is fixed and an operator retries
    outbox.unsubscribe(THING, always_broken)
    dead = OutboxDelivery.objects.get(subscriber=broken)

    def fixed(**payload):
        calls.append(("fixed", payload))

    fixed.__qualname__ = always_broken.__qualname__  # the same subscriber, its bug fixed
    outbox.subscribe(THING, fixed)
    with django_capture_on_commit_callbacks(execute=True):
        assert outbox.delivery_retry(delivery_id=dead.pk) is True
    # then: delivered once more, through the kick
    assert calls[-1] == ("fixed", {"thing_id": 7})
    dead.refresh_from_db()
    assert (dead.status, dead.attempts) == (D.DONE, 1)
    # a done (or pending) delivery is not retried
    assert outbox.delivery_retry(delivery_id=dead.pk) is False
    assert Counter(name for name, _ in calls) == {"first": 1, "second": 1, "broken": 4, "fixed": 1}


@pytest.mark.django_db
def test_operators_see_dead_deliveries_and_retry_them_in_the_admin(
    outbox_settings, two_subscribers, django_capture_on_commit_callbacks
):
    # given: one dead delivery, one done
    event = record({"thing_id": 7})
    outbox.outbox_sweep()
    dead, done = OutboxDelivery.objects.filter(event=event).order_by("subscriber")
    OutboxDelivery.objects.filter(pk=dead.pk).update(
        status=D.DEAD, attempts=4, last_error="RuntimeError: subscriber bug"
    )
    client = Client()
    client.force_login(StaffFactory(is_superuser=True))
    url = "/admin/core/outboxdelivery/"
    # when: the operator lists the dead deliveries
    response = client.get(url, {"status__exact": "dead"})
    # then
    assert response.status_code == 200
    assert list(response.context["cl"].result_list) == [dead]
    assert "RuntimeError: subscriber bug" in response.content.decode()
    # when: they retry it (and the done one, which stays as it is)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            url, {"action": "retry", "_selected_action": [dead.pk, done.pk]}, follow=True
        )
    assert response.status_code == 200
    assert "Retrying 1 dead deliveries." in response.content.decode()
    assert deliveries(event) == [(FIRST, D.DONE, 1), (SECOND, D.DONE, 1)]
    assert [name for name, _ in calls] == ["first", "second", "first"]


# --- prune ----------------------------------------------------------------------------------------
@pytest.mark.django_db
def test_delivered_rows_are_pruned_after_the_retention_period(outbox_settings, two_subscribers):
    # given, 8 days ago: one event fully delivered, one with a dead delivery
    with time_machine.travel(T0 - timedelta(days=8), tick=False):
        delivered = record({"thing_id": 1})
        kept_dead = record({"thing_id": 2})
        outbox.outbox_sweep()
        OutboxDelivery.objects.filter(event=kept_dead, subscriber=SECOND).update(status=D.DEAD)
        # and one never dispatched
        undispatched = record({"thing_id": 3})
    # and, 6 days ago, one delivered
    with time_machine.travel(T0 - timedelta(days=6), tick=False):
        recent = record({"thing_id": 4})
        outbox.event_dispatch(event_id=recent.pk)
    # when
    with time_machine.travel(T0, tick=False):
        deleted = outbox.outbox_prune()
    # then: the old done deliveries and the event left empty are gone; dead, pending and recent
    # rows stay
    assert deleted == 4  # 3 done deliveries + 1 event
    assert set(OutboxEvent.objects.values_list("pk", flat=True)) == {
        kept_dead.pk,
        undispatched.pk,
        recent.pk,
    }
    assert delivered.pk not in set(OutboxEvent.objects.values_list("pk", flat=True))
    assert deliveries(kept_dead) == [(SECOND, D.DEAD, 1)]
    assert deliveries(recent) == [(FIRST, D.DONE, 1), (SECOND, D.DONE, 1)]
    assert OutboxEvent.objects.get(pk=undispatched.pk).pending_subscribers == [FIRST, SECOND]


def test_the_sweep_and_the_prune_run_periodically(settings):
    schedule = {entry["task"]: entry for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert schedule["core.tasks.outbox_sweep"]["schedule"] == 15.0
    assert schedule["core.tasks.outbox_prune"]["schedule"] == 3600.0


# --- concurrency (PostgreSQL, threads) ------------------------------------------------------------
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_sweeps_at_once_run_each_delivery_once(two_subscribers, monkeypatch):
    # given: 30 undispatched events for two subscribers (their kicks were lost)
    monkeypatch.setattr(core_tasks.outbox_dispatch, "delay", broker_down)
    ids = []
    for i in range(30):
        ids.append(record({"thing_id": i}).pk)
    # when: four sweeps run at once
    results = run_in_threads(4, lambda _: outbox.outbox_sweep())
    # then: every delivery ran exactly once, by one of them
    assert all(isinstance(r, int) for r in results), results
    assert sum(results) == 60
    assert sorted((name, p["thing_id"]) for name, p in calls) == sorted(
        (name, i) for name in ("first", "second") for i in range(30)
    )
    assert OutboxDelivery.objects.filter(event_id__in=ids).count() == 60
    assert set(
        OutboxDelivery.objects.filter(event_id__in=ids).values_list("status", "attempts")
    ) == {(D.DONE, 1)}


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_sweep_skips_the_delivery_another_worker_is_running(two_subscribers, monkeypatch):
    monkeypatch.setattr(core_tasks.outbox_dispatch, "delay", broker_down)
    # given: two events delivered; the first one's "first" handler is still running elsewhere
    entered, release = threading.Event(), threading.Event()

    def slow_first(**payload):
        if payload["thing_id"] == 1:
            entered.set()
            release.wait(10)
        first(**payload)

    outbox.unsubscribe(THING, first)
    slow_first.__qualname__ = first.__qualname__
    outbox.subscribe(THING, slow_first)
    one, two = record({"thing_id": 1}), record({"thing_id": 2})
    outbox.event_dispatch(event_id=two.pk)  # nothing due for it after this
    OutboxEvent.objects.filter(pk=one.pk).update(pending_subscribers=[])
    held = OutboxDelivery.objects.create(
        event=one, subscriber=FIRST, next_attempt_at=timezone.now() - timedelta(days=1)
    )
    other = OutboxDelivery.objects.create(event=one, subscriber=SECOND)

    running: dict[str, object] = {}

    def worker():
        try:
            running["result"] = outbox.delivery_run(delivery_id=held.pk)
        finally:
            connection.close()

    def sweep():
        try:
            running["swept"] = outbox.outbox_sweep()
        finally:
            connection.close()

    busy = threading.Thread(target=worker)
    busy.start()
    assert entered.wait(10)
    # when: a sweep runs while that delivery is locked
    sweeper = threading.Thread(target=sweep)
    sweeper.start()
    sweeper.join(timeout=5)
    finished_while_locked = not sweeper.is_alive()
    release.set()
    busy.join(timeout=10)
    sweeper.join(timeout=10)
    # then: the sweep did not wait for it, delivered the rest, and the delivery ran once
    assert finished_while_locked
    assert (running["swept"], running["result"]) == (1, True)
    assert deliveries(one) == [(FIRST, D.DONE, 1), (SECOND, D.DONE, 1)]
    assert OutboxDelivery.objects.get(pk=other.pk).status == D.DONE
    assert sorted((name, p["thing_id"]) for name, p in calls) == [
        ("first", 1),
        ("first", 2),
        ("second", 1),
        ("second", 2),
    ]
