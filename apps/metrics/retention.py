"""Retention: cohorts of users by the day or week of their first `start_event`, and how many of them did
`return_event` 0, 1, 2, … intervals later. Read from raw events.

    retention_for(query: RetentionQuery) -> Retention
    retention_cell_users(query, cohort=<bucket start>, offset=k | None) -> list[str]

What counts (README, "Funnels and retention"):
- The range is aligned to whole buckets (days, or weeks from Monday, UTC), like the series API's.
- A user's cohort is the bucket of their FIRST start_event in the range; every bucket of the range has a
  cohort, empty ones with size 0.
- values[k]: users of the cohort with a return_event in the bucket k intervals after the cohort's bucket,
  strictly after their first start_event (so for k = 0 with start_event = return_event, a second time);
  each user counts once per cell. Return events are read up to the range's end, so a cohort has one value
  per bucket from its own to the last.

PostgreSQL answers in ONE statement (the first start time per user, the buckets each user came back in,
joined by user and counted per cohort and offset); SQLite matches the same rows in Python
(`retention_users` and `retention_cells`, also the benchmark's baseline).
"""

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from django.db import connection

from . import buckets
from .eventrows import EventFilter, analysis_cursor, event_rows

RETENTION_INTERVALS = ("day", "week")
MAX_COHORTS = 400


class RetentionQueryError(ValueError):
    """The range cannot be answered as asked (too many cohorts); the message says why."""


@dataclass(frozen=True)
class RetentionQuery:
    start_event: str
    return_event: str
    start: datetime
    end: datetime
    interval: str = "day"
    where: EventFilter = field(default_factory=EventFilter)


@dataclass
class Cohort:
    start: datetime
    size: int
    values: list[int]

    @property
    def percentages(self) -> list[float | None]:
        return [round(100 * v / self.size, 2) if self.size else None for v in self.values]

    def as_json(self) -> dict[str, Any]:
        return {
            "start": self.start.isoformat(),
            "size": self.size,
            "values": self.values,
            "percentages": self.percentages,
        }


@dataclass
class Retention:
    interval: str
    cohorts: list[Cohort]

    def as_json(self) -> dict[str, Any]:
        return {"interval": self.interval, "cohorts": [c.as_json() for c in self.cohorts]}


def aligned_range(query: RetentionQuery) -> tuple[datetime, datetime]:
    """Return the range widened to whole buckets; refuse more than MAX_COHORTS of them."""
    if query.interval not in RETENTION_INTERVALS:
        raise RetentionQueryError(f"interval {query.interval!r}: use day or week")
    start = buckets.floor(query.start, query.interval)
    end = query.end.astimezone(UTC)
    floored = buckets.floor(end, query.interval)
    end = floored if floored == end else floored + buckets.STEP[query.interval]
    if end <= start:
        raise RetentionQueryError("the range must end after it starts")
    if (end - start) // buckets.STEP[query.interval] > MAX_COHORTS:
        raise RetentionQueryError(
            f"more than {MAX_COHORTS} {query.interval}s: choose weeks or a shorter range"
        )
    return start, end


def retention_for(query: RetentionQuery) -> Retention:
    """Return one cohort per bucket of the range (see the module docstring)."""
    start, end = aligned_range(query)
    starts = buckets.starts(start, end, query.interval)
    if connection.vendor == "postgresql":
        cells = _cells_in_sql(query, start, end)
    else:
        cells = retention_cells(_first_and_returns(query, start, end), query.interval)
    cohorts = []
    for index, moment in enumerate(starts):
        size = cells.get((moment, -1), 0)
        values = [cells.get((moment, k), 0) for k in range(len(starts) - index)]
        cohorts.append(Cohort(start=moment, size=size, values=values))
    return Retention(interval=query.interval, cohorts=cohorts)


