"""The pipeline's work: claim raw events, add them to the rollups exactly once, make them searchable.

Rollups and indexing are tracked apart (the events still to aggregate, `AggregationBacklog`; the index
backlog of events aggregated before their search bulk came back, `IndexBacklog`), so a down search
cluster never blocks the rollups and re-indexing never touches a count. `process_chunk` does both at once:
the search bulk runs in a thread while the rollups are written and committed.
"""

import functools
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

import msgspec
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import DatabaseError, InterfaceError, OperationalError, connection, transaction
from django.db.models import Case, F, QuerySet, Value, When
from django.db.models.functions import Left, TruncDate
from django.utils import timezone

from apps.common.dbtypes import id_array
from apps.common.errors import BackendUnavailable
from apps.ingest.models import (
    AWAITING_AGGREGATION,
    AWAITING_INDEX,
    CLIENT_TIME_COLUMN,
    WITHIN_CLIENT_TIMES_SQL,
    AggregationBacklog,
    AggregationMark,
    ClientTimeBounds,
    IndexBacklog,
    RawEvent,
    client_time_bounds,
    condition_sql,
    within_client_times,
)
from apps.ingest.services import backlog_add
from apps.metrics.services import (
    ROLLUP_CHUNK_COLUMNS,
    deltas_for,
    rollup_params,
    rollups_apply,
    rollups_statement,
)
from apps.traces.search import get_trace_backend
from apps.traces.search.base import IndexOutcome

logger = logging.getLogger(__name__)

_AGGREGATE_FIELDS = ("id", "timestamp", "event", "service", "stage", "user_id", "properties")
_INDEX_FIELDS = (
    "id",
    "event_id",
    "type",
    "event",
    "service",
    "stage",
    "level",
    "user_id",
    "correlation_id",
    "message",
    "timestamp",
    "received_at",
    "properties",
    "notes",
    "ingest_node",
    "span_id",
    "parent_span_id",
    "duration_ms",
)
# One thread per worker process sends search bulks; it uses no database connection.
BULK_SIZE = 500
_indexer: tuple[int, ThreadPoolExecutor] | None = None


def _indexer_pool() -> ThreadPoolExecutor:
    """Return this process's indexer thread (a forked child makes its own: threads do not survive fork)."""
    global _indexer
    if _indexer is None or _indexer[0] != os.getpid():
        _indexer = (os.getpid(), ThreadPoolExecutor(max_workers=1, thread_name_prefix="pipeline-index"))
    return _indexer[1]


# A PostgreSQL advisory lock that every chunk holds, shared, from the read of its rows until its search
# bulks are back; a purge takes it whole once its deletes are committed (`indexing_wait`), so that its last
# pass over the index comes after any bulk that still carried the rows it deleted.
INDEXING_LOCK = 0x5357_494E_4458  # "SWINDX"
# How long a purge waits for the bulks that are out (a search cluster down holds them up to its timeouts).
INDEXING_WAIT = "60s"


@contextmanager
def _indexing_guard() -> Iterator[None]:
    """Hold the indexing lock, shared, for the block (PostgreSQL; elsewhere nothing runs beside a chunk)."""
    if connection.vendor != "postgresql":
        yield
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_lock_shared(%s)", [INDEXING_LOCK])
    try:
        yield
    finally:
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock_shared(%s)", [INDEXING_LOCK])
        except DatabaseError:  # connection lost: the session's lock went with it
            logger.warning("could not release the indexing lock", exc_info=True)


def indexing_wait() -> None:
    """Return once every chunk that read its rows before this call has its search bulks back, or after
    INDEXING_WAIT without that (logged)."""
    if connection.vendor != "postgresql":
        return
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(f"SET LOCAL lock_timeout = '{INDEXING_WAIT}'")
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [INDEXING_LOCK])
    except OperationalError as error:  # the lock timeout
        logger.warning("gave up waiting for the search bulks that are out: %s", error)


