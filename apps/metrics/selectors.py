"""Reads for usage charts: series of a measure over time, from the rollups (raw events only when needed).

    series_for(query: SeriesQuery) -> list[Series]

- measure: "count" | "unique_users" | "sum:<prop>" | "avg:<prop>"
- interval: "minute" | "hour" | "day" | "week" (weeks start on Monday, UTC)
- breakdown: "" | "service" | "stage" | "event" | "prop:<name>"; the top N values by total, the rest summed
  up as "other". Several events without a breakdown are broken down by event.
- filters: (("<property>", "<value as text>"), ...) equality on top-level properties
- every bucket of [start, end) is present; count, unique_users and sum are 0 in empty buckets, avg is None
- compare=True adds, for each series, "<name> (previous period)": the same span just before, shifted onto
  the current buckets

Sources: count, sum and avg come from `RollupCount`/`RollupNumeric`, unique users from `RollupUser`
(exact COUNT(DISTINCT)), weeks from day rows. A breakdown by a property or a property filter is not rolled
up: it reads the range's raw events (cost grows with the raw events in the range).
"""

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import connection
from django.db.models import Count, F, QuerySet, Sum, TextField, Value
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast, TruncWeek

from apps.ingest.models import RawEvent

from .models import RollupCount, RollupNumeric, RollupUser
from .services import bucket_start, numeric_properties

MEASURES = ("count", "unique_users", "sum", "avg")
INTERVALS = ("minute", "hour", "day", "week")
COLUMN_BREAKDOWNS = ("service", "stage", "event")
OTHER = "other"
TOTAL = "total"
MAX_BUCKETS = 20_000
STEP = {
    "minute": timedelta(minutes=1),
    "hour": timedelta(hours=1),
    "day": timedelta(days=1),
    "week": timedelta(weeks=1),
}


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

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "points": [{"t": t.isoformat(), "v": v} for t, v in self.points]}


@dataclass
class _Column:
    """One group's parts, bucket by bucket, before they become numbers: additive parts, or users."""

    count: list[float]
    total: list[float]
    distinct: list[int] | None = None  # unique users counted by the database
    users: dict[int, set[str]] | None = None  # unique users gathered from raw events, by bucket index

    @classmethod
    def empty(cls, size: int) -> "_Column":
        return cls(count=[0] * size, total=[0.0] * size)


def series_for(query: SeriesQuery) -> list[Series]:
    """Return the series a chart draws for the query (see the module docstring)."""
    measure, prop = _parse_measure(query.measure)
    start, end = _aligned_range(query)
    main = _series_over(query, measure, prop, start, end)
    if not query.compare:
        return main
    span = end - start
    # The previous period keeps the current period's groups, so every series has its partner.
    shown = [series.name for series in main if series.name != OTHER]
    previous = _series_over(
        query, measure, prop, start - span, start, names=shown, with_other=len(shown) < len(main)
    )
    for series in previous:
        series.name = f"{series.name} (previous period)"
        series.points = [(t + span, v) for t, v in series.points]
    return main + previous


def bucket_starts(start: datetime, end: datetime, interval: str) -> list[datetime]:
    """Return every bucket start of an aligned range."""
    out, moment = [], start
    while moment < end:
        out.append(moment)
        moment += STEP[interval]
    return out


def align(moment: datetime, interval: str) -> datetime:
    """Return the start of the bucket holding `moment` (weeks start on Monday)."""
    if interval == "week":
        day = bucket_start(moment, "day")
        return day - timedelta(days=day.weekday())
    return bucket_start(moment, interval)


# --- query parsing -------------------------------------------------------------------------------------


def _parse_measure(measure: str) -> tuple[str, str]:
    kind, _, prop = measure.partition(":")
    if kind not in MEASURES:
        raise SeriesQueryError(
            f"measure {measure!r}: use count, unique_users, sum:<property> or avg:<property>"
        )
    if kind in ("sum", "avg") and not prop:
        raise SeriesQueryError(f"measure {kind} needs a property, e.g. {kind}:n_results")
    if kind in ("count", "unique_users") and prop:
        raise SeriesQueryError(f"measure {kind} takes no property")
    return kind, prop


