"""Reads for usage charts: series of a measure over time, from the rollups (raw events only when needed).

    series_for(query: SeriesQuery) -> list[Series]

- measure: "count" | "unique_users" | "sum:<prop>" | "avg:<prop>"
- interval: "minute" | "hour" | "day" | "week" (weeks start on Monday, UTC)
- breakdown: "" | "service" | "stage" | "event" | "prop:<name>"; the top N values by total (kind "value"),
  then one series for all the other values (kind "rest"). Several events without a breakdown are broken
  down by event. Without a breakdown there is one series of kind "total". A property breakdown's events
  without the property are one group (`absent=True`, named "(none)"), apart from the text "(none)"; on a
  tie it ranks after the values.
- filters: (("<property>", "<value as text>"), ...) equality on top-level properties
- every bucket of [start, end) is present; count, unique_users and sum are 0 in empty buckets, avg is None
- compare=True adds, after the current series and in their order, one series of kind "previous" per
  series: the same span just before, shifted onto the current buckets, under the same name

What a series is lives in `kind` and `absent`, never in its name: a property whose value is "other" is a
"value", and one whose value is the text "(none)" is not the group of events without the property.

A property breakdown's groups are ranked in SQL before any bucket is read, so only the top N and the rest
are laid out (services, stages and events are few: one query reads them all); a query whose series ×
buckets exceed MAX_POINTS is refused with a message.

Sources: count, sum and avg come from `RollupCount`/`RollupNumeric`; unique users from the union of
`RollupSketch` HyperLogLog sketches on PostgreSQL (an estimate: such series say `estimate=True`) and from
`RollupUser` rows on SQLite (exact COUNT(DISTINCT)); weeks from day rows. A breakdown by a property or a
property filter is not rolled up, nor are numbers and users by minute: those are aggregated by the database
over the range's raw events (exact).
"""

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from django.db import connection
from django.db.models import (
    Aggregate,
    BigIntegerField,
    Count,
    Expression,
    F,
    Q,
    QuerySet,
    Sum,
    TextField,
    Value,
)
from django.db.models.functions import Trunc, TruncWeek

from apps.common.jsonfields import PropertyNumber, PropertyText
from apps.ingest.models import RawEvent

from . import buckets
from . import query as query_language
from .buckets import INTERVALS, MAX_BUCKETS, STEP
from .groups import ALIAS, group_label, in_groups, outside_groups
from .groups import group_expression as breakdown_group
from .models import DETAIL_GRANULARITIES, RollupCount, RollupNumeric, RollupSketch, RollupUser

OTHER = "other"  # the name shown for the rest series
TOTAL = "total"
KINDS = ("value", "rest", "total", "previous")
# Series × buckets one answer may hold (a chart of 12 days by minute with the top 10 is 190,080).
MAX_POINTS = 200_000


class SeriesQueryError(ValueError):
    """The query cannot be answered as asked; the message says why."""


@dataclass(frozen=True)
class SeriesQuery:
    events: tuple[str, ...]
    measure: str = "count"
    interval: str = "day"
    start: datetime | None = None
    end: datetime | None = None
    breakdown: str = ""
    filters: tuple[tuple[str, str], ...] = ()
    top_n: int = 5
    compare: bool = False


@dataclass
class Series:
    name: str
    points: list[tuple[datetime, float | None]] = field(default_factory=list)
    # "value" (one breakdown value), "rest" (all values outside the top N), "total" (no breakdown) or
    # "previous" (the compare period of the current series at the same position).
    kind: str = TOTAL
    # The values are estimates (unique users from HyperLogLog sketches), not exact counts.
    estimate: bool = False
    # The group of a property breakdown's events without the property (named "(none)" for people; a value
    # "(none)" is not absent). With kind "previous", the current series' group.
    absent: bool = False

    @property
    def group(self) -> str | None:
        """The breakdown group of a "value" or "previous" series: its value, None for the absent group."""
        return None if self.absent else self.name

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "estimate": self.estimate,
            "absent": self.absent,
            "points": [{"t": t.isoformat(), "v": v} for t, v in self.points],
        }


class UsersInSketches(Aggregate):
    """The users of the union of HyperLogLog sketches (postgresql-hll), rounded to a whole number."""

    function = "hll_union_agg"
    template = "round(hll_cardinality(%(function)s(%(expressions)s)))::bigint"
    output_field = BigIntegerField()


