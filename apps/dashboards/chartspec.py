"""A chart in words and numbers: its settings, the series query they mean, its title, and its URL state.

Plain data and functions (no form, no request): the explorer's form produces `ChartSettings`, saved charts
are read back through the same form, and the overview builds its settings directly.
"""

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

from django.conf import settings as django_settings  # `settings` here is a chart's

from apps.common.bidi import clipped, isolated, isolated_all
from apps.metrics import buckets
from apps.metrics.selectors import SeriesQuery

QUICK_RANGES = {
    "1h": ("Last hour", timedelta(hours=1)),
    "24h": ("Last 24 hours", timedelta(hours=24)),
    "7d": ("Last 7 days", timedelta(days=7)),
    "30d": ("Last 30 days", timedelta(days=30)),
    "90d": ("Last 90 days", timedelta(days=90)),
    "custom": ("Custom range", None),
}
INTERVAL_LABELS = {"minute": "By minute", "hour": "By hour", "day": "By day", "week": "By week"}
CHART_TYPES = {"line": "Line", "bar": "Bars", "area": "Area"}
BREAKDOWN_BUILTINS = {"": "No breakdown", "service": "Service", "stage": "Stage", "event": "Event name"}
# A chart would draw more points than a page can show well: its interval is coarsened (and it says so).
COARSEN_ABOVE_BUCKETS = 2200
MAX_TITLE = 200


@dataclass(frozen=True)
class ChartSettings:
    """What a person chose for a chart, checked (see ExplorerForm): the URL state as values."""

    events: tuple[str, ...]
    measure: str = "count"
    interval: str = "hour"
    range: str = "7d"  # a key of QUICK_RANGES
    start: datetime | None = None  # custom ranges only (UTC)
    end: datetime | None = None
    breakdown: str = ""
    top: int = 5
    filters: tuple[tuple[str, str], ...] = ()
    compare: bool = False
    chart: str = "line"


@dataclass(frozen=True)
class ChartSpec:
    """One chart, ready for `series_for` and the figure builder."""

    query: SeriesQuery
    chart_type: str
    title: str
    subtitle: str
    measure_label: str
    # Count and sum add up across series, so bars and areas may stack; unique users and averages do not.
    additive: bool
    notes: tuple[str, ...] = field(default_factory=tuple)


def measure_label(measure: str) -> str:
    """Return the axis label of a measure: "events", "unique users", "sum of x", "average x"."""
    if measure == "count":
        return "events"
    if measure == "unique_users":
        return "unique users"
    kind, _, prop = measure.partition(":")
    return f"sum of {isolated(prop)}" if kind == "sum" else f"average {isolated(prop)}"


def time_bounds(settings: ChartSettings, now: datetime) -> tuple[datetime, datetime]:
    """Return [start, end) in UTC; the start is not yet aligned to a bucket."""
    if settings.range == "custom":
        return settings.start, settings.end
    return now - QUICK_RANGES[settings.range][1], now


def chart_spec(settings: ChartSettings, *, now: datetime) -> ChartSpec:
    """Return the chart the settings describe, coarsening an interval that would draw too many points."""
    start, end = time_bounds(settings, now)
    interval, notes = settings.interval, []
    names = list(buckets.INTERVALS)
    while buckets.count(start, end, interval) > COARSEN_ABOVE_BUCKETS and interval != names[-1]:
        coarser = names[names.index(interval) + 1]
        notes.append(
            f"Showing {coarser}s: {interval} buckets over this range would be "
            f"{buckets.count(start, end, interval):,} points (at most {COARSEN_ABOVE_BUCKETS:,})."
        )
        interval = coarser
    query = SeriesQuery(
        events=settings.events,
        measure=settings.measure,
        interval=interval,
        start=buckets.floor(start, interval),
        end=end,
        breakdown=settings.breakdown,
        filters=settings.filters,
        top_n=settings.top,
        compare=settings.compare,
    )
    return ChartSpec(
        query=query,
        chart_type=settings.chart,
        title=title(settings),
        subtitle=_subtitle(settings, interval, start, end),
        measure_label=measure_label(settings.measure),
        additive=settings.measure == "count" or settings.measure.startswith("sum:"),
        notes=tuple(notes),
    )


def title(settings: ChartSettings) -> str:
    """Return a chart title in words, e.g. "Count of search_made by service"."""
    events = settings.events
    what = ", ".join(isolated_all(events)) if len(events) <= 3 else f"{len(events)} events"
    if settings.measure == "count":
        text = f"Count of {what}"
    elif settings.measure == "unique_users":
        text = f"Unique users of {what}"
    else:
        text = f"{measure_label(settings.measure).capitalize()} of {what}"
    if settings.breakdown:
        text += " by " + (
            isolated(settings.breakdown[5:])
            if settings.breakdown.startswith("prop:")
            else BREAKDOWN_BUILTINS[settings.breakdown].lower()
        )
    return clipped(text, MAX_TITLE)


def _subtitle(settings: ChartSettings, interval: str, start: datetime, end: datetime) -> str:
    if settings.range == "custom":
        when = f"{start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC"
    else:
        when = QUICK_RANGES[settings.range][0].lower()
    parts = [when, INTERVAL_LABELS[interval].lower()]
    if len(settings.events) > 1 and not settings.breakdown:
        parts.append("one line per event")
    if settings.filters:
        parts.append("where " + " and ".join(f"{isolated(k)} = {isolated(v)}" for k, v in settings.filters))
    if settings.compare:
        parts.append("compared with the previous period")
    return " · ".join(parts)


def raw_history_note(earliest: datetime | None, *, now: datetime, what: str) -> tuple[str, ...]:
    """Return a note when `what` (a chart, a funnel) reads raw events from before retention deleted them:
    its numbers there are missing, not zero (`earliest`: the first time it reads raw events, if any)."""
    days = django_settings.RETENTION_RAW_DAYS
    kept_since = now - timedelta(days=days)
    if earliest is None or earliest >= kept_since:
        return ()
    return (
        f"{what} is computed from raw events, which are deleted after {days} days: before "
        f"{kept_since:%Y-%m-%d %H:%M} UTC, what it shows is incomplete or empty.",
    )


def query_string(settings: ChartSettings) -> str:
    """Return the canonical URL state of a chart (what a saved chart stores)."""
    params: list[tuple[str, str]] = [("event", e) for e in settings.events]
    params += [("measure", settings.measure), ("interval", settings.interval), ("range", settings.range)]
    if settings.range == "custom":
        params += [("start", range_input(settings.start)), ("end", range_input(settings.end))]
    if settings.breakdown:
        params += [("breakdown", settings.breakdown), ("top", str(settings.top))]
    params += [("filter", f"{k}={v}") for k, v in settings.filters]
    if settings.compare:
        params.append(("compare", "on"))
    params.append(("chart", settings.chart))
    return urlencode(params)


def range_input(value: datetime) -> str:
    """Return a custom range's end as the form reads it (UTC, no zone): to the minute when that is exact,
    else to the second or microsecond, so that a link or a saved chart reads the range the page read."""
    moment = value.astimezone(UTC)
    if moment.microsecond:
        return moment.strftime("%Y-%m-%dT%H:%M:%S.%f")
    return moment.strftime("%Y-%m-%dT%H:%M:%S" if moment.second else "%Y-%m-%dT%H:%M")