def _aligned_range(query: SeriesQuery) -> tuple[datetime, datetime]:
    if query.interval not in INTERVALS:
        raise SeriesQueryError(f"interval {query.interval!r}: use minute, hour, day or week")
    if not query.events:
        raise SeriesQueryError("choose at least one event")
    if query.start is None or query.end is None:
        raise SeriesQueryError("give both ends of the time range")
    start = align(query.start.astimezone(UTC), query.interval)
    end = query.end.astimezone(UTC)
    aligned_end = align(end, query.interval)
    end = aligned_end if aligned_end == end else aligned_end + STEP[query.interval]
    if end <= start:
        raise SeriesQueryError("the range must end after it starts")
    if (end - start) / STEP[query.interval] > MAX_BUCKETS:
        raise SeriesQueryError(f"more than {MAX_BUCKETS} {query.interval}s: choose a coarser interval")
    if not 1 <= query.top_n <= 50:
        raise SeriesQueryError("top N must be between 1 and 50")
    return start, end


def _group_field(query: SeriesQuery) -> str:
    if query.breakdown in COLUMN_BREAKDOWNS:
        return query.breakdown
    if query.breakdown.startswith("prop:") and query.breakdown[5:]:
        return query.breakdown
    if query.breakdown:
        raise SeriesQueryError(f"breakdown {query.breakdown!r}: use service, stage, event or prop:<name>")
    return "event" if len(query.events) > 1 else ""


# --- one period ----------------------------------------------------------------------------------------


def _series_over(
    query: SeriesQuery,
    measure: str,
    prop: str,
    start: datetime,
    end: datetime,
    names: list[str] | None = None,
    with_other: bool | None = None,
) -> list[Series]:
    """Return one period's series: the top groups (or the given ones) and "other" for the rest."""
    group = _group_field(query)
    use_raw = bool(query.filters) or group.startswith("prop:")
    buckets = bucket_starts(start, end, query.interval)
    columns = (_raw_columns if use_raw else _rollup_columns)(query, measure, prop, group, start, len(buckets))
    if names is None:
        names = _ranked_groups(columns, measure, query.top_n) if group else [TOTAL]
    if group:
        _fold_other(columns, names, measure, query, group, start, end, len(buckets), use_raw)
    if with_other is None:
        with_other = OTHER in columns
    return [
        Series(name, list(zip(buckets, _values(columns.get(name), measure, len(buckets)), strict=True)))
        for name in names + ([OTHER] if with_other else [])
    ]


def _values(column: _Column | None, measure: str, size: int) -> list[float | None]:
    if measure == "avg":
        if column is None:
            return [None] * size
        return [
            total / count if count else None for count, total in zip(column.count, column.total, strict=True)
        ]
    if column is None:
        return [0] * size
    if measure == "count":
        return column.count
    if measure == "sum":
        return column.total
    if column.distinct is not None:
        return column.distinct
    users = column.users or {}
    return [len(users.get(index, ())) for index in range(size)]


def _ranked_groups(columns: dict[str, _Column], measure: str, top_n: int) -> list[str]:
    size = len(next(iter(columns.values())).count) if columns else 0
    totals = {
        name: sum(column.count if measure == "avg" else _values(column, measure, size))
        for name, column in columns.items()
    }
    ranked = sorted(totals, key=lambda name: (-totals[name], name))
    return ranked[:top_n]


def _fold_other(columns, names, measure, query, group, start, end, size, use_raw) -> None:
    """Replace the groups outside the top N by one "other" group (exactly, users included)."""
    keep = set(names)
    rest = [name for name in columns if name not in keep]
    if not rest:
        return
    if measure == "unique_users" and not use_raw:
        # Distinct users across several groups cannot be added up: ask the rollups once more.
        for name in rest:
            del columns[name]
        qs = _rollup_base(RollupUser, query, start, end).exclude(**{f"{group}__in": names})
        found = _columns_from(qs, query.interval, start, size, "", {"u": Count("user_id", distinct=True)})
        columns[OTHER] = found.get(TOTAL) or _Column.empty(size)
        return
    other = _Column.empty(size)
    for name in rest:
        column = columns.pop(name)
        other.count = [a + b for a, b in zip(other.count, column.count, strict=True)]
        other.total = [a + b for a, b in zip(other.total, column.total, strict=True)]
        if column.users is not None:
            other.users = other.users or {}
            for index, users in column.users.items():
                other.users.setdefault(index, set()).update(users)
    columns[OTHER] = other


# --- sources ---------------------------------------------------------------------------------------------


def _granularity(interval: str) -> str:
    return "day" if interval == "week" else interval


def _bucket_expr(interval: str):
    return TruncWeek("bucket_start", tzinfo=UTC) if interval == "week" else F("bucket_start")


