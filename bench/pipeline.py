"""Issue "Enrichment pipeline": events/s of one Celery worker process through rollups and indexing.

N raw events are stored straight into the bench database (as the endpoint leaves them: not aggregated, not
indexed), one real `celery worker --concurrency=1` runs, `enqueue_events` queues them in chunks of
PIPELINE_CHUNK_SIZE and the clock stops when every event has `aggregated_at` and `indexed_at`. Beside it, on
the same data in the same run: a raw `elasticsearch.helpers.bulk` of the same documents, `rollups_apply` of
the same deltas in one transaction, and the same pipeline with one task per event. Between phases the
rollups are truncated, the pipeline state cleared and the indices deleted (the template stays: the worker
created it once and remembers that), so every phase does the same work from the same starting point.
"""

import json
import time
from datetime import UTC, datetime
from typing import Any

import psycopg

from . import common
from .common import CeleryWorker, Config, Result, log
from .workload import make_events

STAGE = "prod"
ROLLUP_TABLES = ("metrics_rollupcount", "metrics_rollupnumeric", "metrics_rollupuser", "metrics_rollupsketch")
STORE_COLUMNS = (
    "event_id",
    "service",
    "stage",
    "type",
    "event",
    "timestamp",
    "received_at",
    "user_id",
    "correlation_id",
    "level",
    "message",
    "properties",
    "notes",
    "ingest_node",
)


def _sql(statement: str, params: tuple = ()) -> list[tuple]:
    with psycopg.connect(common.database_url(), autocommit=True) as conn:
        cursor = conn.execute(statement, params)
        return cursor.fetchall() if cursor.description else []


def store_events(count: int) -> list[int]:
    """COPY `count` realistic raw events into the bench database, unprocessed; return their ids in order."""
    events = make_events(count, seed=42)
    received_at = datetime.now(UTC)
    with psycopg.connect(common.database_url()) as conn:
        with conn.cursor().copy(f"COPY ingest_rawevent ({', '.join(STORE_COLUMNS)}) FROM STDIN") as copy:
            for ev in events:
                copy.write_row(
                    (
                        ev["event_id"],
                        ev["service"],
                        STAGE,
                        "metric",
                        ev["event"],
                        ev["timestamp"],
                        received_at,
                        ev["user_id"],
                        ev["correlation_id"],
                        "",
                        "",
                        json.dumps(ev["properties"]),
                        "[]",
                        "bench-node",
                    )
                )
    _sql("VACUUM ANALYZE ingest_rawevent")
    return [row[0] for row in _sql("SELECT id FROM ingest_rawevent ORDER BY id")]


def reset() -> None:
    """Undo every phase's effects: no rollups, nothing aggregated or indexed, no bench indices."""
    _sql(f"TRUNCATE {', '.join(ROLLUP_TABLES)}")
    _sql(
        "UPDATE ingest_rawevent SET aggregated_at = NULL, indexed_at = NULL, aggregate_attempts = 0, "
        "index_attempts = 0, last_error = '', dead_lettered_at = NULL, index_rejected_at = NULL"
    )
    _sql(f"VACUUM ANALYZE ingest_rawevent, {', '.join(ROLLUP_TABLES)}")
    common.delete_indices(template=False)
    common.flush_broker()


def _wait_processed(ids: list[int], worker: CeleryWorker, timeout: float) -> float:
    """Poll until every event in ids is aggregated and indexed; return the monotonic time it happened."""
    low, high = ids[0], ids[-1]
    deadline = time.monotonic() + timeout
    while True:
        pending, failed = _sql(
            "SELECT count(*) FILTER (WHERE aggregated_at IS NULL OR indexed_at IS NULL), "
            "count(*) FILTER (WHERE dead_lettered_at IS NOT NULL OR index_rejected_at IS NOT NULL) "
            "FROM ingest_rawevent WHERE id BETWEEN %s AND %s",
            (low, high),
        )[0]
        now = time.monotonic()
        if failed:
            raise RuntimeError(f"{failed} events were dead-lettered or refused by the index")
        if pending == 0:
            return now
        if not worker.alive():
            raise RuntimeError(f"the Celery worker exited:\n{worker.log_tail()}")
        if now > deadline:
            raise RuntimeError(f"{pending} of {len(ids)} events still unprocessed after {timeout}s")
        time.sleep(0.1)