@dataclass
class _Column:
    """One group's parts, bucket by bucket: event count (or count of numbers), their sum, distinct users."""

    count: list[float]
    total: list[float]
    distinct: list[int]

    @classmethod
    def empty(cls, size: int) -> "_Column":
        return cls(count=[0] * size, total=[0.0] * size, distinct=[0] * size)

    def values(self, measure: str) -> list[float | None]:
        if measure == "count":
            return self.count
        if measure == "sum":
            return self.total
        if measure == "unique_users":
            return self.distinct
        return [total / count if count else None for count, total in zip(self.count, self.total, strict=True)]


def series_for(query: SeriesQuery) -> list[Series]:
    """Return the series a chart draws for the query (see the module docstring)."""
    measure, prop = _parse_measure(query.measure)
    start, end = _aligned_range(query)
    source = _Source(query, measure, prop)
    current = _series_over(source, start, end)
    if not query.compare:
        return current
    span = end - start
    try:
        previous_start = start - span
    except OverflowError:
        raise SeriesQueryError("the period before the range starts before year 1") from None
    # The previous period keeps the current period's groups, so every series has its partner.
    groups = [series.group for series in current if series.kind == "value"]
    with_rest = any(series.kind == "rest" for series in current)
    previous = _series_over(source, previous_start, start, groups=groups, with_rest=with_rest)
    for series in previous:
        series.kind = "previous"
        series.points = [(t + span, v) for t, v in series.points]
    return current + previous


# --- query parsing -------------------------------------------------------------------------------------


def _parse_measure(measure: str) -> tuple[str, str]:
    try:
        return query_language.measure(measure)
    except query_language.QueryError as refused:
        raise SeriesQueryError(refused.message) from None


def _aligned_range(query: SeriesQuery) -> tuple[datetime, datetime]:
    if query.interval not in INTERVALS:
        raise SeriesQueryError(f"interval {query.interval!r}: use minute, hour, day or week")
    if not query.events:
        raise SeriesQueryError("choose at least one event")
    if query.start is None or query.end is None:
        raise SeriesQueryError("give both ends of the time range")
    if not 1 <= query.top_n <= 50:
        raise SeriesQueryError("top N must be between 1 and 50")
    # Before aligning: a reversed or empty range inside one bucket would widen into that whole bucket.
    if query.end <= query.start:
        raise SeriesQueryError("the range must end after it starts")
    try:
        start = buckets.floor(query.start, query.interval)
        end = query.end.astimezone(UTC)
        aligned_end = buckets.floor(end, query.interval)
        end = aligned_end if aligned_end == end else aligned_end + STEP[query.interval]
    except OverflowError:
        raise SeriesQueryError("the range reaches beyond the calendar (years 1 to 9999)") from None
    bucket_count = (end - start) // STEP[query.interval]
    if bucket_count > MAX_BUCKETS:
        raise SeriesQueryError(f"more than {MAX_BUCKETS} {query.interval}s: choose a coarser interval")
    series = (query.top_n + 1 if _group_field(query) else 1) * (2 if query.compare else 1)
    if series * bucket_count > MAX_POINTS:
        raise SeriesQueryError(
            f"more than {MAX_POINTS:,} points ({series} series × {bucket_count} {query.interval}s): "
            "choose a coarser interval, a shorter range or a smaller top N"
        )
    return start, end


def _group_field(query: SeriesQuery) -> str:
    try:
        breakdown = query_language.breakdown(query.breakdown)
    except query_language.QueryError as refused:
        raise SeriesQueryError(refused.message) from None
    return breakdown or ("event" if len(query.events) > 1 else "")


# --- where the numbers come from -------------------------------------------------------------------------


def earliest_raw_read(query: SeriesQuery) -> datetime | None:
    """Return the earliest time whose raw events the query's series are aggregated from (the compare
    period's start with compare), or None when they come from the rollups. Retention deletes raw events
    older than RETENTION_RAW_DAYS and keeps the rollups, so such series read nothing before then."""
    if not _reads_raw_events(query):
        return None
    start, end = _aligned_range(query)
    return start - (end - start) if query.compare else start


def _reads_raw_events(query: SeriesQuery) -> bool:
    measure, _prop = _parse_measure(query.measure)
    # Numbers and users are not rolled up by minute (DETAIL_GRANULARITIES): minute charts of them read
    # the raw events, as do property breakdowns and filters.
    return (
        bool(query.filters)
        or _group_field(query).startswith("prop:")
        or (query.interval not in DETAIL_GRANULARITIES + ("week",) and measure != "count")
    )


