"""Discretized re-processing: split a time range into chunks that any number of workers take in parallel."""

import time
from collections.abc import Callable
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction

from apps.ingest.models import RawEvent
from apps.metrics.models import RollupCount, RollupNumeric, RollupUser


def whole_days(start: datetime, end: datetime) -> tuple[datetime, datetime]:
    """Widen [start, end) to whole UTC days: rollups of a partly covered day cannot be rebuilt in part."""
    day_start = start.replace(hour=0, minute=0, second=0, microsecond=0)
    day_end = end.replace(hour=0, minute=0, second=0, microsecond=0)
    if day_end < end:
        day_end += timedelta(days=1)
    return day_start, day_end


def rollups_reset(*, start: datetime, end: datetime) -> int:
    """Delete the rollups of [start, end) and mark its events unaggregated, in one transaction.

    Return how many events will be aggregated again.
    """
    with transaction.atomic():
        for model in (RollupCount, RollupNumeric, RollupUser):
            model.objects.filter(bucket_start__gte=start, bucket_start__lt=end).delete()
        return RawEvent.objects.filter(
            timestamp__gte=start, timestamp__lt=end, dead_lettered_at__isnull=True
        ).update(aggregated_at=None)


def index_reset(*, start: datetime, end: datetime) -> int:
    """Mark the events of [start, end) unindexed (refused ones get another chance); return how many."""
    return RawEvent.objects.filter(timestamp__gte=start, timestamp__lt=end).update(
        indexed_at=None, index_rejected_at=None
    )


def enqueue_range(*, start: datetime, end: datetime, pending_field: str, task) -> int:
    """Queue the range's pending events in chunks, streaming ids so a huge range never sits in memory."""
    ids = (
        RawEvent.objects.filter(timestamp__gte=start, timestamp__lt=end, **{f"{pending_field}__isnull": True})
        .order_by("pk")
        .values_list("pk", flat=True)
        .iterator(chunk_size=10_000)
    )
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


# Events given up on for a kind of work do not count as pending for it.
_GIVEN_UP = {"aggregated_at": "dead_lettered_at", "indexed_at": "index_rejected_at"}


def pending_in_range(*, start: datetime, end: datetime, pending_field: str) -> int:
    """Return how many events of the range still wait for aggregation or indexing."""
    return RawEvent.objects.filter(
        timestamp__gte=start,
        timestamp__lt=end,
        **{f"{pending_field}__isnull": True, f"{_GIVEN_UP[pending_field]}__isnull": True},
    ).count()


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
