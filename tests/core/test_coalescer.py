"""TopicCoalescer: a quiet topic's item goes at once; items within the window after a push go
together when it ends; a topic gets at most one message per window (core/side_effects.py)."""

import itertools
import threading
import time
import uuid

import pytest

from core import side_effects
from core.side_effects import SharedTopicCoalescer, TopicCoalescer

WINDOW = 0.15


@pytest.fixture(params=["process", "shared"])
def make(request, settings):
    """Both coalescers pass the same tests: the per-process one, and the one shared through
    Redis (a fresh key prefix per test)."""
    if request.param == "process":
        return TopicCoalescer
    if not settings.REDIS_URL:
        pytest.skip("the shared coalescer needs Redis (REDIS_URL)")
    request.applymarker(pytest.mark.redis)
    prefix = f"test-{uuid.uuid4().hex[:8]}"
    return lambda: SharedTopicCoalescer(settings.REDIS_URL, prefix)


@pytest.fixture
def pushed(monkeypatch):
    sent: list[tuple[str, dict, float]] = []
    arrived = threading.Condition()

    def record(topic, message):
        with arrived:
            sent.append((topic, message, time.monotonic()))
            arrived.notify_all()
        return True

    def wait_for(n: int, timeout: float = 3.0) -> list[tuple[str, dict, float]]:
        with arrived:
            arrived.wait_for(lambda: len(sent) >= n, timeout=timeout)
        return list(sent)

    monkeypatch.setattr(side_effects, "topic_push_now", record)
    monkeypatch.setattr(side_effects.connection, "close", lambda: None)
    record.wait_for = wait_for
    record.sent = sent
    return record


def items(message: dict) -> list[int]:
    return [item["n"] for item in message["items"]]


def test_a_quiet_topics_item_goes_at_once_alone(pushed, make):
    coalescer = make()

    coalescer.add("post:1", "post_entries_added", {"n": 1}, WINDOW)

    [(topic, message, _)] = pushed.sent
    assert (topic, message) == ("post:1", {"type": "post_entries_added", "items": [{"n": 1}]})


def test_items_within_the_window_go_together_when_it_ends(pushed, make):
    coalescer = make()
    started = time.monotonic()

    for n in range(1, 7):
        coalescer.add("post:1", "post_entries_added", {"n": n}, WINDOW)

    assert [items(m) for _, m, _ in pushed.sent] == [[1]]
    sent = pushed.wait_for(2)
    assert [items(m) for _, m, _ in sent] == [[1], [2, 3, 4, 5, 6]]
    assert sent[1][2] - started >= WINDOW * 0.9  # waited for the window's end


def test_a_steady_stream_gets_at_most_one_message_per_window(pushed, make):
    coalescer = make()
    started = time.monotonic()
    n = 0
    while time.monotonic() - started < WINDOW * 4:
        n += 1
        coalescer.add("post:1", "k", {"n": n}, WINDOW)
        time.sleep(0.005)
    time.sleep(WINDOW * 2.5)

    messages = pushed.sent
    assert [i for _, m, _ in messages for i in items(m)] == list(range(1, n + 1))  # all, in order
    assert len(messages) <= 4 + 2
    gaps = [b[2] - a[2] for a, b in itertools.pairwise(messages)]
    assert min(gaps) >= WINDOW * 0.9


def test_after_a_quiet_window_the_next_item_goes_at_once_again(pushed, make):
    coalescer = make()
    coalescer.add("post:1", "k", {"n": 1}, WINDOW)
    time.sleep(WINDOW * 2.5)  # the window ends with nothing waiting: the topic is quiet again

    before = time.monotonic()
    coalescer.add("post:1", "k", {"n": 2}, WINDOW)

    assert [items(m) for _, m, _ in pushed.sent] == [[1], [2]]
    assert pushed.sent[1][2] - before < WINDOW / 2


def test_topics_do_not_wait_for_each_other(pushed, make):
    coalescer = make()

    coalescer.add("post:1", "k", {"n": 1}, WINDOW)
    coalescer.add("post:2", "k", {"n": 2}, WINDOW)

    assert [(t, items(m)) for t, m, _ in pushed.sent] == [("post:1", [1]), ("post:2", [2])]


def test_no_window_pushes_every_item_alone_at_once(pushed, make):
    coalescer = make()

    for n in (1, 2, 3):
        coalescer.add("post:1", "k", {"n": n}, 0)

    assert [items(m) for _, m, _ in pushed.sent] == [[1], [2], [3]]


def test_two_processes_share_one_window(pushed, settings):
    """Two shared coalescers (two web processes) on one topic: the second one's items wait for
    the window the first opened, and go out with the first one's flush."""
    if not settings.REDIS_URL:
        pytest.skip("the shared coalescer needs Redis (REDIS_URL)")
    prefix = f"test-{uuid.uuid4().hex[:8]}"
    one, two = (SharedTopicCoalescer(settings.REDIS_URL, prefix) for _ in range(2))

    one.add("post:1", "k", {"n": 1}, WINDOW)
    two.add("post:1", "k", {"n": 2}, WINDOW)
    two.add("post:1", "k", {"n": 3}, WINDOW)
    one.add("post:1", "k", {"n": 4}, WINDOW)

    sent = pushed.wait_for(2)
    assert [items(m) for _, m, _ in sent] == [[1], [2, 3, 4]]


def test_if_a_windows_owner_dies_the_next_item_takes_the_waiting_ones(pushed, settings):
    if not settings.REDIS_URL:
        pytest.skip("the shared coalescer needs Redis (REDIS_URL)")
    prefix = f"test-{uuid.uuid4().hex[:8]}"
    dying, other = (SharedTopicCoalescer(settings.REDIS_URL, prefix) for _ in range(2))
    dying._schedule = lambda *args: None  # its process dies before the window ends

    dying.add("post:1", "k", {"n": 1}, WINDOW)
    other.add("post:1", "k", {"n": 2}, WINDOW)  # waits for a flush that never comes
    time.sleep(WINDOW * 4 + 0.1)  # the gate outlives a late timer, then expires
    other.add("post:1", "k", {"n": 3}, WINDOW)

    assert [items(m) for _, m, _ in pushed.sent] == [[1], [2, 3]]
