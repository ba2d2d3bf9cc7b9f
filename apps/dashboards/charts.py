"""One chart for a page: run its query once, then hand the same series to the figure and the table."""

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django import forms
from django.db import DatabaseError
from django.http import QueryDict
from django.utils import timezone

from apps.annotations.selectors import annotations_of_ranges
from apps.metrics.retention import RetentionQueryError
from apps.metrics.selectors import Series, SeriesQueryError, earliest_raw_read, series_for

from . import drilldown, figures
from .analyses import (
    AnalysisSpec,
    RenderedAnalysis,
    analysis_form_from_query_string,
    analysis_of,
    analysis_render,
    analysis_spec,
)
from .analyses import query_string as analysis_query_string
from .chartspec import ChartSpec, chart_spec, query_string, raw_history_note
from .forms import ExplorerForm
from .tables import SeriesTable, series_table

logger = logging.getLogger(__name__)
ESTIMATE_NOTE = (
    "Unique users are estimated from HyperLogLog sketches: exact up to about 1,300 users, "
    "within about 1 % beyond."
)


@dataclass
class RenderedChart:
    spec: ChartSpec
    series: list[Series]
    figure: dict  # plotly JSON, embedded with json_script
    table: SeriesTable
    # What the page says under the chart: the spec's notes, and that the figures are estimates if they are.
    notes: tuple[str, ...] = ()


def chart_render(spec: ChartSpec) -> RenderedChart:
    """Return the series, figure and table of a chart spec."""
    series = series_for(spec.query)
    return chart_from_series(spec, series)


def chart_from_series(spec: ChartSpec, series: list[Series]) -> RenderedChart:
    """Return the figure and table of series already read (a previous period next to its series)."""
    series = figures.paired_order(series)
    figure = figures.series_figure(
        series, chart_type=spec.chart_type, measure_label=spec.measure_label, stack=spec.additive
    )
    links, link_notes = drilldown.point_links_bounded(spec.query, series)
    drilldown.with_point_links(figure, links)
    table = series_table(
        series,
        interval=spec.query.interval,
        additive=spec.additive,
        decimals=spec.query.measure.startswith("avg:"),
        links=links,
    )
    # A property breakdown or filter, or numbers or users by minute, are read from raw events.
    raw_note = raw_history_note(earliest_raw_read(spec.query), now=timezone.now(), what="This chart")
    notes = spec.notes + raw_note + link_notes
    notes += (ESTIMATE_NOTE,) if any(s.estimate for s in series) else ()
    return RenderedChart(spec=spec, series=series, figure=figure.to_plotly_json(), table=table, notes=notes)


def charts_annotate(charts: list[RenderedChart]) -> None:
    """Draw the annotations on each chart of a page that covers their time: one query for all charts while
    they hold at most a chart's worth of them, else two (see annotations_of_ranges)."""
    found = annotations_of_ranges((chart.spec.query.start, chart.spec.query.end) for chart in charts)
    for chart in charts:
        start, end = chart.spec.query.start, chart.spec.query.end
        figures.add_annotation_markers(chart.figure, found[start, end], start=start, end=end)


@dataclass
class SavedChartView:
    """A saved chart as its dashboard shows it: drawn, or the reason it cannot be."""

    chart: object  # models.Chart
    rendered: RenderedChart | RenderedAnalysis | None
    errors: list[str]
    explorer_query: str
    # False when the settings are fine but the chart could not be read (the errors say why).
    settings_invalid: bool = True
    subtitle: str = ""  # its settings in words (range, interval, filters), known before it is read


@dataclass(frozen=True)
class _SavedPlan:
    """How to read a saved chart back: its bound form, and what turns valid settings into a spec (no query),
    a spec into a drawing (its queries), and settings into the canonical query string."""

    form: forms.Form
    spec: Callable[[Any], ChartSpec | AnalysisSpec]
    draw: Callable[[Any], RenderedChart | RenderedAnalysis]
    refusals: tuple[type[Exception], ...]  # a limit of the reader, said to the person as the chart's message
    canonical: Callable[[Any], str]


def _saved_plan(chart, *, range_override: str) -> _SavedPlan:
    """Return how to read a saved chart's query string back (over another quick range when asked)."""
    data = QueryDict(chart.query_string, mutable=True)
    now = timezone.now()
    if analysis_of(data) != "trends":
        return _SavedPlan(
            form=analysis_form_from_query_string(chart.query_string, range_override=range_override),
            spec=lambda settings: analysis_spec(settings, now=now),
            draw=analysis_render,
            refusals=(RetentionQueryError,),
            canonical=analysis_query_string,
        )
    if range_override:
        data["range"] = range_override
        data.pop("start", None)
        data.pop("end", None)
    return _SavedPlan(
        form=ExplorerForm(data, limit_length=False),  # saved when the address fitted the server's line
        spec=lambda settings: chart_spec(settings, now=now),
        draw=chart_render,
        refusals=(SeriesQueryError,),
        canonical=query_string,
    )


def _invalid(chart, form: forms.Form) -> SavedChartView:
    errors = [f"{name}: {' '.join(msgs)}" for name, msgs in form.errors.items()]
    return SavedChartView(chart=chart, rendered=None, errors=errors, explorer_query=chart.query_string)


def saved_chart_card(chart, *, range_override: str = "") -> SavedChartView:
    """Return what a dashboard shows of a saved chart before reading it: its settings in words, or why they
    are invalid. No query: the dashboard page answers at once and each chart is read on its own URL."""
    plan = _saved_plan(chart, range_override=range_override)
    if not plan.form.is_valid():
        return _invalid(chart, plan.form)
    settings = plan.form.settings()
    return SavedChartView(
        chart=chart,
        rendered=None,
        errors=[],
        explorer_query=plan.canonical(settings),
        settings_invalid=False,
        subtitle=plan.spec(settings).subtitle,
    )


def saved_chart_render(chart, *, range_override: str = "") -> SavedChartView:
    """Re-run a saved chart's query string, a trend chart or an analysis (over another quick range when
    asked): invalid settings (an old URL, say), a limit of the reader or a database that does not answer
    become the chart's message, never a 500."""
    plan = _saved_plan(chart, range_override=range_override)
    if not plan.form.is_valid():
        return _invalid(chart, plan.form)
    settings = plan.form.settings()
    spec = plan.spec(settings)
    try:
        rendered = plan.draw(spec)
    except plan.refusals as exc:
        errors = [f"{str(exc).capitalize()}."]
        return SavedChartView(chart=chart, rendered=None, errors=errors, explorer_query=chart.query_string)
    except DatabaseError:  # one chart's failure is said on that chart (logged), never a 500
        logger.exception("saved chart %s could not be drawn", chart.pk)
        errors = ["This chart could not be drawn: the database did not answer its query. Try again later."]
        return SavedChartView(
            chart=chart,
            rendered=None,
            errors=errors,
            explorer_query=chart.query_string,
            settings_invalid=False,
            subtitle=spec.subtitle,
        )
    return SavedChartView(
        chart=chart,
        rendered=rendered,
        errors=[],
        explorer_query=plan.canonical(settings),
        settings_invalid=False,
        subtitle=spec.subtitle,
    )
