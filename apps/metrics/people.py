"""Who is behind a point of a chart: the users of the raw events a series counted there, most active first.

    point_events(point: PointQuery) -> QuerySet[RawEvent]
    users_behind(events=..., limit=..., offset=..., among=None) -> UsersPage

A point is what the series reader counted in one cell: the same events, the same property filters, and the
same group of a breakdown (one value; `absent`: the events without the property, whatever a value says; or
the rest: every value outside the top N, given as the values to leave out, and `exclude_absent` when the
absent group is one of the top N). So the users' counts add up to the point's count
(less the events that carry no user ID), and there are as many users as the unique-users point says.

`among` narrows the users to another set of user IDs, e.g. a funnel step's converted or dropped users (a
queryset of user IDs stays one statement; a list becomes an IN list), so a chart that is not a series lists
its people through the same function: the step's event over the funnel's range, among the step's users.
"""

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db.models import Count, Max, Min, QuerySet

from apps.common.jsonfields import PropertyText
from apps.ingest.models import RawEvent

from . import query as query_language
from .eventrows import identified_events
from .funnel import FunnelQuery, funnel_step_users
from .groups import ALIAS, group_expression, in_groups, outside_groups

MAX_LIMIT = 200


@dataclass(frozen=True)
class PointQuery:
    """The events behind one point: [start, end) is the point's bucket; no events means every event.

    `breakdown` is canonical (query.breakdown); with it, either `value` names the group, or `absent`
    (a property breakdown) is the group of events without the property, or `exclude` lists the top values
    the rest group leaves out (`rest=True`; `exclude_absent`: the absent group is one of them).
    """

    events: tuple[str, ...]
    start: datetime
    end: datetime
    breakdown: str = ""
    value: str | None = None
    rest: bool = False
    exclude: tuple[str, ...] = ()
    filters: tuple[tuple[str, str], ...] = ()
    absent: bool = False
    exclude_absent: bool = False


@dataclass(frozen=True)
class PointUser:
    user_id: str
    count: int
    first: datetime
    last: datetime

    def as_json(self) -> dict[str, Any]:
        return {
            "user_id": self.user_id,
            "count": self.count,
            "first": self.first.isoformat(),
            "last": self.last.isoformat(),
        }


@dataclass(frozen=True)
class UsersPage:
    users: list[PointUser]
    offset: int
    limit: int
    has_next: bool


def point_events(point: PointQuery) -> QuerySet:
    """Return the raw events the series counted in the point (aggregated ones only, as the rollups)."""
    qs = RawEvent.objects.aggregated().since(point.start).filter(timestamp__lt=point.end)
    if point.events:
        qs = qs.filter(event__in=point.events)
    for index, (name, value) in enumerate(point.filters):
        qs = qs.alias(**{f"filter_{index}": PropertyText(name)}).filter(**{f"filter_{index}": value})
    breakdown = query_language.breakdown(point.breakdown)
    if not breakdown:
        return qs
    if point.value is not None or point.absent:
        return qs.alias(**{ALIAS: group_expression(breakdown)}).filter(in_groups([point.value]))
    if point.rest:
        left_out = [*point.exclude, *([None] if point.exclude_absent else [])]
        return qs.alias(**{ALIAS: group_expression(breakdown)}).filter(outside_groups(left_out))
    return qs


def users_behind(
    *,
    events: QuerySet,
    limit: int = 50,
    offset: int = 0,
    among: QuerySet | Collection[str] | None = None,
) -> UsersPage:
    """Return the users of `events` with their event count, first and last time; most active first.

    One grouped query (PostgreSQL reads the bucket's rows by the timestamp index, or by the user index when
    `among` names few users); ties are broken by user ID so pages never overlap.
    """
    qs = events.exclude(user_id="")
    if among is not None:
        qs = qs.filter(user_id__in=among)
    rows = (
        qs.values("user_id")
        .annotate(n=Count("pk"), first=Min("timestamp"), last=Max("timestamp"))
        .order_by("-n", "user_id")
        .values_list("user_id", "n", "first", "last")[offset : offset + limit + 1]
    )
    users = [PointUser(user_id=u, count=n, first=first, last=last) for u, n, first, last in rows]
    return UsersPage(users=users[:limit], offset=offset, limit=limit, has_next=len(users) > limit)


def events_without_user(events: QuerySet) -> int:
    """Return how many of the point's events carry no user ID (counted in the point, listed nowhere)."""
    return events.filter(user_id="").count()


def users_count(events: QuerySet) -> int:
    """Return how many distinct users are behind the point's events."""
    return events.exclude(user_id="").values("user_id").distinct().count()


@dataclass(frozen=True)
class FunnelStepPoint:
    """The users behind one step of a funnel: those who reached it ("converted"), or who reached the step
    before it and not this one ("dropped"); only the breakdown group `group` when given, or with `absent`
    the group whose step-1 event lacks the broken-down property."""

    query: FunnelQuery
    step: int  # 1-based
    outcome: str = "converted"
    group: str | None = None
    absent: bool = False

    @property
    def event(self) -> str:
        """The event their counts are of: the step itself, or for those who dropped, the last one reached."""
        return self.query.steps[self.step - 1 if self.outcome == "converted" else self.step - 2]


def funnel_step_people(point: FunnelStepPoint) -> tuple[QuerySet, list[str]]:
    """Return the events to count for a funnel step's users (`point.event` in the funnel's range and
    filters) and the users themselves, for `users_behind(events=…, among=…)`."""
    users = funnel_step_users(
        point.query, step=point.step, outcome=point.outcome, group=point.group, absent=point.absent
    )
    query = point.query
    events = identified_events(names=(point.event,), start=query.start, end=query.end, where=query.where)
    return events, users
