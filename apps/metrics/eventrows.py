"""The raw events a funnel or a retention table reads: one user's named events in a range, filtered as the
series API filters, with the value a breakdown groups by. Shared so both analyses count the same rows.

Events without a user ID are left out (they belong to nobody's path). Like the series API, every type of
event with the name counts; step and cohort names are metric names in practice.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime

from django.db import connection, transaction
from django.db.backends.utils import CursorWrapper
from django.db.models import F, QuerySet

from apps.common.jsonfields import PropertyText
from apps.ingest.models import RawEvent

from .groups import group_expression

BREAKDOWNS = ("service", "stage")  # and prop:<name>


@dataclass(frozen=True)
class EventFilter:
    """Which events count: property equalities, and optionally one service and one stage."""

    properties: tuple[tuple[str, str], ...] = ()
    service: str = ""
    stage: str = ""


def event_rows(
    *, names: tuple[str, ...], start: datetime, end: datetime, where: EventFilter, breakdown: str = ""
) -> QuerySet:
    """Return the rows (u, e, t[, b]) of the named events of identified users in [start, end)."""
    qs = identified_events(names=names, start=start, end=end, where=where)
    columns = {"u": F("user_id"), "e": F("event"), "t": F("timestamp")}
    if breakdown:
        columns["b"] = breakdown_expression(breakdown)
    return qs.values(**columns)


def identified_events(
    *, names: tuple[str, ...], start: datetime, end: datetime, where: EventFilter
) -> QuerySet:
    """Return the named events of identified users in [start, end) that the filters keep."""
    # Not `since(start)`: its client-time bound is not in rawevent_event_ts_user, so each row would be read
    # from the heap too; the index-only scan of every partition costs far less than that (funnels 3x slower).
    qs = RawEvent.objects.filter(timestamp__gte=start, timestamp__lt=end, event__in=sorted(set(names)))
    qs = qs.exclude(user_id="")
    if where.service:
        qs = qs.filter(service=where.service)
    if where.stage:
        qs = qs.filter(stage=where.stage)
    for index, (name, value) in enumerate(where.properties):
        qs = qs.alias(**{f"filter_{index}": PropertyText(name)}).filter(**{f"filter_{index}": value})
    return qs


def breakdown_expression(breakdown: str):
    """Return the value a breakdown groups an event by: its service, stage or a property's text (NULL, the
    absent group, when the event lacks the property)."""
    if breakdown in BREAKDOWNS or breakdown.startswith("prop:"):
        return group_expression(breakdown)
    raise ValueError(f"unknown breakdown {breakdown!r}")


# A funnel or a retention table reads millions of rows in one statement. PostgreSQL's planner then expects
# so much work that it JIT-compiles the plan (~0.5 s before the first row of an I/O-bound plan); a month's
# per-user aggregates overflow the default 4 MB of memory to disk; and, misjudging how many users a step's
# CTE holds, it sorts a step's ~1M rows by user ID (collation-aware text comparisons: seconds) for a merge
# join, where a hash join of the step's few thousand users with those rows takes a quarter of the time.
ANALYSIS_SETTINGS = (
    "SET LOCAL jit = off",
    "SET LOCAL work_mem = '64MB'",
    "SET LOCAL enable_mergejoin = off",
)


@contextmanager
def analysis_cursor() -> Iterator[CursorWrapper]:
    """A cursor for one funnel or retention statement; on PostgreSQL, with the settings above for the
    length of its own transaction only."""
    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            for statement in ANALYSIS_SETTINGS:
                cursor.execute(statement)
        yield cursor
