"""Issue 18: events/s of `archive_events` (raw events to Parquet) and of `replay_archive` (back through
conform and storage), each beside PostgreSQL's COPY of the same rows in the same run.

N raw events (BENCH_ARCHIVE_EVENTS) over 4 past days and 5 services are COPY'd in, counted in the rollups
already (as the old events an archive holds are). Archive: `archive_events --before <the day after> --to
<temporary directory>` in this process (one file per day and service), beside `COPY (SELECT … ORDER BY
service, timestamp, event_id) TO STDOUT (FORMAT binary)` of the same columns, day by day in the same
order, written to files. Replay: the raw table emptied, `replay_archive <directory>` in this process with
BENCH_REPLAY_WORKERS Celery worker processes taking its row groups, until the command returns (every row
group stored), beside `COPY … FROM STDIN (FORMAT binary)` of those files into the emptied table, one
transaction per day. The table's rows are checked equal to the originals (count and checksum of every
archived column) after the COPY and after the replay, so a figure is never of a lossy round trip.
"""

import shutil
import tempfile
import time
from datetime import UTC, datetime, timedelta
from io import StringIO
from pathlib import Path

import psycopg

from . import common
from .common import Config, Result, celery_workers, log
from .pipeline import store_events

DAYS = 4
# Compared after a round trip: what the archive keeps of an event (its row id, pipeline times and attempts
# are the database's own; whether it was counted is kept, not when).
CHECKED = (
    'event_id, service, stage, type, event, "timestamp", received_at, user_id, correlation_id, level, '
    "message, properties, notes, ingest_node, span_id, parent_span_id, duration_ms, "
    "dead_lettered_at IS NULL AND NOT EXISTS (SELECT 1 FROM ingest_aggregationbacklog b"
    " WHERE b.raw_id = ingest_rawevent.id)"
)


def _sql(statement: str, params: tuple = ()) -> list[tuple]:
    with psycopg.connect(common.database_url(), autocommit=True) as conn:
        cursor = conn.execute(statement, params)
        return cursor.fetchall() if cursor.description else []


def checksum() -> tuple[int, str]:
    """Return the raw table's row count and an MD5 over every archived column of every row, in one order."""
    count, digest = _sql(
        f"SELECT count(*), md5(string_agg(md5(ROW({CHECKED})::text), '' ORDER BY service, event_id)) "
        "FROM ingest_rawevent"
    )[0]
    return count, digest or ""


def _check_same(expected: tuple[int, str], what: str) -> None:
    found = checksum()
    if found != expected:
        raise RuntimeError(
            f"{what}: {found[0]} rows (checksum {found[1]}), expected {expected[0]} ({expected[1]})"
        )
    log(f"lifecycle: {what}: {found[0]} rows, same checksum as the originals")


def _copy_columns() -> tuple[str, ...]:
    """The columns a replay stores (the archive's, without the row id and whether it was counted, which says
    whether the event goes in the aggregation backlog: all are counted here), as archive_layout names them."""
    from apps.lifecycle.archive_layout import DATABASE_FIELDS

    return tuple(f'"{name}"' for name in DATABASE_FIELDS[1:] if name != "aggregated")


def archive(target: Path, before: datetime) -> float:
    """Seconds `archive_events --before <before> --to <target>` takes."""
    from django.core.management import call_command

    out = StringIO()
    started = time.monotonic()
    call_command("archive_events", before=f"{before:%Y-%m-%d}", target=str(target), stdout=out)
    elapsed = time.monotonic() - started
    log(f"lifecycle: archive_events said: {out.getvalue().strip().splitlines()[-1]}")
    return elapsed


def copy_out(target: Path, days: list[datetime]) -> float:
    """Seconds to COPY the archived columns of each day, in the archive's order, to a file per day."""
    columns = ", ".join(_copy_columns())
    target.mkdir(parents=True)
    with psycopg.connect(common.database_url()) as conn:
        started = time.monotonic()
        for start in days:
            statement = (
                f'COPY (SELECT {columns} FROM ingest_rawevent WHERE "timestamp" >= %s AND "timestamp" < %s '
                'ORDER BY service, "timestamp", event_id) TO STDOUT (FORMAT binary)'
            )
            params = (start, start + timedelta(days=1))
            with (
                open(target / f"{start:%Y-%m-%d}.copy", "wb") as out,
                conn.cursor().copy(statement, params) as copy,
            ):
                for data in copy:
                    out.write(data)
        return time.monotonic() - started