@dataclass
class ChunkOutcome:
    done: int = 0
    skipped: int = 0
    failed: int = 0
    dead_lettered: int = 0


@dataclass
class ProcessOutcome:
    aggregated: ChunkOutcome = field(default_factory=ChunkOutcome)
    indexed: ChunkOutcome = field(default_factory=ChunkOutcome)
    # Set when the search backend could not be reached: the chunk's indexing is to be retried.
    index_unavailable: str = ""


class IndexRow(NamedTuple("_IndexValues", [(name, Any) for name in _INDEX_FIELDS])):
    """What the search backends read of an event (cheaper than a model instance, same attribute names): a
    tuple, made from a row's values in _INDEX_FIELDS order with `IndexRow._make(values)`."""

    __slots__ = ()

    @property
    def pk(self) -> int:
        return self.id


# The least and greatest client time of a chunk's events: every statement that touches raw events by id
# also bounds them (WITHIN_CLIENT_TIMES_SQL), so that PostgreSQL reads only the partitions of those days.
Bounds = ClientTimeBounds


@dataclass
class PendingEvents:
    """A chunk's events with work left: those still to index, and the client times of all of them (None
    when no event of the chunk has work left)."""

    to_index: list[IndexRow]
    bounds: Bounds | None


def pending_events(
    event_ids: list[int],
    *,
    aggregation: bool = True,
    client_times: Bounds | None = None,
    on_rows: Callable[[list[IndexRow]], None] | None = None,
) -> PendingEvents:
    """Read the chunk's events still to index (and, with `aggregation`, those still to aggregate) in one
    query; return the ones to index and the client times of all of them. `client_times`, when the caller
    knows them, bound the read to those days' partitions (else it looks in every partition). `on_rows`
    is handed the rows to index BULK_SIZE at a time as they are read (on PostgreSQL), so that a search
    bulk can start before the rest of the chunk is read."""
    if connection.vendor == "postgresql":
        # Arrays as parameters and the JSON columns decoded by msgspec (they come as text): half the cost
        # of the ORM's IN list and json.loads for a chunk's rows.
        params: dict[str, Any] = {"ids": id_array(event_ids)}
        if client_times is not None:
            params.update(_bound_params(client_times))
        records: list[tuple] = []
        rows: list[IndexRow] = []
        with connection.cursor() as cursor:
            cursor.execute(_pending_sql(aggregation, bounded=client_times is not None), params)
            while part := cursor.fetchmany(BULK_SIZE):
                records.extend(part)
                new = [IndexRow._make(_decoded(record[:-2])) for record in part if record[-1]]
                rows.extend(new)
                if on_rows is not None and new:
                    on_rows(new)
    else:
        condition = AWAITING_AGGREGATION | AWAITING_INDEX if aggregation else AWAITING_INDEX
        records = list(
            RawEvent.objects.filter(condition, pk__in=event_ids)
            .with_awaiting_index()
            .order_by("pk")
            .values_list(*_INDEX_FIELDS, CLIENT_TIME_COLUMN, "awaiting_index")
        )
        rows = [IndexRow._make(r[:-2]) for r in records if r[-1]]
        if on_rows is not None:
            for part in chunks(rows, BULK_SIZE):
                on_rows(part)
    if not records:
        return PendingEvents(to_index=[], bounds=None)
    return PendingEvents(to_index=rows, bounds=client_time_bounds(r[-2] for r in records))


_PROPERTIES, _NOTES = (_INDEX_FIELDS.index(name) for name in ("properties", "notes"))


def _decoded(values: Sequence[Any]) -> list[Any]:
    """Return a row's values with its JSON columns (text from the cursor) decoded: msgspec keeps integers
    beyond 64 bits exact."""
    decoded = list(values)
    decoded[_PROPERTIES] = msgspec.json.decode(decoded[_PROPERTIES])
    decoded[_NOTES] = msgspec.json.decode(decoded[_NOTES])
    return decoded


