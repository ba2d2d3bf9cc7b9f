"""An Elasticsearch that accepts connections and never answers: a trace page or API answers 503 after one
ELASTICSEARCH_TIMEOUT, not after three (the client sent a timed-out search twice more, so with the default
10 s a page waited 30 s, as long as the proxy in front waits before answering its own 504)."""

import time

import pytest
from django.test import override_settings

from tests.conftest import TRACE_BACKENDS

TIMEOUT_SECONDS = 1


@pytest.fixture
def slow_search(silent_port):
    from apps.traces.search import _backend_for

    with override_settings(
        TRACE_BACKEND=TRACE_BACKENDS["elasticsearch"],
        ELASTICSEARCH_URL=f"http://127.0.0.1:{silent_port}",
        ELASTICSEARCH_TIMEOUT=TIMEOUT_SECONDS,
    ):
        _backend_for.cache_clear()
        yield
    _backend_for.cache_clear()


@pytest.mark.parametrize(
    "path",
    [
        "/traces/?user_id=u-1",
        "/traces/?q=req-1",  # the paste box: an existence look-up first
        "/traces/req-1/",
        "/users/u-1/",
        "/api/v1/traces/req-1",
        "/api/v1/users/u-1/requests",
    ],
)
def test_a_silent_search_backend_is_a_503_after_one_timeout(client, make_person, slow_search, path):
    client.force_login(make_person("support"))
    client.get("/traces/")  # the first page of the process loads its templates and URLs: not timed

    began = time.monotonic()
    response = client.get(path)
    took = time.monotonic() - began

    assert response.status_code == 503
    assert int(response["Retry-After"]) > 0
    assert took < 2 * TIMEOUT_SECONDS, f"answered after {took:.1f} s"
