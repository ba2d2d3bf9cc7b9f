"""Run every benchmark, write bench/results/latest.json and the table in bench/README.md.

Timings live here, never in the tests: each figure is measured beside a baseline in the same run on the
same machine and reported as a ratio, so a slow or busy machine moves both and the ratio stays meaningful.
Run it through scripts/bench.sh (`make bench`), which starts the services and sets the isolated database,
Redis DB and index prefix; `scripts/bench.sh ingest` or `scripts/bench.sh pipeline` runs one benchmark and
only prints its table.
"""

import importlib
import json
import os
import platform
import signal
import sys
import time
from datetime import UTC, datetime
from typing import Any

from . import common
from .common import Config, Result, log

README_INTRO = """\
# Benchmarks

`make bench` (`scripts/bench.sh`) starts PostgreSQL, Redis and Elasticsearch with `scripts/services.sh`,
then runs `python -m bench.run` against them on its own database `skywatch_bench` (dropped and re-created
each run), Redis DB 13 and index prefix `bench-obs-events`, so the test suite and a developer's portal can
use the same services meanwhile (two runs at once give each its own with `BENCH_DATABASE`, a name starting
with `skywatch_bench`, `BENCH_REDIS_DB` and `BENCH_INDEX_PREFIX`, starting with `bench-`). It takes about
15 minutes on 2 cores, writes `bench/results/latest.json` and regenerates this file; the logs of the
gunicorn and Celery processes it starts go to `bench/results/logs/`. `scripts/bench.sh ingest` (or
`pipeline`, `lifecycle`, `client`, `traces`, `metrics`, `analytics`, `partitions`, or several) runs only
those and only prints them.
Sizes come from the environment: `BENCH_EVENTS` (events per batch phase, default 100000), `BENCH_BATCH_SIZE`
(100), `BENCH_ROUNDS` (2), `BENCH_SINGLE_EVENTS` (3000), `BENCH_GZIP_EVENTS` (50000, 0 skips),
`BENCH_OTLP_EVENTS` (100000, 0 skips),
`BENCH_CLIENTS` (client processes, 4), `BENCH_GUNICORN_WORKERS` (3), `BENCH_PIPELINE_EVENTS` (50000),
`BENCH_PIPELINE_PER_EVENT` (1000), `BENCH_ARCHIVE_EVENTS` (raw events archived and replayed, 500000),
`BENCH_REPLAY_WORKERS` (Celery worker processes taking the replay's row groups, 2),
`BENCH_PHASE_TIMEOUT` (300 s), `BENCH_CLIENT_CALLS` (track() calls
timed, 100000), `BENCH_CLIENT_EVENTS` (events one Tracker delivers, 50000), `BENCH_TRACE_EVENTS` (indexed
documents, 1000000), `BENCH_TRACE_SAMPLES` (trails timed, 500), `BENCH_TRACE_USERS` (users' requests
timed, 200), `BENCH_METRICS_EVENTS` (raw events, 10000000), `BENCH_METRICS_REQUESTS` (series requests
timed, 100), `BENCH_METRICS_RAW_RUNS` (raw GROUP BYs timed, 5),
`BENCH_ANALYTICS_REQUESTS` (funnel and retention requests timed, 10), `BENCH_ANALYTICS_BASELINE_RUNS`
(Python passes timed, 1; each reads ~3.9M rows, ~55 s), `BENCH_PARTITION_EVENTS` (raw events of the day
retention drops, 1000000).

Every figure stands beside a baseline measured in the same run on the same data, so the table keeps its
meaning on a faster or busier machine. The ratio is figure ÷ baseline, except where the goal says
`(baseline ÷ value)`: there it is a speed-up of a lower-is-better figure. Most goals bound the ratio; a
goal written `value <= …` bounds the figure itself (an absolute latency asked for by the issue), which does
depend on the machine. Timings are never asserted in tests. The ingestion phases alternate for
`BENCH_ROUNDS` rounds and the best of each counts (other work on the machine only ever slows a phase down).
Latencies are nearest-rank percentiles of sequential requests from one client over loopback HTTP to
gunicorn (`BENCH_GUNICORN_WORKERS` sync workers, a new connection per request), after a warm-up.

- `ingest_batch_events_per_s`: events/s through `POST /api/v1/batch` (100 events a request, plain JSON
  bodies built beforehand) over loopback HTTP to gunicorn (`BENCH_GUNICORN_WORKERS` sync workers; on 2
  cores a third worker covers the waits on PostgreSQL and Redis, a fourth only adds contention), from
  `BENCH_CLIENTS` client processes with one pooled urllib3 connection each (`requests`' own per-call
  work ran on the same cores and was counted against the portal), including each batch's hand-off to the
  pipeline after its commit (a record on the pending list in Redis; a drain message when none is
  queued). Baseline: the same rows (the columns `events_ingest` writes) COPY'd
  into `ingest_rawevent` by psycopg in the same 100-row batches with one commit each, from as many
  processes: what PostgreSQL alone needs to store them.
- `ingest_otlp_events_per_s`: the same events as OpenTelemetry log records through `POST /otlp/v1/logs`,
  one binary-protobuf `ExportLogsServiceRequest` of 100 records a request (name as `event_name`, correlation
  ID as the trace id, user as `enduser.id`, properties as attributes), same gunicorn, clients and rounds.
  Baseline: `ingest_batch_events_per_s` of the same run.
- `ingest_batch_gzip_events_per_s`: the same with gzip bodies (reported, no goal).
- `ingest_batch_vs_single_event`: batch events/s ÷ events/s of one-event `POST /api/v1/events`.
- `pipeline_events_per_s`: events/s of the whole pipeline (`drain_pending` tasks taking chunks of
  `PIPELINE_CHUNK_SIZE` off the pending list: one read of the chunk's pending rows, the search bulks (one bulk
  request of 500 documents each) in a thread as the rows are read, while one statement claims the chunk
  (deletes its rows from the aggregation backlog, `SKIP LOCKED`), puts it in the index backlog and upserts its
  counts, numbers and user sketches from what the claim returned, committed before the rest of the bulk is
  waited for, then one DELETE takes the indexed events out of the backlog) with one Celery worker process
  (prefork, concurrency 1), from `announce_events` per 100-event batch (each with its events' least and
  greatest client time, as ingestion hands them on, so every statement reads only their days' partitions)
  until every event is aggregated and none is in the index backlog; best of `BENCH_ROUNDS` rounds, alternating
  with the two-worker phase. Every phase (and each baseline's) starts after a CHECKPOINT and a sync, so none
  pays for the writes of what ran before it. Raw events (20 names, 5 services, 1000 users, 2-3 numbers each, 2
  days, in time order) are COPY'd in unprocessed first. Baseline: `elasticsearch.helpers.bulk` of the same
  documents (`document_for`, built beforehand) into fresh indices from one process, 500 a request like the
  backend, timed in every round beside the pipeline phases (best of the rounds), as is the rollup upsert
  below, so each ratio compares phases under the same load.
- `pipeline_vs_rollup_upsert`: the same pipeline figure beside `rollups_add_sql` over the whole data set
  in one transaction: the app's own set-based rollup statement, without claiming, marking, indexing or
  Celery (reported, no goal).
- `pipeline_vs_bulk_then_upsert`: the same pipeline figure beside both raw jobs done one after the other
  (1 ÷ (1/bulk + 1/upsert) events/s), the work a worker cannot avoid (reported, no goal).
- `pipeline_chunked_vs_per_event`: chunked events/s ÷ events/s when each event is its own task
  (`process_events.delay([id])`), on `BENCH_PIPELINE_PER_EVENT` events.
- `pipeline_2_workers_speedup`: the same pipeline and data with two Celery worker processes (two nodes
  of concurrency 1, as production's `skywatch-worker@1` and `@2`; one node with concurrency 2 would share
  one consumer and its prefetch) ÷ the one-worker figure above; best of `BENCH_ROUNDS` rounds each, the
  phases alternating. No goal: the issue asks only that the speed-up be printed, and on 2 cores it is
  capped well below 2 by the machine, not by the claim: PostgreSQL and Elasticsearch already use most of
  the second core while one worker runs, and adjacent chunks upsert the same hour and day rollup rows, so
  two workers wait on each other's row locks for the length of a transaction (which holds them until its
  chunk's search bulk is back). The bench log says in what share of its polls a backend waited on a lock:
  none with one worker, about 40 % with two in the runs of 2026-12-02.
- `pipeline_2_workers_counted_once`: after every two-worker phase, events counted in the day rollups ÷
  events stored (1.000). The run fails unless every minute bucket holds exactly the GROUP BY of the raw
  events, the hour and day totals equal the events, and the bench indices hold one document per event:
  chunks claimed `FOR UPDATE SKIP LOCKED` by two workers at once never count an event twice (the soak
  checks the same claim by claim, under faults).
- `archive_events_per_s`: events/s of `archive_events --before <date> --to <directory>` (run in the bench
  process: Parquet with zstd, one file per UTC day and service, merged with nothing) over
  `BENCH_ARCHIVE_EVENTS` raw events (the pipeline's generator, 4 past days, 5 services, stored as
  aggregated like the old events an archive takes). Baseline: `COPY (SELECT <the same columns> … ORDER BY
  service, timestamp, event_id) TO STDOUT (FORMAT binary)` day by day through psycopg into a file per
  day: what PostgreSQL needs to hand over the same rows in the same order.
- `replay_events_per_s`: events/s of `replay_archive <directory>` into the emptied raw table, from the
  command's start until it returns (every row group conformed and stored by `BENCH_REPLAY_WORKERS` Celery
  worker processes; the indexing each stored batch queues runs after, not timed). Baseline: `COPY … FROM
  STDIN (FORMAT binary)` of the baseline's files into the emptied table, one transaction per day, same
  indexes. Both round trips are checked before anything is reported: the table's row count and an MD5
  over every archived column of every row (whether it was counted, too) equal the originals'.
  Archive and replay have no goal: the issue gives none; COPY is the floor of what the database itself
  costs, and the ratio shows what the Parquet encoding (archive) and conform plus the idempotent
  insert and Celery (replay) add to it.
- `client_track_us_per_call` (lower is better): what `Tracker.track()` costs its caller, in µs per call,
  over `BENCH_CLIENT_CALLS` calls of realistic events (name, 3-4 properties, user, correlation ID; best of
  at least 5 rounds). The tracker points at a closed loopback port with a queue that holds every call, so
  the figure is the caller's own work (copy the properties, stamp time, correlation ID and event ID,
  enqueue; encoding, size checks and gzip happen in the sender thread) and does not depend on the network:
  the sender thread has tried the port once and sleeps in a back-off longer than the loop before the clock
  starts. Baseline: a bare `queue.Queue.put` of the same property dicts, unpacked from the same rows by
  the same loop, in the same process (goal: track() at most 3× a put).
- `client_tracker_events_per_s`: events/s one Tracker (batch size 100, gzip, in its own process, a queue
  that holds all `BENCH_CLIENT_EVENTS`) delivers to the portal under gunicorn, from the first `track()`
  until `flush()` returned and every event is stored (rows counted). Baseline: one client process POSTing
  the same events as pre-built gzip batches of the same size, one after the other, so the ratio is what
  the Tracker's own work costs (reported, no goal). `client_tracker_vs_plain_json`: the same beside
  pre-built plain JSON batches.
- `trace_api_p95_ms`: p95 of `GET /api/v1/traces/<cid>` (personal token of a support user; each call also
  writes its audit entry, and the run fails unless there is one per call) for `BENCH_TRACE_SAMPLES` random
  correlation IDs, over `BENCH_TRACE_EVENTS` documents. A generator in two processes writes them with
  `streaming_bulk` into the daily indices made by the app's own `index_template_ensure()`: ~10 events per
  correlation ID (1-30) across 1-4 of 5 services, 20,000 users (some much busier), 7 days, a third log lines
  with messages; no refresh and an asynchronous translog during the load, then the template's settings, a
  refresh and a force-merge to one segment per daily index. Only Elasticsearch holds them (the API reads
  nothing else). Baseline: the same `term` query on `correlation_id` with the trail's sort and size, sent by
  the Python client; the API and the raw query alternate ID by ID after a warm-up on other IDs.
  `trace_api_p95_ms_absolute` is the same figure against the issue's absolute bound; `trace_api_p50_ms` the
  medians (reported). `trace_api_in_worker_p95_ms` and `_p50_ms`: the same calls as gunicorn's worker timed
  them (its access log's `%(D)s`, from the parsed request to the response written; no goal): the portal's
  own time, the search included; the rest of `trace_api_p95_ms` is the HTTP hop (the client's urllib3,
  loopback, gunicorn's accept and parsing). The access log costs the API side one write per call.
- `user_requests_api_p95_ms`: p95 of `GET /api/v1/users/<user>/requests` (first page) for
  `BENCH_TRACE_USERS` users, beside the two queries the Elasticsearch backend sends for it (collapse with
  cardinality, then the page's summaries) sent directly (reported, no goal).
- `metrics_series_p95_ms`: p95 of `GET /api/v1/metrics/series` for the busiest event, `measure=count`,
  30 days hourly, `breakdown=service` (5 series × 720 points; product user's personal token) over
  `BENCH_METRICS_EVENTS` raw events (20 names, 5 services, 5,000 users, two numbers and a string in
  properties, 30 days), beside the same answer by `GROUP BY date_trunc('hour', timestamp), service` on the
  raw events through psycopg; both answers are checked equal point by point first. The ratio is the
  speed-up, GROUP BY ÷ API. The raw rows are generated inside PostgreSQL (INSERT … SELECT over
  generate_series, secondary indexes rebuilt afterwards). Bench-only shortcut: the hour and day rollups are
  built from the raw table by set-based SQL instead of the pipeline (hours at its rate), the raw events
  stored as aggregated and indexed, and minute rollups are not built (nothing here reads them); user
  sketches (postgresql-hll) are built for hours from the raw events and for days as unions of the hours.
  One hour's SQL-built rows are checked against `deltas_for` on that hour's events (sketches exact there:
  a few hundred users each), and one day's against a GROUP BY on that day (users within 2 %). A GROUP BY
  over 10M rows takes seconds, so it runs
  `BENCH_METRICS_RAW_RUNS` times (its p95 of 5 is their maximum) against `BENCH_METRICS_REQUESTS` API calls.
- `metrics_series_unique_users_p95_ms`: the same query with `measure=unique_users` (the union of the hourly
  HyperLogLog sketches per service and hour) beside the exact `count(DISTINCT user_id)` on the raw events,
  each `BENCH_METRICS_RAW_RUNS` times; goal: at least 20× faster. `metrics_series_unique_users_error_pct`:
  the largest relative error of any of its points against the exact answer, in %, beside the sketches'
  standard error (1.04/√16384 = 0.81 %); goal: at most 2 %.
- `funnel_p95_ms`: p95 of `GET /api/v1/metrics/funnel` over 30 days of the metrics benchmark's raw events
  (left in place by the metrics benchmark when both run, else generated the same way without rollups), 3
  steps (the three busiest event names), a 1-hour window: one SQL statement (each step's rows read from the
  index `rawevent_event_ts_user` alone, a hash join of the users who reached the previous step with them and
  a MIN per user, then counts and `percentile_cont` medians; no JIT, 64 MB of work memory).
  Baseline: the same funnel by a per-user Python pass over the rows (`user_id, event, timestamp`, ordered)
  fetched from PostgreSQL through psycopg; both answers (counts and medians per step) are checked equal first.
  `BENCH_ANALYTICS_REQUESTS` API calls (10) and `BENCH_ANALYTICS_BASELINE_RUNS` Python passes (1: the
  nearest-rank p95 of two passes is the slower one, which only flattered the ratio, for another ~55 s); the
  ratio is the speed-up, Python ÷ API; goal ≥ 10×.
- `retention_p95_ms`: the same for `GET /api/v1/metrics/retention` (daily cohorts by first
  `login_succeeded`, returning with `search_made`, 30 days) beside the per-user Python pass; goal ≥ 10×.
- `retention_drop` (lower is better, `partitions`): `retention_apply` removing one day of
  `BENCH_PARTITION_EVENTS` processed raw events by detaching and dropping its partition (its checks and
  the count of what goes included), beside `DELETE … WHERE timestamp < <the day's end>` of the same rows in
  an unpartitioned copy with the same indexes (the table before migration `ingest.0007`); a tenth as many
  rows of the next day stay in both. `retention_drop_vs_delete_vacuum`: the same beside that DELETE plus
  the VACUUM that makes the space usable again (reported, no goal). `retention_detach`: retention without
  the DROP TABLE of the detached day (its time is logged, with the day's size: the file system freeing the
  files, ~0.3–0.7 s for ~0.9 GB on this machine's ext4), beside the DELETE (reported, no goal).
  `retention_file_floor`: the file system alone freeing files of the partition's sizes (written and synced,
  then truncated and unlinked, as DROP TABLE does, outside PostgreSQL), beside the DELETE: the best ratio
  any drop that frees its files in the step could reach here (reported, no goal).
"""