@functools.cache
def _pending_sql(aggregation: bool, *, bounded: bool) -> str:
    awaiting_index = condition_sql(AWAITING_INDEX)
    waiting = (
        f"({awaiting_index}) OR ({condition_sql(AWAITING_AGGREGATION)})" if aggregation else awaiting_index
    )
    # event_id as text: PostgreSQL writes it out faster than Python's UUID makes its string (the documents
    # hold it as text).
    columns = ", ".join(
        '"event_id"::text' if name == "event_id" else connection.ops.quote_name(name)
        for name in _INDEX_FIELDS
    )
    # Each backlog's rows of the chunk, under the table's own name, so that the states' one definition reads
    # only those: PostgreSQL checks a state of ~300 rows or more per partition by hashing the table its
    # EXISTS reads, which for the aggregation backlog is every event waiting (50,000: 8 ms of a 2,000-event
    # chunk's 37 ms read, and more the longer the backlog).
    backlogs = ", ".join(
        f"{table} AS (SELECT * FROM {table} WHERE raw_id = ANY(%(ids)s::bigint[]))"
        for table in (AggregationBacklog._meta.db_table, IndexBacklog._meta.db_table)
    )
    return (
        f"WITH {backlogs} SELECT {columns}, {CLIENT_TIME_COLUMN}, ({awaiting_index}) FROM ingest_rawevent"
        " WHERE id = ANY(%(ids)s::bigint[])"
        f"{f' AND {WITHIN_CLIENT_TIMES_SQL}' if bounded else ''} AND ({waiting})"
        " ORDER BY id"
    )


class _Indexing:
    """A chunk's search bulks, sent one after another from the indexer thread (BULK_SIZE documents each,
    as the backend sends them), while the main thread writes the rollups."""

    def __init__(self) -> None:
        self.backend, self.pool = get_trace_backend(), _indexer_pool()
        self.futures: list[Future] = []

    def submit(self, rows: list[IndexRow]) -> None:
        """Queue a bulk of rows (at most BULK_SIZE) behind those already sent."""
        self.futures.append(self.pool.submit(self.backend.index_events, rows))

    def outcome(self) -> IndexOutcome:
        """Wait for every bulk and return their outcome together; raise BackendUnavailable if one failed (the
        chunk's indexing is then retried whole: indexing again what was indexed changes nothing)."""
        outcome = IndexOutcome()
        for future in self.futures:
            part = future.result()
            outcome.indexed.extend(part.indexed)
            outcome.rejected.update(part.rejected)
            outcome.retry_later.update(part.retry_later)
        return outcome


def process_chunk(*, event_ids: list[int], client_times: Bounds | None = None) -> ProcessOutcome:
    """Aggregate and index a chunk at once.

    The chunk's pending events are read first, and sent to the search backend from the indexer thread
    BULK_SIZE at a time as they are read (the first bulk starts before the rest is read), while this thread
    claims the events by deleting their aggregation backlog rows, puts them in the index backlog, writes
    their rollups (one statement) and commits: the rollups never wait for the search bulk, so another worker
    never waits for this one's rollup rows while a bulk runs. One DELETE after the bulks takes the indexed
    events out of the index backlog again (the raw rows are not rewritten). A down search
    backend never holds back the rollups: the outcome says so, the events stay in the backlog and the
    caller retries the indexing.
    `client_times`, when the caller knows them, bound the first read too.
    """
    with _indexing_guard():
        return _process_chunk(event_ids, client_times)


def _process_chunk(event_ids: list[int], client_times: Bounds | None) -> ProcessOutcome:
    indexing = _Indexing()
    pending = pending_events(event_ids, client_times=client_times, on_rows=indexing.submit)
    if pending.bounds is None:
        # Nothing to read; the claim still takes any backlog row whose raw event is gone (the sweeper hands
        # such ids on), counting nothing.
        skipped = len(event_ids)
        return ProcessOutcome(
            aggregated=aggregate_chunk(event_ids=event_ids), indexed=ChunkOutcome(skipped=skipped)
        )
    rows = pending.to_index
    result = ProcessOutcome(aggregated=aggregate_chunk(event_ids=event_ids, bounds=pending.bounds))
    try:
        outcome = indexing.outcome()
    except BackendUnavailable as exc:
        result.index_unavailable = str(exc)
        return result
    result.indexed = _record_index_outcome(outcome, bounds=pending.bounds)
    result.indexed.skipped = len(event_ids) - len(rows)
    return result


