"""The faults, one function each: what breaks, how the soak makes sure it broke, and when it ended.

Every function returns a FaultRecord with its start and end on the run's clock and the evidence (the
killed worker's chunk, the outage's length) that goes into the report.
"""

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import redis

from .instances import InstanceSet
from .processes import WorkerPool, worker_app_name


@dataclass
class FaultRecord:
    kind: str
    started: float  # seconds since the run started
    ended: float
    detail: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "started_s": round(self.started, 1),
            "ended_s": round(self.ended, 1),
            **self.detail,
        }


class FaultError(RuntimeError):
    """A fault could not be brought about as intended (the soak would prove nothing)."""


@dataclass
class FaultContext:
    instances: InstanceSet
    workers: WorkerPool
    database: str  # the soak's database name on its cluster
    tables: dict[str, str]  # "raw", "rollup_count" -> table names (from the models, never from input)
    clock: Callable[[], float]  # seconds since the run started
    say: Callable[[str], None]
    portal_log: Path  # gunicorn's log: the portal says there when it could not enqueue


def kill_worker_mid_chunk(ctx: FaultContext, *, service: str, event: str, timeout: float = 60) -> FaultRecord:
    """SIGKILL a Celery worker while it is inside a chunk's transaction, then start a replacement.

    To be sure the kill lands mid-chunk, the soak holds a lock on the day rollup row of (service, event):
    the next worker to aggregate a chunk with such an event has claimed its events (SELECT ... FOR UPDATE)
    and blocks inside the transaction on its rollup upsert. pg_stat_activity shows which worker (by
    application_name); that worker is killed while it waits, and only then is the lock released.
    """
    started = ctx.clock()
    conninfo = ctx.instances.conninfo(ctx.database)
    with psycopg.connect(conninfo, autocommit=True) as watcher, psycopg.connect(conninfo) as blocker:
        _wait(
            lambda: _rollup_row_exists(watcher, ctx.tables["rollup_count"], service, event),
            timeout,
            f"a day rollup row for {service}/{event}",
        )
        blocker.execute(
            f"SELECT 1 FROM {ctx.tables['rollup_count']}"
            " WHERE granularity = 'day' AND service = %s AND event = %s FOR UPDATE",
            (service, event),
        )
        waiting = _wait(lambda: _blocked_worker(watcher), timeout, "a worker blocked mid-chunk")
        index = int(waiting["application_name"].rsplit("-", 1)[1])
        claimed = watcher.execute(
            # The claim deletes the chunk's backlog rows: others still see them, with its xid as xmax.
            f"SELECT raw_id FROM {ctx.tables['aggregation_backlog']} WHERE xmax::text = %s",
            (waiting["backend_xid"],),
        ).fetchall()
        ctx.say(
            f"worker {index} is inside a chunk ({len(claimed)} events claimed, waiting in "
            f"{waiting['query'][:40]!r}); SIGKILL"
        )
        ctx.workers.kill(index)
        blocker.rollback()  # the dead worker's backend now finds its client gone and rolls back
        _wait(lambda: not _backend_alive(watcher, waiting["pid"]), 30, "the killed worker's backend to end")
        claimed_ids = [row[0] for row in claimed]
        still_unaggregated = watcher.execute(
            f"SELECT count(*) FROM {ctx.tables['aggregation_backlog']} WHERE raw_id = ANY(%s)",
            (claimed_ids,),
        ).fetchone()[0]
    replacement = ctx.workers.start()
    return FaultRecord(
        "worker SIGKILL mid-chunk",
        started,
        ctx.clock(),
        {
            "worker": worker_app_name(index),
            "replacement": worker_app_name(replacement),
            "chunk_events_claimed": len(claimed_ids),
            "chunk_unaggregated_after_kill": still_unaggregated,
            "blocked_in": waiting["query"][:34],
        },
    )


def restart_redis(ctx: FaultContext, *, outage: float) -> FaultRecord:
    """Stop Redis (no persistence: every queued and unacknowledged task is lost), wait, start it."""
    return _restart(ctx, "Redis restart", "redis", outage, "batches_not_enqueued", _ENQUEUE_FAILED)


def flush_redis(
    ctx: FaultContext, *, services: list[str], backlog: int = 5, timeout: float = 20
) -> FaultRecord:
    """FLUSHALL on the broker with a backlog queued: the queued work vanishes while every process stays
    connected.

    Workers keep the queue empty at this rate, so a flush would lose nothing. They are held back first,
    by a lock on the day rollup rows of every service's log lines (every chunk has some), until at least
    `backlog` items wait (Celery messages, and stored batches on the pipeline's pending list); then
    FLUSHALL, then the lock goes.
    """
    started = ctx.clock()
    client = redis.Redis(host="127.0.0.1", port=ctx.instances.redis_port, socket_timeout=5)
    with psycopg.connect(ctx.instances.conninfo(ctx.database)) as blocker:
        blocker.execute(
            f"SELECT 1 FROM {ctx.tables['rollup_count']}"
            " WHERE granularity = 'day' AND event = 'log' AND service = ANY(%s) FOR UPDATE",
            (services,),
        )
        queued = _wait(lambda: _backlog(client, backlog), timeout, f"{backlog} tasks queued")
        client.flushall()
        blocker.rollback()
    client.close()
    return FaultRecord("Redis FLUSHALL", started, ctx.clock(), {"tasks_queued_then_lost": queued})


