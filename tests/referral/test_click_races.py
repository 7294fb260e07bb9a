"""Races on real PostgreSQL with threads, each with its own connection; exact outcomes."""

import threading
import uuid

import pytest
from django.db import connection

from core.errors import ApplicationError
from referral.error_codes import LinkErrorCode
from referral.models import Click, ClickGate, ShareLink
from referral.selectors import links as selectors
from referral.services import links as link_services
from referral.services.clicks import clicks_flush, link_open
from referral.services.links import link_create
from tests.conftest import run_in_threads
from tests.referral.factories import make_distributor
from tests.referral.test_visitors import MINI_PROGRAM_IOS

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

THREADS = 20


@pytest.fixture(autouse=True)
def _fresh_link_cache():
    selectors.link_cache_clear()
    yield
    selectors.link_cache_clear()


@pytest.fixture
def link():
    return link_create(distributor=make_distributor(), target_kind="shop", target_id=None)


def _open(link, device):
    return link_open(
        short_code=link.short_code,
        customer=None,
        device_id=device,
        ip_hash="a" * 64,
        user_agent=MINI_PROGRAM_IOS,
    ).status


def test_the_same_visitor_opening_twenty_times_at_once_counts_once(link):
    device = uuid.uuid4()

    results = run_in_threads(THREADS, lambda i: _open(link, device))

    assert sorted(results) == ["counted"] + ["duplicate"] * (THREADS - 1)
    assert Click.objects.filter(status="counted").count() == 1
    assert Click.objects.filter(status="duplicate").count() == THREADS - 1
    assert ClickGate.objects.count() == 1


def test_twenty_visitors_opening_at_once_all_count(link):
    devices = [uuid.uuid4() for _ in range(THREADS)]

    results = run_in_threads(THREADS, lambda i: _open(link, devices[i]))

    assert results == ["counted"] * THREADS
    assert ClickGate.objects.count() == THREADS


def test_concurrent_flushes_add_every_click_exactly_once():
    distributor = make_distributor()
    links = [
        link_create(distributor=distributor, target_kind="shop", target_id=None) for _ in range(5)
    ]
    devices = [uuid.uuid4() for _ in range(40)]
    for n in range(300):
        _open(links[n % 5], devices[(n // 5) % 40])  # per link: 40 counted, 20 duplicates
    connection.close()

    results = run_in_threads(6, lambda i: clicks_flush(batch=13))

    assert sum(results) == Click.objects.count() == 300
    assert not Click.objects.filter(flushed=False).exists()
    for link in links:
        fresh = ShareLink.objects.get(pk=link.pk)
        rows = Click.objects.filter(link=link)
        assert fresh.clicks == rows.filter(status="counted").count() == 40
        assert fresh.filtered_clicks == rows.exclude(status="counted").count() == 20


def test_opens_during_a_flush_are_flushed_later_never_lost(link):
    stop = threading.Event()

    def opener(i):
        n = 0
        while not stop.is_set() and n < 60:
            _open(link, uuid.uuid4())
            n += 1
        return n

    def flusher(i):
        total = 0
        for _ in range(20):
            total += clicks_flush(batch=7)
        stop.set()
        return total

    results = run_in_threads(4, lambda i: flusher(i) if i == 0 else opener(i))
    results.append(clicks_flush())

    opened = sum(results[1:4])
    assert results[0] + results[4] == opened == Click.objects.count()
    assert ShareLink.objects.get(pk=link.pk).clicks == opened


def test_the_link_cap_holds_under_concurrent_creates(monkeypatch):
    monkeypatch.setattr(link_services, "MAX_ACTIVE_LINKS", 5)
    distributor = make_distributor()

    def create(i):
        try:
            return link_create(distributor=distributor, target_kind="shop", target_id=None).pk
        except ApplicationError as exc:
            return exc.code

    results = run_in_threads(12, create)

    refused = [r for r in results if r == LinkErrorCode.LINK_LIMIT_REACHED]
    assert len(refused) == 7
    assert ShareLink.objects.filter(distributor=distributor, is_active=True).count() == 5