def machine_info() -> dict[str, Any]:
    """Describe the machine and the versions of the services the figures were measured on."""
    import psycopg
    import redis
    from elasticsearch import Elasticsearch

    with psycopg.connect(common.database_url(), autocommit=True) as conn:
        postgres = conn.execute("SHOW server_version").fetchone()[0]
    es = Elasticsearch(os.environ["ELASTICSEARCH_URL"], request_timeout=10)
    try:
        # The integ-test distribution answers GET / with 405, so ask the node itself.
        nodes = es.nodes.info(node_id="_local", metric="_none", filter_path="nodes.*.version")["nodes"]
        elasticsearch = next(iter(nodes.values()))["version"]
    finally:
        es.close()
    broker = redis.Redis.from_url(os.environ["CELERY_BROKER_URL"], socket_timeout=5)
    try:
        redis_version = broker.info("server")["redis_version"]
    finally:
        broker.close()
    cpu_model = ""
    memory_gb = 0.0
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            cpu_model = next(
                (ln.split(":", 1)[1].strip() for ln in cpuinfo if ln.startswith("model name")), ""
            )
        with open("/proc/meminfo") as meminfo:
            kb = next(int(ln.split()[1]) for ln in meminfo if ln.startswith("MemTotal:"))
            memory_gb = round(kb / 1024 / 1024, 1)
    except (OSError, StopIteration, ValueError):
        pass
    return {
        "cores": os.cpu_count(),
        "memory_gb": memory_gb,
        "python": platform.python_version(),
        "postgres": postgres,
        "elasticsearch": elasticsearch,
        "redis": redis_version,
        "cpu_model": cpu_model or platform.processor(),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def _fmt(value: Any, digits: int | None = None) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "**no**"
    if isinstance(value, float):
        if digits is None:
            digits = 2 if abs(value) < 10 else 1
        return f"{value:,.{digits}f}" if abs(value) < 100 else f"{value:,.0f}"
    return str(value)


def table(results: list[dict[str, Any]]) -> str:
    """Return the Markdown table of results: name, value, baseline, ratio, goal, met."""
    lines = ["| name | value | baseline | ratio | goal | met |", "|---|---:|---:|---:|---|---|"]
    for r in results:
        value = f"{_fmt(r['value'])} {r['unit']}"
        baseline = f"{_fmt(r['baseline'])} ({r['baseline_name']})"
        ratio, goal, met = _fmt(r["ratio"], 3), _fmt(r["goal"]), _fmt(r["met"])
        lines.append(f"| {r['name']} | {value} | {baseline} | {ratio} | {goal} | {met} |")
    return "\n".join(lines)


def readme(report: dict[str, Any]) -> str:
    """Return bench/README.md: what the figures mean, then the machine and the table of this run."""
    machine = report["machine"]
    settings = report["settings"]
    machine_line = (
        f"{machine['cores']} cores ({machine['cpu_model']}), {machine['memory_gb']} GB, Python "
        f"{machine['python']}, PostgreSQL {machine['postgres']}, Elasticsearch {machine['elasticsearch']}, "
        f"Redis {machine['redis']}; run {machine['date']} in {settings['run_seconds']} s"
        f"{_seconds_by_benchmark(report)}."
    )
    sizes = ", ".join(f"{k}={v}" for k, v in settings.items() if k != "run_seconds")
    results = table(report["results"])
    return f"{README_INTRO}\n## Latest run\n\n{machine_line}\n\nSettings: {sizes}.\n\n{results}\n"


def _seconds_by_benchmark(report: dict[str, Any]) -> str:
    seconds = report.get("benchmark_seconds") or {}
    return f" ({', '.join(f'{name} {s} s' for name, s in seconds.items())})" if seconds else ""


def _write(report: dict[str, Any]) -> None:
    common.RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    target = common.RESULTS_DIR / "latest.json"
    tmp = target.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(report, indent=2) + "\n")
    tmp.replace(target)
    readme_path = common.REPO / "bench" / "README.md"
    readme_path.write_text(readme(report))


