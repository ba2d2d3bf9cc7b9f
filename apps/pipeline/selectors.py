"""Reads about the pipeline itself: how it keeps up (ingest rate, backlogs, dead letters)."""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Count, Min, Q
from django.db.models.functions import TruncMinute

from apps.ingest.models import IndexBacklog, RawEvent


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
    """Return how the pipeline keeps up: ingest rate, backlog ages and dead letters (four indexed queries)."""
    first_minute = now.replace(second=0, microsecond=0) - timedelta(minutes=59)
    received = dict(
        RawEvent.objects.filter(received_at__gte=first_minute)
        .annotate(minute=TruncMinute("received_at"))
        .values("minute")
        .annotate(n=Count("id"))
        .values_list("minute", "n")
    )
    per_minute = [(m, received.get(m, 0)) for m in (first_minute + timedelta(minutes=i) for i in range(60))]
    # The two backlogs, each read from its own small table (joined to the raw rows by id): together what
    # RawEvent.objects.awaiting_index() holds (events awaiting aggregation are indexed with it), rather
    # than its OR over the whole table.
    unaggregated = RawEvent.objects.awaiting_aggregation().aggregate(
        n=Count("id"),
        oldest=Min("received_at"),
        to_index=Count("id", filter=Q(index_rejected_at__isnull=True)),
        oldest_to_index=Min("received_at", filter=Q(index_rejected_at__isnull=True)),
    )
    backlog = IndexBacklog.objects.aggregate(n=Count("raw_id"), oldest=Min("received_at"))
    dead = RawEvent.objects.dead_lettered().count()
    oldest_to_index = [t for t in (unaggregated["oldest_to_index"], backlog["oldest"]) if t is not None]
    return PipelineHealth(
        received_per_minute=per_minute,
        waiting_aggregation=unaggregated["n"],
        processing_lag=_age(now, unaggregated["oldest"]),
        dead_lettered=dead,
        waiting_index=unaggregated["to_index"] + backlog["n"],
        indexing_lag=_age(now, min(oldest_to_index, default=None)),
    )


def _age(now: datetime, oldest: datetime | None) -> timedelta | None:
    return None if oldest is None else max(now - oldest, timedelta(0))
