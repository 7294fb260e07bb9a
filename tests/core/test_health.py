"""/health (liveness) and /health/ready (database, cache, channel layer, Celery broker)."""

import health_check
import pytest
from django.conf import settings as django_settings
from django.test import Client
from health_check.exceptions import ServiceUnavailable

from config.celery import app as celery_app

CHECKS = ["BrokerCheck", "Cache", "ChannelLayerCheck", "Database"]


@pytest.fixture
def celery_conf():
    """Celery's conf, restored afterwards (monkeypatch cannot undo on celery's Settings)."""
    saved = {name: celery_app.conf[name] for name in ("task_always_eager", "broker_url")}
    yield celery_app.conf
    celery_app.conf.update(saved)


def test_liveness_answers_without_any_service():
    response = Client().get("/health")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.django_db
def test_ready_when_every_dependency_answers():
    response = Client().get("/health/ready")

    assert response.status_code == 200
    assert response.json() == {"status": "ok", "checks": dict.fromkeys(CHECKS, "ok")}
    assert "no-cache" in response["Cache-Control"]


@pytest.mark.redis
@pytest.mark.django_db
def test_ready_against_real_redis_cache_layer_and_broker(celery_conf):
    assert django_settings.CACHES["default"]["BACKEND"].endswith("RedisCache")
    assert django_settings.CHANNEL_LAYERS["default"]["BACKEND"].endswith("RedisChannelLayer")
    # conftest runs tasks eagerly, which makes BrokerCheck skip the broker: really connect here.
    celery_conf.task_always_eager = False

    response = Client().get("/health/ready")

    assert response.status_code == 200
    assert response.json() == {"status": "ok", "checks": dict.fromkeys(CHECKS, "ok")}


@pytest.mark.django_db
def test_not_ready_when_the_database_fails(monkeypatch):
    def database_down(self):
        raise ServiceUnavailable("Database refused the connection")

    monkeypatch.setattr(health_check.Database, "run", database_down)

    response = Client().get("/health/ready")

    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert "Database refused the connection" in body["checks"]["Database"]
    assert {k: v for k, v in body["checks"].items() if k != "Database"} == dict.fromkeys(
        ["BrokerCheck", "Cache", "ChannelLayerCheck"], "ok"
    )


@pytest.mark.django_db
def test_not_ready_without_a_channel_layer(monkeypatch):
    monkeypatch.setattr("core.health.get_channel_layer", lambda: None)

    response = Client().get("/health/ready")

    assert response.status_code == 503
    assert "No channel layer configured" in response.json()["checks"]["ChannelLayerCheck"]


@pytest.mark.django_db
def test_not_ready_when_the_broker_is_unreachable(celery_conf):
    celery_conf.task_always_eager = False
    celery_conf.broker_url = "redis://127.0.0.1:1/0"

    response = Client().get("/health/ready")

    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert "Broker unreachable" in body["checks"]["BrokerCheck"]
    assert body["checks"]["Database"] == "ok"