def _setup() -> None:
    log(
        f"recreating database {common.BENCH_DATABASE}, emptying Redis DB {common.BENCH_REDIS_DB} and "
        f"{common.BENCH_INDEX_PREFIX}-*"
    )
    common.recreate_database()
    common.flush_broker()
    common.delete_indices(template=True)
    common.manage("migrate", "--noinput")
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "skywatch_portal.settings")
    django.setup()
    _partitions_made()


def _partitions_made() -> None:
    """Make the raw-event day partitions a portal that has run for a while has (beat makes them a week
    ahead, and keeps them for the retention period): the benchmarks' events, up to 40 days old, go to their
    own day's partition, not the default one."""
    from datetime import UTC, datetime, timedelta

    from apps.ingest import partitions

    if not partitions.is_partitioned():
        return
    today = datetime.now(UTC).date()
    for offset in range(-40, 8):
        partitions.partition_create(today + timedelta(days=offset))


def _teardown() -> None:
    common.stop_all_children()
    for step in (common.flush_broker, lambda: common.delete_indices(template=True)):
        try:
            step()
        except Exception as exc:  # best effort: the next run starts by cleaning up anyway
            log(f"cleanup step failed: {exc}")


def _terminated(signum: int, frame: Any) -> None:
    log("terminated: stopping the processes this run started")
    sys.exit(128 + signum)


