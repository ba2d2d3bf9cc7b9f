"""Discretized re-processing: split a time range into chunks that any number of workers take in parallel."""

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import QuerySet
from django.db.models.functions import TruncDay

from apps.ingest.models import AggregationBacklog, RawEvent
from apps.ingest.services import backlog_add
from apps.metrics.models import DaySketch, EventName, RollupCount, RollupNumeric, RollupSketch, RollupUser
from apps.metrics.services import event_names_prune

from .services import index_backlog_add


def whole_days(start: datetime, end: datetime) -> tuple[datetime, datetime]:
    """Widen [start, end) to whole UTC days: rollups of a partly covered day cannot be rebuilt in part."""
    day_start = start.replace(hour=0, minute=0, second=0, microsecond=0)
    day_end = end.replace(hour=0, minute=0, second=0, microsecond=0)
    if day_end < end:
        day_end += timedelta(days=1)
    return day_start, day_end


def raw_retention_start(*, now: datetime) -> datetime:
    """Return the first whole UTC day whose raw events retention has not begun to delete: the rollups of
    earlier days cannot be rebuilt (unless the archive's events of those days were replayed)."""
    cutoff = now - timedelta(days=settings.RETENTION_RAW_DAYS)
    return whole_days(cutoff, cutoff)[1]


ROLLUP_MODELS = (RollupCount, RollupNumeric, RollupUser, RollupSketch, DaySketch)


def rollups_reset(*, start: datetime, end: datetime) -> int:
    """Delete the rollups of [start, end) (whole UTC days) and put their events back in the aggregation
    backlog, one day per transaction so that live claims wait for one day's reset at most.

    Return how many events were taken out of the rollups (they are aggregated again).
    """
    return sum(_day_reset(day) for day in _days_to_reset(start, end))


def _days_to_reset(start: datetime, end: datetime) -> list[datetime]:
    """Return the UTC days of [start, end) with rollups or counted events (a huge range has few)."""
    with_rollups = RollupCount.objects.filter(
        granularity="day", bucket_start__gte=start, bucket_start__lt=end
    ).values_list("bucket_start", flat=True)
    with_events = (
        RawEvent.objects.aggregated()
        .since(start)
        .filter(timestamp__lt=end)
        .annotate(day=TruncDay("timestamp", tzinfo=UTC))
        .values_list("day", flat=True)
    )
    return sorted({*with_rollups.order_by().distinct(), *with_events.order_by().distinct()})


def _day_reset(day: datetime) -> int:
    end = day + timedelta(days=1)
    with transaction.atomic():
        _rollups_lock()
        for model in ROLLUP_MODELS:
            model.objects.filter(bucket_start__gte=day, bucket_start__lt=end).delete()
        # A name counted on no other day is gone until its events are counted again.
        event_names_prune()
        # What was counted is counted again; dead letters (never counted) stay given up on.
        return backlog_add(
            AggregationBacklog, RawEvent.objects.aggregated().since(day).filter(timestamp__lt=end)
        )


def _rollups_lock() -> None:
    """Wait for the claims writing rollups to commit, and hold new ones until the transaction ends (reads go
    on). Else a bucket row that a claim inserts is invisible to the reset's delete and outlives it, while
    the claim's events, committed by then, are put back and counted a second time. (PostgreSQL; the
    embedded mode has one writer.)"""
    if connection.vendor != "postgresql":
        return
    # The names too: a claim that added a name the prune then took out would leave it missing. In the order a
    # claim's statement takes them (the names before the rollups), else a claim begun while this waited for
    # another holds the names, waiting for the rollups this holds, while this waits for the names. Not the
    # days' sketches: a claim takes that table first, a purge last, and neither writes to it before holding
    # the counts, which this holds.
    locked = (EventName, *(model for model in ROLLUP_MODELS if model is not DaySketch))
    tables = ", ".join(model._meta.db_table for model in locked)
    with connection.cursor() as cursor:
        cursor.execute(f"LOCK TABLE {tables} IN SHARE ROW EXCLUSIVE MODE")


def dead_letters_requeue(*, start: datetime, end: datetime) -> list[int]:
    """Give the dead-lettered events of [start, end) another chance, once the cause of their failures is
    fixed: back in the aggregation backlog, their attempts at 0, in one transaction; return their ids."""
    with transaction.atomic():
        dead = RawEvent.objects.dead_lettered().since(start).filter(timestamp__lt=end)
        ids = list(dead.select_for_update().values_list("pk", flat=True))
        backlog_add(AggregationBacklog, RawEvent.objects.filter(pk__in=ids))
        RawEvent.objects.filter(pk__in=ids).update(dead_lettered_at=None, aggregate_attempts=0)
        return ids


def requeued_outcome(ids: list[int]) -> tuple[int, int]:
    """Return how many of these requeued events still wait for aggregation, and how many failed again."""
    waiting = AggregationBacklog.objects.filter(raw_id__in=ids).count()
    return waiting, RawEvent.objects.dead_lettered().filter(pk__in=ids).count()


def index_reset(*, start: datetime, end: datetime) -> int:
    """Mark the events of [start, end) unindexed (refused ones get another chance); return how many.

    Those still awaiting aggregation are indexed with it; the others go into the index backlog.
    """
    events = RawEvent.objects.since(start).filter(timestamp__lt=end)
    with transaction.atomic():
        events.filter(index_rejected_at__isnull=False).update(index_rejected_at=None)
        index_backlog_add(events.done_with_aggregation(), bounds=None)
        return events.count()


def awaiting(work: str, *, start: datetime, end: datetime, received_by: datetime) -> QuerySet:
    """Return the range's events received by `received_by` still waiting for `work` ("aggregation" or
    "index"); events given up on for that work (dead-lettered, refused by the index) do not wait. Events
    received later are live traffic: the pipeline has them, a range command does not wait for them."""
    waiting = {"aggregation": RawEvent.objects.awaiting_aggregation, "index": RawEvent.objects.awaiting_index}
    return waiting[work]().since(start).filter(timestamp__lt=end, received_at__lte=received_by)


def enqueue_range(*, start: datetime, end: datetime, received_by: datetime, work: str, task) -> int:
    """Queue the range's waiting events in chunks, streaming ids so a huge range never sits in memory."""
    waiting = awaiting(work, start=start, end=end, received_by=received_by)
    ids = waiting.order_by("pk").values_list("pk", flat=True).iterator(10_000)
    chunk: list[int] = []
    queued = 0
    for pk in ids:
        chunk.append(pk)
        if len(chunk) == settings.PIPELINE_CHUNK_SIZE:
            task.delay(chunk)
            queued, chunk = queued + 1, []
    if chunk:
        task.delay(chunk)
        queued += 1
    return queued


def pending_in_range(*, start: datetime, end: datetime, received_by: datetime, work: str) -> int:
    """Return how many events of the range received by `received_by` still wait for aggregation or
    indexing."""
    return awaiting(work, start=start, end=end, received_by=received_by).count()


def watch(
    *,
    total: int,
    remaining: Callable[[], int],
    report: Callable[[int, int], None],
    timeout: float,
    interval: float = 2.0,
) -> bool:
    """Report progress until nothing remains or the timeout passes; return whether it finished."""
    deadline = time.monotonic() + timeout
    while True:
        left = remaining()
        report(total - left, total)
        if left == 0:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(interval)
