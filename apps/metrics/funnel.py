"""Funnels: how many users went through ordered steps within a conversion window, read from raw events.

    funnel_for(query: FunnelQuery) -> Funnel
    funnel_step_users(query, step=k, outcome="converted" | "dropped", group=None) -> list[str]

What counts (README, "Funnels and retention"):
- A user enters the funnel at their FIRST step-1 event in [start, end); that event's time is t1.
- Step k is the user's earliest step-k event strictly after the matched step k-1 and at most `window`
  after t1 (a greedy match: the earliest match leaves the most room for the next steps). Every event must
  lie in [start, end). Repeated events count once per user; events out of order do not count.
- Per step: users, conversion from step 1 and from the previous step, and the median seconds from the
  previous step's match (`percentile_cont(0.5)`: the mean of the two middle values for an even count).
- A breakdown groups users by the service, stage or property of their step-1 event (the smallest value
  when several step-1 events share t1; the absent group, None, only when none of them has the property);
  groups ranked by step-1 users (ties by value, the absent group last), the top N returned, and the
  overall funnel is always exact.

PostgreSQL answers in ONE statement: per step its event's rows read from an index, a hash join of the
users who reached the previous step with them and a MIN per user, then counts and `percentile_cont`
medians, with the overall and the groups as grouping sets. SQLite (the embedded mode) reads the same rows
in user and time order and matches them in Python (`funnel_paths`, also the benchmark's baseline).
"""

import statistics
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db import connection

from .eventrows import EventFilter, analysis_cursor, event_rows
from .groups import group_label

MAX_WINDOW = timedelta(days=90)
OUTCOMES = ("converted", "dropped")


@dataclass(frozen=True)
class FunnelQuery:
    steps: tuple[str, ...]
    window: timedelta
    start: datetime
    end: datetime
    breakdown: str = ""  # "" | service | stage | prop:<name>
    where: EventFilter = field(default_factory=EventFilter)
    top_n: int = 10


@dataclass
class FunnelStep:
    event: str
    count: int
    conversion: float | None  # count ÷ step-1 count; None when nobody did step 1
    conversion_from_previous: float | None
    median_seconds: float | None  # from the previous step's match; None for step 1 and when nobody got here

    def as_json(self) -> dict[str, Any]:
        return {
            "event": self.event,
            "count": self.count,
            "conversion": self.conversion,
            "conversion_from_previous": self.conversion_from_previous,
            "median_seconds": self.median_seconds,
        }


@dataclass
class FunnelGroup:
    name: str  # the breakdown value; "(none)" for people when the property is absent (then `absent`)
    steps: list[FunnelStep]
    absent: bool = False  # the users whose step-1 event lacks the broken-down property

    @property
    def value(self) -> str | None:
        """The breakdown value the group's users share; None for the absent group."""
        return None if self.absent else self.name

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": "value",
            "absent": self.absent,
            "steps": [s.as_json() for s in self.steps],
        }


@dataclass
class Funnel:
    steps: list[FunnelStep]  # everyone, whatever the breakdown
    groups: list[FunnelGroup] = field(default_factory=list)
    other_groups: int = 0  # breakdown values beyond the top N, left out of `groups`

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"steps": [s.as_json() for s in self.steps]}
        if self.groups or self.other_groups:
            out["groups"] = [g.as_json() for g in self.groups]
            out["other_groups"] = self.other_groups
        return out


# A user's path through the funnel: the breakdown value (None: absent, or no breakdown), then each step's
# matched time (None: not reached).
UserPath = tuple[str | None, list[datetime | None]]
# The key of the absent group's counts, whose other keys are values and None for everyone (so a property
# value can never be taken for either).
ABSENT = object()


def funnel_for(query: FunnelQuery) -> Funnel:
    """Return the funnel of the query (see the module docstring)."""
    if connection.vendor == "postgresql":
        counts = _counts_in_sql(query)
    else:
        counts = _counts_of_paths(_paths_in_python(query).values(), len(query.steps), bool(query.breakdown))
    overall = counts.pop(None, None) or _empty_counts(len(query.steps))
    ranked = sorted(counts, key=lambda key: (-counts[key][0][0], key is ABSENT, "" if key is ABSENT else key))
    groups = [
        FunnelGroup(
            group_label(None if key is ABSENT else key),
            _steps(query.steps, *counts[key]),
            absent=key is ABSENT,
        )
        for key in ranked[: query.top_n]
    ]
    return Funnel(
        steps=_steps(query.steps, *overall),
        groups=groups,
        other_groups=max(len(ranked) - query.top_n, 0),
    )


