"""People's API reads are throttled per person (API_READ_RATE_LIMIT), whatever the door (session or personal
token): beyond the rate, 429 with Retry-After in the API's error shape."""

import pytest
from django.test import Client

from apps.accounts.services import personal_token_create

pytestmark = pytest.mark.django_db

READ = "/api/v1/traces/no-such-trail"  # a support read: 404 when allowed


def token_header(person) -> dict[str, str]:
    _, raw = personal_token_create(user=person, label="script")
    return {"HTTP_AUTHORIZATION": f"Bearer {raw}"}


def test_reads_beyond_the_rate_get_429_with_retry_after(make_person, settings):
    settings.API_READ_RATE_LIMIT = "3/min"
    headers = token_header(make_person("support", "sam-hammer"))
    api = Client()

    allowed = [api.get(READ, **headers).status_code for _ in range(3)]
    refused = api.get(READ, **headers)

    assert allowed == [404, 404, 404]
    assert refused.status_code == 429
    assert set(refused.json()) == {"detail"} and "throttled" in refused.json()["detail"]
    assert 1 <= int(refused["Retry-After"]) <= 60


def test_a_person_has_one_count_whether_by_session_or_token(make_person, settings):
    settings.API_READ_RATE_LIMIT = "2/min"
    person = make_person("support", "sam-both-doors")
    browser = Client()
    browser.force_login(person)
    headers = token_header(person)

    assert browser.get(READ).status_code == 404
    assert Client().get(READ, **headers).status_code == 404

    assert browser.get(READ).status_code == 429
    assert Client().get(READ, **headers).status_code == 429


def test_another_person_is_not_held_back(make_person, settings):
    settings.API_READ_RATE_LIMIT = "1/min"
    busy, other = Client(), Client()
    busy.force_login(make_person("support", "sam-busy"))
    other.force_login(make_person("support", "kim-idle"))

    busy.get(READ)
    assert busy.get(READ).status_code == 429

    assert other.get(READ).status_code == 404


def test_refused_callers_are_not_counted(make_person, settings):
    """Authentication and roles answer first: a caller without the role gets 403 however often it asks."""
    settings.API_READ_RATE_LIMIT = "1/min"
    browser = Client()
    browser.force_login(make_person("product", "pia-wrong-role"))

    assert [browser.get(READ).status_code for _ in range(3)] == [403, 403, 403]
    assert Client().get(READ).status_code == 401


def test_service_keys_keep_their_own_rate(make_key, settings):
    settings.API_READ_RATE_LIMIT = "1/min"
    _, raw = make_key()
    api = Client()
    event = {"event": "search_made"}

    statuses = [
        api.post("/api/v1/events", event, content_type="application/json", HTTP_X_API_KEY=raw).status_code
        for _ in range(3)
    ]

    assert statuses == [202, 202, 202]


def test_the_default_rate_is_generous():
    from django.conf import settings

    assert settings.API_READ_RATE_LIMIT == "120/min"


def test_annotation_reads_count_as_reads(make_person, settings):
    settings.API_READ_RATE_LIMIT = "1/min"
    browser = Client()
    browser.force_login(make_person("product", "pat-annotations"))

    assert browser.get("/api/v1/annotations").status_code == 200
    assert browser.get("/api/v1/annotations").status_code == 429
