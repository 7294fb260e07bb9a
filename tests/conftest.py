"""Shared fixtures. The suite always runs on PostgreSQL and Redis: the machine's when
``DATABASE_URL`` / ``REDIS_URL`` are set, else private embedded ones (tests/services.py)."""

import threading
from collections.abc import Callable
from typing import Any

import pytest
from django.core.cache import cache
from django.db import connection
from django.test import Client

from config.celery import app as celery_app
from core.tokens import session_start
from referral.selectors.links import link_cache_clear
from shop.services.stock import stock_memo_clear
from tests.factories import CustomerFactory, StaffFactory


@pytest.fixture(autouse=True, scope="session")
def _celery_eager():
    celery_app.conf.task_always_eager = True
    celery_app.conf.task_eager_propagates = True


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _no_micro_cache(settings):
    """Tests see every change at once; tests of the cache itself turn it back on."""
    settings.CATALOG_LIST_CACHE_SECONDS = 0
    settings.POST_PUSH_WINDOW_SECONDS = 0  # each post change alone at once (tests of it: > 0)


@pytest.fixture(autouse=True)
def _clean_cache():
    cache.clear()
    stock_memo_clear()
    link_cache_clear()
    yield
    cache.clear()
    stock_memo_clear()
    link_cache_clear()


@pytest.fixture
def committed(django_capture_on_commit_callbacks):
    """``committed(action, ...)``: run it and then its commit hooks, so the outbox delivers the
    events it recorded (Celery is eager in tests) and pushes go out."""

    def run(action, *args, **kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            return action(*args, **kwargs)

    return run


class ApiClient:
    """Django's test client speaking JSON, with an optional bearer token."""

    def __init__(self, token: str | None = None) -> None:
        self.client = Client()
        self.token = token

    def _headers(self, headers: dict[str, str] | None) -> dict[str, str]:
        out = dict(headers or {})
        if self.token:
            out.setdefault("Authorization", f"Bearer {self.token}")
        return out

    def get(
        self, path: str, params: dict[str, Any] | None = None, headers: dict[str, str] | None = None
    ):
        return self.client.get(path, params or {}, headers=self._headers(headers))

    def post(self, path: str, json: Any = None, headers: dict[str, str] | None = None, **kw):
        return self.client.post(
            path,
            json if json is not None else {},
            content_type="application/json",
            headers=self._headers(headers),
            **kw,
        )

    def put(self, path: str, json: Any = None, headers: dict[str, str] | None = None):
        return self.client.put(
            path, json, content_type="application/json", headers=self._headers(headers)
        )

    def patch(self, path: str, json: Any = None, headers: dict[str, str] | None = None):
        return self.client.patch(
            path, json, content_type="application/json", headers=self._headers(headers)
        )

    def delete(self, path: str, headers: dict[str, str] | None = None):
        return self.client.delete(path, headers=self._headers(headers))


def token_for(user) -> str:
    return session_start(user=user).access_token


@pytest.fixture
def anon() -> ApiClient:
    return ApiClient()


@pytest.fixture
def customer(db):
    return CustomerFactory()


@pytest.fixture
def shopper(customer) -> ApiClient:
    """An API client logged in as ``customer``."""
    return ApiClient(token_for(customer.user))


@pytest.fixture
def client_for() -> Callable[[Any], ApiClient]:
    """``client_for(user)``: an API client logged in as that user."""
    return lambda user: ApiClient(token_for(user))


@pytest.fixture
def staff(db):
    return StaffFactory()


@pytest.fixture
def operator(staff) -> ApiClient:
    """An API client logged in as a superuser operator (every permission)."""
    return ApiClient(token_for(staff))


def run_in_threads(n: int, target: Callable[[int], Any]) -> list[Any]:
    """Run ``target(i)`` in ``n`` threads released together; returns results (or exceptions).
    Each thread closes its own DB connection (PITFALLS.md)."""
    barrier = threading.Barrier(n)
    results: list[Any] = [None] * n

    def worker(i: int) -> None:
        try:
            barrier.wait()
            results[i] = target(i)
        except Exception as exc:  # collected for the test to assert on
            results[i] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results
