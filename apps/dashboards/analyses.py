"""The explorer's funnel and retention analyses: URL state (`analysis=funnel&steps=…&window=…`), checked by
one GET form, turned into the metrics queries, drawn, tabulated and written as CSV. Saved charts store the
same query string, so a dashboard re-runs them like trend charts.

Trends stay `forms.ExplorerForm` + `chartspec`; a query string names its analysis in `analysis` (absent:
trends), and `analysis_of` is the one place that reads it.
"""

import csv
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from urllib.parse import urlencode

from django import forms
from django.http import QueryDict
from django.urls import reverse
from django.utils import timezone

from apps.common.bidi import clipped, isolated, isolated_all
from apps.metrics import query as query_language
from apps.metrics.eventrows import EventFilter
from apps.metrics.funnel import MAX_WINDOW, Funnel, FunnelQuery, funnel_for
from apps.metrics.retention import Retention, RetentionQuery, retention_for

from . import analysis_figures
from .analysis_figures import duration_text
from .chartspec import BREAKDOWN_BUILTINS, QUICK_RANGES, range_input, raw_history_note
from .drilldown import FUNNEL_TOO_LONG_NOTE, funnel_step_links
from .forms import (
    MAX_FILTERS,
    ExplorerOptions,
    StatePart,
    TextListField,
    TimeRangeForm,
    _parsed,
    filters_part,
    refuse_long_state,
)
from .tables import spreadsheet_text

ANALYSES = {"trends": "Trends", "funnel": "Funnel", "retention": "Retention"}
WINDOWS = {300: "5 minutes", 3600: "1 hour", 86400: "1 day", 604800: "7 days", 2592000: "30 days"}
DEFAULTS = {"range": "30d", "window": "86400", "interval": "day"}


def analysis_of(data) -> str:
    """Return the analysis a query string asks for: trends (the default), funnel or retention."""
    value = data.get("analysis") or "trends"
    return value if value in ANALYSES else "trends"


@dataclass(frozen=True)
class AnalysisSettings:
    """What a person chose for a funnel or a retention table, checked (see AnalysisForm)."""

    analysis: str  # funnel | retention
    steps: tuple[str, ...] = ()
    window: int = 86400
    start_event: str = ""
    return_event: str = ""
    interval: str = "day"
    range: str = "30d"
    start: datetime | None = None
    end: datetime | None = None
    breakdown: str = ""
    filters: tuple[tuple[str, str], ...] = ()