def retention_cell_users(query: RetentionQuery, *, cohort: datetime, offset: int | None = None) -> list[str]:
    """Return the IDs (sorted) of a cohort's users, or of those who returned `offset` intervals later."""
    start, end = aligned_range(query)
    cohort = cohort.astimezone(UTC)
    users = []
    for user, (first, returns) in _first_and_returns(query, start, end).items():
        if buckets.floor(first, query.interval) != cohort:
            continue
        if offset is None or offset in _offsets(first, returns, query.interval):
            users.append(user)
    return sorted(users)


# --- PostgreSQL: one statement ------------------------------------------------------------------------------


def _cells_in_sql(query: RetentionQuery, start: datetime, end: datetime) -> dict[tuple[datetime, int], int]:
    """Count cohorts and returns in one statement: each user's first start, each user's return buckets
    (with the last return in each, which is after the first start when any is), joined by user.

    The rows are scanned twice (each scan reads one event's rows) rather than stored once: a stored copy
    spills to disk on a busy month, and one (user, bucket) row per return bucket needs no DISTINCT later.
    """
    rows = event_rows(names=(query.start_event, query.return_event), start=start, end=end, where=query.where)
    sql, params = rows.query.sql_with_params()
    days = buckets.STEP[query.interval].days
    unit = query.interval  # "day" or "week" (checked by aligned_range), never user text
    statement = (
        f"WITH ev AS NOT MATERIALIZED ({sql}),"
        f" firsts AS (SELECT u, date_trunc('{unit}', MIN(t) AT TIME ZONE 'UTC') AS c, MIN(t) AS t0"
        " FROM ev WHERE e = %s GROUP BY u),"
        f" backs AS (SELECT u, date_trunc('{unit}', t AT TIME ZONE 'UTC') AS d, MAX(t) AS last"
        " FROM ev WHERE e = %s GROUP BY 1, 2)"
        " SELECT c, -1, COUNT(*) FROM firsts GROUP BY c"
        f" UNION ALL SELECT f.c, (b.d::date - f.c::date) / {days}, COUNT(*)"
        " FROM firsts AS f JOIN backs AS b ON b.u = f.u AND b.last > f.t0 GROUP BY 1, 2"
    )
    with analysis_cursor() as cursor:
        cursor.execute(statement, (*params, query.start_event, query.return_event))
        return {(c.replace(tzinfo=UTC), k): n for c, k, n in cursor.fetchall()}


# --- SQLite (and the benchmark's baseline): a pass over rows in user and time order ------------------------


def _first_and_returns(query: RetentionQuery, start: datetime, end: datetime) -> dict:
    rows = event_rows(
        names=(query.start_event, query.return_event), start=start, end=end, where=query.where
    ).order_by("u", "t")
    return retention_users(
        rows.values_list("u", "e", "t").iterator(chunk_size=5000), query.start_event, query.return_event
    )


def retention_users(
    rows: Iterable[tuple], start_event: str, return_event: str
) -> dict[str, tuple[datetime, list[datetime]]]:
    """Return {user: (first start_event time, return_event times after it)} from rows (user, event, time)
    sorted by user and time."""
    out: dict[str, tuple[datetime, list[datetime]]] = {}
    for user, event, moment in rows:
        if user not in out:
            if event == start_event:
                out[user] = (moment, [])
            continue
        first, returns = out[user]
        if event == return_event and moment > first:
            returns.append(moment)
    return out


def _offsets(first: datetime, returns: list[datetime], interval: str) -> set[int]:
    cohort = buckets.floor(first, interval)
    return {(buckets.floor(moment, interval) - cohort) // buckets.STEP[interval] for moment in returns}


def retention_cells(users: dict, interval: str) -> dict[tuple[datetime, int], int]:
    """Return {(cohort start, k): users}, k = -1 for the cohort's size."""
    cells: dict[tuple[datetime, int], int] = {}
    for first, returns in users.values():
        cohort = buckets.floor(first, interval)
        for k in (-1, *_offsets(first, returns, interval)):
            cells[(cohort, k)] = cells.get((cohort, k), 0) + 1
    return cells
