"""Discretized re-processing: split a time range into chunks that any number of workers take in parallel."""

import time
from collections.abc import Callable
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import QuerySet

from apps.ingest.models import AggregationBacklog, RawEvent
from apps.ingest.services import backlog_add
from apps.metrics.models import RollupCount, RollupNumeric, RollupSketch, RollupUser

from .services import index_backlog_add


def whole_days(start: datetime, end: datetime) -> tuple[datetime, datetime]:
    """Widen [start, end) to whole UTC days: rollups of a partly covered day cannot be rebuilt in part."""
    day_start = start.replace(hour=0, minute=0, second=0, microsecond=0)
    day_end = end.replace(hour=0, minute=0, second=0, microsecond=0)
    if day_end < end:
        day_end += timedelta(days=1)
    return day_start, day_end


def rollups_reset(*, start: datetime, end: datetime) -> int:
    """Delete the rollups of [start, end) and put its events back in the aggregation backlog, in one
    transaction.

    Return how many events were taken out of the rollups (they are aggregated again).
    """
    with transaction.atomic():
        for model in (RollupCount, RollupNumeric, RollupUser, RollupSketch):
            model.objects.filter(bucket_start__gte=start, bucket_start__lt=end).delete()
        # What was counted is counted again; dead letters (never counted) stay given up on.
        return backlog_add(
            AggregationBacklog, RawEvent.objects.aggregated().since(start).filter(timestamp__lt=end)
        )


def index_reset(*, start: datetime, end: datetime) -> int:
    """Mark the events of [start, end) unindexed (refused ones get another chance); return how many.

    Those still awaiting aggregation are indexed with it; the others go into the index backlog.
    """
    events = RawEvent.objects.since(start).filter(timestamp__lt=end)
    with transaction.atomic():
        events.filter(index_rejected_at__isnull=False).update(index_rejected_at=None)
        index_backlog_add(events.done_with_aggregation(), bounds=None)
        return events.count()


def awaiting(work: str, *, start: datetime, end: datetime) -> QuerySet:
    """Return the range's events still waiting for `work` ("aggregation" or "index"); events given up on
    for that work (dead-lettered, refused by the index) do not wait."""
    waiting = {"aggregation": RawEvent.objects.awaiting_aggregation, "index": RawEvent.objects.awaiting_index}
    return waiting[work]().since(start).filter(timestamp__lt=end)


def enqueue_range(*, start: datetime, end: datetime, work: str, task) -> int:
    """Queue the range's waiting events in chunks, streaming ids so a huge range never sits in memory."""
    ids = awaiting(work, start=start, end=end).order_by("pk").values_list("pk", flat=True).iterator(10_000)
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


def pending_in_range(*, start: datetime, end: datetime, work: str) -> int:
    """Return how many events of the range still wait for aggregation or indexing."""
    return awaiting(work, start=start, end=end).count()


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
