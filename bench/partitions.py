"""`retention_drop`: retention removing one day of raw events by dropping its partition, beside a DELETE of
the same rows from an unpartitioned copy (the table as it was before migration 0007, same indexes).

The day's rows (BENCH_PARTITION_EVENTS, default 1,000,000) and a tenth as many of the next day, which both
keep, are generated inside PostgreSQL, processed already (retention drops only what the rollups hold).
The figure is the app's own `retention_apply` with the cut-off at the day's end (its checks, the count of
what goes, DETACH and DROP); the baseline is one `DELETE … WHERE timestamp < <the day's end>` on the copy
(one statement: faster than the batched DELETE retention ran before partitions); reported beside it, the
same DELETE followed by the VACUUM that makes the space usable again (no goal).

Both sides start from the same state: before each, PostgreSQL writes its dirty buffers out (`CHECKPOINT`,
when the bench's role may: a superuser or a member of `pg_checkpoint`, PostgreSQL 15; else the run says it
could not, and the side timed second may meet a checkpoint the first one's writes brought on) and the
operating system its dirty pages (`sync`). Without that the drop, timed after the DELETE, paid for the
DELETE's ~300 MB of writes still going to disk. Where the drop's time goes (2 cores, ext4 mounted with
`discard`): the DROP of the detached table's files, ~0.5 s for its 650 MB with indexes (the file system frees
and trims them), then the count of its rows (~0.25 s per million); the checks and the DETACH take
milliseconds. Last, files of the partition's sizes are written, synced and freed outside PostgreSQL
(`retention_file_floor`): the file system's own time, which no drop that frees its files can go below.
"""

import os
import tempfile
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from . import common
from .common import Config, Result, env_int, log
from .workload import EVENT_NAMES, SERVICES

DAY = datetime(2026, 1, 15, tzinfo=UTC)
PLAIN = "bench_rawevent_unpartitioned"

GENERATE = """
INSERT INTO {table} (event_id, service, stage, type, event, timestamp, received_at, user_id, correlation_id,
    level, message, properties, notes, ingest_node, client_timestamp)
SELECT gen_random_uuid(), (%(services)s::text[])[1 + floor(random() * %(n_services)s)::int], 'prod', 'metric',
    (%(events)s::text[])[1 + floor(random() * %(n_events)s)::int], t, t + interval '1 second',
    'user-' || floor(5000 * random())::int, md5(random()::text), '', '',
    jsonb_build_object('duration_ms', round((random() * 500)::numeric, 2), 'region', 'eu'),
    '[]', 'bench-node', t
FROM (SELECT %(start)s::timestamptz + (g + random()) * (interval '1 day' / %(total)s) AS t
      FROM generate_series(0, %(total)s - 1) AS g) AS moments
"""


def _sql(statement: str, params: Any = None) -> list[tuple]:
    with psycopg.connect(common.database_url(), autocommit=True) as conn:
        conn.execute("SET statement_timeout = '1800s'; SET maintenance_work_mem = '512MB'")
        cursor = conn.execute(statement, params)
        return cursor.fetchall() if cursor.description else []


def _generate(table: str, start: datetime, total: int) -> None:
    params = {
        "services": list(SERVICES),
        "n_services": len(SERVICES),
        "events": list(EVENT_NAMES),
        "n_events": len(EVENT_NAMES),
        "start": start,
        "total": total,
    }
    _sql(GENERATE.format(table=table), params)


# The files of one partition: its table, its indexes, its TOAST table and that one's index, every fork.
_FILE_SIZES = """
WITH rels AS (
    SELECT %(name)s::regclass::oid AS oid
    UNION ALL SELECT indexrelid FROM pg_index WHERE indrelid = %(name)s::regclass
    UNION ALL SELECT reltoastrelid FROM pg_class WHERE oid = %(name)s::regclass AND reltoastrelid <> 0
    UNION ALL SELECT x.indexrelid FROM pg_class c JOIN pg_index x ON x.indrelid = c.reltoastrelid
        WHERE c.oid = %(name)s::regclass
)
SELECT size FROM rels, unnest(ARRAY['main', 'fsm', 'vm']) AS fork, pg_relation_size(rels.oid, fork) AS size
WHERE size > 0
"""
SEGMENT = 1024**3  # PostgreSQL splits a relation's file at 1 GB


