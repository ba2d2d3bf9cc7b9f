"""What the metrics know about: event and property names, totals per event and service, active users.

Reads for pickers and overviews, each one query an index serves; series are `selectors.series_for`'s.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import connection
from django.db.models import BigIntegerField, Count, Func, Sum

from apps.ingest.models import RawEvent

from .models import DaySketch, EventName, RollupCount, RollupNumeric, RollupUser
from .selectors import Series

PROPERTY_SAMPLE = 1000  # recent raw events whose property names the breakdown picker offers
MAX_PROPERTY_NAMES = 200


def event_names() -> list[str]:
    """Return every event name the day rollups count, sorted."""
    return list(EventName.objects.order_by("name").values_list("name", flat=True))


@dataclass(frozen=True)
class NamesPage:
    """Some of the names there are, and how many there are in all (a picker says what it leaves out)."""

    names: list[str]
    total: int


def busiest_event_names(*, start: datetime, limit: int) -> NamesPage:
    """Return the `limit` events with the most occurrences in the days from `start` (a day boundary),
    sorted by name, with the number of events seen in those days: one grouped query."""
    ranked = _days(start, None).values("event").annotate(total=Sum("count")).order_by("-total", "event")
    sql, params = ranked.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT event, COUNT(*) OVER () FROM ({sql}) AS ranked ORDER BY total DESC, event LIMIT %s",
            (*params, limit),
        )
        rows = cursor.fetchall()
    return NamesPage(names=sorted(name for name, _ in rows), total=rows[0][1] if rows else 0)


def event_names_matching(*, text: str, limit: int) -> NamesPage:
    """Return the first `limit` event names (sorted) that contain `text`, any case; `total` is `limit` + 1
    when there are more (they are not counted)."""
    if "\x00" in text:  # no stored name holds one, and PostgreSQL refuses to compare with it
        return NamesPage(names=[], total=0)
    # The catalogue of names, not the day rollups: a few thousand short rows, whatever the text.
    names = list(
        EventName.objects.filter(name__icontains=text)
        .order_by("name")
        .values_list("name", flat=True)[: limit + 1]
    )
    return NamesPage(names=names[:limit], total=len(names))


def numeric_property_names() -> list[str]:
    """Return every numeric property the rollups sum (what "sum of" and "average" can use), sorted."""
    return list(
        RollupNumeric.objects.filter(granularity="day")
        .values_list("prop", flat=True)
        .distinct()
        .order_by("prop")
    )


def recent_property_names(*, sample: int = PROPERTY_SAMPLE) -> list[str]:
    """Return the top-level property names of the most recent raw events (any property may be a breakdown),
    the first MAX_PROPERTY_NAMES in code point order."""
    return recent_property_names_page(sample=sample).names


def recent_property_names_page(*, sample: int = PROPERTY_SAMPLE) -> NamesPage:
    """Return the first MAX_PROPERTY_NAMES property names of the most recent raw events; `total` is one
    more when there are others (they are not counted).

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
        cursor.execute(sql, [sample, MAX_PROPERTY_NAMES + 1])
        names = [row[0] for row in cursor.fetchall()]
    return NamesPage(names=names[:MAX_PROPERTY_NAMES], total=len(names))


@dataclass(frozen=True)
class Total:
    name: str
    count: int


def top_events(*, start: datetime, end: datetime | None = None, limit: int = 10) -> list[Total]:
    """Return the events with the most occurrences in the days from `start` (a day boundary) until `end`
    (one too, or no end), most first."""
    rows = _days(start, end).values("event").annotate(total=Sum("count")).order_by("-total", "event")[:limit]
    return [Total(row["event"], row["total"]) for row in rows]


def volume_by_service(*, start: datetime, end: datetime | None = None) -> list[Total]:
    """Return the number of events per service in the days from `start` (a day boundary) until `end` (one
    too, or no end), most first."""
    rows = _days(start, end).values("service").annotate(total=Sum("count")).order_by("-total", "service")
    return [Total(row["service"], row["total"]) for row in rows]


def _days(start: datetime, end: datetime | None):
    days = RollupCount.objects.filter(granularity="day", bucket_start__gte=start)
    return days if end is None else days.filter(bucket_start__lt=end)


class UsersInSketch(Func):
    """The users of one HyperLogLog sketch (postgresql-hll), rounded to a whole number as a union's are."""

    template = "round(hll_cardinality(%(expressions)s))::bigint"
    output_field = BigIntegerField()


def daily_active_users(*, start: datetime, end: datetime) -> Series:
    """Return the distinct users of any event per day in [start, end) (start at midnight UTC), zeros kept.

    `series_for` draws one line per event when given several, so the all-events total is read here: on
    PostgreSQL from each day's sketch of every event (an estimate; the union of the day's sketches, kept
    by the pipeline), on SQLite from user rows.
    """
    sketches = connection.vendor == "postgresql"
    if sketches:
        rows = DaySketch.objects.filter(bucket_start__gte=start, bucket_start__lt=end).values_list(
            "bucket_start", UsersInSketch("users")
        )
    else:
        rows = (
            RollupUser.objects.filter(granularity="day", bucket_start__gte=start, bucket_start__lt=end)
            .values("bucket_start")
            .annotate(n=Count("user_id", distinct=True))
            .values_list("bucket_start", "n")
        )
    users = dict(rows)
    days = []
    day = start
    while day < end:
        days.append((day, users.get(day, 0)))
        day += timedelta(days=1)
    return Series(name="daily active users", points=days, estimate=sketches)
