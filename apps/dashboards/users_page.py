"""The users page: who is behind one point of a chart, most active first; for support, their requests.

Its address is the one `drilldown.point_links` puts on each point, and its parameters are those of
/api/v1/metrics/users, read by the same parser. Product sees user IDs as text; a person who also has the
support role (or an admin) gets each user's page and their requests in the point's range, linked to the
trails. That part is a requests search on the trace backend, so it is audited like the search page.
"""

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_safe
from rest_framework.exceptions import ValidationError

from apps.accounts.models import AuditEntry
from apps.accounts.permissions import has_role, role_required
from apps.accounts.roles import PRODUCT, SUPPORT
from apps.accounts.services import audit_record
from apps.common.bidi import isolated, isolated_all
from apps.common.errors import BackendUnavailable
from apps.common.params import query_int
from apps.metrics.api import MAX_OFFSET, people_from_params
from apps.metrics.groups import NONE_LABEL
from apps.metrics.people import (
    FunnelStepPoint,
    PointQuery,
    PointUser,
    events_without_user,
    users_behind,
    users_count,
)
from apps.traces import selectors as trace_selectors
from apps.traces.search.base import RequestSummary, UserRequests

from .chartspec import range_input

logger = logging.getLogger(__name__)
PER_PAGE = 25
# Each listed user's requests are one search on the trace backend: a page holds PER_PAGE of them at most.
REQUESTS_PER_USER = 3


@dataclass(frozen=True)
class UserRow:
    user: PointUser
    requests: list[RequestSummary]
    more_requests: bool


def point_description(point: PointQuery | FunnelStepPoint) -> str:
    """Return what the point is, in words: "search_made, service = tiles, 2026-11-03 14:00–15:00 UTC"."""
    if isinstance(point, FunnelStepPoint):
        return funnel_step_description(point)
    parts = [", ".join(isolated_all(point.events)) or "every event"]
    group = isolated(point.breakdown[5:]) if point.breakdown.startswith("prop:") else point.breakdown
    if point.breakdown == "event" and point.value is not None:
        parts = [isolated(point.value)]  # one of the chart's events
    elif point.value is not None:
        parts.append(f"{group} = {isolated(point.value)}")
    elif point.absent:
        parts.append(absent_text(group))
    elif point.rest and point.exclude_absent:
        excluded = ", ".join(isolated_all(point.exclude))
        parts.append(f"{group} set" + (f" and not {excluded}" if excluded else ""))
    elif point.rest:
        excluded = ", ".join(isolated_all(point.exclude))
        parts.append(f"{group} not " + (excluded or "in the top values"))
    parts += [f"{isolated(name)} = {isolated(value)}" for name, value in point.filters]
    parts.append(time_range_text(point.start, point.end))
    return ", ".join(parts)


def funnel_step_description(point: FunnelStepPoint) -> str:
    """Return "funnel a → b → c: step 2 (b), dropped off, …" in words, with the range."""
    query = point.query
    step = query.steps[point.step - 1]
    outcome = "reached it" if point.outcome == "converted" else "dropped off before it"
    steps = " → ".join(isolated_all(query.steps))
    parts = [f"Funnel {steps}: step {point.step} ({isolated(step)}), {outcome}"]
    by = isolated(query.breakdown[5:]) if query.breakdown.startswith("prop:") else query.breakdown
    if point.group is not None:
        parts.append(f"{by} = {isolated(point.group)}")
    elif point.absent:
        parts.append(absent_text(by))
    parts += [f"{isolated(name)} = {isolated(value)}" for name, value in query.where.properties]
    parts.append(time_range_text(query.start, query.end))
    parts.append(f"events counted: {isolated(point.event)}")
    return ", ".join(parts)


def absent_text(prop: str) -> str:
    """Return how the group of events without a property reads: "plan not set (none)" ("(none)" being its
    label on the chart)."""
    return f"{prop} not set {NONE_LABEL}"


def time_range_text(start: datetime, end: datetime) -> str:
    """Return "2026-11-03 14:00–15:00 UTC", "2026-11-03 (UTC day)", or both ends."""
    if start.time() == end.time() == start.time().min and end - start == timedelta(days=1):
        return f"{start:%Y-%m-%d} (UTC day)"
    if start.time() == end.time() == start.time().min and end - start == timedelta(weeks=1):
        return f"week of {start:%Y-%m-%d} (UTC)"
    if start.date() == end.date():
        return f"{start:%Y-%m-%d %H:%M}–{end:%H:%M} UTC"
    return f"{start:%Y-%m-%d %H:%M} – {end:%Y-%m-%d %H:%M} UTC"


# Support may open it too: product shares a spike's link, support follows it to the trails behind it.
@role_required(PRODUCT, SUPPORT)
@require_safe
def point_users(request: HttpRequest) -> HttpResponse:
    """List the users behind a chart's point, most active first (support: with their requests)."""
    try:
        point, events, among = people_from_params(request.GET)
        offset = query_int(request.GET, "offset", default=0, minimum=0, maximum=MAX_OFFSET)
    except ValidationError as refused:
        errors = [f"{name}: {' '.join(map(str, _messages(msgs)))}" for name, msgs in refused.detail.items()]
        return render(request, "dashboards/users.html", {"errors": errors}, status=400)
    page = users_behind(events=events, limit=PER_PAGE, offset=offset, among=among)
    start, end = (point.query.start, point.query.end) if among is not None else (point.start, point.end)
    show_trails = has_role(request.user, SUPPORT)
    trails_unavailable = False
    if show_trails and page.users:
        audit_record(
            request=request,
            action=AuditEntry.REQUESTS_SEARCHED,
            target=f"users behind a chart point: {_without_offset(request)}"[:300],
            via="page",
        )
    trails: dict[str, UserRequests] = {}
    if show_trails and page.users:
        try:  # every listed user's requests at once, not a search per user
            trails = trace_selectors.requests_of_users(
                user_ids=[user.user_id for user in page.users],
                start=start,
                end=end,
                per_user=REQUESTS_PER_USER,
            )
        except BackendUnavailable:
            logger.warning("trace search unavailable: the users page shows no requests", exc_info=True)
            trails_unavailable = True
    nothing = UserRequests([], has_more=False)
    rows = [
        UserRow(
            user=user,
            requests=trails.get(user.user_id, nothing).requests,
            more_requests=trails.get(user.user_id, nothing).has_more,
        )
        for user in page.users
    ]
    context = {
        "point": point,
        "description": point_description(point),
        "rows": rows,
        "offset": offset,
        "first_rank": offset + 1,
        "previous_offset": max(offset - PER_PAGE, 0) if offset else None,
        "next_offset": offset + PER_PAGE if page.has_next and offset + PER_PAGE <= MAX_OFFSET else None,
        "query_string": _without_offset(request),
        # A funnel step's users are identified by definition, and known already.
        "without_user": events_without_user(events) if offset == 0 and among is None else None,
        "users_count": users_count(events) if among is None else len(among),
        # A user's own page over the point's range (its form reads times without a zone as UTC).
        "range_start": range_input(start),
        "range_end": range_input(end),
        "show_trails": show_trails,
        "trails_unavailable": trails_unavailable,
    }
    return render(request, "dashboards/users.html", context)


def _messages(msgs) -> list:
    return msgs if isinstance(msgs, list) else [msgs]


def _without_offset(request: HttpRequest) -> str:
    params = request.GET.copy()
    params.pop("offset", None)
    return params.urlencode()