def _file_floor(sizes: list[int]) -> float:
    """Return the seconds this file system takes to free files of these sizes (written, synced, then
    truncated and unlinked as a DROP TABLE does), in a directory beside the repository: on this machine the
    one file system PostgreSQL's files are on too. What no drop of the partition can go below."""
    chunk = bytes(1024 * 1024)
    with tempfile.TemporaryDirectory(dir=common.REPO / "bench" / "results") as scratch:
        paths = []
        for number, length in enumerate(part for size in sizes for part in _segments(size)):
            path = os.path.join(scratch, str(number))
            with open(path, "wb") as file:
                for _ in range(length // len(chunk)):
                    file.write(chunk)
                file.write(bytes(length % len(chunk)))
                file.flush()
                os.fsync(file.fileno())
            paths.append(path)
        os.sync()
        started = time.perf_counter()
        for path in paths:
            os.truncate(path, 0)
            os.unlink(path)
        return time.perf_counter() - started


def _segments(size: int) -> list[int]:
    return [min(SEGMENT, size - start) for start in range(0, size, SEGMENT)]


def _plain_copy() -> None:
    """Make the unpartitioned table as migration 0007 found it: same columns, keys and indexes."""
    _sql(f"DROP TABLE IF EXISTS {PLAIN}")
    _sql(f"CREATE TABLE {PLAIN} (LIKE ingest_rawevent INCLUDING DEFAULTS)")
    _sql(f"INSERT INTO {PLAIN} SELECT * FROM ingest_rawevent")
    _sql(f"ALTER TABLE {PLAIN} ADD PRIMARY KEY (id)")
    _sql(f"ALTER TABLE {PLAIN} ADD UNIQUE (service, event_id)")
    indexes = _sql(
        "SELECT pg_get_indexdef(x.indexrelid) FROM pg_index x WHERE x.indrelid = 'ingest_rawevent'::regclass "
        "AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = x.indexrelid)"
    )
    for (definition,) in indexes:
        name = definition.split()[2]
        if name == "ingest_rawevent_id":  # the partitioned table's stand-in for the primary key
            continue
        definition = definition.replace(f"INDEX {name} ON", f"INDEX {name}_plain ON", 1)
        # The partitioned table's index reads "ON ONLY public.ingest_rawevent".
        definition = definition.replace(" ON ONLY ", " ON ", 1)
        definition = definition.replace("ON public.ingest_rawevent ", f"ON public.{PLAIN} ", 1)
        if f" ON public.{PLAIN} " not in definition:
            raise RuntimeError(f"partitions: cannot copy the index {definition}")
        _sql(definition)


def run(config: Config) -> list[Result]:
    from django.conf import settings
    from django.db import connection

    from apps.ingest import partitions
    from apps.lifecycle.services import retention_apply
    from apps.traces.search import get_trace_backend

    total = env_int("BENCH_PARTITION_EVENTS", 1_000_000)
    end = DAY + timedelta(days=1)
    log(f"partitions: {total} raw events of {DAY:%Y-%m-%d} and {total // 10} of the next day")
    _sql("TRUNCATE ingest_rawevent, ingest_aggregationbacklog")
    for day in (DAY.date(), end.date()):
        partitions.partition_create(day)
    _generate("ingest_rawevent", DAY, total)
    _generate("ingest_rawevent", end, total // 10)
    detached_bytes = _sql(
        "SELECT pg_total_relation_size(%s::regclass)", (partitions.partition_name(DAY.date()),)
    )[0][0]
    file_sizes = [size for (size,) in _sql(_FILE_SIZES, {"name": partitions.partition_name(DAY.date())})]
    log("partitions: the unpartitioned copy")
    _plain_copy()
    _sql(f"VACUUM ANALYZE ingest_rawevent, {PLAIN}")

    checkpointed = common.settle()
    if not checkpointed:
        log(
            "partitions: this role may not CHECKPOINT (GRANT pg_checkpoint TO it); only the OS's pages synced"
        )
    started = time.perf_counter()
    deleted = _sql(
        f"WITH gone AS (DELETE FROM {PLAIN} WHERE timestamp < %s RETURNING 1) SELECT count(*) FROM gone",
        (end,),
    )[0][0]
    delete_seconds = time.perf_counter() - started
    started = time.perf_counter()
    _sql(f"VACUUM {PLAIN}")  # what makes the deleted rows' space usable again (a drop gives it back)
    vacuum_seconds = time.perf_counter() - started

    # Retention also drops old search indices; the client's first call connects and checks the template,
    # which a DELETE of raw rows never does: done once before the clock starts.
    get_trace_backend().drop_before(DAY - timedelta(days=3650))
    common.settle()
    file_drops: list[float] = []  # the DROP TABLE of what was detached: the file system freeing its files

    def timed_drops(execute, sql, params, many, context):
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            if sql.startswith("DROP TABLE"):
                file_drops.append(time.perf_counter() - started)

    with connection.execute_wrapper(timed_drops):
        started = time.perf_counter()
        report = retention_apply(now=end + timedelta(days=settings.RETENTION_RAW_DAYS))
        drop_seconds = time.perf_counter() - started
    size = _sql("SELECT pg_size_pretty(%s::bigint)", (detached_bytes,))[0][0]

    if report.raw_partitions_dropped != [DAY.date().isoformat()] or report.raw_events_deleted != total:
        raise RuntimeError(f"partitions: retention did not drop the day whole: {report}")
    if deleted != total:
        raise RuntimeError(f"partitions: the DELETE removed {deleted} rows, not {total}")
    left = _sql("SELECT count(*) FROM ingest_rawevent")[0][0]
    if left != total // 10:
        raise RuntimeError(f"partitions: {left} rows left, not the next day's {total // 10}")
    log(
        f"partitions: DELETE {delete_seconds:.2f} s (then VACUUM {vacuum_seconds:.2f} s), "
        f"partition dropped by retention {drop_seconds:.3f} s, of which DROP TABLE of its {size} "
        f"{sum(file_drops):.3f} s"
    )
    _sql(f"DROP TABLE {PLAIN}")
    _sql("TRUNCATE ingest_rawevent, ingest_aggregationbacklog")
    floor_seconds = _file_floor(file_sizes)
    log(
        f"partitions: the file system frees {len(file_sizes)} files of {sum(file_sizes) / 1e6:,.0f} MB "
        f"(the partition's sizes) in {floor_seconds:.3f} s, outside PostgreSQL: a drop's floor here"
    )
    return [
        Result(
            name="retention_drop",
            value=drop_seconds,
            unit="s",
            baseline=delete_seconds,
            baseline_name=(
                f"DELETE … WHERE timestamp < … of the same {total} rows, unpartitioned copy; both timed "
                + ("after CHECKPOINT and sync" if checkpointed else "after sync (no CHECKPOINT right)")
            ),
            goal=10,
            speedup=True,
        ),
        Result(
            name="retention_detach",
            value=drop_seconds - sum(file_drops),
            unit="s",
            baseline=delete_seconds,
            baseline_name=(
                "the same DELETE; retention without the DROP TABLE of the detached day (the rows are gone "
                "from the table at the DETACH)"
            ),
            speedup=True,
        ),
        Result(
            name="retention_file_floor",
            value=floor_seconds,
            unit="s",
            baseline=delete_seconds,
            baseline_name=(
                "the same DELETE; beside it, the file system freeing files of the partition's sizes "
                "(written and synced, then truncated and unlinked, outside PostgreSQL): the best any drop "
                "that frees its files can do here"
            ),
            speedup=True,
        ),
        Result(
            name="retention_drop_vs_delete_vacuum",
            value=drop_seconds,
            unit="s",
            baseline=delete_seconds + vacuum_seconds,
            baseline_name="the same DELETE, then the VACUUM that makes the space usable again",
            speedup=True,
        ),
    ]