class AnalysisForm(TimeRangeForm):
    analysis = forms.ChoiceField(choices=[("funnel", "Funnel"), ("retention", "Retention")])
    steps = forms.CharField(
        required=False,
        label="Steps, in order",
        help_text="2 to 8 event names separated by commas, e.g. search_made, forecast_requested.",
        widget=forms.TextInput(attrs={"list": "event-names", "size": 40}),
    )
    window = forms.IntegerField(
        required=False,
        min_value=1,
        max_value=int(MAX_WINDOW.total_seconds()),
        label="Conversion window (seconds)",
        help_text="Every step within this long of step 1 (86400 = 1 day).",
        widget=forms.NumberInput(attrs={"list": "windows"}),
    )
    start_event = forms.CharField(
        required=False, label="Cohort by first", widget=forms.TextInput(attrs={"list": "event-names"})
    )
    return_event = forms.CharField(
        required=False, label="Coming back with", widget=forms.TextInput(attrs={"list": "event-names"})
    )
    interval = forms.ChoiceField(
        required=False, label="Cohorts by", choices=[("day", "Day"), ("week", "Week")]
    )
    breakdown = forms.CharField(required=False, label="Break down by", widget=forms.Select)
    filter = TextListField(required=False, label="Only events where")

    def __init__(
        self, data=None, *, options: ExplorerOptions | None = None, limit_length: bool = True, **kwargs
    ) -> None:
        """`limit_length=False` for an analysis saved before MAX_QUERY_STRING: it drew then and still does."""
        kwargs.setdefault("label_suffix", "")
        self.limit_length = limit_length
        if data is not None:
            data = data.copy()
            for name, value in DEFAULTS.items():
                if not data.get(name):
                    data[name] = value
        super().__init__(data, **kwargs)
        self.options = options or ExplorerOptions()
        for name in ("start_event", "return_event"):  # suggestions from every event name as one types
            self.fields[name].widget.attrs.update(
                {"class": "js-name-search", "data-search-url": reverse("dashboard-event-names")}
            )
        props = list(self.options.properties)
        current = str(self.data.get("breakdown") or "")
        if current.startswith("prop:") and current[5:] and current[5:] not in props:
            props.append(current[5:])
        choices: list = [(k, v) for k, v in BREAKDOWN_BUILTINS.items() if k != "event"]
        if props:
            choices.append(("A property", [(f"prop:{p}", p) for p in props]))
        self.fields["breakdown"].widget.choices = choices

    def clean_steps(self) -> tuple[str, ...]:
        if self.data.get("analysis") != "funnel":
            return ()
        return _parsed(query_language.funnel_steps, self.cleaned_data.get("steps") or "")

    def clean_window(self) -> int:
        return self.cleaned_data.get("window") or int(DEFAULTS["window"])

    def _event(self, name: str) -> str:
        if self.data.get("analysis") != "retention":
            return ""
        value = (self.cleaned_data.get(name) or "").strip()
        if not value:
            raise forms.ValidationError("Name an event.")
        try:
            return query_language.name(value, what="event name", parameter=name)
        except query_language.QueryError as refused:
            raise forms.ValidationError(refused.message) from None

    def clean_start_event(self) -> str:
        return self._event("start_event")

    def clean_return_event(self) -> str:
        return self._event("return_event")

    def clean_interval(self) -> str:
        return self.cleaned_data.get("interval") or DEFAULTS["interval"]

    def clean_range(self) -> str:
        return self.cleaned_data.get("range") or DEFAULTS["range"]

    def clean_breakdown(self) -> str:
        if self.data.get("analysis") != "funnel":
            return ""
        return _parsed(query_language.analysis_breakdown, self.cleaned_data.get("breakdown") or "")

    def clean_filter(self) -> list[tuple[str, str]]:
        raw = self.cleaned_data.get("filter") or []
        if len(raw) > MAX_FILTERS:
            raise forms.ValidationError(f"Use at most {MAX_FILTERS} filters.")
        return [_parsed(query_language.property_filter, item) for item in raw]

    def clean(self) -> dict:
        data = super().clean()
        if self.limit_length and not self.errors:
            self._check_length()
        return data

    def _check_length(self) -> None:
        """Refuse settings whose URL state would pass MAX_QUERY_STRING, on the field that makes it long."""
        data = self.cleaned_data
        if data["analysis"] == "funnel":
            n = len(data["steps"])
            parts = [
                StatePart(
                    "steps",
                    [("steps", ",".join(data["steps"]))],
                    f"These {n} steps make",
                    "pick fewer steps, or events with shorter names.",
                ),
                StatePart(
                    "breakdown",
                    [("breakdown", data["breakdown"])],
                    "This breakdown makes",
                    "break down by a property with a shorter name.",
                ),
            ]
        else:
            parts = [
                StatePart(
                    name, [(name, data[name])], "This event makes", "pick an event with a shorter name."
                )
                for name in ("start_event", "return_event")
            ]
        parts.append(filters_part(data["filter"]))
        refuse_long_state(self, state=query_string(self.settings()), parts=parts)

    def settings(self) -> AnalysisSettings:
        """Return the settings of a valid form."""
        data = self.cleaned_data
        custom = data["range"] == "custom"
        return AnalysisSettings(
            analysis=data["analysis"],
            steps=tuple(data["steps"]),
            window=data["window"],
            start_event=data["start_event"],
            return_event=data["return_event"],
            interval=data["interval"],
            range=data["range"],
            start=data["start"] if custom else None,
            end=data["end"] if custom else None,
            breakdown=data["breakdown"],
            filters=tuple(data["filter"]),
        )

    def filter_values(self) -> list[str]:
        """Return the filters as typed, for redrawing their inputs (valid or not); an empty form's are those
        the analysis switch carried over."""
        if not self.is_bound:
            return [v for v in self.initial.get("filter", []) if v.strip()]
        return [v for v in self.data.getlist("filter") if v.strip()] if hasattr(self.data, "getlist") else []


