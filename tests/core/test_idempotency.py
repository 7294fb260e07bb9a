"""core.http.idempotent, through a test-only API whose POST writes one row per call."""

from datetime import timedelta

import pytest
from django.test import RequestFactory
from django.utils import timezone

from core.http import _request_fingerprint
from core.models import Announcement, IdempotencyRecord
from core.tasks import idempotency_purge_expired
from tests.conftest import ApiClient, run_in_threads, token_for
from tests.core.utils import assert_error
from tests.factories import UserFactory

pytestmark = pytest.mark.urls("tests.core.idem_urls")

URL = "/api/test/items"
BODY = {"title": "Twenty eggs", "body": "free range"}


def _key(value: str) -> dict[str, str]:
    return {"Idempotency-Key": value}


@pytest.mark.django_db
def test_same_key_and_body_replays_the_first_response_and_writes_once(shopper):
    first = shopper.post(URL, json=BODY, headers=_key("k-1"))
    second = shopper.post(URL, json=BODY, headers=_key("k-1"))

    assert first.status_code == 201
    assert "Idempotent-Replayed" not in first
    assert second.status_code == 201
    assert second["Idempotent-Replayed"] == "true"
    assert second.json() == first.json()
    assert Announcement.objects.count() == 1
    assert first.json()["id"] == Announcement.objects.get().id
    record = IdempotencyRecord.objects.get()
    assert (record.key, record.status_code, record.method) == ("k-1", 201, "POST")
    assert record.completed_at is not None


@pytest.mark.django_db
def test_body_fingerprint_ignores_key_order(shopper):
    shopper.post(URL, json={"title": "A", "body": "B"}, headers=_key("k-order"))

    again = shopper.post(URL, json={"body": "B", "title": "A"}, headers=_key("k-order"))

    assert again.status_code == 201
    assert again["Idempotent-Replayed"] == "true"
    assert Announcement.objects.count() == 1


@pytest.mark.django_db
def test_same_key_with_another_body_is_409_and_writes_nothing(shopper):
    shopper.post(URL, json=BODY, headers=_key("k-2"))

    response = shopper.post(URL, json={**BODY, "title": "Thirty eggs"}, headers=_key("k-2"))

    assert_error(response, 409, "idempotency_key_reused")
    assert list(Announcement.objects.values_list("title", flat=True)) == ["Twenty eggs"]


@pytest.mark.django_db
def test_keys_are_per_user(client_for):
    alice, bob = ApiClient(token_for(UserFactory())), client_for(UserFactory())

    a = alice.post(URL, json={"title": "alice's"}, headers=_key("shared"))
    b = bob.post(URL, json={"title": "bob's"}, headers=_key("shared"))

    assert (a.status_code, b.status_code) == (201, 201)
    assert "Idempotent-Replayed" not in b
    assert a.json()["id"] != b.json()["id"]
    assert Announcement.objects.count() == 2
    assert IdempotencyRecord.objects.count() == 2


@pytest.mark.django_db
def test_without_a_key_every_call_writes(shopper):
    first = shopper.post(URL, json={"title": "one"})
    second = shopper.post(URL, json={"title": "two"})

    assert (first.status_code, second.status_code) == (201, 201)
    assert Announcement.objects.count() == 2
    assert IdempotencyRecord.objects.count() == 0


@pytest.mark.django_db
def test_a_failed_request_releases_its_key_for_a_retry(shopper):
    blocker = Announcement.objects.create(title=BODY["title"], send_at=timezone.now())

    failed = shopper.post(URL, json=BODY, headers=_key("k-retry"))

    assert_error(failed, 409, "title_taken")
    assert IdempotencyRecord.objects.count() == 0

    blocker.delete()
    retried = shopper.post(URL, json=BODY, headers=_key("k-retry"))

    assert retried.status_code == 201
    assert "Idempotent-Replayed" not in retried
    assert Announcement.objects.count() == 1
    assert IdempotencyRecord.objects.get().completed_at is not None


@pytest.mark.django_db
def test_validation_error_before_the_view_does_not_claim_the_key(shopper):
    bad = shopper.post(URL, json={"title": ""}, headers=_key("k-val"))

    assert_error(bad, 422, "validation_error")
    assert IdempotencyRecord.objects.count() == 0


@pytest.mark.django_db
def test_key_longer_than_255_characters_is_400(shopper):
    response = shopper.post(URL, json=BODY, headers=_key("k" * 256))

    assert_error(response, 400, "idempotency_key_invalid")
    assert Announcement.objects.count() == 0
    assert IdempotencyRecord.objects.count() == 0


@pytest.mark.django_db
def test_key_of_exactly_255_characters_is_accepted(shopper):
    response = shopper.post(URL, json=BODY, headers=_key("k" * 255))

    assert response.status_code == 201
    assert IdempotencyRecord.objects.get().key == "k" * 255