class _Source:
    """One query's rows (rollups or raw events), its bucket and group expressions and its aggregates."""

    def __init__(self, query: SeriesQuery, measure: str, prop: str) -> None:
        self.query, self.measure, self.prop = query, measure, prop
        self.group = _group_field(query)
        self.raw = _reads_raw_events(query)
        self.sketches = measure == "unique_users" and not self.raw and connection.vendor == "postgresql"

    def rows(self, start: datetime, end: datetime) -> QuerySet:
        if self.raw:
            # Only aggregated events: the same set the rollups count, so both sources agree.
            qs = (
                RawEvent.objects.aggregated()
                .since(start)
                .filter(timestamp__lt=end, event__in=self.query.events)
            )
            for index, (name, value) in enumerate(self.query.filters):
                qs = qs.alias(**{f"filter_{index}": PropertyText(name)}).filter(**{f"filter_{index}": value})
            return qs
        users = RollupSketch if self.sketches else RollupUser
        model = {"count": RollupCount, "unique_users": users}.get(self.measure, RollupNumeric)
        qs = model.objects.filter(
            granularity="day" if self.query.interval == "week" else self.query.interval,
            bucket_start__gte=start,
            bucket_start__lt=end,
            event__in=self.query.events,
        )
        return qs.filter(prop=self.prop) if model is RollupNumeric else qs

    def bucket(self) -> Expression:
        interval = self.query.interval
        if self.raw:
            return Trunc("timestamp", interval, tzinfo=UTC)
        return TruncWeek("bucket_start", tzinfo=UTC) if interval == "week" else F("bucket_start")

    def group_expression(self) -> Expression:
        return breakdown_group(self.group)

    def aggregates(self) -> dict[str, Any]:
        """The parts of a cell, named as _PARTS says, for the measure."""
        if self.sketches:
            return {"u": UsersInSketches("users")}
        if self.measure == "unique_users":
            return {"u": Count("user_id", distinct=True, filter=~Q(user_id="") if self.raw else None)}
        if not self.raw:
            return {"n": Sum("count")} if self.measure == "count" else {"n": Sum("count"), "s": Sum("sum")}
        if self.measure == "count":
            return {"n": Count("pk")}
        number = PropertyNumber(self.prop)
        return {"n": Count(number), "s": Sum(number)}

    def rank_part(self) -> str:
        """The part whose sum over the range ranks the groups (for averages: how many numbers)."""
        return {"unique_users": "u", "sum": "s"}.get(self.measure, "n")


# What each aggregate fills in a column, and its type once out of the database.
_PARTS = {"n": ("count", "bigint"), "s": ("total", "float8"), "u": ("distinct", "bigint")}


def _series_over(
    source: _Source,
    start: datetime,
    end: datetime,
    groups: list[str | None] | None = None,
    with_rest: bool | None = None,
) -> list[Series]:
    """Return one period's series: the top groups (or the given ones; None: the absent group), then the
    rest."""
    bucket_list = buckets.starts(start, end, source.query.interval)
    size = len(bucket_list)
    rows = source.rows(start, end)
    if not source.group:
        columns = _columns(rows, source, start, size, grouped=False)
        return [
            Series(
                TOTAL, _points(bucket_list, columns.get(TOTAL), source.measure, size), TOTAL, source.sketches
            )
        ]
    group = source.group_expression()
    if source.raw:
        # A property may have thousands of values: rank them in SQL, then read only the top N and the rest.
        if groups is None:
            groups, with_rest = _ranked_groups(rows, source, source.query.top_n)
        columns = {}
        if groups:
            top_rows = rows.alias(**{ALIAS: group}).filter(in_groups(groups))
            columns = _columns(top_rows, source, start, size, grouped=True)
        rest = None
        if with_rest:
            rest_rows = rows.alias(**{ALIAS: group}).filter(outside_groups(groups))
            rest = _columns(rest_rows, source, start, size, grouped=False).get(TOTAL)
    else:
        # Services, stages and events are few: one query reads every group, ranked and folded here.
        columns = _columns(rows, source, start, size, grouped=True)
        if groups is None:
            groups = _ranked_in_python(columns, source)[: source.query.top_n]
            with_rest = len(columns) > len(groups)
        others = [value for value in columns if value not in groups]
        rest = None
        if with_rest and others and source.measure == "unique_users":
            # The users of several groups do not add up: the union of their sketches (or rows) is asked.
            rest_rows = rows.alias(**{ALIAS: group}).filter(outside_groups(groups))
            rest = _columns(rest_rows, source, start, size, grouped=False).get(TOTAL)
        elif with_rest:
            rest = _folded([columns[value] for value in others], size)
    out = [
        Series(
            group_label(value),
            _points(bucket_list, columns.get(value), source.measure, size),
            "value",
            source.sketches,
            absent=value is None,
        )
        for value in groups
    ]
    if with_rest:
        out.append(Series(OTHER, _points(bucket_list, rest, source.measure, size), "rest", source.sketches))
    return out


