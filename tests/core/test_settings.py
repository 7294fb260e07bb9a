"""config.settings in its two modes, each imported in a fresh interpreter whose environment holds
only PATH, HOME and the variables under test (nothing leaks in from the test run)."""

import json
import os
import secrets
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import json
import config.settings as s
layer = s.CHANNEL_LAYERS["default"]
print(json.dumps({
    "DEBUG": s.DEBUG,
    "DB_ENGINE": s.DATABASES["default"]["ENGINE"],
    "DB_NAME": str(s.DATABASES["default"]["NAME"]),
    "DB_HOST": s.DATABASES["default"].get("HOST", ""),
    "DB_OPTIONS": {k: v for k, v in s.DATABASES["default"].get("OPTIONS", {}).items()},
    "DB_CONN_MAX_AGE": s.DATABASES["default"].get("CONN_MAX_AGE"),
    "CACHE_BACKEND": s.CACHES["default"]["BACKEND"],
    "CACHE_LOCATION": s.CACHES["default"].get("LOCATION", ""),
    "CACHE_KEY_PREFIX": s.CACHES["default"].get("KEY_PREFIX", ""),
    "LAYER_BACKEND": layer["BACKEND"],
    "LAYER_HOSTS": layer.get("CONFIG", {}).get("hosts"),
    "CELERY_BROKER_URL": s.CELERY_BROKER_URL,
    "CELERY_RESULT_BACKEND": s.CELERY_RESULT_BACKEND,
    "CELERY_TASK_ALWAYS_EAGER": s.CELERY_TASK_ALWAYS_EAGER,
    "PAYMENT_PROVIDER": s.PAYMENT_PROVIDER,
    "WECHAT_LOGIN_PROVIDER": s.WECHAT_LOGIN_PROVIDER,
    "SECRET_KEY_SET": bool(s.SECRET_KEY),
    "SECURE_SSL_REDIRECT": getattr(s, "SECURE_SSL_REDIRECT", None),
}))
"""


def _clean_env(**variables: str) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/tmp"),
        **variables,
    }


def _run(args: list[str], **variables: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        env=_clean_env(**variables),
        capture_output=True,
        text=True,
        timeout=120,
    )


def _settings(**variables: str) -> dict:
    result = _run(["-c", PROBE], **variables)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_embedded_default_with_no_environment():
    s = _settings()

    assert s["DEBUG"] is True
    # the checkout's embedded PostgreSQL, over its unix socket (manage.py starts it)
    assert s["DB_ENGINE"] == "django.db.backends.postgresql"
    assert s["DB_NAME"] == "groupbuy"
    assert s["DB_HOST"] == str(ROOT / ".run" / "postgres")
    assert s["CACHE_BACKEND"] == "django.core.cache.backends.locmem.LocMemCache"
    assert s["LAYER_BACKEND"] == "channels.layers.InMemoryChannelLayer"
    assert s["CELERY_TASK_ALWAYS_EAGER"] is True
    assert s["CELERY_BROKER_URL"] == "memory://"
    assert s["PAYMENT_PROVIDER"] == "sandbox"
    assert s["WECHAT_LOGIN_PROVIDER"] == "sandbox"
    assert s["SECRET_KEY_SET"] is True


def test_real_mode_uses_postgres_redis_stripe_and_wechat():
    s = _settings(
        DATABASE_URL="postgres://shop:pw@db.internal:5432/shop",
        REDIS_URL="redis://cache.internal:6379/2",
        REDIS_KEY_PREFIX="prod",
        STRIPE_SECRET_KEY="sk_test_123",
        STRIPE_WEBHOOK_SECRET="whsec_123",
        WECHAT_APP_ID="wx0123456789",
        WECHAT_APP_SECRET="wechat-secret",
    )

    assert s["DB_ENGINE"] == "django.db.backends.postgresql"
    assert (s["DB_NAME"], s["DB_HOST"]) == ("shop", "db.internal")
    assert s["DB_CONN_MAX_AGE"] == 0
    assert s["CACHE_BACKEND"] == "django.core.cache.backends.redis.RedisCache"
    assert s["CACHE_LOCATION"] == "redis://cache.internal:6379/2"
    assert s["CACHE_KEY_PREFIX"] == "prod"
    assert s["LAYER_BACKEND"] == "channels_redis.core.RedisChannelLayer"
    assert s["LAYER_HOSTS"] == [
        {"address": "redis://cache.internal:6379/2", "max_connections": 1000}
    ]
    assert s["CELERY_BROKER_URL"] == "redis://cache.internal:6379/2"
    assert s["CELERY_RESULT_BACKEND"] == "redis://cache.internal:6379/2"
    assert s["CELERY_TASK_ALWAYS_EAGER"] is False
    assert s["PAYMENT_PROVIDER"] == "stripe"
    assert s["WECHAT_LOGIN_PROVIDER"] == "wechat"


def test_run_dir_moves_the_embedded_database(tmp_path):
    s = _settings(RUN_DIR=str(tmp_path))

    assert s["DB_HOST"] == str(tmp_path / "postgres")


def test_a_run_dir_too_deep_for_a_socket_path_gets_a_short_socket_directory(tmp_path):
    deep = tmp_path / ("d" * 60) / ("e" * 60)

    s = _settings(RUN_DIR=str(deep))

    assert len(s["DB_HOST"]) < 60
    assert s["DB_HOST"].startswith(tempfile.gettempdir())


@pytest.mark.parametrize("url", ["sqlite:///db.sqlite3", "mysql://u@h/db"])
def test_databases_other_than_postgresql_are_refused(url):
    result = _run(["-c", "import config.settings"], DATABASE_URL=url)

    assert result.returncode != 0
    assert "DATABASE_URL must be a postgres:// URL" in result.stderr


def test_unix_socket_redis_url_is_spelled_for_kombu_only():
    s = _settings(REDIS_URL="unix:///run/redis/redis.sock")

    assert s["CELERY_BROKER_URL"] == "redis+socket:///run/redis/redis.sock"
    assert s["CELERY_RESULT_BACKEND"] == "redis+socket:///run/redis/redis.sock"
    assert s["LAYER_HOSTS"][0]["address"] == "unix:///run/redis/redis.sock"
    assert s["CACHE_LOCATION"] == "unix:///run/redis/redis.sock"


def test_database_pool_turns_off_persistent_connections():
    s = _settings(
        DATABASE_URL="postgres://shop@db.internal/shop", DB_POOL_MAX_SIZE="8", DB_CONN_MAX_AGE="60"
    )

    assert s["DB_CONN_MAX_AGE"] == 0
    assert s["DB_OPTIONS"]["pool"] == {"min_size": 1, "max_size": 8, "timeout": 10}


def _production_env(tmp_path: Path) -> dict[str, str]:
    return {
        "DEBUG": "false",
        "SECRET_KEY": secrets.token_urlsafe(45),
        "ALLOWED_HOSTS": "example.com",
        "DATABASE_URL": "postgres://shop:pw@db.internal:5432/shop",
    }


def test_production_settings_pass_the_deploy_check(tmp_path):
    variables = _production_env(tmp_path)
    assert len(variables["SECRET_KEY"]) == 60

    result = _run(["manage.py", "check", "--deploy", "--fail-level", "WARNING"], **variables)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout
    assert "WARNING" not in result.stdout + result.stderr


def test_production_settings_are_hardened(tmp_path):
    s = _settings(**_production_env(tmp_path))

    assert s["DEBUG"] is False
    assert s["SECURE_SSL_REDIRECT"] is True


@pytest.mark.parametrize("secret", [None, ""])
def test_debug_off_without_secret_key_refuses_to_start(tmp_path, secret):
    variables = _production_env(tmp_path)
    if secret is None:
        del variables["SECRET_KEY"]
    else:
        variables["SECRET_KEY"] = secret

    result = _run(["-c", "import config.settings"], **variables)

    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert "SECRET_KEY must be set when DEBUG is off" in result.stderr


def test_debug_off_without_database_url_refuses_and_starts_no_embedded_server(tmp_path):
    variables = _production_env(tmp_path)
    del variables["DATABASE_URL"]

    result = _run(["manage.py", "check"], RUN_DIR=str(tmp_path / "run"), **variables)

    assert result.returncode != 0
    assert "DATABASE_URL must be set when DEBUG is off" in result.stderr
    assert not (tmp_path / "run").exists()  # manage.py did not fall back to an embedded server


def test_deploy_check_does_fail_on_debug_settings(tmp_path):
    variables = {**_production_env(tmp_path), "DEBUG": "true"}

    result = _run(["manage.py", "check", "--deploy", "--fail-level", "WARNING"], **variables)

    assert result.returncode != 0
    assert "security.W018" in result.stdout + result.stderr
