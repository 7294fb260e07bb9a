"""pytest plugin (``-p tests.services`` in pyproject.toml): the services the suite runs on.

With ``DATABASE_URL`` / ``REDIS_URL`` set, the suite uses those servers (CI: the machine's
PostgreSQL 15 and Redis). Without them it starts, for this session only, a private embedded
PostgreSQL and a private embedded Redis in a fresh temporary directory (never the checkout's
``.run/``, so a running ``make run`` is neither used nor stopped), and removes both at the end.
Nothing is skipped either way. ``REQUIRE_SERVICES=1`` (CI) refuses to fall back to embedded ones.

This runs before pytest-django reads the settings, which read the environment once.
"""

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from core.embedded import EmbeddedPostgres, EmbeddedRedis

SESSION_ROOT_ENV = "GROUPBUY_TEST_SERVICES_DIR"


@pytest.hookimpl(wrapper=True)
def pytest_load_initial_conftests(early_config, parser, args):
    options = early_config.known_args_namespace
    if not (options.help or options.version):
        _start_services(early_config)
    return (yield)


def _start_services(config: pytest.Config) -> None:
    missing = [name for name in ("DATABASE_URL", "REDIS_URL") if not os.environ.get(name)]
    if not missing:
        return
    if os.environ.get("REQUIRE_SERVICES") == "1":
        raise pytest.UsageError(f"REQUIRE_SERVICES=1 but {' and '.join(missing)} not set")
    root = Path(tempfile.mkdtemp(prefix="groupbuy-test-"))
    os.environ[SESSION_ROOT_ENV] = str(root)
    postgres = redis = None
    if "DATABASE_URL" in missing:
        postgres = EmbeddedPostgres(root / "postgres", scratch=True)
        os.environ["DATABASE_URL"] = postgres.acquire()
    if "REDIS_URL" in missing:
        redis = EmbeddedRedis(root / "redis")
        os.environ["REDIS_URL"] = redis.start()

    def stop() -> None:
        if redis is not None:
            redis.stop()
        if postgres is not None:
            postgres.release()
        shutil.rmtree(root, ignore_errors=True)

    config.add_cleanup(stop)


def pytest_report_header(config):
    from django.conf import settings

    db = settings.DATABASES["default"]
    where = db.get("HOST") or "localhost"
    embedded = os.environ.get(SESSION_ROOT_ENV, "")
    kind = "embedded " if embedded and where.startswith(embedded) else ""
    return [f"database: {kind}PostgreSQL at {where}; redis: {settings.REDIS_URL}"]
