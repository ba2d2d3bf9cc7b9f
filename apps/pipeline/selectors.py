"""Reads about the pipeline itself: how it keeps up (ingest rate, backlogs, dead letters)."""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Count, Min
from django.db.models.functions import TruncMinute

from apps.ingest.models import RawEvent


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
    # These filters match the partial indexes the sweeper uses (rawevent_unaggregated, rawevent_unindexed).
    unaggregated = RawEvent.objects.awaiting_aggregation().aggregate(n=Count("id"), oldest=Min("received_at"))
    unindexed = RawEvent.objects.awaiting_index().aggregate(n=Count("id"), oldest=Min("received_at"))
    dead = RawEvent.objects.dead_lettered().count()
    return PipelineHealth(
        received_per_minute=per_minute,
        waiting_aggregation=unaggregated["n"],
        processing_lag=_age(now, unaggregated["oldest"]),
        dead_lettered=dead,
        waiting_index=unindexed["n"],
        indexing_lag=_age(now, unindexed["oldest"]),
    )


def _age(now: datetime, oldest: datetime | None) -> timedelta | None:
    return None if oldest is None else max(now - oldest, timedelta(0))