def aggregate_chunk(*, event_ids: list[int], bounds: Bounds | None = None) -> ChunkOutcome:
    """Add a chunk's events to the rollups and mark them aggregated, in one transaction.

    Rows another worker holds are skipped (SKIP LOCKED), rows already aggregated are ignored, so running a
    chunk twice, or two workers on one chunk, counts every event once. If the chunk fails for a reason
    other than the database being down, each event is retried alone so one poison event cannot hold back
    the rest; an event that fails PIPELINE_MAX_ATTEMPTS times is dead-lettered with the reason. `bounds`
    (the events' time range) is read when the caller did not.
    """
    if bounds is None:
        bounds = _time_range(event_ids)
        if bounds is None:
            return ChunkOutcome(skipped=len(event_ids))
    try:
        return _aggregate(event_ids, bounds)
    except _NOT_THE_EVENTS:
        raise  # the database is down, the transaction was cut off or time ran out: retry later, count nothing
    except Exception as exc:
        logger.exception("chunk of %d events failed (%s); retrying them one by one", len(event_ids), exc)
    outcome = ChunkOutcome()
    for event_id in event_ids:
        try:
            part = _aggregate([event_id], bounds)
            outcome.done += part.done
            outcome.skipped += part.skipped
        except _NOT_THE_EVENTS:
            raise
        except Exception as exc:
            logger.exception("event %s failed aggregation", event_id)
            outcome.failed += 1
            outcome.dead_lettered += _record_failure(event_id, f"{type(exc).__name__}: {exc}", bounds)
    return outcome


# Failures that say nothing about the events: never a reason to retry them one by one or dead-letter them.
_NOT_THE_EVENTS = (OperationalError, InterfaceError, SoftTimeLimitExceeded)


def _time_range(event_ids: list[int]) -> Bounds | None:
    """Return the client times of the chunk's events still to aggregate (None when there are none)."""
    moments = list(
        AggregationBacklog.objects.filter(raw_id__in=event_ids).values_list(CLIENT_TIME_COLUMN, flat=True)
    )
    return client_time_bounds(moments) if moments else None


def _aggregate(event_ids: list[int], bounds: Bounds) -> ChunkOutcome:
    with transaction.atomic():
        done = events_claim_into_rollups(event_ids, bounds)
    return ChunkOutcome(done=done, skipped=len(event_ids) - done)


# The index backlog rows of a rollup statement's `chunk` (which has the client time, received_at and
# index_rejected_at too): all but those the index refused for good.
_BACKLOG_FROM_CHUNK = (
    f"backlog AS ({IndexBacklog.insert_head()} SELECT id, {CLIENT_TIME_COLUMN}, received_at FROM chunk"
    " WHERE index_rejected_at IS NULL ON CONFLICT DO NOTHING)"
)

# A mark per UTC day of a rollup statement's `chunk` (see AggregationMark).
_MARKS_FROM_CHUNK = (
    f"marks AS (INSERT INTO {AggregationMark._meta.db_table} (day, marked_at)"
    " SELECT DISTINCT (\"timestamp\" AT TIME ZONE 'UTC')::date, %(now)s FROM chunk)"
)