def funnel_step_users(
    query: FunnelQuery,
    *,
    step: int,
    outcome: str = "converted",
    group: str | None = None,
    absent: bool = False,
) -> list[str]:
    """Return the IDs (sorted) of the users who reached step `step` (1-based), or who reached the step
    before it and not this one ("dropped"); only the breakdown group `group` when given, or with `absent`
    only the users whose step-1 event lacks the broken-down property."""
    if not 1 <= step <= len(query.steps):
        raise ValueError(f"step must be from 1 to {len(query.steps)}")
    if outcome not in OUTCOMES:
        raise ValueError(f"outcome must be one of {OUTCOMES}")
    if outcome == "dropped" and step == 1:
        raise ValueError("nobody drops at step 1: it is where the funnel starts")
    if (group is not None or absent) and not query.breakdown:
        raise ValueError("a group needs a breakdown")
    if group is not None and absent:
        raise ValueError("give either a group or absent, not both")
    grouped = group is not None or absent
    if connection.vendor == "postgresql":
        sql, params = _user_paths_sql(query)
        where = (
            f"t{step} IS NOT NULL"
            if outcome == "converted"
            else f"t{step - 1} IS NOT NULL AND t{step} IS NULL"
        )
        if absent:
            where += " AND b IS NULL"
        elif group is not None:
            where += " AND b = %s"
            params = (*params, group)
        with analysis_cursor() as cursor:
            cursor.execute(f"SELECT u FROM ({sql}) AS paths WHERE {where}", params)
            return sorted(row[0] for row in cursor.fetchall())  # code point order, as on SQLite
    index = step - 1
    users = []
    for user, (value, times) in _paths_in_python(query).items():
        if grouped and value != group:
            continue
        reached = times[index] is not None
        if (outcome == "converted" and reached) or (
            outcome == "dropped" and not reached and times[index - 1] is not None
        ):
            users.append(user)
    return sorted(users)


# --- PostgreSQL: one statement ------------------------------------------------------------------------------


def _user_paths_sql(query: FunnelQuery) -> tuple[str, tuple]:
    """Return SQL of one row per user who did step 1: (u, b, t1, …, tn), and its parameters.

    Each step reads its own event's rows (the CTE is inlined, so PostgreSQL reads them from the index
    rawevent_event_ts_user alone, never the table: a copy of all steps' rows stored once spilled to disk
    and read the whole table); each step is a hash join of the users who reached the previous step with
    those rows, and a MIN per user. (A window function per step over rows sorted by user gives the same
    answer, about twice as slowly.)
    """
    rows = event_rows(
        names=query.steps, start=query.start, end=query.end, where=query.where, breakdown=query.breakdown
    )
    sql, params = rows.query.sql_with_params()
    parts = [
        f"ev AS NOT MATERIALIZED ({sql})",
        "s1 AS (SELECT u, MIN(t) AS t1 FROM ev WHERE e = %s GROUP BY u)",
    ]
    params = (*params, query.steps[0])
    for k in range(2, len(query.steps) + 1):
        parts.append(
            f"s{k} AS (SELECT p.u, p.t1, MIN(ev.t) AS t{k} FROM s{k - 1} AS p JOIN ev ON ev.u = p.u"
            f" AND ev.e = %s AND ev.t > p.t{k - 1} AND ev.t <= p.t1 + %s GROUP BY p.u, p.t1)"
        )
        params = (*params, query.steps[k - 1], query.window)
    b, joins = "NULL::text", ""
    if query.breakdown:
        # The breakdown value of the step-1 event matched (the smallest when several share its time; NULL,
        # the absent group, when none of them has the property: MIN skips NULLs).
        parts.append(
            "bs AS (SELECT p.u, MIN(ev.b) AS b FROM s1 AS p JOIN ev ON ev.u = p.u AND ev.e = %s"
            " AND ev.t = p.t1 GROUP BY p.u)"
        )
        params = (*params, query.steps[0])
        b, joins = "bs.b", " LEFT JOIN bs ON bs.u = s1.u"
    times = ", ".join(f"s{k}.t{k}" for k in range(1, len(query.steps) + 1))
    joins = "".join(f" LEFT JOIN s{k} ON s{k}.u = s1.u" for k in range(2, len(query.steps) + 1)) + joins
    return f"WITH {', '.join(parts)} SELECT s1.u AS u, {b} AS b, {times} FROM s1{joins}", params