class ElasticsearchOutage:
    """Stop Elasticsearch for `outage` seconds, then start it again; indexing must catch up.

    `begin()` returns once the start is under way and `end()` once the node answers, so the short soak
    can go on with the next fault while the JVM starts (15-40 s on a busy machine).
    """

    def __init__(self, ctx: FaultContext, *, outage: float) -> None:
        self._ctx = ctx
        self._outage = outage
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def begin(self) -> None:
        self._started = self._ctx.clock()
        self._ctx.instances.run("stop-es")
        self._down_at = self._ctx.clock()
        time.sleep(self._outage)
        self._thread = threading.Thread(target=self._start, name="soak-es-start", daemon=True)
        self._thread.start()

    def end(self) -> FaultRecord:
        self._thread.join()
        if self._error is not None:
            raise FaultError("Elasticsearch did not come back") from self._error
        with psycopg.connect(self._ctx.instances.conninfo(self._ctx.database), autocommit=True) as conn:
            backlog = conn.execute(
                # Events awaiting their index: those awaiting aggregation (indexed with it) and the backlog.
                f"SELECT (SELECT count(*) FROM {self._ctx.tables['raw']} r"
                f" JOIN {self._ctx.tables['aggregation_backlog']} b ON b.raw_id = r.id"
                " WHERE r.index_rejected_at IS NULL)"
                f" + (SELECT count(*) FROM {self._ctx.tables['index_backlog']})"
            ).fetchone()[0]
        detail = {
            "down_s": round(self._up_at - self._down_at, 1),
            "stopped_before_start_s": self._outage,
            "unindexed_when_back": backlog,
        }
        return FaultRecord("Elasticsearch stopped", self._started, self._up_at, detail)

    def _start(self) -> None:
        try:
            self._ctx.instances.run("start-es")
        except BaseException as exc:  # raised in end(), in the runner's thread
            self._error = exc
        self._up_at = self._ctx.clock()


def restart_postgresql(ctx: FaultContext, *, outage: float) -> FaultRecord:
    """Stop PostgreSQL (fast: open transactions are cut), wait, start it."""
    return _restart(ctx, "PostgreSQL restart", "pg", outage, "answered_503", _DATABASE_DOWN)


# -- helpers -------------------------------------------------------------------------------------


def _restart(
    ctx: FaultContext, kind: str, service: str, outage: float, counted: str, log_line: bytes
) -> FaultRecord:
    """Stop a service with services.sh, hold it down for `outage` seconds (the fault itself), start it;
    count the portal's log lines that show the outage (`counted` in the record)."""
    started = ctx.clock()
    before = _count_in_log(ctx.portal_log, log_line)
    ctx.instances.run(f"stop-{service}")
    time.sleep(outage)
    ctx.instances.run(f"start-{service}")
    detail = {
        "down_s": round(ctx.clock() - started, 1),
        counted: _count_in_log(ctx.portal_log, log_line) - before,
    }
    return FaultRecord(kind, started, ctx.clock(), detail)


# What the portal logs when a batch is stored but not enqueued, and when it answers 503 for the database.
_ENQUEUE_FAILED = b"could not hand"
_DATABASE_DOWN = b"database unavailable"


# apps/pipeline/pending.py's list of stored batches waiting for a drain task.
_PENDING_LIST = "pipeline:pending"


def _backlog(client: redis.Redis, at_least: int) -> int:
    """Return the number of tasks waiting in the `default` queue plus the batches waiting on the pending
    list once there are `at_least`, else 0."""
    queued = client.llen("default") + client.llen(_PENDING_LIST)
    return queued if queued >= at_least else 0


def _count_in_log(path: Path, needle: bytes) -> int:
    try:
        return path.read_bytes().count(needle)
    except FileNotFoundError:
        return 0


def _wait(probe: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result:
            return result
        if time.monotonic() > deadline:
            raise FaultError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


def _rollup_row_exists(conn: psycopg.Connection, table: str, service: str, event: str) -> bool:
    row = conn.execute(
        f"SELECT 1 FROM {table} WHERE granularity = 'day' AND service = %s AND event = %s",
        (service, event),
    ).fetchone()
    return row is not None


def _blocked_worker(conn: psycopg.Connection) -> dict[str, Any] | None:
    row = conn.execute(
        "SELECT pid, application_name, backend_xid::text, query FROM pg_stat_activity"
        " WHERE application_name LIKE 'soak-worker-%' AND wait_event_type = 'Lock'"
        " AND backend_xid IS NOT NULL ORDER BY xact_start LIMIT 1"
    ).fetchone()
    if row is None:
        return None
    return dict(zip(("pid", "application_name", "backend_xid", "query"), row, strict=True))


def _backend_alive(conn: psycopg.Connection, pid: int) -> bool:
    return conn.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone() is not None