def copy_in(source: Path) -> float:
    """Seconds to COPY the day files into the (emptied) raw table, one transaction per day."""
    columns = ", ".join(_copy_columns())
    with psycopg.connect(common.database_url()) as conn:
        started = time.monotonic()
        for path in sorted(source.iterdir()):
            with conn.cursor().copy(f"COPY ingest_rawevent ({columns}) FROM STDIN (FORMAT binary)") as copy:
                with open(path, "rb") as data:
                    while block := data.read(1 << 20):
                        copy.write(block)
            conn.commit()
        return time.monotonic() - started


def replay(source: Path, workers: int, timeout: float) -> float:
    """Seconds `replay_archive <source>` takes, `workers` Celery worker processes taking its row groups."""
    from django.core.management import call_command

    processes = celery_workers(workers, env=common.portal_env())
    try:
        out = StringIO()
        started = time.monotonic()
        call_command("replay_archive", str(source), timeout=timeout, stdout=out)
        elapsed = time.monotonic() - started
    finally:
        for process in processes:
            process.stop()
        # The replayed events' pipeline tasks (indexing) queued behind the row groups: not measured here.
        common.flush_broker()
    summary = [line for line in out.getvalue().splitlines() if line.startswith("replayed")]
    log(f"lifecycle: replay_archive said: {summary[-1] if summary else out.getvalue()[-500:]}")
    return elapsed


def empty_raw_table() -> None:
    _sql("TRUNCATE ingest_rawevent, ingest_aggregationbacklog")
    _sql("VACUUM ANALYZE ingest_rawevent")


def run(config: Config) -> list[Result]:
    """Measure archive and replay beside COPY out and COPY in; return their figures."""
    count = config.archive_events
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    end = today - timedelta(days=1)
    days = [end - timedelta(days=n) for n in range(DAYS, 0, -1)]
    empty_raw_table()
    log(f"lifecycle: storing {count} raw events over {DAYS} days (counted in the rollups)")
    # One second short of the last day's end: make_events' last event falls inside the archived days.
    store_events(
        count,
        end=end - timedelta(seconds=1),
        span=timedelta(days=DAYS) - timedelta(seconds=1),
        aggregated=True,
    )
    original = checksum()
    if original[0] != count:
        raise RuntimeError(f"{original[0]} rows stored, {count} wanted")

    workdir = Path(tempfile.mkdtemp(prefix="skywatch-bench-lifecycle-"))
    timings: dict[str, float] = {}
    try:
        archive_dir, copy_dir = workdir / "archive", workdir / "copy"
        log(f"lifecycle: archive_events of {count} events")
        timings["archive"] = archive(archive_dir, end)
        log(f"lifecycle: archive {count / timings['archive']:,.0f} events/s")
        log("lifecycle: COPY TO of the same rows, day by day")
        timings["copy_out"] = copy_out(copy_dir, days)
        log(f"lifecycle: COPY TO {count / timings['copy_out']:,.0f} events/s")
        sizes = {
            name: sum(p.stat().st_size for p in (workdir / name).rglob("*") if p.is_file())
            for name in ("archive", "copy")
        }
        log(
            f"lifecycle: {sizes['archive'] / 1e6:,.1f} MB of Parquet, "
            f"{sizes['copy'] / 1e6:,.1f} MB of COPY binary"
        )

        empty_raw_table()
        log("lifecycle: COPY FROM of the same rows into the emptied raw table")
        timings["copy_in"] = copy_in(copy_dir)
        log(f"lifecycle: COPY FROM {count / timings['copy_in']:,.0f} events/s")
        _check_same(original, "after COPY FROM")

        empty_raw_table()
        log(f"lifecycle: replay_archive into the emptied raw table, {config.replay_workers} worker processes")
        timings["replay"] = replay(archive_dir, config.replay_workers, config.phase_timeout)
        log(f"lifecycle: replay {count / timings['replay']:,.0f} events/s")
        _check_same(original, "after replay_archive")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        empty_raw_table()
        # The replayed events' indexing: done by the workers before they stopped, or still queued. Neither
        # may reach the benchmarks after this one (the traces bench counts its index exactly).
        common.delete_indices(template=False)
        common.flush_broker()

    return [
        Result(
            "archive_events_per_s",
            count / timings["archive"],
            "events/s",
            count / timings["copy_out"],
            "copy_to_events_per_s",
        ),
        Result(
            "replay_events_per_s",
            count / timings["replay"],
            "events/s",
            count / timings["copy_in"],
            "copy_from_events_per_s",
        ),
    ]