def _ranked_in_python(columns: dict[str | None, _Column], source: _Source) -> list[str | None]:
    """Return the groups by their total over the range, largest first, ties by value and the absent group
    last (as _ranked_groups)."""
    part = _PARTS[source.rank_part()][0]
    totals = {value: sum(getattr(column, part)) for value, column in columns.items()}
    return sorted(totals, key=lambda value: (-totals[value], value is None, value or ""))


def _folded(columns: list[_Column], size: int) -> _Column:
    """Return the sum of additive columns (counts and sums), bucket by bucket."""
    rest = _Column.empty(size)
    for column in columns:
        rest.count = [a + b for a, b in zip(rest.count, column.count, strict=True)]
        rest.total = [a + b for a, b in zip(rest.total, column.total, strict=True)]
    return rest


def _points(buckets: list[datetime], column: _Column | None, measure: str, size: int) -> list:
    column = column or _Column.empty(size)
    return list(zip(buckets, column.values(measure), strict=True))


def _ranked_groups(rows: QuerySet, source: _Source, top_n: int) -> tuple[list[str | None], bool]:
    """Return the top N groups by their total over the range (ties by value, the absent group, None,
    last), and whether others exist.

    The total of a group is the sum of its bucket values (for unique users: per-bucket distinct users),
    computed by the database over (group, bucket) cells, so a property with thousands of values costs a
    GROUP BY, not thousands of columns in Python.
    """
    part = source.rank_part()
    cells = rows.values(g=source.group_expression(), b=source.bucket()).annotate(
        **{part: source.aggregates()[part]}
    )
    sql, params = cells.query.sql_with_params()
    text_order = 'COLLATE "C"' if connection.vendor == "postgresql" else ""  # code point order, as Python
    with connection.cursor() as cursor:
        cursor.execute(
            f'SELECT "g" FROM ({sql}) AS cells GROUP BY "g"'
            f' ORDER BY COALESCE(SUM("{part}"), 0) DESC, ("g" IS NULL), "g" {text_order} LIMIT %s',
            (*params, top_n + 1),
        )
        ranked = [row[0] for row in cursor.fetchall()]
    return ranked[:top_n], len(ranked) > top_n


def _columns(rows: QuerySet, source: _Source, start: datetime, size: int, *, grouped: bool) -> dict:
    """Aggregate rows by bucket (and group when `grouped`, else under TOTAL); lay them out as columns."""
    aggregates = source.aggregates()
    group = source.group_expression() if grouped else Value(TOTAL, output_field=TextField())
    # Grouping on the bucket column itself lets PostgreSQL read distinct users in index order.
    cells = rows.values(b=source.bucket(), g=group).annotate(**aggregates)
    interval = source.query.interval
    columns: dict[str | None, _Column] = {}  # None: the absent group

    def column_of(name: str | None) -> _Column:
        if name not in columns:
            columns[name] = _Column.empty(size)
        return columns[name]

    if connection.vendor == "postgresql":
        # One row per group, its buckets as arrays of (index, value): thousands of (bucket, group) rows cost
        # more to turn into Python objects than the database needs to add them up.
        sql, params = cells.query.sql_with_params()
        index = '(EXTRACT(EPOCH FROM "b")::bigint - %s) / %s'
        arrays = ", ".join(f'array_agg("{part}"::{_PARTS[part][1]} ORDER BY "b")' for part in aggregates)
        step = int(STEP[interval].total_seconds())
        with connection.cursor() as cursor:
            cursor.execute(
                f'SELECT "g", array_agg({index} ORDER BY "b"), {arrays} FROM ({sql}) AS cells GROUP BY "g"',
                (int(start.timestamp()), step, *params),
            )
            for name, indexes, *parts in cursor.fetchall():
                column = column_of(name)
                for part, values in zip(aggregates, parts, strict=True):
                    target = getattr(column, _PARTS[part][0])
                    for position, value in zip(indexes, values, strict=True):
                        target[position] = value or 0
        return columns
    step = STEP[interval]
    for row in cells.values_list("b", "g", *aggregates):
        column = column_of(row[1])
        position = (_as_utc(row[0]) - start) // step
        for part, value in zip(aggregates, row[2:], strict=True):
            getattr(column, _PARTS[part][0])[position] = value or 0
    return columns


def _as_utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
