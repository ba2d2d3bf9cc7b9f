"""Issue "Ingestion API": events/s through POST /api/v1/batch over real HTTP, beside a COPY of the same rows;
and the same events as OTLP log records through POST /otlp/v1/logs, beside /api/v1/batch.

The portal runs under gunicorn (sync workers) on loopback with a real Celery broker, so each accepted batch
also pays for its hand-off to the pipeline after the commit, as in production: a record on the pending
list, and a drain message when none is queued (no worker consumes them here; the bench Redis DB is flushed
after each phase). Several client processes send pre-built bodies; the baseline
is the same rows, same columns, same 100-row batches, each COPY'd and committed by a psycopg connection from
the same number of processes: the floor of what PostgreSQL needs to store these batches durably. Single-event
POSTs to /api/v1/events show what batching buys. The OTLP phase sends the same events as an OpenTelemetry
SDK would, one ExportLogsServiceRequest in binary protobuf per 100 log records (the event's name as
`event_name`, its correlation ID as the trace id, its user as `enduser.id`, its properties as attributes).

Client processes are spawned, not forked, and this module imports no Django at the top, so a client never
inherits the parent's database connections.
"""

import gzip
import json
import multiprocessing
import os
import queue
import socket
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import psycopg
import urllib3

from . import common
from .common import Config, Gunicorn, Result, log
from .workload import as_sent, make_events

SERVICE = "bench-svc"
STAGE = "bench"

# The columns events_ingest writes (apps/ingest/services.py `_INSERT_FIELDS`), received_at last so each
# COPY batch can stamp its own receive time.
COPY_COLUMNS = (
    "event_id",
    "service",
    "stage",
    "type",
    "event",
    "timestamp",
    "user_id",
    "correlation_id",
    "level",
    "message",
    "properties",
    "notes",
    "api_key_id",
    "ingest_node",
    "client_timestamp",
    "received_at",
)


# --- client processes ---------------------------------------------------------------------------------


def _split(total: int, parts: int) -> list[int]:
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def _client(job: dict[str, Any], barrier: Any, results: Any) -> None:
    """One client process: build its requests (or COPY rows), wait for the others, send, report timings."""
    outcome: dict[str, Any] = {"index": job["index"], "accepted": 0, "errors": []}
    try:
        events = make_events(job["count"], seed=job["seed"], end=datetime.fromisoformat(job["end"]))
        size = job["batch_size"] if job["kind"] != "single" else 1
        groups = [events[i : i + size] for i in range(0, len(events), size)]
        if job["kind"] == "copy":
            send = _copy_sender(job, groups)
        else:
            send = _http_sender(job, groups)
        barrier.wait(timeout=180)
        outcome["t0"] = time.monotonic()
        outcome["accepted"] = send()
        outcome["t1"] = time.monotonic()
    except Exception as exc:  # reported to the parent, which fails the benchmark
        outcome["errors"].append(f"{type(exc).__name__}: {exc}")
        barrier.abort()
    results.put(outcome)


def _otlp_logs_body(events: list[dict[str, Any]]) -> bytes:
    """Return one OTLP/HTTP logs request (binary protobuf) holding `events` as log records."""
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue

    request = ExportLogsServiceRequest()
    resource_logs = request.resource_logs.add()
    for key, value in (("service.name", SERVICE), ("deployment.environment.name", STAGE)):
        resource_logs.resource.attributes.add(key=key, value=AnyValue(string_value=value))
    scope_logs = resource_logs.scope_logs.add()
    scope_logs.scope.name = "bench"
    for ev in events:
        record = scope_logs.log_records.add()
        record.time_unix_nano = int(ev["timestamp"].timestamp()) * 1_000_000_000
        record.event_name = ev["event"]
        record.trace_id = bytes.fromhex(ev["correlation_id"])
        record.attributes.add(key="enduser.id", value=AnyValue(string_value=ev["user_id"]))
        for key, value in ev["properties"].items():
            if isinstance(value, str):
                record.attributes.add(key=key, value=AnyValue(string_value=value))
            elif isinstance(value, int):
                record.attributes.add(key=key, value=AnyValue(int_value=value))
            else:
                record.attributes.add(key=key, value=AnyValue(double_value=value))
    return request.SerializeToString()


def _otlp_accepted(response: Any, sent: int) -> int:
    """Return how many records an OTLP answer accepted (all but its partial_success's refused)."""
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse

    refused = ExportLogsServiceResponse.FromString(response.data).partial_success
    if refused.rejected_log_records:
        raise RuntimeError(
            f"OTLP refused {refused.rejected_log_records} records: {refused.error_message[:300]}"
        )
    return sent


