"""The explorer's state lives in the URL: one GET form validates every parameter and turns it into a chart.

Names the pickers offer come from the data, but a URL may name an event or property that has no data (yet,
or any more, for a saved chart): such names are accepted and shown, never an error.
"""

import math
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

from django import forms
from django.http import QueryDict
from django.utils import timezone

from apps.common.timebounds import BoundedDateTimeField
from apps.metrics.selectors import SeriesQuery

from .models import Dashboard

QUICK_RANGES = {
    "1h": ("Last hour", timedelta(hours=1)),
    "24h": ("Last 24 hours", timedelta(hours=24)),
    "7d": ("Last 7 days", timedelta(days=7)),
    "30d": ("Last 30 days", timedelta(days=30)),
    "90d": ("Last 90 days", timedelta(days=90)),
    "custom": ("Custom range", None),
}
INTERVALS = {
    "minute": ("By minute", timedelta(minutes=1)),
    "hour": ("By hour", timedelta(hours=1)),
    "day": ("By day", timedelta(days=1)),
    "week": ("By week", timedelta(weeks=1)),
}
CHART_TYPES = {"line": "Line", "bar": "Bars", "area": "Area"}
TOP_N_CHOICES = (3, 5, 10, 20)
BREAKDOWN_BUILTINS = {"": "No breakdown", "service": "Service", "stage": "Stage", "event": "Event name"}

DEFAULTS = {"range": "7d", "interval": "hour", "measure": "count", "top": "5", "chart": "line"}
# A series longer than this is refused by coarsening the interval (and saying so), not by an error.
MAX_BUCKETS = 2200
MAX_EVENTS = 200
MAX_FILTERS = 10
MAX_NAME = 200
MAX_SPAN = timedelta(days=731)
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True)
class ExplorerOptions:
    """What the pickers offer: names found in the data."""

    events: list[str] = field(default_factory=list)
    numeric_props: list[str] = field(default_factory=list)
    properties: list[str] = field(default_factory=list)


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
    notes: tuple[str, ...] = ()


def measure_label(measure: str) -> str:
    """Return the axis label of a measure: "events", "unique users", "sum of x", "average x"."""
    if measure == "count":
        return "events"
    if measure == "unique_users":
        return "unique users"
    kind, _, prop = measure.partition(":")
    return f"sum of {prop}" if kind == "sum" else f"average {prop}"


def _check_name(value: str, what: str) -> str:
    value = value.strip()
    if not value:
        raise forms.ValidationError(f"Give a {what}.")
    if len(value) > MAX_NAME:
        raise forms.ValidationError(f"A {what} has at most {MAX_NAME} characters.")
    if _CONTROL.search(value):
        raise forms.ValidationError(f"A {what} may not contain control characters.")
    return value


class NameListField(forms.MultipleChoiceField):
    """Several names: the offered ones, or any other well-formed name a URL carries (blanks dropped)."""

    def to_python(self, value) -> list[str]:
        return [v for v in super().to_python(value) if v.strip()]

    def valid_value(self, value: str) -> bool:
        return 0 < len(value.strip()) <= MAX_NAME and not _CONTROL.search(value)


class TextListField(forms.Field):
    """A repeated free-text parameter (`filter=a=1&filter=b=2`); the template draws its inputs."""

    widget = forms.MultipleHiddenInput

    def to_python(self, value) -> list[str]:
        if not value:
            return []
        if isinstance(value, str):
            value = [value]
        return [str(v).strip() for v in value if str(v).strip()]