def query_string(settings: AnalysisSettings) -> str:
    """Return the canonical URL state of an analysis (what a saved chart stores)."""
    params: list[tuple[str, str]] = [("analysis", settings.analysis)]
    if settings.analysis == "funnel":
        params += [("steps", ",".join(settings.steps)), ("window", str(settings.window))]
        if settings.breakdown:
            params.append(("breakdown", settings.breakdown))
    else:
        params += [
            ("start_event", settings.start_event),
            ("return_event", settings.return_event),
            ("interval", settings.interval),
        ]
    params.append(("range", settings.range))
    if settings.range == "custom":
        params += [("start", range_input(settings.start)), ("end", range_input(settings.end))]
    params += [("filter", f"{k}={v}") for k, v in settings.filters]
    return urlencode(params)


def window_text(seconds: int) -> str:
    """Return a window or a wait in words: "1 day", "90 minutes", "45 seconds"."""
    if seconds in WINDOWS:
        return WINDOWS[seconds]
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            n = seconds // size
            return f"{n} {unit}{'s' if n != 1 else ''}"
    return f"{seconds} seconds"


@dataclass(frozen=True)
class AnalysisSpec:
    settings: AnalysisSettings
    query: FunnelQuery | RetentionQuery
    title: str
    subtitle: str


def analysis_spec(settings: AnalysisSettings, *, now: datetime) -> AnalysisSpec:
    """Return the query, title and subtitle the settings describe."""
    if settings.range == "custom":
        start, end = settings.start, settings.end
        when = f"{start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC"
    else:
        start, end = now - QUICK_RANGES[settings.range][1], now
        when = QUICK_RANGES[settings.range][0].lower()
    where = EventFilter(properties=settings.filters)
    parts = [when]
    if settings.filters:
        parts.append("where " + " and ".join(f"{isolated(k)} = {isolated(v)}" for k, v in settings.filters))
    if settings.analysis == "funnel":
        query: FunnelQuery | RetentionQuery = FunnelQuery(
            steps=settings.steps,
            window=timedelta(seconds=settings.window),
            start=start,
            end=end,
            breakdown=settings.breakdown,
            where=where,
        )
        steps = " → ".join(isolated_all(settings.steps))
        title = f"Funnel: {steps}"
        parts.insert(1, f"within {window_text(settings.window)} of step 1")
        if settings.breakdown:
            by = settings.breakdown[5:] if settings.breakdown.startswith("prop:") else settings.breakdown
            title += f" by {isolated(by)}"
    else:
        query = RetentionQuery(
            start_event=settings.start_event,
            return_event=settings.return_event,
            start=start,
            end=end,
            interval=settings.interval,
            where=where,
        )
        title = (
            f"Retention: first {isolated(settings.start_event)}, back with {isolated(settings.return_event)}"
        )
        parts.insert(1, f"cohorts by {settings.interval}")
    return AnalysisSpec(settings=settings, query=query, title=clipped(title, 200), subtitle=" · ".join(parts))


@dataclass
class RenderedAnalysis:
    spec: AnalysisSpec
    figure: dict  # plotly JSON, embedded with json_script
    funnel: Funnel | None = None
    retention: Retention | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)


def analysis_render(spec: AnalysisSpec) -> RenderedAnalysis:
    """Run the analysis once and draw it (RetentionQueryError when the range holds too many cohorts)."""
    # Both read raw events only, which retention deletes (the rollups trend charts read are kept).
    notes = raw_history_note(spec.query.start, now=timezone.now(), what=f"This {spec.settings.analysis}")
    if isinstance(spec.query, FunnelQuery):
        funnel = funnel_for(spec.query)
        if funnel.other_groups:
            notes += (f"{funnel.other_groups} smaller groups are left out; the overall funnel counts them.",)
        links = [[c for c, _ in funnel_step_links(spec.query)]]
        links += [[c for c, _ in funnel_step_links(spec.query, g)] for g in funnel.groups]
        if any(link is None for steps in links for link in steps):
            notes += (FUNNEL_TOO_LONG_NOTE,)
        figure = analysis_figures.funnel_figure(funnel, links=links)
        return RenderedAnalysis(spec=spec, figure=figure.to_plotly_json(), funnel=funnel, notes=notes)
    retention = retention_for(spec.query)
    figure = analysis_figures.retention_figure(retention)
    return RenderedAnalysis(spec=spec, figure=figure.to_plotly_json(), retention=retention, notes=notes)


