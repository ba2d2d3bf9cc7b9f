"""Run every benchmark, write bench/results/latest.json and the table in bench/README.md.

Timings live here, never in the tests: each figure is measured beside a baseline in the same run on the
same machine and reported as a ratio, so a slow or busy machine moves both and the ratio stays meaningful.
Run it through scripts/bench.sh (`make bench`), which starts the services and sets the isolated database,
Redis DB and index prefix; `scripts/bench.sh ingest` or `scripts/bench.sh pipeline` runs one benchmark and
only prints its table.
"""

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
use the same services meanwhile. It takes about 5 minutes on 2 cores, writes `bench/results/latest.json`
and regenerates this file; the logs of the gunicorn and Celery processes it starts go to
`bench/results/logs/`. `scripts/bench.sh ingest` (or `pipeline`) runs one benchmark and only prints it.
Sizes come from the environment: `BENCH_EVENTS` (events per batch phase, default 100000), `BENCH_BATCH_SIZE`
(100), `BENCH_ROUNDS` (2), `BENCH_SINGLE_EVENTS` (3000), `BENCH_GZIP_EVENTS` (50000, 0 skips),
`BENCH_CLIENTS` (client processes, 4), `BENCH_GUNICORN_WORKERS` (3), `BENCH_PIPELINE_EVENTS` (50000),
`BENCH_PIPELINE_PER_EVENT` (1000), `BENCH_PHASE_TIMEOUT` (300 s).

Every figure stands beside a baseline measured in the same run on the same data; the ratio is figure ÷
baseline and the goal is on the ratio, so the table keeps its meaning on a faster or busier machine.
Timings are never asserted in tests. The ingestion phases alternate for `BENCH_ROUNDS` rounds and the best
of each counts (other work on the machine only ever slows a phase down).

- `ingest_batch_events_per_s`: events/s through `POST /api/v1/batch` (100 events a request, plain JSON
  bodies built beforehand) over loopback HTTP to gunicorn (`BENCH_GUNICORN_WORKERS` sync workers; on 2
  cores a third worker covers the waits on PostgreSQL and Redis, a fourth only adds contention), from
  `BENCH_CLIENTS` client processes with a `requests.Session` each, including the Celery message each
  batch enqueues after its commit. Baseline: the same rows (the columns `events_ingest` writes) COPY'd
  into `ingest_rawevent` by psycopg in the same 100-row batches with one commit each, from as many
  processes: what PostgreSQL alone needs to store them.
- `ingest_batch_gzip_events_per_s`: the same with gzip bodies (reported, no goal).
- `ingest_batch_vs_single_event`: batch events/s ÷ events/s of one-event `POST /api/v1/events`.
- `pipeline_events_per_s`: events/s of the whole pipeline (rollups, then Elasticsearch, in chunks of
  `PIPELINE_CHUNK_SIZE`) with one Celery worker process (prefork, concurrency 1), from `enqueue_events`
  until every event has `aggregated_at` and `indexed_at`. Raw events (20 names, 5 services, 1000 users,
  2-3 numbers each, 2 days, in time order) are COPY'd in unprocessed first. Baseline:
  `elasticsearch.helpers.bulk` of the same documents (`document_for`, built beforehand) into fresh indices
  from one process, 500 a request like the backend.
- `pipeline_vs_rollup_upsert`: the same pipeline figure beside `rollups_apply` of the whole data set's
  deltas (`deltas_for`, computed beforehand) in one transaction: the app's own upsert statements writing
  the final rollup rows once, without claiming, marking, indexing or Celery (reported, no goal).
- `pipeline_vs_bulk_then_upsert`: the same pipeline figure beside both raw jobs done one after the other
  (1 ÷ (1/bulk + 1/upsert) events/s), the work a worker cannot avoid (reported, no goal).
- `pipeline_chunked_vs_per_event`: chunked events/s ÷ events/s when each event is its own task
  (`aggregate_events.delay([id])`, then its own index task), on `BENCH_PIPELINE_PER_EVENT` events.
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


def _fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "**no**"
    if isinstance(value, float):
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
        f"Redis {machine['redis']}; run {machine['date']} in {settings['run_seconds']} s."
    )
    sizes = ", ".join(f"{k}={v}" for k, v in settings.items() if k != "run_seconds")
    results = table(report["results"])
    return f"{README_INTRO}\n## Latest run\n\n{machine_line}\n\nSettings: {sizes}.\n\n{results}\n"


def _write(report: dict[str, Any]) -> None:
    common.RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    target = common.RESULTS_DIR / "latest.json"
    tmp = target.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(report, indent=2) + "\n")
    tmp.replace(target)
    readme_path = common.REPO / "bench" / "README.md"
    readme_path.write_text(readme(report))


def _setup() -> None:
    log(f"recreating database {common.BENCH_DATABASE}, emptying Redis DB 13 and bench-obs-events-*")
    common.recreate_database()
    common.flush_broker()
    common.delete_indices(template=True)
    common.manage("migrate", "--noinput")
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "skywatch_portal.settings")
    django.setup()


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


def main(argv: list[str]) -> int:
    """Run the benchmarks named in argv (default: all) and write the results; return the exit status."""
    common.check_isolation()
    wanted = argv or ["ingest", "pipeline"]
    # A TERM (Ctrl-C's cousin from make or CI) must still run the finally blocks that stop the children.
    signal.signal(signal.SIGTERM, _terminated)
    config = Config()
    started = time.monotonic()
    results: list[Result] = []
    try:
        _setup()
        if "ingest" in wanted:
            from . import ingest

            results += ingest.run(config)
        if "pipeline" in wanted:
            from . import pipeline

            results += pipeline.run(config)
        machine = machine_info()
    finally:
        _teardown()
    report = {
        "machine": machine,
        "settings": {**config.as_dict(), "run_seconds": round(time.monotonic() - started)},
        "results": [r.as_dict() for r in results],
    }
    if set(wanted) >= {"ingest", "pipeline"}:
        _write(report)  # a partial run prints its figures but never replaces the full report
    print(table(report["results"]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