class ExplorerForm(forms.Form):
    event = NameListField(
        required=False,
        label="Events",
        widget=forms.CheckboxSelectMultiple,
        help_text="Several events draw one line per event.",
    )
    measure = forms.CharField(required=False, widget=forms.Select)
    interval = forms.ChoiceField(required=False, choices=[(k, v[0]) for k, v in INTERVALS.items()])
    range = forms.ChoiceField(
        required=False, label="Time range", choices=[(k, v[0]) for k, v in QUICK_RANGES.items()]
    )
    start = BoundedDateTimeField(
        required=False, label="From (UTC)", widget=forms.DateTimeInput(attrs={"type": "datetime-local"})
    )
    end = BoundedDateTimeField(
        required=False, label="To (UTC)", widget=forms.DateTimeInput(attrs={"type": "datetime-local"})
    )
    breakdown = forms.CharField(required=False, label="Break down by", widget=forms.Select)
    top = forms.TypedChoiceField(
        required=False,
        label="Show the top",
        coerce=int,
        empty_value=None,
        choices=[(n, f"{n} + other") for n in TOP_N_CHOICES],
    )
    filter = TextListField(required=False, label="Only events where")
    compare = forms.BooleanField(required=False, label="Compare with the previous period")
    chart = forms.ChoiceField(
        required=False, label="Chart type", choices=list(CHART_TYPES.items()), widget=forms.RadioSelect
    )

    def __init__(self, data=None, *, options: ExplorerOptions | None = None, **kwargs) -> None:
        kwargs.setdefault("label_suffix", "")
        if data is not None:
            # A link may leave settings out; the page then shows, and the chart uses, the defaults.
            data = data.copy()
            for name, value in DEFAULTS.items():
                if not data.get(name):
                    data[name] = value
        super().__init__(data, **kwargs)
        self.options = options or ExplorerOptions()
        chosen = (
            self.data.getlist("event") if hasattr(self.data, "getlist") else self.data.get("event")
        ) or []
        events = list(self.options.events)
        events += [e for e in dict.fromkeys(chosen) if e not in events]
        self.fields["event"].choices = [(e, e) for e in events]
        self.fields["measure"].widget.choices = self._measure_choices()
        self.fields["breakdown"].widget.choices = self._breakdown_choices()

    @classmethod
    def default_data(cls, *, events: list[str]) -> QueryDict:
        """Return the state of an explorer opened without parameters: these events, the defaults."""
        data = QueryDict(mutable=True)
        data.update(DEFAULTS)
        data.setlist("event", events)
        return data

    def _measure_choices(self) -> list:
        props = list(self.options.numeric_props)
        current = str(self.data.get("measure") or "")
        kind, _, prop = current.partition(":")
        if kind in ("sum", "avg") and prop and prop not in props:
            props.append(prop)
        choices: list = [("count", "Count of events"), ("unique_users", "Unique users")]
        if props:
            choices.append(("Sum of a number", [(f"sum:{p}", f"Sum of {p}") for p in props]))
            choices.append(("Average of a number", [(f"avg:{p}", f"Average {p}") for p in props]))
        return choices

    def _breakdown_choices(self) -> list:
        props = list(self.options.properties)
        current = str(self.data.get("breakdown") or "")
        if current.startswith("prop:") and current[5:] and current[5:] not in props:
            props.append(current[5:])
        choices: list = list(BREAKDOWN_BUILTINS.items())
        if props:
            choices.append(("A property", [(f"prop:{p}", p) for p in props]))
        return choices

    # --- one clean method per parameter

    def clean_event(self) -> list[str]:
        events = list(dict.fromkeys(e.strip() for e in self.cleaned_data.get("event") or []))
        if not events:
            raise forms.ValidationError("Tick at least one event.")
        if len(events) > MAX_EVENTS:
            raise forms.ValidationError(f"Choose at most {MAX_EVENTS} events.")
        return events

    def clean_measure(self) -> str:
        measure = (self.cleaned_data.get("measure") or DEFAULTS["measure"]).strip()
        if measure in ("count", "unique_users"):
            return measure
        kind, sep, prop = measure.partition(":")
        if kind not in ("sum", "avg") or not sep:
            raise forms.ValidationError(
                f"“{measure[:80]}” is not a measure: "
                "use count, unique_users, sum:<property> or avg:<property>."
            )
        return f"{kind}:{_check_name(prop, 'property name')}"

    def clean_interval(self) -> str:
        return self.cleaned_data.get("interval") or DEFAULTS["interval"]

    def clean_range(self) -> str:
        return self.cleaned_data.get("range") or DEFAULTS["range"]

    def clean_breakdown(self) -> str:
        breakdown = (self.cleaned_data.get("breakdown") or "").strip()
        if breakdown in BREAKDOWN_BUILTINS:
            return breakdown
        if not breakdown.startswith("prop:"):
            raise forms.ValidationError(
                f"“{breakdown[:80]}” is not a breakdown: use service, stage, event or prop:<property>."
            )
        return "prop:" + _check_name(breakdown[5:], "property name")

    def clean_top(self) -> int:
        return self.cleaned_data.get("top") or int(DEFAULTS["top"])

    def clean_filter(self) -> list[tuple[str, str]]:
        raw = self.cleaned_data.get("filter") or []
        if len(raw) > MAX_FILTERS:
            raise forms.ValidationError(f"Use at most {MAX_FILTERS} filters.")
        filters = []
        for item in raw:
            key, sep, value = item.partition("=")
            if not sep or not key.strip():
                raise forms.ValidationError(f"“{item[:80]}” is not a filter: write property=value.")
            filters.append((_check_name(key, "property name"), value.strip()[:500]))
        return filters

    def clean_chart(self) -> str:
        return self.cleaned_data.get("chart") or DEFAULTS["chart"]

    def clean(self) -> dict:
        data = super().clean()
        if data.get("range") == "custom":
            start, end = _utc(data.get("start")), _utc(data.get("end"))
            if start is None:
                self.add_error("start", "A custom range needs a start.")
            if end is None:
                self.add_error("end", "A custom range needs an end.")
            if start and end:
                if end <= start:
                    raise forms.ValidationError("“To” must be after “From”.")
                if start < EARLIEST:
                    self.add_error("start", "Events before 2000-01-01 are never stored.")
                if end - start > MAX_SPAN:
                    raise forms.ValidationError("A custom range may span at most two years.")
            data["start"], data["end"] = start, end
        return data

    # --- what a valid form means

    def time_bounds(self, now: datetime | None = None) -> tuple[datetime, datetime]:
        """Return [start, end) in UTC; the start is not yet aligned to a bucket."""
        data = self.cleaned_data
        if data["range"] == "custom":
            return data["start"], data["end"]
        end = now or timezone.now()
        return end - QUICK_RANGES[data["range"]][1], end

    def chart_spec(self, now: datetime | None = None) -> ChartSpec:
        """Return the chart the form describes, coarsening an interval that would draw too many points."""
        data = self.cleaned_data
        start, end = self.time_bounds(now)
        interval, notes = data["interval"], []
        names = list(INTERVALS)
        while _buckets(start, end, interval) > MAX_BUCKETS and interval != names[-1]:
            coarser = names[names.index(interval) + 1]
            notes.append(
                f"Showing {coarser}s: {interval} buckets over this range would be "
                f"{_buckets(start, end, interval):,} points (at most {MAX_BUCKETS:,})."
            )
            interval = coarser
        query = SeriesQuery(
            events=tuple(data["event"]),
            measure=data["measure"],
            interval=interval,
            start=bucket_floor(start, interval),
            end=end,
            breakdown=data["breakdown"],
            filters=tuple(data["filter"]),
            top_n=data["top"],
            compare=data["compare"],
        )
        return ChartSpec(
            query=query,
            chart_type=data["chart"],
            title=self.title(),
            subtitle=self._subtitle(interval, start, end),
            measure_label=measure_label(data["measure"]),
            additive=data["measure"] == "count" or data["measure"].startswith("sum:"),
            notes=tuple(notes),
        )

    def title(self) -> str:
        """Return a chart title in words, e.g. "Count of search_made by service"."""
        data = self.cleaned_data
        measure = data["measure"]
        what = ", ".join(data["event"]) if len(data["event"]) <= 3 else f"{len(data['event'])} events"
        if measure == "count":
            title = f"Count of {what}"
        elif measure == "unique_users":
            title = f"Unique users of {what}"
        else:
            title = f"{measure_label(measure).capitalize()} of {what}"
        breakdown = data["breakdown"]
        if breakdown:
            title += " by " + (
                breakdown[5:] if breakdown.startswith("prop:") else BREAKDOWN_BUILTINS[breakdown].lower()
            )
        return title[:MAX_NAME]

    def _subtitle(self, interval: str, start: datetime, end: datetime) -> str:
        data = self.cleaned_data
        if data["range"] == "custom":
            when = f"{start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC"
        else:
            when = QUICK_RANGES[data["range"]][0].lower()
        parts = [when, INTERVALS[interval][0].lower()]
        if len(data["event"]) > 1 and not data["breakdown"]:
            parts.append("one line per event")
        if data["filter"]:
            parts.append("where " + " and ".join(f"{k} = {v}" for k, v in data["filter"]))
        if data["compare"]:
            parts.append("compared with the previous period")
        return " · ".join(parts)

    def query_string(self) -> str:
        """Return the canonical URL state of a valid form (what a saved chart stores)."""
        data = self.cleaned_data
        params: list[tuple[str, str]] = [("event", e) for e in data["event"]]
        params += [("measure", data["measure"]), ("interval", data["interval"]), ("range", data["range"])]
        if data["range"] == "custom":
            params += [("start", _local_input(data["start"])), ("end", _local_input(data["end"]))]
        if data["breakdown"]:
            params += [("breakdown", data["breakdown"]), ("top", str(data["top"]))]
        params += [("filter", f"{k}={v}") for k, v in data["filter"]]
        if data["compare"]:
            params.append(("compare", "on"))
        params.append(("chart", data["chart"]))
        return urlencode(params)

    def filter_values(self) -> list[str]:
        """Return the filters as typed, for redrawing their inputs (valid or not)."""
        return [v for v in self.data.getlist("filter") if v.strip()] if hasattr(self.data, "getlist") else []


