"""process_chunk overlaps the search bulk with the rollups: they commit without waiting for it, a chunk of
several bulks is indexed and counted once, and every statement on raw events by id bounds their time range."""

import re
import threading

import psycopg
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.accounts.actors import Actor
from apps.ingest.models import RawEvent
from apps.lifecycle.services import user_purge
from apps.pipeline import services
from apps.traces.search.elasticsearch import ElasticsearchTraceBackend, alias_name, es_client
from tests.conftest import _database_url_for, a_session_waits_on_a_lock, in_thread, wait_for

from .test_pipeline import T0, day_count, indexed_count, make_events, send

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def held_bulks(monkeypatch) -> tuple[threading.Event, threading.Event]:
    """Failure injection: a search cluster that takes its time. Every bulk waits until the test sets the
    second event; the first is set when one has started."""
    bulk_started, answer = threading.Event(), threading.Event()
    real_index_events = ElasticsearchTraceBackend.index_events

    def slow_index_events(self, events):
        bulk_started.set()
        answer.wait(timeout=60)
        return real_index_events(self, events)

    monkeypatch.setattr(ElasticsearchTraceBackend, "index_events", slow_index_events)
    return bulk_started, answer


def test_the_rollups_are_committed_while_the_search_bulk_still_runs(
    api_client, make_key, clean_search_index, monkeypatch
):
    # Failure injection: a search cluster that takes its time (held until the test lets it answer).
    _, key = make_key()
    send(api_client, key, make_events(30))
    ids = list(RawEvent.objects.values_list("pk", flat=True))
    bulk_started, answer = held_bulks(monkeypatch)
    outcomes = []

    worker = in_thread(lambda: outcomes.append(services.process_chunk(event_ids=ids)))
    try:
        assert bulk_started.wait(timeout=30)
        # Seen from another connection: counted and marked aggregated, not yet indexed.
        wait_for(lambda: day_count() == 30, timeout=30, message="the rollups committed before the bulk")
        assert RawEvent.objects.awaiting_aggregation().count() == 0
        assert RawEvent.objects.awaiting_index().count() == 30
    finally:
        answer.set()
        worker.join(timeout=60)

    [outcome] = outcomes
    assert (outcome.aggregated.done, outcome.indexed.done) == (30, 30)
    assert RawEvent.objects.awaiting_index().count() == 0
    assert indexed_count() == 30
    assert day_count() == 30


def test_a_chunk_of_several_bulks_is_indexed_and_counted_once(api_client, make_key, clean_search_index):
    _, key = make_key()
    send(api_client, key, make_events(70))
    ids = list(RawEvent.objects.values_list("pk", flat=True))

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(services, "BULK_SIZE", 20)  # four bulks
        outcome = services.process_chunk(event_ids=ids)
        again = services.process_chunk(event_ids=ids)

    assert (outcome.aggregated.done, outcome.indexed.done) == (70, 70)
    assert (again.aggregated.skipped, again.indexed.skipped) == (70, 70)
    assert RawEvent.objects.awaiting_aggregation().count() == 0
    assert RawEvent.objects.awaiting_index().count() == 0
    assert indexed_count() == 70
    assert day_count() == 70


def test_each_statement_on_raw_events_by_id_after_the_first_read_bounds_their_time(
    api_client, make_key, clean_search_index
):
    # A raw table partitioned by day of `timestamp` is read in the chunk's partitions only when each
    # statement names the time range beside the ids; the first read learns the range.
    _, key = make_key()
    send(api_client, key, make_events(10))
    ids = list(RawEvent.objects.values_list("pk", flat=True))

    with CaptureQueriesContext(connection) as queries:
        outcome = services.process_chunk(event_ids=ids)

    assert outcome.aggregated.done == 10
    # Statements on raw events by id (the claim names them by the backlog's `raw_id`).
    by_id = [
        q["sql"]
        for q in queries.captured_queries
        if re.search(r"\b(raw_)?id = ANY\(", q["sql"]) and "ingest_rawevent" in q["sql"]
    ]
    assert len(by_id) >= 2  # the read; the claim, with the index backlog and the rollups
    first, *rest = by_id
    assert "SELECT" in first
    for sql in rest:
        assert re.search(r'"client_timestamp" BETWEEN', sql), sql


def test_events_sent_in_a_batch_are_read_by_the_pipeline_in_their_days_partitions_only(
    api_client, make_key, clean_search_index, settings
):
    # Ingestion hands the batch's client times to the task, so even its first read names them.
    settings.CELERY_TASK_ALWAYS_EAGER = True
    _, key = make_key()

    with CaptureQueriesContext(connection) as queries:
        send(api_client, key, make_events(10))

    assert RawEvent.objects.aggregated().count() == 10
    by_id = [q["sql"] for q in queries.captured_queries if re.search(r"\bid = ANY\(", q["sql"])]
    assert by_id and all('"client_timestamp" BETWEEN' in sql for sql in by_id), by_id


def test_a_purge_while_a_bulk_of_the_user_is_out_leaves_no_search_document(
    api_client, make_key, clean_search_index, monkeypatch
):
    # Failure injection, as above: the chunk's bulk is held while the purge runs. The purge must not end its
    # last pass over the index before that bulk, which holds events it deleted, has landed.
    _, key = make_key()
    send(api_client, key, make_events(14))  # u0 has 2 of them
    ids = list(RawEvent.objects.values_list("pk", flat=True))
    bulk_started, answer = held_bulks(monkeypatch)

    worker = in_thread(lambda: services.process_chunk(event_ids=ids))
    try:
        assert bulk_started.wait(timeout=30)
        purge = in_thread(lambda: user_purge(user_id="u0", actor=Actor.command("test")))
        wait_for(
            lambda: not purge.is_alive() or a_session_waits_on_a_lock(),
            timeout=30,
            message="the purge to end or to wait for the bulk",
        )
    finally:
        answer.set()
        worker.join(timeout=60)
    purge.join(timeout=60)

    assert not RawEvent.objects.filter(user_id="u0").exists()
    assert indexed_count() == 12
    client = es_client()
    assert client.count(index=alias_name(), query={"term": {"user_id": "u0"}})["count"] == 0


def test_a_purge_does_not_wait_forever_for_a_bulk_that_never_returns(store_events, monkeypatch, caplog):
    # Failure injection: a chunk whose bulk never comes back, held by another connection.
    store_events([{"event": "search_made", "user_id": "u0", "timestamp": T0.isoformat()}])
    monkeypatch.setattr(services, "INDEXING_WAIT", "1s")
    url = _database_url_for(connection.settings_dict).replace("postgres://", "postgresql://")
    with psycopg.connect(url, autocommit=True) as stuck:
        stuck.execute("SELECT pg_advisory_lock_shared(%s)", [services.INDEXING_LOCK])
        report = user_purge(user_id="u0", actor=Actor.command("test"))

    assert report.raw_events_deleted == 1
    assert "gave up waiting for the search bulks that are out" in caplog.text