# --- tables and CSV ---------------------------------------------------------------------------------------


def percent_text(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.1f} %"


def funnel_rows(funnel: Funnel, query: FunnelQuery | None = None) -> list[dict]:
    """Return the funnel's table rows: the overall steps, then each group's; with the query, each step's
    users pages (those who reached it, those who dropped off before it)."""
    groups = [("All users", None, funnel.steps)] + [(g.name, g, g.steps) for g in funnel.groups]
    rows = []
    for group, funnel_group, steps in groups:
        links = funnel_step_links(query, funnel_group) if query is not None else [(None, None)] * len(steps)
        for number, (step, (users_url, dropped_url)) in enumerate(zip(steps, links, strict=True), start=1):
            rows.append(
                {
                    "group": group,
                    "number": number,
                    "event": step.event,
                    "count": f"{step.count:,}",
                    "conversion": percent_text(step.conversion),
                    "from_previous": percent_text(step.conversion_from_previous) if number > 1 else "—",
                    "median": duration_text(step.median_seconds),
                    "users_url": users_url,
                    "dropped_url": dropped_url,
                }
            )
    return rows


def heat_class(percentage: float | None) -> str:
    """Return the CSS class that shades a retention cell (tenths of 100 %)."""
    return "heat-none" if percentage is None else f"heat-{min(int(percentage // 10), 10)}"


def retention_rows(retention: Retention) -> list[dict]:
    """Return the heatmap table's rows: cohort, size, and per offset (count, percentage, shade)."""
    rows = []
    for cohort in retention.cohorts:
        cells = [
            {"count": f"{v:,}", "percent": "—" if p is None else f"{p:.1f} %", "heat": heat_class(p)}
            for v, p in zip(cohort.values, cohort.percentages, strict=True)
        ]
        rows.append({"start": f"{cohort.start:%Y-%m-%d}", "size": f"{cohort.size:,}", "cells": cells})
    return rows


def write_analysis_csv(rendered: RenderedAnalysis, out) -> None:
    """Write a funnel (one row per group and step) or a retention table (one row per cohort) as CSV.

    A funnel row's `group_kind` says whose row it is: "all" (everyone, `group` empty), "value" (the users
    whose step-1 event has the property's value `group`) or "absent" (those whose step-1 event lacks the
    property, `group` "(none)" for people): a value may be the text "(none)", or empty, too."""
    writer = csv.writer(out)
    if rendered.funnel is not None:
        writer.writerow(
            [
                "group_kind",
                "group",
                "step",
                "event",
                "users",
                "conversion",
                "conversion_from_previous",
                "median_seconds",
            ]
        )
        groups = [("all", "", rendered.funnel.steps)] + [
            ("absent" if g.absent else "value", g.name, g.steps) for g in rendered.funnel.groups
        ]
        for kind, group, steps in groups:
            for number, step in enumerate(steps, start=1):
                writer.writerow(
                    [
                        kind,
                        spreadsheet_text(group),
                        number,
                        spreadsheet_text(step.event),
                        step.count,
                        "" if step.conversion is None else step.conversion,
                        "" if step.conversion_from_previous is None else step.conversion_from_previous,
                        "" if step.median_seconds is None else step.median_seconds,
                    ]
                )
        return
    retention = rendered.retention
    width = len(retention.cohorts[0].values) if retention.cohorts else 0
    writer.writerow(["cohort_start_utc", "size", *(f"{retention.interval}_{k}" for k in range(width))])
    for cohort in retention.cohorts:
        writer.writerow([cohort.start.strftime("%Y-%m-%dT%H:%M:%SZ"), cohort.size, *cohort.values])


def analysis_form_from_query_string(text: str, *, range_override: str = "") -> AnalysisForm:
    """Return the bound form of a saved analysis' query string (over another quick range when asked), without
    MAX_QUERY_STRING: saved when the address fitted the server's line, it still draws."""
    data = QueryDict(text, mutable=True)
    if range_override:
        data["range"] = range_override
        data.pop("start", None)
        data.pop("end", None)
    return AnalysisForm(data, limit_length=False)
