"""A trail whose events were indexed but whose search index is gone (deleted, a re-pointed prefix, a day's
index dropped by hand) is a search outage, said with a 503: not a 404 "no events have this ID", which sent
support looking for a request that exists."""

import pytest
from django.test import override_settings

from tests.conftest import TRACE_BACKENDS


@pytest.fixture
def indexed_then_lost(settings, aggregate_events, elasticsearch_url):
    """A trail counted and indexed, as the pipeline leaves it; then every daily index of the test deleted."""
    from apps.traces.search import _backend_for
    from apps.traces.search.elasticsearch import alias_name, es_client

    settings.TRACE_BACKEND = TRACE_BACKENDS["elasticsearch"]
    _backend_for.cache_clear()
    aggregate_events(
        [
            {
                "service": "gateway",
                "event": "request_received",
                "correlation_id": "req-lost",
                "user_id": "u-9",
            },
            {"service": "download", "type": "log", "message": "served", "correlation_id": "req-lost"},
        ]
    )
    es_client().indices.delete(index=f"{alias_name()}-*", expand_wildcards="all")
    yield
    _backend_for.cache_clear()


def test_the_trail_api_says_the_search_index_is_missing_with_503(support_client, indexed_then_lost):
    response = support_client.get("/api/v1/traces/req-lost")

    assert response.status_code == 503
    assert int(response["Retry-After"]) > 0
    assert "search" in response.json()["detail"]


def test_the_trail_page_says_the_search_index_is_missing_with_503(support_client, indexed_then_lost):
    response = support_client.get("/traces/req-lost/")

    assert response.status_code == 503
    assert 'id="search-unavailable"' in response.content.decode()


def test_a_trail_not_yet_indexed_is_still_a_404(support_client, settings, store_events, elasticsearch_url):
    """Stored, not yet through the pipeline: nothing is missing from the index, the trail is not there yet."""
    from apps.traces.search import _backend_for

    with override_settings(TRACE_BACKEND=TRACE_BACKENDS["elasticsearch"]):
        _backend_for.cache_clear()
        from apps.ingest.models import AggregationBacklog, RawEvent

        store_events([{"service": "gateway", "event": "x", "correlation_id": "req-new"}])
        # As ingestion leaves it: awaiting the pipeline, not in the index.
        from apps.traces.search.elasticsearch import alias_name, es_client

        es_client().indices.delete(index=f"{alias_name()}-*", expand_wildcards="all")
        assert AggregationBacklog.objects.filter(raw_id__in=RawEvent.objects.values("pk")).exists()
        response = support_client.get("/api/v1/traces/req-new")
    _backend_for.cache_clear()

    assert response.status_code == 404


def test_the_user_api_and_page_say_the_search_index_is_missing_with_503(support_client, indexed_then_lost):
    api = support_client.get("/api/v1/users/u-9/requests")
    page = support_client.get("/users/u-9/")

    assert api.status_code == 503 and "search" in api.json()["detail"]
    assert page.status_code == 503 and 'id="search-unavailable"' in page.content.decode()


def test_a_user_with_no_events_in_the_range_is_still_an_empty_answer(support_client, indexed_then_lost):
    # u-9's events are from now: a range that ends a week ago holds none, index or not.
    api = support_client.get("/api/v1/users/u-9/requests?from=2025-01-01T00:00:00Z&to=2025-01-08T00:00:00Z")
    other = support_client.get("/api/v1/users/someone-else/requests")

    assert (api.status_code, api.json()["total"]) == (200, 0)
    assert (other.status_code, other.json()["total"]) == (200, 0)


def test_a_trail_whose_index_exists_is_a_404_not_an_outage(support_client, settings, aggregate_events):
    """Indexed, but not (yet) searchable in an index that is there, as in the second before a refresh: the
    index is not missing, so the answer is the usual 404, which a poller waiting for its trail expects."""
    from apps.traces.search import _backend_for
    from apps.traces.search.elasticsearch import alias_name, es_client

    settings.TRACE_BACKEND = TRACE_BACKENDS["elasticsearch"]
    _backend_for.cache_clear()
    aggregate_events([{"service": "gateway", "event": "x", "correlation_id": "req-refreshing"}])
    es = es_client()
    found = es.search(index=alias_name(), query={"term": {"correlation_id": "req-refreshing"}})["hits"][
        "hits"
    ]
    assert found
    for hit in found:  # the trail's documents out of an index that stays
        es.delete(index=hit["_index"], id=hit["_id"], refresh=True)

    response = support_client.get("/api/v1/traces/req-refreshing")
    _backend_for.cache_clear()

    assert response.status_code == 404
