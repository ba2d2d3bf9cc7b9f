"""The landing page's content: usage at a glance for product, the pipeline's own health for everyone, and
correlation coverage for support.

Events per day is an ordinary explorer query of the busiest events, so it opens in the explorer; daily
active users over all events is read directly (the explorer draws several events one line each). Each chart
has its numbers table beside it, whose cells link to the same users as a click on the chart's points.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from apps.annotations.selectors import annotations_of_ranges
from apps.metrics import buckets, catalogue
from apps.metrics.selectors import Series, SeriesQuery
from apps.pipeline.selectors import PipelineHealth
from apps.traces.coverage import COVERAGE_THRESHOLD, ServiceCoverage, correlation_coverage

from . import drilldown, figures
from .charts import chart_render
from .chartspec import ChartSettings, chart_spec, query_string
from .tables import SeriesTable, series_table

USAGE_DAYS = 30
TOP_EVENTS = 10
TOP_SERVICES = 15  # bars of volume by service; the others are one bar (the numbers table has all)
# A backlog older than this is worth a look (the sweeper re-queues after PIPELINE_SWEEP_GRACE_SECONDS).
LAG_WARNING = timedelta(minutes=5)
INGEST_WINDOW = timedelta(hours=1)  # what the ingest-rate chart shows (pipeline_health's last hour)
COVERAGE_WINDOW = timedelta(days=1)
COVERAGE_THRESHOLD_PERCENT = round(COVERAGE_THRESHOLD * 100)  # what the page says services are flagged below


@dataclass(frozen=True)
class UsageChart:
    title: str
    figure: dict  # plotly JSON
    query_string: str = ""  # opens the chart in the explorer, when the explorer can draw it
    # The time range the chart covers, so annotations of that range can be drawn on it.
    start: datetime | None = None
    end: datetime | None = None
    # The chart's numbers, each point's users a link away (as a click on the chart's point).
    table: SeriesTable | None = None


@dataclass(frozen=True)
class Tile:
    label: str
    value: str
    detail: str
    ok: bool


@dataclass(frozen=True)
class Usage:
    charts: list[UsageChart]
    top_events: list[catalogue.Total]
    service_figure: dict
    service_totals: list[catalogue.Total]
    # The explorer's URL state of the window the section counted, by day (`interval`, a custom `range`,
    # `start`, `end`): a link with `event=<name>&` before it opens the same count.
    range_query: str = ""

    @property
    def services_left_out(self) -> int:
        """How many services the volume chart draws as one bar (see service_volume_figure)."""
        return max(len(self.service_totals) - TOP_SERVICES, 0)


def product_usage(*, now: datetime) -> Usage:
    """Return the overview's usage section: charts, the top events table, volume by service."""
    since, until = usage_window(now)
    ranked = catalogue.top_events(start=since, end=until, limit=TOP_EVENTS)
    services = catalogue.volume_by_service(start=since, end=until)
    return Usage(
        charts=usage_charts(now=now, events=[t.name for t in ranked]),
        top_events=ranked,
        service_figure=service_volume_figure(services),
        service_totals=services,
        range_query=usage_range_query(now),
    )


def usage_settings(*, now: datetime, events: tuple[str, ...]) -> ChartSettings:
    """Return the explorer settings of the overview's window by day: from midnight UTC 30 days back to
    `now`, as a custom range, so that the explorer opened later counts what the page counted (`30d` would
    be read at the click, a day later once a midnight has passed)."""
    return ChartSettings(
        events=events,
        measure="count",
        interval="day",
        range="custom",
        start=usage_since(now),
        end=now,
        breakdown="event" if events else "",
        top=TOP_EVENTS,  # at most TOP_EVENTS events: each its own line, no "other" of a few of the rest
    )


def usage_range_query(now: datetime) -> str:
    """Return the explorer query string of the overview's window without events (see Usage.range_query)."""
    return query_string(usage_settings(now=now, events=()))


