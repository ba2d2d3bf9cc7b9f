"""A cache Redis (CACHE_URL) that accepts connections and never answers: a read API called with a personal
token (its grants are cached) answers within the cache's socket timeout, from the database, instead of
waiting on Redis for as long as the connection lives (the client had no timeout)."""

import threading

import pytest
from django.test import override_settings

WAIT_SECONDS = 10


@pytest.fixture
def silent_cache(silent_port):
    from django.conf import settings

    caches = {"default": {**settings.CACHES["default"]}}
    caches["default"].update(
        BACKEND="django.core.cache.backends.redis.RedisCache",
        LOCATION=f"redis://127.0.0.1:{silent_port}/0",
        OPTIONS=getattr(settings, "CACHE_REDIS_OPTIONS", {}),  # as settings.py builds it for a CACHE_URL
    )
    with override_settings(CACHES=caches):
        yield


@pytest.mark.django_db(transaction=True)
def test_a_token_read_answers_while_the_cache_never_does(api_client, make_person, silent_cache):
    from apps.accounts.services import personal_token_create

    token = personal_token_create(user=make_person("product"))[1]
    answered: list[int] = []

    def call() -> None:
        response = api_client.get(
            "/api/v1/metrics/series?event=x&interval=day&from=2026-11-01T00:00:00Z&to=2026-11-02T00:00:00Z",
            HTTP_AUTHORIZATION=f"Bearer {token}",
        )
        answered.append(response.status_code)

    caller = threading.Thread(target=call, daemon=True)  # a hung call ends with the silent port
    caller.start()
    caller.join(WAIT_SECONDS)

    assert answered == [200], "no answer while the cache was silent"