def _counts_in_sql(query: FunnelQuery) -> dict:
    sql, params = _user_paths_sql(query)
    n = len(query.steps)
    counts = ", ".join(f"COUNT(t{k})" for k in range(1, n + 1))
    medians = ", ".join(
        f"percentile_cont(0.5) WITHIN GROUP (ORDER BY EXTRACT(EPOCH FROM t{k} - t{k - 1}))"
        for k in range(2, n + 1)
    )
    grouping = "GROUP BY GROUPING SETS ((), (b))" if query.breakdown else ""
    overall = "GROUPING(b) = 1" if query.breakdown else "TRUE"
    with analysis_cursor() as cursor:
        b = "b" if query.breakdown else "NULL"
        cursor.execute(f"SELECT {overall}, {b}, {counts}, {medians} FROM ({sql}) AS paths {grouping}", params)
        out: dict = {}
        for is_overall, value, *figures in cursor.fetchall():
            out[None if is_overall else ABSENT if value is None else value] = (
                [int(c) for c in figures[:n]],
                [None, *(None if m is None else float(m) for m in figures[n:])],
            )
    return out


# --- SQLite (and the benchmark's baseline): a pass over rows in user and time order ------------------------


def _paths_in_python(query: FunnelQuery) -> dict[str, UserPath]:
    rows = event_rows(
        names=query.steps, start=query.start, end=query.end, where=query.where, breakdown=query.breakdown
    ).order_by("u", "t")
    columns = ("u", "e", "t", "b") if query.breakdown else ("u", "e", "t")
    return funnel_paths(rows.values_list(*columns).iterator(chunk_size=5000), query.steps, query.window)


def funnel_paths(rows: Iterable[tuple], steps: tuple[str, ...], window: timedelta) -> dict[str, UserPath]:
    """Return each user's path from rows (user, event, time[, breakdown value]) sorted by user and time."""
    paths: dict[str, UserPath] = {}
    user, events = None, []
    for row in rows:
        if row[0] != user:
            if events:
                _add_path(paths, user, events, steps, window)
            user, events = row[0], []
        events.append(row)
    if events:
        _add_path(paths, user, events, steps, window)
    return paths


def _add_path(paths: dict, user: str, events: list[tuple], steps: tuple[str, ...], window: timedelta) -> None:
    first = next((row for row in events if row[1] == steps[0]), None)
    if first is None:
        return
    t1 = first[2]
    # The smallest value of the step-1 events at t1; None (absent) when none has one, as SQL's MIN.
    value = (
        min(
            (row[3] for row in events if row[1] == steps[0] and row[2] == t1 and row[3] is not None),
            default=None,
        )
        if len(first) > 3
        else None
    )
    times: list[datetime | None] = [t1]
    previous, deadline = t1, t1 + window
    for name in steps[1:]:
        match = next((row[2] for row in events if row[1] == name and previous < row[2] <= deadline), None)
        times.append(match)
        if match is None:
            times += [None] * (len(steps) - len(times))
            break
        previous = match
    paths[user] = (value, times)


def _counts_of_paths(paths: Iterable[UserPath], n: int, grouped: bool) -> dict:
    """Return {None: overall, value: group, ABSENT: the absent group} → (counts per step, median seconds
    per step)."""
    gaps: dict = {}
    for value, times in paths:
        for key in (None, ABSENT if value is None else value) if grouped else (None,):
            counts, waits = gaps.setdefault(key, ([0] * n, [[] for _ in range(n)]))
            for k, moment in enumerate(times):
                if moment is None:
                    break
                counts[k] += 1
                if k:
                    waits[k].append((moment - times[k - 1]).total_seconds())
    return {
        key: (counts, [statistics.median(w) if w else None for w in waits])
        for key, (counts, waits) in gaps.items()
    }


def _empty_counts(n: int) -> tuple[list[int], list[None]]:
    return [0] * n, [None] * n


def _steps(names: tuple[str, ...], counts: list[int], medians: list[float | None]) -> list[FunnelStep]:
    first = counts[0]
    out = []
    for k, name in enumerate(names):
        previous = counts[k - 1] if k else counts[0]
        median = medians[k] if k else None
        out.append(
            FunnelStep(
                event=name,
                count=counts[k],
                conversion=round(counts[k] / first, 6) if first else None,
                conversion_from_previous=round(counts[k] / previous, 6) if previous else None,
                median_seconds=None if median is None else round(median, 3),
            )
        )
    return out
