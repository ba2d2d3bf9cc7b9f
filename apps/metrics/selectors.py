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
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import connection
from django.db.models import BigIntegerField, Count, F, Func, QuerySet, Sum
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import TruncWeek

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
class _Cell:
    """What one (bucket, group) holds before it becomes a number: additive parts, or a set of users."""

    count: float = 0.0
    total: float = 0.0
    users: set[str] | None = None
    distinct: int | None = None


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
    cells = (_raw_cells if use_raw else _rollup_cells)(query, measure, prop, group, start, end)
    if names is None:
        names = _ranked_groups(cells, measure, query.top_n) if group else [TOTAL]
    if group:
        _fold_other(cells, names, measure, query, prop, group, start, end, use_raw)
    if with_other is None:
        with_other = any(key[1] == OTHER for key in cells)
    buckets = bucket_starts(start, end, query.interval)
    return [
        Series(name, [(b, _value(cells.get((b, name)), measure)) for b in buckets])
        for name in names + ([OTHER] if with_other else [])
    ]


def _value(cell: _Cell | None, measure: str) -> float | None:
    if measure == "avg":
        return cell.total / cell.count if cell and cell.count else None
    if cell is None:
        return 0
    if measure == "count":
        return cell.count
    if measure == "sum":
        return cell.total
    return cell.distinct if cell.distinct is not None else len(cell.users or ())


def _ranked_groups(cells: dict, measure: str, top_n: int) -> list[str]:
    totals: dict[str, float] = defaultdict(float)
    for (_, name), cell in cells.items():
        totals[name] += (
            cell.total
            if measure == "sum"
            else cell.count
            if measure in ("count", "avg")
            else (cell.distinct if cell.distinct is not None else len(cell.users or ()))
        )
    ranked = sorted(totals, key=lambda name: (-totals[name], name))
    return ranked[:top_n]


def _fold_other(cells, names, measure, query, prop, group, start, end, use_raw) -> None:
    """Replace the groups outside the top N by one "other" group per bucket (exactly, users included)."""
    keep = set(names)
    rest = [key for key in cells if key[1] not in keep]
    if not rest:
        return
    if measure == "unique_users" and not use_raw:
        # Distinct users across several groups cannot be added up: ask the rollups once more.
        for key in rest:
            del cells[key]
        qs = _rollup_base(RollupUser, query, start, end).exclude(**{f"{group}__in": names})
        for row in qs.values(b=_bucket_expr(query.interval)).annotate(n=Count("user_id", distinct=True)):
            cells[(_as_utc(row["b"]), OTHER)] = _Cell(distinct=row["n"])
        return
    for key in rest:
        cell = cells.pop(key)
        other = cells.setdefault((key[0], OTHER), _Cell(users=set() if cell.users is not None else None))
        other.count += cell.count
        other.total += cell.total
        if cell.users is not None:
            other.users |= cell.users


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


def _rollup_cells(query, measure, prop, group, start, end) -> dict[tuple[datetime, str], _Cell]:
    group_values = {"g": F(group)} if group else {}
    # Distinct counts group on the column itself, where the index order helps; the rest read epoch seconds.
    bucket = {"b": _bucket_expr(query.interval) if measure == "unique_users" else _bucket_key(query.interval)}
    if measure == "count":
        base = _rollup_base(RollupCount, query, start, end)
        aggregates, make = {"n": Sum("count")}, lambda n: _Cell(count=n)
    elif measure in ("sum", "avg"):
        base = _rollup_base(RollupNumeric, query, start, end).filter(prop=prop)
        aggregates, make = {"n": Sum("count"), "s": Sum("sum")}, lambda n, s: _Cell(count=n, total=s)
    else:
        base = _rollup_base(RollupUser, query, start, end)
        aggregates, make = {"n": Count("user_id", distinct=True)}, lambda n: _Cell(distinct=n)
    names = ["b", *group_values, *aggregates]
    rows = base.values(**bucket, **group_values).annotate(**aggregates).values_list(*names)
    moments: dict[Any, datetime] = {}
    cells: dict[tuple[datetime, str], _Cell] = {}
    width = 2 if group else 1
    for row in rows:
        key = row[0]
        moment = moments.get(key)
        if moment is None:
            moment = moments[key] = _bucket_moment(key)
        cells[(moment, row[1] if group else TOTAL)] = make(*row[width:])
    return cells


def _bucket_key(interval: str):
    """The bucket as epoch seconds on PostgreSQL: thousands of timestamps parse slowly in Python."""
    expression = _bucket_expr(interval)
    if connection.vendor == "postgresql":
        return Func(
            expression, template="EXTRACT(EPOCH FROM %(expressions)s)::bigint", output_field=BigIntegerField()
        )
    return expression


def _bucket_moment(key: Any) -> datetime:
    return datetime.fromtimestamp(key, tz=UTC) if isinstance(key, int) else _as_utc(key)


def _raw_cells(query, measure, prop, group, start, end) -> dict[tuple[datetime, str], _Cell]:
    """Aggregate the range's raw events in Python (property breakdowns and filters are not rolled up)."""
    # Only aggregated events: the same set the rollups count, so both sources agree.
    qs = RawEvent.objects.filter(
        timestamp__gte=start, timestamp__lt=end, event__in=query.events, aggregated_at__isnull=False
    )
    for index, (name, value) in enumerate(query.filters):
        # The key goes in as a query parameter, never into the SQL text: property names are user-chosen.
        alias = f"filter_{index}"
        qs = qs.alias(**{alias: KeyTextTransform(name, "properties")}).filter(**{alias: value})
    columns = ["timestamp", "user_id", "properties"] + ([group] if group in COLUMN_BREAKDOWNS else [])
    cells: dict[tuple[datetime, str], _Cell] = {}
    for row in qs.values_list(*columns).iterator(chunk_size=5000):
        timestamp, user_id, properties = row[0], row[1], row[2] or {}
        name = _raw_group(group, row, properties)
        if name is None:
            continue
        cell = cells.setdefault((align(timestamp, query.interval), name), _Cell(users=set()))
        if measure in ("sum", "avg"):
            number = numeric_properties({prop: properties.get(prop)}).get(prop)
            if number is None:
                continue
            cell.count += 1
            cell.total += number
        else:
            cell.count += 1
            if user_id:
                cell.users.add(user_id)
    return cells


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