def _http_sender(job: dict[str, Any], groups: list[list[dict[str, Any]]]) -> Callable[[], int]:
    kind = job["kind"]
    headers = {"Authorization": f"Bearer {job['key']}", "Content-Type": "application/json"}
    expected = 202
    if kind == "otlp":
        url = job["url"] + "/otlp/v1/logs"
        headers["Content-Type"] = "application/x-protobuf"
        bodies = [_otlp_logs_body(group) for group in groups]
        expected = 200
    elif kind == "single":
        url = job["url"] + "/api/v1/events"
        bodies = [json.dumps(as_sent(group[0])).encode() for group in groups]
    else:
        url = job["url"] + "/api/v1/batch"
        bodies = [json.dumps({"batch": [as_sent(ev) for ev in group]}).encode() for group in groups]
        if kind == "gzip":
            headers["Content-Encoding"] = "gzip"
            bodies = [gzip.compress(body, compresslevel=6) for body in bodies]
    # urllib3 (what requests is built on) with one pooled connection: requests' own per-call work (~0.5-1 ms
    # of CPU: merging settings, looking up proxies) ran on the same 2 cores as the portal and was counted
    # against it; the COPY clients' psycopg does none of that.
    pool = urllib3.connection_from_url(job["url"], maxsize=1, retries=False, timeout=60.0)
    path = url.removeprefix(job["url"])
    sizes = [len(group) for group in groups]

    def send() -> int:
        accepted = 0
        for body, size in zip(bodies, sizes, strict=True):
            response = pool.request("POST", path, body=body, headers=headers)
            if response.status != expected:
                raise RuntimeError(f"{url} answered {response.status}: {response.data[:300]!r}")
            accepted += _otlp_accepted(response, size) if kind == "otlp" else response.json()["accepted"]
        return accepted

    return send


def _copy_sender(job: dict[str, Any], groups: list[list[dict[str, Any]]]) -> Callable[[], int]:
    rows = [
        [
            (
                ev["event_id"],
                SERVICE,
                STAGE,
                "metric",
                ev["event"],
                ev["timestamp"],
                ev["user_id"],
                ev["correlation_id"],
                "",
                "",
                json.dumps(ev["properties"]),
                "[]",
                job["api_key_id"],
                job["ingest_node"],
                ev["timestamp"],  # as sent: the partition key
            )
            for ev in group
        ]
        for group in groups
    ]
    conn = psycopg.connect(job["dsn"])
    statement = f"COPY ingest_rawevent ({', '.join(COPY_COLUMNS)}) FROM STDIN"

    def send() -> int:
        try:
            with conn.cursor() as cursor:
                for batch in rows:
                    received_at = datetime.now(UTC)
                    with cursor.copy(statement) as copy:
                        for row in batch:
                            copy.write_row((*row, received_at))
                    conn.commit()  # one transaction per batch, like the endpoint's 202-after-commit
        finally:
            conn.close()
        return sum(len(batch) for batch in rows)

    return send


def run_clients(kind: str, *, total: int, clients: int, base_job: dict[str, Any], timeout: float) -> float:
    """Run `clients` processes that together send `total` events; return events/s over the common span
    (first client's start to last client's end, all starting together at a barrier)."""
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(clients)
    results = ctx.Queue()
    processes = []
    for index, count in enumerate(_split(total, clients)):
        job = {**base_job, "kind": kind, "index": index, "count": count, "seed": base_job["seed"] + index}
        processes.append(ctx.Process(target=_client, args=(job, barrier, results), daemon=True))
    outcomes: list[dict[str, Any]] = []
    try:
        for process in processes:
            process.start()
        deadline = time.monotonic() + timeout
        while len(outcomes) < clients:
            try:
                outcomes.append(results.get(timeout=max(0.1, deadline - time.monotonic())))
            except queue.Empty:
                raise RuntimeError(f"{kind}: clients did not finish within {timeout}s") from None
        for process in processes:
            process.join(timeout=10)
    finally:
        for process in processes:
            if process.is_alive():
                process.terminate()
                process.join(timeout=5)
    errors = [error for outcome in outcomes for error in outcome["errors"]]
    if errors:
        raise RuntimeError(f"{kind}: clients failed: {errors[:3]}")
    accepted = sum(outcome["accepted"] for outcome in outcomes)
    if accepted != total:
        raise RuntimeError(f"{kind}: {accepted} events accepted, {total} sent")
    elapsed = max(o["t1"] for o in outcomes) - min(o["t0"] for o in outcomes)
    return total / elapsed


# --- database and broker state --------------------------------------------------------------------------


def _sql(statement: str) -> list[tuple]:
    with psycopg.connect(common.database_url(), autocommit=True) as conn:
        cursor = conn.execute(statement)
        return cursor.fetchall() if cursor.description else []


def _reset_events() -> None:
    # The next phase sends the same event ids again, as new events.
    _sql("TRUNCATE ingest_rawevent, ingest_aggregationbacklog")
    _sql("VACUUM ANALYZE ingest_rawevent")


def _check_stored(kind: str, expected: int) -> None:
    stored = _sql("SELECT count(*) FROM ingest_rawevent")[0][0]
    if stored != expected:
        raise RuntimeError(f"{kind}: {stored} rows stored, {expected} expected")


