"""The index state of aggregated events lives in IndexBacklog, not on the raw rows: indexing after
aggregation leaves the raw rows alone, and the migration carries the old state over (and back)."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.utils import timezone

from apps.ingest.models import IndexBacklog, RawEvent
from apps.ingest.services import events_ingest
from apps.pipeline.services import aggregate_chunk, index_chunk
from apps.traces.search import elasticsearch as elasticsearch_backend
from apps.traces.search.elasticsearch import alias_name, es_client
from tests.conftest import ingest_migrations_latest, migrate_to

BEFORE = [("ingest", "0008_rawevent_api_key_plain")]


def _raw_updates() -> int:
    """Return how many raw rows this test's transaction has updated so far (every partition)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT coalesce(sum(n_tup_upd), 0) FROM pg_stat_xact_user_tables WHERE relname LIKE %s",
            ["ingest_rawevent%"],
        )
        return cursor.fetchone()[0]


@pytest.mark.skipif(connection.vendor != "postgresql", reason="counts PostgreSQL's row versions")
def test_indexing_after_aggregation_leaves_the_raw_rows_alone(make_key, clean_search_index):
    api_key, _ = make_key(service="gateway")
    items = [{"event": "search_made", "user_id": f"u{n}"} for n in range(30)]
    ids = events_ingest(items=items, api_key=api_key, received_at=timezone.now()).stored_ids
    before = _raw_updates()

    assert aggregate_chunk(event_ids=ids).done == 30  # counted; no search bulk ran: all in the backlog
    assert IndexBacklog.objects.count() == 30
    assert index_chunk(event_ids=ids).done == 30

    assert not IndexBacklog.objects.exists() and not RawEvent.objects.awaiting_index().exists()
    # No raw row is rewritten: the aggregation and the index state are both in their backlogs.
    assert _raw_updates() - before == 0


def test_an_event_the_index_refused_for_good_does_not_wait_for_it_once_counted(make_key):
    api_key, _ = make_key(service="gateway")
    items = [{"event": "refused"}, {"event": "fine"}]
    ids = events_ingest(items=items, api_key=api_key, received_at=timezone.now()).stored_ids
    # As the pipeline leaves an event whose document the index refused for good (a mapping conflict, say).
    RawEvent.objects.filter(pk=ids[0]).update(index_rejected_at=timezone.now())

    assert aggregate_chunk(event_ids=ids).done == 2  # counted, no search bulk ran

    assert list(IndexBacklog.objects.values_list("raw_id", flat=True)) == [ids[1]]
    assert list(RawEvent.objects.awaiting_index().values_list("pk", flat=True)) == [ids[1]]


@pytest.mark.django_db(transaction=True)
def test_the_migration_moves_the_index_state_to_the_backlog_and_back():
    t = datetime(2026, 11, 20, 12, tzinfo=UTC)
    # (aggregated_at, indexed_at, dead_lettered_at, index_rejected_at) as the old pipeline left them.
    states = {
        "waiting": (None, None, None, None),
        "indexed while waiting": (None, t, None, None),
        "done": (t, t, None, None),
        "counted, not indexed": (t, None, None, None),
        "dead-lettered, not indexed": (None, None, t, None),
        "refused by the index": (t, None, None, t),
    }
    migrate_to(BEFORE)
    try:
        with connection.cursor() as cursor:
            ids = {}
            for name, (aggregated, indexed, dead, refused) in states.items():
                cursor.execute(
                    "INSERT INTO ingest_rawevent (event_id, service, stage, type, event, timestamp, "
                    "received_at, user_id, correlation_id, level, message, properties, notes, ingest_node, "
                    "aggregated_at, indexed_at, dead_lettered_at, index_rejected_at, client_timestamp) "
                    "VALUES (%s, 'gateway', 'prod', 'metric', %s, %s, %s, '', '', '', '', '{}', '[]', '', "
                    "%s, %s, %s, %s, %s) RETURNING id",
                    [uuid.uuid4(), name, t, t - timedelta(seconds=1), aggregated, indexed, dead, refused, t],
                )
                ids[name] = cursor.fetchone()[0]

        # Through this migration and the next (the aggregation backlog).
        migrate_to(ingest_migrations_latest())

        backlog = dict(IndexBacklog.objects.values_list("raw_id", "received_at"))
        assert backlog == {
            ids["counted, not indexed"]: t - timedelta(seconds=1),
            ids["dead-lettered, not indexed"]: t - timedelta(seconds=1),
        }
        # Awaiting aggregation means awaiting the index too: the pipeline does both at once.
        waiting = set(RawEvent.objects.awaiting_index().values_list("event", flat=True))
        assert waiting == {
            "waiting",
            "indexed while waiting",
            "counted, not indexed",
            "dead-lettered, not indexed",
        }

        migrate_to(BEFORE)

        with connection.cursor() as cursor:
            cursor.execute("SELECT event, indexed_at FROM ingest_rawevent WHERE indexed_at IS NOT NULL")
            # The backlog kept whether, not when: the receive time stands in for the time indexed.
            assert cursor.fetchall() == [("done", t - timedelta(seconds=1))]
    finally:
        migrate_to(ingest_migrations_latest())