# One statement claims the chunk's events still to aggregate by deleting their rows from the aggregation
# backlog, skipping rows another worker holds (SKIP LOCKED); reads those raw events (never updating them: a
# new version of a wide row, with an entry in each of its indexes, per event); puts them in the index
# backlog (all but those the index refused for good: their search bulk is still out, or may fail); marks
# their days; and adds them to the rollups from what it read. The upserts run after the claim is complete
# (they read all of its rows), so the busiest rows (a day's buckets, which every chunk adds to) stay locked
# from their upsert to the commit only. The chunk's client times keep every read to its partitions.
_CLAIM_INTO_ROLLUPS = rollups_statement(
    f"SELECT {ROLLUP_CHUNK_COLUMNS}, {CLIENT_TIME_COLUMN}, received_at, index_rejected_at"
    f" FROM ingest_rawevent WHERE id IN (SELECT raw_id FROM claimed) AND {WITHIN_CLIENT_TIMES_SQL}",
    _BACKLOG_FROM_CHUNK,
    _MARKS_FROM_CHUNK,
    before=(
        f"claimed AS (DELETE FROM {AggregationBacklog._meta.db_table} WHERE raw_id IN (SELECT raw_id"
        f" FROM {AggregationBacklog._meta.db_table} WHERE raw_id = ANY(%(ids)s::bigint[])"
        " ORDER BY raw_id FOR UPDATE SKIP LOCKED) RETURNING raw_id)"
    ),
)


def events_claim_into_rollups(event_ids: list[int], bounds: Bounds) -> int:
    """Claim the chunk's events still to aggregate (skipping rows another worker holds), take them out of
    the aggregation backlog, put them in the index backlog, mark their days and add them to the rollups;
    return how many. The caller's transaction holds it all, so a chunk run twice, or by two workers, is
    counted once."""
    now = timezone.now()
    if connection.vendor == "postgresql":
        params = {"now": now, "ids": id_array(event_ids), **_bound_params(bounds), **rollup_params()}
        with connection.cursor() as cursor:
            cursor.execute(_CLAIM_INTO_ROLLUPS, params)
            return cursor.fetchone()[0]
    # The embedded mode (SQLite): one writer at a time, nothing to skip; the rollups from Python deltas,
    # users exact.
    events = list(
        RawEvent.objects.awaiting_aggregation()
        .filter(pk__in=event_ids)
        .only(*_AGGREGATE_FIELDS)
        .order_by("pk")
    )
    # Every id of the chunk: a backlog row whose raw event is gone goes too.
    AggregationBacklog.objects.filter(raw_id__in=event_ids).delete()
    claimed = RawEvent.objects.filter(pk__in=[event.pk for event in events])
    index_backlog_add(claimed, bounds=bounds)
    aggregation_days_mark(claimed, now=now)
    rollups_apply(deltas=deltas_for(events))
    return len(events)


def aggregation_days_mark(events: QuerySet[RawEvent], *, now: datetime) -> None:
    """Mark the UTC days of these events as having events that left aggregation at `now`."""
    days = set(events.annotate(day=TruncDate("timestamp", tzinfo=UTC)).values_list("day", flat=True))
    AggregationMark.objects.bulk_create([AggregationMark(day=day, marked_at=now) for day in sorted(days)])


def index_backlog_add(events: QuerySet[RawEvent], *, bounds: Bounds | None) -> None:
    """Put these events in the index backlog (those already there stay as they are; those the index refused
    for good never wait). `bounds`, when known, keep the read to those days' partitions."""
    events = events.filter(index_rejected_at__isnull=True)
    if bounds is not None:
        events = events.filter(within_client_times(bounds))
    backlog_add(IndexBacklog, events)


def index_backlog_forget(event_ids: list[int]) -> None:
    """Take these events out of the index backlog: stored by a bulk, refused for good, or deleted."""
    if not event_ids:
        return
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                f"DELETE FROM {IndexBacklog._meta.db_table} WHERE raw_id = ANY(%s::bigint[])",
                (id_array(event_ids),),
            )
        return
    for part in chunks(list(event_ids), 500):
        IndexBacklog.objects.filter(raw_id__in=part).delete()


def _bound_params(bounds: Bounds) -> dict[str, datetime | None]:
    return {"earliest": bounds[0], "latest": bounds[1]}