def _abandoned_claim(user, key: str, age: timedelta, time_machine) -> None:
    """A claim left behind by an attempt whose process died mid-request, ``age`` ago."""
    now = timezone.now()
    time_machine.move_to(now - age, tick=False)
    request = RequestFactory().post(URL, data=BODY, content_type="application/json")
    IdempotencyRecord.objects.create(
        user=user, key=key, method="POST", path=URL, request_hash=_request_fingerprint(request)
    )
    time_machine.move_to(now, tick=False)


@pytest.mark.django_db
def test_a_recent_unfinished_claim_is_in_progress(customer, time_machine):
    _abandoned_claim(customer.user, "k-busy", timedelta(seconds=10), time_machine)

    response = ApiClient(token_for(customer.user)).post(URL, json=BODY, headers=_key("k-busy"))

    assert_error(response, 409, "idempotency_request_in_progress")
    assert Announcement.objects.count() == 0


@pytest.mark.django_db
def test_a_claim_abandoned_for_over_a_minute_is_taken_over(customer, time_machine):
    _abandoned_claim(customer.user, "k-dead", timedelta(seconds=61), time_machine)

    response = ApiClient(token_for(customer.user)).post(URL, json=BODY, headers=_key("k-dead"))

    assert response.status_code == 201
    assert "Idempotent-Replayed" not in response
    assert Announcement.objects.count() == 1
    assert IdempotencyRecord.objects.get().completed_at is not None


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_duplicates_write_exactly_once():
    token = token_for(UserFactory())
    n = 8

    def attempt(_: int):
        response = ApiClient(token).post(URL, json=BODY, headers=_key("k-race"))
        return response.status_code, response.get("Idempotent-Replayed"), response.json()

    results = run_in_threads(n, attempt)

    assert not [r for r in results if isinstance(r, Exception)], results
    fresh = [r for r in results if r[0] == 201 and r[1] is None]
    replayed = [r for r in results if r[0] == 201 and r[1] == "true"]
    in_progress = [r for r in results if r[0] == 409]
    assert len(fresh) == 1, results
    assert len(fresh) + len(replayed) + len(in_progress) == n, results
    assert all(r[2] == fresh[0][2] for r in replayed)
    assert all(r[2]["error"]["code"] == "idempotency_request_in_progress" for r in in_progress)
    assert Announcement.objects.count() == 1
    assert IdempotencyRecord.objects.count() == 1


@pytest.mark.django_db
def test_purge_deletes_only_records_older_than_the_ttl(settings, time_machine):
    settings.IDEMPOTENCY_KEY_TTL = timedelta(hours=48)
    user = UserFactory()
    now = timezone.now()
    for key, age in [
        ("old", timedelta(hours=49)),
        ("young", timedelta(hours=47)),
        ("new", timedelta(0)),
    ]:
        time_machine.move_to(now - age, tick=False)
        IdempotencyRecord.objects.create(
            user=user, key=key, method="POST", path=URL, request_hash="h"
        )
    time_machine.move_to(now, tick=False)

    deleted = idempotency_purge_expired.delay().get(disable_sync_subtasks=False)

    assert deleted == 1
    assert sorted(IdempotencyRecord.objects.values_list("key", flat=True)) == ["new", "young"]


@pytest.mark.django_db
def test_purge_keeps_keys_at_least_a_day_even_with_a_shorter_ttl(settings, time_machine):
    settings.IDEMPOTENCY_KEY_TTL = timedelta(hours=1)
    user = UserFactory()
    now = timezone.now()
    for key, age in [("older-than-a-day", timedelta(hours=25)), ("hours-old", timedelta(hours=3))]:
        time_machine.move_to(now - age, tick=False)
        IdempotencyRecord.objects.create(
            user=user, key=key, method="POST", path=URL, request_hash="h"
        )
    time_machine.move_to(now, tick=False)

    assert idempotency_purge_expired.delay().get(disable_sync_subtasks=False) == 1
    assert list(IdempotencyRecord.objects.values_list("key", flat=True)) == ["hours-old"]


@pytest.mark.django_db
def test_a_purged_key_can_be_used_again(customer, time_machine):
    start = timezone.now()
    time_machine.move_to(start, tick=False)
    ApiClient(token_for(customer.user)).post(URL, json=BODY, headers=_key("k-old"))
    Announcement.objects.all().delete()
    time_machine.move_to(start + timedelta(hours=49), tick=False)
    idempotency_purge_expired.delay().get(disable_sync_subtasks=False)

    response = ApiClient(token_for(customer.user)).post(URL, json=BODY, headers=_key("k-old"))

    assert response.status_code == 201
    assert "Idempotent-Replayed" not in response
    assert Announcement.objects.count() == 1