def test_a_document_the_index_refuses_is_recorded_with_its_reason_and_the_rest_are_searchable(
    make_key, clean_search_index
):
    """The bulk's answer is filtered to each item's id, status and error: a real refusal still comes back
    with its reason, and the documents beside it are stored."""
    api_key, _ = make_key(service="gateway")
    items = [{"event": "fine", "correlation_id": "cid-refusal"} for _ in range(3)]
    ids = events_ingest(items=items, api_key=api_key, received_at=timezone.now()).stored_ids
    # Deeper than the search mapping's depth limit for properties (a row older than conform's own limit).
    nested: dict = {"leaf": 1}
    for _ in range(25):
        nested = {"level": nested}
    RawEvent.objects.filter(pk=ids[1]).update(properties={"deep": nested})

    outcome = index_chunk(event_ids=ids)

    assert (outcome.done, outcome.failed, outcome.dead_lettered) == (2, 0, 1)
    refused = RawEvent.objects.get(pk=ids[1])
    assert refused.index_rejected_at is not None
    assert refused.last_error.startswith("search index refused the document: ")
    # Elasticsearch's own error type and reason, naming the field.
    assert "document_parsing_exception" in refused.last_error and "[properties]" in refused.last_error
    es_client().indices.refresh(index=alias_name())
    stored = es_client().search(index=alias_name(), query={"term": {"correlation_id": "cid-refusal"}})
    assert sorted(hit["_source"]["seq"] for hit in stored["hits"]["hits"]) == [ids[0], ids[2]]


def _turned_away(monkeypatch, *, times: int) -> list[int]:
    """Make Elasticsearch answer 429 (its write queue full) for the second document of the next `times`
    bulk requests; return the number of documents in each request sent. Failure injection: a real 429
    needs more load than a test can put on the cluster. Each request still reaches the real cluster."""
    client = es_client()
    real_bulk = client.bulk
    sent: list[int] = []

    def bulk(**kwargs):
        answer = real_bulk(**kwargs)
        sent.append(kwargs["body"].count(b"\n") // 2)
        if len(sent) <= times:  # the second document of the first request, then the one document re-sent
            answer.body["items"][1 if len(sent) == 1 else 0]["index"]["status"] = 429
        return answer

    monkeypatch.setattr(client, "bulk", bulk)
    monkeypatch.setattr(elasticsearch_backend, "BULK_BACKOFF_SECONDS", (0.01, 0.02))
    return sent


def test_documents_turned_away_for_load_are_sent_again_alone_and_stored(
    make_key, clean_search_index, monkeypatch
):
    api_key, _ = make_key(service="gateway")
    items = [{"event": "busy", "correlation_id": "cid-crowded"} for _ in range(3)]
    ids = events_ingest(items=items, api_key=api_key, received_at=timezone.now()).stored_ids
    sent = _turned_away(monkeypatch, times=2)

    outcome = index_chunk(event_ids=ids)

    # The first answer turned one document away, the first retry turned it away again, the second stored it.
    assert sent == [3, 1, 1]
    assert (outcome.done, outcome.failed, outcome.dead_lettered) == (3, 0, 0)
    assert not IndexBacklog.objects.filter(raw_id__in=ids).exists()
    es_client().indices.refresh(index=alias_name())
    stored = es_client().search(index=alias_name(), query={"term": {"correlation_id": "cid-crowded"}})
    assert sorted(hit["_source"]["seq"] for hit in stored["hits"]["hits"]) == sorted(ids)


def test_a_document_turned_away_on_every_retry_waits_in_the_backlog_for_a_later_try(
    make_key, clean_search_index, monkeypatch
):
    api_key, _ = make_key(service="gateway")
    items = [{"event": "busy", "correlation_id": "cid-crowded"} for _ in range(3)]
    ids = events_ingest(items=items, api_key=api_key, received_at=timezone.now()).stored_ids
    sent = _turned_away(monkeypatch, times=1 + elasticsearch_backend.BULK_RETRIES)

    outcome = index_chunk(event_ids=ids)

    assert sent == [3] + [1] * elasticsearch_backend.BULK_RETRIES
    assert (outcome.done, outcome.failed, outcome.dead_lettered) == (2, 1, 0)
    assert list(IndexBacklog.objects.filter(raw_id__in=ids).values_list("raw_id", flat=True)) == [ids[1]]
    waiting = RawEvent.objects.get(pk=ids[1])
    assert waiting.index_rejected_at is None
    assert waiting.last_error.startswith("indexing failed, will retry: ")


def test_a_bulk_request_turned_away_whole_is_sent_again(make_key, clean_search_index, monkeypatch):
    """A 429 for the whole request (no document written) is retried like one for some of its documents."""
    from elastic_transport import ApiResponseMeta, HttpHeaders, NodeConfig
    from elasticsearch import exceptions as es_exceptions

    api_key, _ = make_key(service="gateway")
    items = [{"event": "busy", "correlation_id": "cid-crowded"} for _ in range(2)]
    ids = events_ingest(items=items, api_key=api_key, received_at=timezone.now()).stored_ids
    client = es_client()
    real_bulk = client.bulk
    calls: list[int] = []

    def bulk(**kwargs):  # failure injection: the first request is refused before it reaches the cluster
        calls.append(kwargs["body"].count(b"\n") // 2)
        if len(calls) == 1:
            meta = ApiResponseMeta(429, "1.1", HttpHeaders(), 0.0, NodeConfig("http", "127.0.0.1", 9200))
            raise es_exceptions.ApiError("es_rejected_execution_exception", meta=meta, body={})
        return real_bulk(**kwargs)

    monkeypatch.setattr(client, "bulk", bulk)
    monkeypatch.setattr(elasticsearch_backend, "BULK_BACKOFF_SECONDS", (0.01, 0.02))

    outcome = index_chunk(event_ids=ids)

    assert calls == [2, 2]
    assert (outcome.done, outcome.failed, outcome.dead_lettered) == (2, 0, 0)
    assert not IndexBacklog.objects.filter(raw_id__in=ids).exists()