def _record_failure(event_id: int, reason: str, bounds: Bounds) -> int:
    """Count a failed attempt; dead-letter the event at the limit. Return 1 when it was dead-lettered."""
    event = RawEvent.objects.filter(within_client_times(bounds), pk=event_id)
    with transaction.atomic():
        event.update(aggregate_attempts=F("aggregate_attempts") + 1, last_error=reason[:2000])
        if not event.filter(aggregate_attempts__gte=settings.PIPELINE_MAX_ATTEMPTS).exists():
            return 0
        # Taken out of the backlog first: a worker that claimed it meanwhile counted it (nothing to do).
        if not AggregationBacklog.objects.filter(raw_id=event_id).delete()[0]:
            return 0
        now = timezone.now()
        event.update(
            dead_lettered_at=now, last_error=f"dead-lettered after repeated failures: {reason}"[:2000]
        )
        aggregation_days_mark(event, now=now)
        # No longer indexed with its aggregation: the backlog has it until a bulk stores it.
        index_backlog_add(event, bounds=bounds)
    return 1


def index_chunk(*, event_ids: list[int]) -> ChunkOutcome:
    """Send a chunk's not-yet-indexed events to the search backend and record what became of each.

    Raises BackendUnavailable when the backend cannot be reached; the events stay unindexed for a retry.
    """
    with _indexing_guard():
        pending = pending_events(event_ids, aggregation=False)
        rows = pending.to_index
        outcome = ChunkOutcome()
        if pending.bounds is not None:
            outcome = _record_index_outcome(get_trace_backend().index_events(rows), bounds=pending.bounds)
    outcome.skipped = len(event_ids) - len(rows)
    return outcome


def _record_index_outcome(result: IndexOutcome, *, bounds: Bounds) -> ChunkOutcome:
    """Record a bulk's outcome in a fixed number of statements: indexed, refused for good, to retry."""
    now = timezone.now()
    with transaction.atomic():
        index_backlog_forget([*result.indexed, *result.rejected])
        _record_reasons(result.rejected, "search index refused the document: ", bounds, index_rejected_at=now)
        _record_reasons(result.retry_later, "indexing failed, will retry: ", bounds)
        if result.retry_later:
            index_backlog_add(RawEvent.objects.filter(pk__in=list(result.retry_later)), bounds=bounds)
    return ChunkOutcome(
        done=len(result.indexed), failed=len(result.retry_later), dead_lettered=len(result.rejected)
    )


def _record_reasons(reasons: dict[int, str], prefix: str, bounds: Bounds, **fields: Any) -> None:
    """Count an indexing attempt and store each event's reason, in one UPDATE for all of them."""
    if not reasons:
        return
    RawEvent.objects.filter(within_client_times(bounds), pk__in=list(reasons)).update(
        index_attempts=F("index_attempts") + 1,
        last_error=Left(
            Case(*[When(pk=pk, then=Value(prefix + reason)) for pk, reason in reasons.items()]), 2000
        ),
        **fields,
    )


@dataclass
class SweepOutcome:
    aggregate_ids: list[int]
    index_ids: list[int]


def stale_event_ids(*, grace_seconds: int, limit: int) -> SweepOutcome:
    """Return ids of events left unaggregated or unindexed longer than the grace period (oldest first).

    Events awaiting aggregation are indexed with it, so the ids to index are those of the index backlog.
    """
    cutoff = timezone.now() - timedelta(seconds=grace_seconds)
    unaggregated = list(
        AggregationBacklog.objects.filter(received_at__lt=cutoff)
        .order_by("received_at")
        .values_list("raw_id", flat=True)[:limit]
    )
    unindexed = list(
        IndexBacklog.objects.filter(received_at__lt=cutoff)
        .order_by("received_at")
        .values_list("raw_id", flat=True)[:limit]
    )
    return SweepOutcome(unaggregated, unindexed)


def chunks(items: list[Any], size: int) -> list[list[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]
