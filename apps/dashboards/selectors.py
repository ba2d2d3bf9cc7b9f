"""Reads for the dashboards: what the pickers offer, the overview's totals, pipeline health, saved boards.

Series themselves come from `apps.metrics.selectors.series_for`; this module only reads what the pages need
around them, each in one query that an index serves.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import connection
from django.db.models import Count, Min, QuerySet, Sum
from django.db.models.functions import TruncMinute
from django.utils import timezone

from apps.ingest.models import RawEvent
from apps.metrics.models import RollupCount, RollupNumeric, RollupSketch, RollupUser
from apps.metrics.selectors import Series, UsersInSketches

from .forms import ExplorerOptions
from .models import Dashboard

PROPERTY_SAMPLE = 1000  # recent raw events whose property names the breakdown picker offers
MAX_PROPERTY_NAMES = 200


def event_names() -> list[str]:
    """Return every event name the rollups hold, sorted."""
    return list(
        RollupCount.objects.filter(granularity="day")
        .values_list("event", flat=True)
        .distinct()
        .order_by("event")
    )


def numeric_property_names() -> list[str]:
    """Return every numeric property the rollups sum (what "sum of" and "average" can use), sorted."""
    return list(
        RollupNumeric.objects.filter(granularity="day")
        .values_list("prop", flat=True)
        .distinct()
        .order_by("prop")
    )


def recent_property_names(*, sample: int = PROPERTY_SAMPLE) -> list[str]:
    """Return the top-level property names of the most recent raw events (any property may be a breakdown).

    Property names are not rolled up, so a sample of recent events stands in for "every name there is";
    only the keys leave the database.
    """
    table = connection.ops.quote_name(RawEvent._meta.db_table)
    if connection.vendor == "postgresql":
        sql = (
            f"SELECT DISTINCT k FROM (SELECT properties FROM {table} ORDER BY id DESC LIMIT %s) r, "
            "jsonb_object_keys(CASE WHEN jsonb_typeof(r.properties) = 'object' "
            "THEN r.properties ELSE '{}'::jsonb END) AS k ORDER BY k LIMIT %s"
        )
    else:
        sql = (
            f"SELECT DISTINCT j.key FROM (SELECT properties FROM {table} ORDER BY id DESC LIMIT %s) r, "
            "json_each(CASE WHEN json_type(r.properties) = 'object' THEN r.properties ELSE '{}' END) AS j "
            "ORDER BY j.key LIMIT %s"
        )
    with connection.cursor() as cursor:
        cursor.execute(sql, [sample, MAX_PROPERTY_NAMES])
        return [row[0] for row in cursor.fetchall()]


def explorer_options() -> ExplorerOptions:
    """Return what the explorer's pickers offer."""
    numeric = numeric_property_names()
    recent = recent_property_names()
    return ExplorerOptions(
        events=event_names(), numeric_props=numeric, properties=sorted(set(recent) | set(numeric))
    )


def default_event() -> str | None:
    """Return the event an explorer opened without parameters shows: the most frequent of the last 30
    days, else any event, else None (nothing recorded yet)."""
    recent = top_events(start=timezone.now() - timedelta(days=30), limit=1)
    if recent:
        return recent[0].name
    return (
        RollupCount.objects.filter(granularity="day")
        .order_by("event")
        .values_list("event", flat=True)
        .first()
    )


@dataclass(frozen=True)
class Total:
    name: str
    count: int


def top_events(*, start: datetime, limit: int = 10) -> list[Total]:
    """Return the events with the most occurrences since `start` (a day boundary), most first."""
    rows = (
        RollupCount.objects.filter(granularity="day", bucket_start__gte=start)
        .values("event")
        .annotate(total=Sum("count"))
        .order_by("-total", "event")[:limit]
    )
    return [Total(row["event"], row["total"]) for row in rows]


def volume_by_service(*, start: datetime) -> list[Total]:
    """Return the number of events per service since `start` (a day boundary), most first."""
    rows = (
        RollupCount.objects.filter(granularity="day", bucket_start__gte=start)
        .values("service")
        .annotate(total=Sum("count"))
        .order_by("-total", "service")
    )
    return [Total(row["service"], row["total"]) for row in rows]


def daily_active_users(*, start: datetime, end: datetime) -> Series:
    """Return the distinct users of any event per day in [start, end) (start at midnight UTC), zeros kept.

    `series_for` draws one line per event when given several, so the all-events total is read here, from
    the same rollups: the union of the day's sketches on PostgreSQL (an estimate), user rows on SQLite.
    """
    sketches = connection.vendor == "postgresql"
    model, users_of = (
        (RollupSketch, UsersInSketches("users"))
        if sketches
        else (RollupUser, Count("user_id", distinct=True))
    )
    rows = (
        model.objects.filter(granularity="day", bucket_start__gte=start, bucket_start__lt=end)
        .values("bucket_start")
        .annotate(n=users_of)
        .values_list("bucket_start", "n")
    )
    users = dict(rows)
    days = []
    day = start
    while day < end:
        days.append((day, users.get(day, 0)))
        day += timedelta(days=1)
    return Series(name="daily active users", points=days, estimate=sketches)


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
    unaggregated = RawEvent.objects.filter(
        aggregated_at__isnull=True, dead_lettered_at__isnull=True
    ).aggregate(n=Count("id"), oldest=Min("received_at"))
    unindexed = RawEvent.objects.filter(indexed_at__isnull=True, index_rejected_at__isnull=True).aggregate(
        n=Count("id"), oldest=Min("received_at")
    )
    dead = RawEvent.objects.filter(dead_lettered_at__isnull=False).count()
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


def dashboard_list() -> QuerySet[Dashboard]:
    """Return every saved dashboard with its owner and number of charts (one query)."""
    return Dashboard.objects.select_related("owner").annotate(n_charts=Count("charts")).order_by("name", "pk")


def dashboards_owned(*, user) -> list[Dashboard]:
    """Return the dashboards a person owns (where "save to dashboard" offers to put a chart)."""
    return list(Dashboard.objects.filter(owner=user).order_by("name", "pk"))


def dashboard_get(*, slug: str) -> Dashboard | None:
    """Return a dashboard with its owner and charts in order (two queries), or None."""
    return Dashboard.objects.select_related("owner").prefetch_related("charts").filter(slug=slug).first()