def _rollup_base(model, query: SeriesQuery, start: datetime, end: datetime) -> QuerySet:
    return model.objects.filter(
        granularity=_granularity(query.interval),
        bucket_start__gte=start,
        bucket_start__lt=end,
        event__in=query.events,
    )


def _rollup_columns(query, measure, prop, group, start, size) -> dict[str, _Column]:
    end = start + size * STEP[query.interval]
    if measure == "count":
        qs, aggregates = _rollup_base(RollupCount, query, start, end), {"n": Sum("count")}
    elif measure in ("sum", "avg"):
        qs = _rollup_base(RollupNumeric, query, start, end).filter(prop=prop)
        aggregates = {"n": Sum("count"), "s": Sum("sum")}
    else:
        qs, aggregates = _rollup_base(RollupUser, query, start, end), {"u": Count("user_id", distinct=True)}
    return _columns_from(qs, query.interval, start, size, group, aggregates)


# What each aggregate fills in a column, and its type once out of the database.
_PARTS = {"n": ("count", "bigint"), "s": ("total", "float8"), "u": ("distinct", "bigint")}


def _columns_from(qs: QuerySet, interval: str, start: datetime, size: int, group: str, aggregates: dict):
    """Group `qs` by bucket (and group) with the aggregates, and lay the results out as columns."""
    # Grouping on the bucket column itself lets PostgreSQL read distinct users in index order.
    grouped = qs.values(b=_bucket_expr(interval), g=F(group) if group else Value(TOTAL)).annotate(
        **aggregates
    )
    columns: dict[str, _Column] = {}

    def column_of(name: str) -> _Column:
        column = columns.get(name)
        if column is None:
            column = columns[name] = _Column.empty(size)
            if "u" in aggregates:
                column.distinct = [0] * size
        return column

    if connection.vendor == "postgresql":
        # One row per group, its buckets as arrays of (index, value): thousands of (bucket, group) rows cost
        # more to turn into Python objects than the database needs to add them up.
        sql, params = grouped.query.sql_with_params()
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
                        target[position] = value
        return columns
    step = STEP[interval]
    for row in grouped.values_list("b", "g", *aggregates):
        column = column_of(row[1])
        position = (_as_utc(row[0]) - start) // step
        for part, value in zip(aggregates, row[2:], strict=True):
            getattr(column, _PARTS[part][0])[position] = value
    return columns


def _raw_columns(query, measure, prop, group, start, size) -> dict[str, _Column]:
    """Aggregate the range's raw events in Python (property breakdowns and filters are not rolled up)."""
    step = STEP[query.interval]
    end = start + size * step
    # Only aggregated events: the same set the rollups count, so both sources agree.
    qs = RawEvent.objects.filter(
        timestamp__gte=start, timestamp__lt=end, event__in=query.events, aggregated_at__isnull=False
    )
    for index, (name, value) in enumerate(query.filters):
        # The key goes in as a query parameter, never into the SQL text: property names are user-chosen.
        alias = f"filter_{index}"
        # Cast to text: on SQLite, Django would otherwise read the compared value as JSON ("malformed JSON").
        as_text = Cast(KeyTextTransform(name, "properties"), output_field=TextField())
        qs = qs.alias(**{alias: as_text}).filter(**{alias: value})
    columns_read = ["timestamp", "user_id", "properties"] + ([group] if group in COLUMN_BREAKDOWNS else [])
    columns: dict[str, _Column] = {}
    for row in qs.values_list(*columns_read).iterator(chunk_size=5000):
        timestamp, user_id, properties = row[0], row[1], row[2] or {}
        name = _raw_group(group, row, properties)
        if name is None:
            continue
        column = columns.get(name)
        if column is None:
            column = columns[name] = _Column.empty(size)
            column.users = {}
        index = (align(timestamp, query.interval) - start) // step
        if measure in ("sum", "avg"):
            number = numeric_properties({prop: properties.get(prop)}).get(prop)
            if number is None:
                continue
            column.total[index] += number
        elif user_id:
            column.users.setdefault(index, set()).add(user_id)
        column.count[index] += 1
    return columns


def _raw_group(group: str, row: tuple, properties: dict) -> str | None:
    if not group:
        return TOTAL
    if group in COLUMN_BREAKDOWNS:
        return row[3]
    value = properties.get(group[5:])
    if value is None:
        return "(none)"
    # Non-text values read as JSON text, as the database's ->> does: true, 3, 2.5
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True, ensure_ascii=False)


def _as_utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