def usage_charts(*, now: datetime, events: list[str]) -> list[UsageChart]:
    """Return the overview's time-series charts: events per day of the busiest events (at most
    TOP_EVENTS, the top events table's), daily active users."""
    if not events:
        return []
    events = events[:TOP_EVENTS]
    settings = usage_settings(now=now, events=tuple(events))
    spec = chart_spec(settings, now=now)
    per_event = chart_render(spec)
    users = catalogue.daily_active_users(start=usage_since(now), end=now)
    active = figures.series_figure([users], chart_type="bar", measure_label="unique users")
    # Every event's users: a query of no event names means all of them on the users page.
    every_event = SeriesQuery(events=(), measure="unique_users", interval="day")
    active_links = drilldown.point_links(every_event, [users])
    drilldown.with_point_links(active, active_links)
    active = active.to_plotly_json()
    busiest = f"top {len(events)} events" if len(events) > 1 else "top event"
    return [
        UsageChart(
            f"Events per day, {busiest}",
            per_event.figure,
            query_string(settings),
            start=spec.query.start,
            end=spec.query.end,
            table=per_event.table,
        ),
        UsageChart(
            "Daily active users, all events" + (" (estimated)" if users.estimate else ""),
            active,
            start=usage_since(now),
            end=now,
            table=series_table([users], interval="day", additive=False, links=active_links),
        ),
    ]


def overview_annotate(*, usage: Usage | None, ingest_figure: dict, now: datetime) -> None:
    """Draw the annotations on the overview's time-series charts that cover them, as charts_annotate does."""
    ingest_start = now - INGEST_WINDOW
    charts = [c for c in (usage.charts if usage else ()) if c.start is not None and c.end is not None]
    found = annotations_of_ranges([(ingest_start, now), *((c.start, c.end) for c in charts)])
    figures.add_annotation_markers(ingest_figure, found[ingest_start, now], start=ingest_start, end=now)
    for chart in charts:
        figures.add_annotation_markers(
            chart.figure, found[chart.start, chart.end], start=chart.start, end=chart.end
        )


def coverage_last_day(*, now: datetime) -> list[ServiceCoverage]:
    """Return each service's correlation coverage over the last day (support's table on the overview)."""
    return correlation_coverage(start=now - COVERAGE_WINDOW, end=now)


def usage_since(now: datetime) -> datetime:
    """Return the start of the overview's period: midnight UTC, 30 days back."""
    return buckets.floor(now - timedelta(days=USAGE_DAYS), "day")


def usage_window(now: datetime) -> tuple[datetime, datetime]:
    """Return the day buckets [start, end) the overview counts: those the explorer's series of the same
    range reads (the day holding `now` whole; none after it, where an event up to the clock tolerance
    ahead may already be counted)."""
    today = buckets.floor(now, "day")
    return usage_since(now), today if today == now else today + buckets.STEP["day"]


def service_volume_figure(totals: list[catalogue.Total]) -> dict:
    """Return the bars of events per service: the TOP_SERVICES busiest, then the others as one bar."""
    drawn, others = totals[:TOP_SERVICES], totals[TOP_SERVICES:]
    rest = None
    if others:
        label = f"{len(others):,} other service" + ("s" if len(others) > 1 else "")
        rest = (label, sum(t.count for t in others))
    return figures.totals_bar_figure(
        [(t.name, t.count) for t in drawn], measure_label="events, last 30 days", rest=rest
    ).to_plotly_json()


def ingest_rate_figure(health: PipelineHealth) -> dict:
    received = Series(name="received", points=list(health.received_per_minute))
    figure = figures.series_figure(
        [received], chart_type="bar", measure_label="events / minute", stack=True, height=220
    )
    return figure.to_plotly_json()


def ingest_rate_table(health: PipelineHealth) -> SeriesTable:
    """Return the numbers of the ingest-rate chart: events received in each minute of the last hour."""
    received = Series(name="received", points=list(health.received_per_minute))
    return series_table([received], interval="minute", additive=True)


def health_tiles(health: PipelineHealth) -> list[Tile]:
    """Return the pipeline's numbers as tiles, each saying whether it looks healthy."""
    return [
        Tile(
            "Received, last hour",
            f"{health.received_last_hour:,}",
            f"{health.received_last_hour / 60:,.1f} per minute on average",
            True,
        ),
        Tile(
            "Processing lag",
            age_text(health.processing_lag),
            f"{health.waiting_aggregation:,} events waiting for the rollups",
            health.processing_lag is None or health.processing_lag < LAG_WARNING,
        ),
        Tile(
            "Indexing lag",
            age_text(health.indexing_lag),
            f"{health.waiting_index:,} events waiting to be searchable",
            health.indexing_lag is None or health.indexing_lag < LAG_WARNING,
        ),
        Tile(
            "Dead-lettered",
            f"{health.dead_lettered:,}",
            "events that failed processing too often (see the admin)",
            health.dead_lettered == 0,
        ),
    ]


def age_text(age: timedelta | None) -> str:
    """Return an age for reading: "none", "42 s", "3 min", "2 h 5 min", "3 d 4 h"."""
    if age is None:
        return "none"
    seconds = int(age.total_seconds())
    if seconds < 60:
        return f"{seconds} s"
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"