BENCHMARKS = ("ingest", "pipeline", "lifecycle", "client", "traces", "metrics", "analytics", "partitions")


def main(argv: list[str]) -> int:
    """Run the benchmarks named in argv (default: all) and write the results; return the exit status."""
    unknown = sorted(set(argv) - set(BENCHMARKS))
    if unknown:
        raise SystemExit(
            f"bench: unknown benchmark {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}"
        )
    common.check_isolation()
    wanted = argv or list(BENCHMARKS)
    # A TERM (Ctrl-C's cousin from make or CI) must still run the finally blocks that stop the children.
    signal.signal(signal.SIGTERM, _terminated)
    config = Config(share_raw_events={"metrics", "analytics"} <= set(wanted))
    started = time.monotonic()
    results: list[Result] = []
    # Where the run's time goes, benchmark by benchmark (the setup before them is in run_seconds only).
    seconds: dict[str, int] = {}
    try:
        _setup()
        for name in BENCHMARKS:
            if name in wanted:
                module = importlib.import_module(f"bench.{name}")
                began = time.monotonic()
                results += module.run(config)
                seconds[name] = round(time.monotonic() - began)
        machine = machine_info()
    finally:
        _teardown()
    report = {
        "machine": machine,
        "settings": {**config.as_dict(), "run_seconds": round(time.monotonic() - started)},
        "benchmark_seconds": seconds,
        "results": [r.as_dict() for r in results],
    }
    if set(wanted) >= set(BENCHMARKS):
        _write(report)  # a partial run prints its figures but never replaces the full report
    print(table(report["results"]))
    print(f"seconds{_seconds_by_benchmark(report)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
