"""From a chart's point to the people behind it: the users page's address for each point of a series.

The address carries what the series counted there (events, filters, the breakdown group, the bucket), so
the users page lists the same events. Only points that count events or users get one; a previous period,
a sum or an average does not (whose users would "the average" be?). Which series is which is read from
`kind` and `absent`, never from its name: the group of events without a property is asked for with
`absent=true`, so a value that is the text "(none)" keeps its own users.
"""

from collections.abc import Sequence
from datetime import UTC, datetime
from urllib.parse import urlencode

from django.urls import reverse

from apps.metrics.buckets import STEP
from apps.metrics.funnel import FunnelGroup, FunnelQuery
from apps.metrics.selectors import Series, SeriesQuery

LINKED_MEASURES = ("count", "unique_users")
LINKED_KINDS = ("total", "value", "rest")
# A point's address names the chart's events: past this length a server refuses it (gunicorn reads request
# lines of up to 4,094 bytes), and repeated on every point and table cell it makes pages of many MB.
MAX_LINK_LENGTH = 4000
TOO_LONG_NOTE = (
    "Some points of this chart are not linked to their users: their addresses would name too many events "
    "to open. Choose fewer events (or shorter ones) to follow such a point to its users."
)


def point_params(query: SeriesQuery, series: Series, others: Sequence[Series], at: datetime) -> list[tuple]:
    """Return the users page's parameters for one point: the series' events, filters and group, and the
    bucket starting at `at` (`others`: the "value" series, whose groups the rest leaves out)."""
    start = at.astimezone(UTC)
    end = start + STEP[query.interval]
    # Several events without a breakdown are drawn one series per event (series_for).
    breakdown = query.breakdown or ("event" if len(query.events) > 1 else "")
    events = list(query.events)
    if breakdown == "event" and series.kind in ("value", "rest"):
        # An event's series counts that event; the rest, the chart's other events. Named as such, the
        # address stays short: a chart of 200 events no longer repeats all of them on every point.
        top = {s.name for s in others}
        events = [series.name] if series.kind == "value" else [e for e in events if e not in top]
        breakdown = "event" if series.kind == "value" else ""
    params: list[tuple[str, str]] = [("event", e) for e in events]
    params += [("from", _iso(start)), ("to", _iso(end))]
    if breakdown and series.kind == "value":
        group = ("absent", "true") if series.absent else ("value", series.name)
        params += [("breakdown", breakdown), group]
    elif breakdown and series.kind == "rest":
        params += [("breakdown", breakdown), ("rest", "true")]
        params += [("exclude", s.name) for s in others if not s.absent]
        params += [("exclude_absent", "true")] if any(s.absent for s in others) else []
    params += [("filter", f"{k}={v}") for k, v in query.filters]
    return params


def point_links(query: SeriesQuery, series: Sequence[Series]) -> list[list[str] | None]:
    """Return, per series, each point's users page address (None for a series whose points have none)."""
    if query.measure not in LINKED_MEASURES:
        return [None] * len(series)
    base = reverse("dashboard-users")
    others = [s for s in series if s.kind == "value"]
    links: list[list[str] | None] = []
    for s in series:
        if s.kind not in LINKED_KINDS:
            links.append(None)
            continue
        links.append([f"{base}?{urlencode(point_params(query, s, others, t))}" for t, _ in s.points])
    return links


def point_links_bounded(
    query: SeriesQuery, series: Sequence[Series]
) -> tuple[list[list[str] | None], tuple[str, ...]]:
    """Return point_links, without the links of a series whose addresses would pass MAX_LINK_LENGTH, and
    the notes the chart shows (TOO_LONG_NOTE when it leaves some out)."""
    links = point_links(query, series)
    bounded = [
        None if found and any(len(link) > MAX_LINK_LENGTH for link in found) else found for found in links
    ]
    return bounded, (TOO_LONG_NOTE,) if bounded != links else ()


# A funnel group's name comes from the data, so its links may be long however short the settings are.
FUNNEL_TOO_LONG_NOTE = (
    "Some steps of this funnel are not linked to their users: their group's value is too long for an address."
)


def with_point_links(figure, links: Sequence[list[str] | None]) -> None:
    """Put each point's address into its trace's `customdata`, which static/js/dashboards.js follows on a
    click. The series' traces come first, in the series' order (annotations may follow)."""
    for trace, urls in zip(figure.data, links, strict=False):
        if urls is not None:
            trace.customdata = urls


def funnel_step_links(query: FunnelQuery, group: FunnelGroup | None = None) -> list[tuple[str, str | None]]:
    """Return, per step of the funnel (one breakdown group's when given), the users page's address for
    those who reached it and for those who dropped off before it (None at step 1, where nobody drops, and
    None for an address past MAX_LINK_LENGTH: a group's value too long to open)."""
    params: list[tuple[str, str]] = [
        ("steps", ",".join(query.steps)),
        ("window", str(int(query.window.total_seconds()))),
        ("from", _iso(query.start.astimezone(UTC))),
        ("to", _iso(query.end.astimezone(UTC))),
    ]
    if query.breakdown:
        params.append(("breakdown", query.breakdown))
    if query.breakdown and group is not None:
        params.append(("absent", "true") if group.absent else ("group", group.name))
    params += [("filter", f"{k}={v}") for k, v in query.where.properties]
    params += [
        (name, value)
        for name, value in (("service", query.where.service), ("stage", query.where.stage))
        if value
    ]
    base = reverse("dashboard-users")
    links = []
    for step in range(1, len(query.steps) + 1):
        converted = f"{base}?{urlencode([*params, ('step', str(step))])}"
        dropped = (
            f"{base}?{urlencode([*params, ('step', str(step)), ('outcome', 'dropped')])}"
            if step > 1
            else None
        )
        links.append((_bounded(converted), _bounded(dropped)))
    return links


def _bounded(link: str | None) -> str | None:
    return link if link is None or len(link) <= MAX_LINK_LENGTH else None


def _iso(moment: datetime) -> str:
    # To the microsecond: a quick range ends at now, and the users page must run the funnel the chart ran.
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