def _handed_to_pipeline() -> tuple[int, int]:
    """Return the events on the pipeline's pending list (apps/pipeline/pending.py: one JSON record per
    batch, its ids first) and the Celery messages queued to drain it."""
    import redis

    client = redis.Redis.from_url(os.environ["CELERY_BROKER_URL"], socket_timeout=5)
    try:
        records = client.lrange("pipeline:pending", 0, -1)
        return sum(len(json.loads(record)[0]) for record in records), int(client.llen("default"))
    finally:
        client.close()


def _service_key() -> tuple[str, int]:
    raw_key = common.manage("create_service_key", SERVICE, "--stage", STAGE).strip().splitlines()[-1]
    key_id = _sql(
        "SELECT k.id FROM ingest_apikey k JOIN ingest_service s ON s.id = k.service_id "
        f"WHERE s.name = '{SERVICE}' ORDER BY k.id DESC LIMIT 1"
    )[0][0]
    return raw_key, key_id


# --- the benchmark ----------------------------------------------------------------------------------------


def _phase(kind: str, total: int, config: Config, base_job: dict[str, Any]) -> float:
    """Send `total` events one way, check every one was stored (and, over HTTP, handed to the pipeline),
    then empty the table and the broker for the next phase; return events/s."""
    eps = run_clients(
        kind, total=total, clients=config.clients, base_job=base_job, timeout=config.phase_timeout
    )
    _check_stored(kind, total)
    if kind != "copy":
        # Every stored event was handed to the pipeline after its commit, behind one drain message.
        handed, drains = _handed_to_pipeline()
        if (handed, drains) != (total, 1):
            raise RuntimeError(f"{kind}: {handed} events on the pending list and {drains} drain messages")
    log(f"ingest: {kind} {eps:,.0f} events/s")
    _reset_events()
    common.flush_broker()
    return eps


def run(config: Config) -> list[Result]:
    """Measure COPY, batch (plain and gzip) and single-event ingestion; return their figures.

    COPY, batch, single-event and gzip phases alternate for BENCH_ROUNDS rounds and the best of each
    counts, so a burst of load from something else on the machine does not decide a ratio.
    """
    raw_key, key_id = _service_key()
    base_job = {
        "url": "",
        "key": raw_key,
        "dsn": common.database_url(),
        "api_key_id": key_id,
        # What settings.INGEST_NODE is in the server (the same host), so COPY writes the same bytes.
        "ingest_node": os.environ.get("INGEST_NODE") or socket.gethostname(),
        "batch_size": config.batch_size,
        "end": datetime.now(UTC).replace(microsecond=0).isoformat(),
        "seed": 1000,
    }
    best: dict[str, float] = {"copy": 0.0, "batch": 0.0, "otlp": 0.0, "single": 0.0, "gzip": 0.0}
    _reset_events()
    server = Gunicorn(workers=config.gunicorn_workers, env=common.portal_env(INGEST_RATE_LIMIT="1000000/min"))
    try:
        base_job["url"] = server.url
        warm_up = {**base_job, "seed": 9000}
        log("ingest: warming up the gunicorn workers (not counted)")
        _phase("batch", config.clients * 10 * config.batch_size, config, warm_up)
        if config.otlp_events:
            _phase("otlp", config.clients * 2 * config.batch_size, config, warm_up)
        for round_number in range(1, config.rounds + 1):
            log(
                f"ingest: round {round_number}/{config.rounds}: {config.events} events by COPY and by "
                f"POST /api/v1/batch ({config.gunicorn_workers} gunicorn workers, {config.clients} clients), "
                f"{config.otlp_events} by POST /otlp/v1/logs (protobuf), {config.single_events} by POST "
                f"/api/v1/events, {config.gzip_events} gzip'd"
            )
            for kind, total in (
                ("copy", config.events),
                ("batch", config.events),
                ("otlp", config.otlp_events),
                ("single", config.single_events),
                ("gzip", config.gzip_events),
            ):
                if total:
                    best[kind] = max(best[kind], _phase(kind, total, config, base_job))
    finally:
        server.stop()
        common.flush_broker()
    results = [
        Result(
            "ingest_batch_events_per_s", best["batch"], "events/s", best["copy"], "copy_events_per_s", 0.4
        ),
        Result(
            "ingest_batch_vs_single_event",
            best["batch"],
            "events/s",
            best["single"],
            "single_event_events_per_s",
            20,
        ),
    ]
    if config.gzip_events:
        results.insert(
            1,
            Result(
                "ingest_batch_gzip_events_per_s", best["gzip"], "events/s", best["copy"], "copy_events_per_s"
            ),
        )
    if config.otlp_events:
        results.insert(
            1,
            Result(
                "ingest_otlp_events_per_s",
                best["otlp"],
                "events/s",
                best["batch"],
                "ingest_batch_events_per_s",
                0.8,
            ),
        )
    return results