def bucket_floor(moment: datetime, interval: str) -> datetime:
    """Return the start of the bucket holding `moment` (UTC; weeks start on Monday)."""
    moment = moment.astimezone(UTC)
    if interval == "minute":
        return moment.replace(second=0, microsecond=0)
    if interval == "hour":
        return moment.replace(minute=0, second=0, microsecond=0)
    day = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    return day - timedelta(days=day.weekday()) if interval == "week" else day


def _buckets(start: datetime, end: datetime, interval: str) -> int:
    return math.ceil((end - bucket_floor(start, interval)) / INTERVALS[interval][1])


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.astimezone(UTC) if timezone.is_aware(value) else value.replace(tzinfo=UTC)


def _local_input(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M")


class SaveChartForm(forms.Form):
    """Save the explorer's chart to one of your dashboards, or to a new one."""

    NEW = "new"

    title = forms.CharField(max_length=200)
    query_string = forms.CharField(widget=forms.HiddenInput, max_length=20_000)
    dashboard = forms.ChoiceField(label="Dashboard")
    new_name = forms.CharField(required=False, max_length=120, label="New dashboard’s name")

    def __init__(self, *args, dashboards: list[Dashboard], **kwargs) -> None:
        kwargs.setdefault("label_suffix", "")
        super().__init__(*args, **kwargs)
        self.dashboards = {str(d.pk): d for d in dashboards}
        self.fields["dashboard"].choices = [(pk, d.name) for pk, d in self.dashboards.items()] + [
            (self.NEW, "New dashboard…")
        ]
        if not dashboards:
            self.fields["dashboard"].initial = self.NEW

    def clean_query_string(self) -> str:
        value = self.cleaned_data["query_string"]
        chart = ExplorerForm(QueryDict(value))
        if not chart.is_valid():
            raise forms.ValidationError("This chart has invalid settings; fix them in the explorer first.")
        return chart.query_string()

    def clean(self) -> dict:
        data = super().clean()
        if data.get("dashboard") == self.NEW:
            data["new_name"] = (data.get("new_name") or "").strip()
            if not data["new_name"]:
                self.add_error("new_name", "Name the new dashboard.")
        return data

    def target(self) -> Dashboard | None:
        """Return the chosen existing dashboard, or None for a new one."""
        return self.dashboards.get(self.cleaned_data["dashboard"])


class DashboardCreateForm(forms.Form):
    name = forms.CharField(max_length=120, label="New dashboard’s name")

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("label_suffix", "")
        super().__init__(*args, **kwargs)

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip()
        if not name:
            raise forms.ValidationError("Name the dashboard.")
        return name