def _check_rollups(expected_events: int) -> None:
    day_total = _sql("SELECT coalesce(sum(count), 0) FROM metrics_rollupcount WHERE granularity = 'day'")[0][
        0
    ]
    if day_total != expected_events:
        raise RuntimeError(f"rollups count {day_total} events, {expected_events} were processed")


def pipeline_chunked(ids: list[int], worker: CeleryWorker, timeout: float) -> float:
    """Events/s of the whole pipeline for ids, queued by `enqueue_events` in chunks."""
    from apps.pipeline.tasks import enqueue_events

    started = time.monotonic()
    enqueue_events(ids)
    finished = _wait_processed(ids, worker, timeout)
    _check_rollups(len(ids))
    return len(ids) / (finished - started)


def pipeline_per_event(ids: list[int], worker: CeleryWorker, timeout: float) -> float:
    """Events/s of the same pipeline when every event is its own task."""
    from apps.pipeline.tasks import process_events

    started = time.monotonic()
    for pk in ids:
        process_events.delay([pk])
    finished = _wait_processed(ids, worker, timeout)
    _check_rollups(len(ids))
    return len(ids) / (finished - started)


def raw_bulk(ids: list[int]) -> float:
    """Events/s of `helpers.bulk` of the same documents (built beforehand with `document_for`)."""
    from elasticsearch import helpers

    from apps.ingest.models import RawEvent
    from apps.traces.search.elasticsearch import document_for, es_client

    documents = [document_for(ev) for ev in RawEvent.objects.filter(pk__in=ids).order_by("pk").iterator()]
    client = es_client()
    started = time.monotonic()
    indexed, errors = helpers.bulk(client, documents, chunk_size=500, raise_on_error=False)
    elapsed = time.monotonic() - started
    if indexed != len(ids) or errors:
        raise RuntimeError(f"raw bulk indexed {indexed} of {len(ids)}: {errors[:3]}")
    return len(ids) / elapsed


def rollup_upsert(ids: list[int]) -> float:
    """Events/s of the pipeline's own set-based rollup statements (`rollups_add_sql`) over the same events
    in one transaction: the rollup writes alone, without claiming, marking or indexing."""
    from django.db import transaction

    from apps.metrics.services import rollups_add_sql

    started = time.monotonic()
    with transaction.atomic():
        rollups_add_sql(event_ids=ids)
    elapsed = time.monotonic() - started
    _check_rollups(len(ids))
    return len(ids) / elapsed


def run(config: Config) -> list[Result]:
    """Measure the pipeline and its three baselines; return their figures."""
    _sql("TRUNCATE ingest_rawevent")
    ids = store_events(config.pipeline_events)
    reset()
    worker = CeleryWorker(env=common.portal_env())
    timings: dict[str, Any] = {}
    try:
        log(f"pipeline: {len(ids)} events in chunks, one worker process")
        timings["chunked"] = pipeline_chunked(ids, worker, config.phase_timeout)
        log(f"pipeline: chunked {timings['chunked']:,.0f} events/s")

        subset = ids[: config.pipeline_per_event]
        reset()
        log(f"pipeline: {len(subset)} events, one task per event")
        timings["per_event"] = pipeline_per_event(subset, worker, config.phase_timeout)
        log(f"pipeline: per event {timings['per_event']:,.0f} events/s")
    finally:
        worker.stop()
        common.flush_broker()

    reset()
    log(f"pipeline: raw helpers.bulk of {len(ids)} documents")
    timings["bulk"] = raw_bulk(ids)
    log(f"pipeline: raw bulk {timings['bulk']:,.0f} events/s")

    reset()
    log(f"pipeline: rollups_add_sql of {len(ids)} events in one transaction")
    timings["upsert"] = rollup_upsert(ids)
    log(f"pipeline: rollup upsert {timings['upsert']:,.0f} events/s")
    reset()

    chunked = timings["chunked"]
    return [
        Result("pipeline_events_per_s", chunked, "events/s", timings["bulk"], "raw_bulk_events_per_s", 0.6),
        Result(
            "pipeline_vs_rollup_upsert", chunked, "events/s", timings["upsert"], "rollup_upsert_events_per_s"
        ),
        Result(
            "pipeline_vs_bulk_then_upsert",
            chunked,
            "events/s",
            1 / (1 / timings["bulk"] + 1 / timings["upsert"]),
            "bulk_then_upsert_events_per_s",
        ),
        Result(
            "pipeline_chunked_vs_per_event",
            chunked,
            "events/s",
            timings["per_event"],
            "per_event_task_events_per_s",
            10,
        ),
    ]
