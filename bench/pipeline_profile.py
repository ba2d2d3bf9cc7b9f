"""Where a pipeline chunk's time goes: `process_chunk` over the bench's raw events in this one process (no
Celery), each step timed by wrapping the function that does it. Prints each step's share of the wall time
(with the CPU its PostgreSQL backend used, for the steps on this process's connection), then the CPU that
Elasticsearch, PostgreSQL and this process used per event: on 2 cores that the three share, it says which
of them the time goes to, which the wall time cannot.

Not part of `make bench` (its figures are shares, not rates beside a baseline). Run it after
`scripts/bench.sh pipeline` with the same environment, which leaves 50,000 unprocessed raw events in the
bench database: `python -m bench.pipeline_profile`. The Celery overhead is the bench's seconds per event
minus this run's.
"""

import os
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "skywatch_portal.settings")
django.setup()

from django.conf import settings  # noqa: E402
from django.db import connection  # noqa: E402

from apps.pipeline import services  # noqa: E402
from apps.traces.search import elasticsearch as es_backend  # noqa: E402

from . import common  # noqa: E402
from . import pipeline as bench_pipeline  # noqa: E402

# (object, attribute, step): the steps of process_chunk; those missing in this version are skipped.
STEPS = (
    (services, "rows_to_index", "fetch rows to index"),
    (services, "pending_events", "fetch pending rows"),
    (services, "_claim", "claim: mark aggregated (UPDATE)"),
    (services, "rollups_add_sql", "rollup SQL"),
    (services, "events_claim_into_rollups", "claim, backlog and rollups (one statement)"),
    (services, "index_backlog_add", "into the index backlog (INSERT)"),
    (services, "_mark_indexed", "mark indexed (UPDATE)"),
    (services, "index_backlog_forget", "out of the index backlog (DELETE)"),
    (services._Indexing, "outcome", "wait for the bulk"),
    (services, "_record_index_outcome", "record index outcome"),
    (es_backend, "document_for", "build documents (thread)"),
    (es_backend.ElasticsearchTraceBackend, "index_events", "search bulk in all (thread)"),
)


def _timed(
    function: Callable, step: str, timers: dict[str, float], backend_cpu: dict[str, float]
) -> Callable:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started, cpu = time.perf_counter(), _backend_cpu()
        try:
            return function(*args, **kwargs)
        finally:
            timers[step] += time.perf_counter() - started
            backend_cpu[step] += _backend_cpu() - cpu

    return wrapper


def _backend_cpu() -> float:
    """CPU seconds used so far by this process's PostgreSQL backend (0 before it connects)."""
    if connection.connection is None:
        return 0.0
    return _process_cpu(connection.connection.info.backend_pid)


def _process_cpu(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:  # gone meanwhile
        return 0.0
    return sum(int(value) for value in fields[11:13]) / os.sysconf("SC_CLK_TCK")


def _cpu_seconds(command: str) -> float:
    """CPU seconds (user and system) used so far by the live processes whose command name is `command`."""
    total = 0.0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/comm") as comm:
                name = comm.read().strip()
        except OSError:
            continue
        if name == command:
            total += _process_cpu(int(pid))
    return total


def main() -> None:
    common.check_isolation()
    ids = [row[0] for row in bench_pipeline._sql("SELECT id FROM ingest_rawevent ORDER BY id")]
    if not ids:
        ids = bench_pipeline.store_events(50_000)
    bench_pipeline.reset()
    timers: dict[str, float] = defaultdict(float)
    backend_cpu: dict[str, float] = defaultdict(float)
    for owner, name, step in STEPS:
        if hasattr(owner, name):
            setattr(owner, name, _timed(getattr(owner, name), step, timers, backend_cpu))
    connection.ensure_connection()
    connection.commit = _timed(connection.commit, "commit", timers, backend_cpu)
    size = settings.PIPELINE_CHUNK_SIZE
    # Each chunk with its events' client times, as drains pass them on (without them, the first read looks
    # in every partition).
    work = bench_pipeline.with_client_times(ids, size)
    cpu_before = {name: _cpu_seconds(name) for name in ("java", "postgres")}
    own_before = time.process_time()
    started = time.perf_counter()
    for chunk, bounds in work:
        services.process_chunk(event_ids=chunk, client_times=bounds)
    wall = time.perf_counter() - started
    cpu = {name: _cpu_seconds(name) - cpu_before[name] for name in cpu_before}
    cpu["this process"] = time.process_time() - own_before
    pending = bench_pipeline._sql(
        "SELECT (SELECT count(*) FROM ingest_aggregationbacklog) + (SELECT count(*) FROM ingest_indexbacklog)"
    )[0][0]
    print(f"{len(ids)} events in chunks of {size}: {wall:.2f} s, {len(ids) / wall:,.0f} events/s in process")
    print(f"{pending} events left unprocessed")
    for step, seconds in timers.items():
        cpu_used = f", its PostgreSQL backend {backend_cpu[step]:5.2f} s CPU" if backend_cpu[step] else ""
        print(f"  {step:32} {seconds:7.2f} s  {seconds / wall:6.1%} of the wall time{cpu_used}")
    for name, seconds in cpu.items():
        print(f"  CPU of {name:27} {seconds:7.2f} s  {seconds / len(ids) * 1e6:6.1f} µs per event")
    bench_pipeline.reset()


if __name__ == "__main__":
    main()
