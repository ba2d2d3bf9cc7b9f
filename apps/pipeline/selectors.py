"""Reads about the pipeline itself: how it keeps up (ingest rate, backlogs, dead letters)."""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Count, Min
from django.db.models.functions import TruncMinute

from apps.ingest.models import AggregationBacklog, IndexBacklog, RawEvent


@dataclass(frozen=True)
class PipelineHealth:
    received_per_minute: list[tuple[datetime, int]]  # the last hour, every minute present
    waiting_aggregation: int
    processing_lag: timedelta | None  # age of the oldest event not yet in the rollups
    dead_lettered: int
    waiting_index: int
    indexing_lag: timedelta | None  # age of the oldest event not yet searchable

    @property
    def received_last_hour(self) -> int:
        return sum(n for _, n in self.received_per_minute)


def pipeline_health(*, now: datetime) -> PipelineHealth:
    """Return how the pipeline keeps up: ingest rate, backlog ages and dead letters (five indexed queries)."""
    first_minute = now.replace(second=0, microsecond=0) - timedelta(minutes=59)
    received = dict(
        RawEvent.objects.filter(received_at__gte=first_minute)
        .annotate(minute=TruncMinute("received_at"))
        .values("minute")
        .annotate(n=Count("id"))
        .values_list("minute", "n")
    )
    per_minute = [(m, received.get(m, 0)) for m in (first_minute + timedelta(minutes=i) for i in range(60))]
    # The two backlogs, each read from its own small table: together what RawEvent.objects.awaiting_index()
    # holds (events awaiting aggregation are indexed with it, but for the few the index refused for good,
    # found by their partial index), never a pass over the raw rows.
    unaggregated = AggregationBacklog.objects.aggregate(n=Count("raw_id"), oldest=Min("received_at"))
    refused = list(RawEvent.objects.index_rejected().awaiting_aggregation().values_list("pk", flat=True))
    oldest_to_index = unaggregated["oldest"]
    if refused:
        oldest_to_index = AggregationBacklog.objects.exclude(raw_id__in=refused).aggregate(
            oldest=Min("received_at")
        )["oldest"]
    backlog = IndexBacklog.objects.aggregate(n=Count("raw_id"), oldest=Min("received_at"))
    dead = RawEvent.objects.dead_lettered().count()
    oldest = [t for t in (oldest_to_index, backlog["oldest"]) if t is not None]
    return PipelineHealth(
        received_per_minute=per_minute,
        waiting_aggregation=unaggregated["n"],
        processing_lag=_age(now, unaggregated["oldest"]),
        dead_lettered=dead,
        waiting_index=unaggregated["n"] - len(refused) + backlog["n"],
        indexing_lag=_age(now, min(oldest, default=None)),
    )


def _age(now: datetime, oldest: datetime | None) -> timedelta | None:
    return None if oldest is None else max(now - oldest, timedelta(0))
