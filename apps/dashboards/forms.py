"""The explorer's state lives in the URL: one GET form validates every parameter into `ChartSettings`.

Names the pickers offer come from the data, but a URL may name an event or property that has no data (yet,
or any more, for a saved chart): such names are accepted and shown, never an error. What the settings mean
(the series query, title, canonical URL state) is `chartspec`'s.
"""

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

from django import forms
from django.http import QueryDict
from django.utils import timezone

from apps.common.timebounds import BoundedDateTimeField
from apps.metrics import query
from apps.metrics.buckets import INTERVALS

from .chartspec import (
    BREAKDOWN_BUILTINS,
    CHART_TYPES,
    INTERVAL_LABELS,
    QUICK_RANGES,
    ChartSettings,
    query_string,
)
from .models import Dashboard

TOP_N_CHOICES = (3, 5, 10, 20)
# What the Trends / Funnel / Retention switch keeps when it changes analysis: the range and the filters.
CARRIED = ("range", "start", "end", "filter")


def carried_state(params: QueryDict) -> str:
    """Return the range and filters of a page's query string, encoded for the other analyses' links."""
    return urlencode([(key, value) for key in CARRIED for value in params.getlist(key) if value])


DEFAULTS = {"range": "7d", "interval": "hour", "measure": "count", "top": "5", "chart": "line"}
MAX_EVENTS = 200
MAX_FILTERS = 10
# Characters of a chart's URL state (its canonical query string). gunicorn refuses a request line over 4,094
# bytes, and every link the explorer builds carries this state (CSV, copy link, save, open in explorer)
# or most of it (a point's users): past this, those links would be refused, so the form refuses first.
MAX_QUERY_STRING = 3000
MAX_SPAN = timedelta(days=731)
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class ExplorerOptions:
    """What the pickers offer: names found in the data."""

    events: list[str] = field(default_factory=list)
    # How many events the picker's period holds: those beyond `events` are found by name.
    events_total: int = 0
    numeric_props: list[str] = field(default_factory=list)
    properties: list[str] = field(default_factory=list)
    properties_cut: bool = False  # recent events hold more property names than `properties` lists

    @property
    def events_left_out(self) -> int:
        return max(self.events_total - len(self.events), 0)


def _parsed(parse, *args):
    """Run a parser of the query language; its refusal becomes this field's error."""
    try:
        return parse(*args)
    except query.QueryError as refused:
        raise forms.ValidationError(refused.message) from None


class NameListField(forms.MultipleChoiceField):
    """Several names: the offered ones, or any other well-formed name a URL carries (blanks dropped)."""

    def to_python(self, value) -> list[str]:
        return [v for v in super().to_python(value) if v.strip()]

    def valid_value(self, value: str) -> bool:
        try:
            query.name(value, what="name", parameter="event")
        except query.QueryError:
            return False
        return True


class TextListField(forms.Field):
    """A repeated free-text parameter (`filter=a=1&filter=b=2`); the template draws its inputs."""

    widget = forms.MultipleHiddenInput

    def to_python(self, value) -> list[str]:
        if not value:
            return []
        if isinstance(value, str):
            value = [value]
        return [str(v).strip() for v in value if str(v).strip()]


class TimeRangeForm(forms.Form):
    """The explorer's time range, shared by trends and the analyses: a quick range, or a custom one (UTC)."""

    range = forms.ChoiceField(
        required=False, label="Time range", choices=[(k, v[0]) for k, v in QUICK_RANGES.items()]
    )
    start = BoundedDateTimeField(
        required=False, label="From (UTC)", widget=forms.DateTimeInput(attrs={"type": "datetime-local"})
    )
    end = BoundedDateTimeField(
        required=False, label="To (UTC)", widget=forms.DateTimeInput(attrs={"type": "datetime-local"})
    )

    def clean(self) -> dict:
        data = super().clean()
        clean_custom_range(self, data)
        return data


class ExplorerForm(TimeRangeForm):
    event = NameListField(
        required=False,
        label="Events",
        widget=forms.CheckboxSelectMultiple,
        help_text="Several events draw one line per event.",
    )
    measure = forms.CharField(required=False, widget=forms.Select)
    interval = forms.ChoiceField(
        required=False, choices=[(name, INTERVAL_LABELS[name]) for name in INTERVALS]
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

    def __init__(
        self, data=None, *, options: ExplorerOptions | None = None, limit_length: bool = True, **kwargs
    ) -> None:
        """`limit_length=False` for a chart saved before MAX_QUERY_STRING: it drew then and still does."""
        kwargs.setdefault("label_suffix", "")
        self.limit_length = limit_length
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
    def default_data(cls, *, events: list[str], carried: QueryDict | None = None) -> QueryDict:
        """Return the state of an explorer opened without events: these events, the defaults, and the range
        and filters `carried` from another analysis (see carried_state)."""
        data = QueryDict(mutable=True)
        data.update(DEFAULTS)
        data.setlist("event", events)
        for key in CARRIED if carried is not None else ():
            if key in carried:
                data.setlist(key, carried.getlist(key))
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

    # --- one clean method per parameter, each through the query language's parser

    def clean_event(self) -> list[str]:
        events = list(dict.fromkeys(e.strip() for e in self.cleaned_data.get("event") or []))
        if not events:
            raise forms.ValidationError("Tick at least one event.")
        if len(events) > MAX_EVENTS:
            raise forms.ValidationError(f"Choose at most {MAX_EVENTS} events.")
        return events

    def clean_measure(self) -> str:
        return query.measure_text(
            *_parsed(query.measure, self.cleaned_data.get("measure") or DEFAULTS["measure"])
        )

    def clean_interval(self) -> str:
        return self.cleaned_data.get("interval") or DEFAULTS["interval"]

    def clean_range(self) -> str:
        return self.cleaned_data.get("range") or DEFAULTS["range"]

    def clean_breakdown(self) -> str:
        return _parsed(query.breakdown, self.cleaned_data.get("breakdown") or "")

    def clean_top(self) -> int:
        return self.cleaned_data.get("top") or int(DEFAULTS["top"])

    def clean_filter(self) -> list[tuple[str, str]]:
        raw = self.cleaned_data.get("filter") or []
        if len(raw) > MAX_FILTERS:
            raise forms.ValidationError(f"Use at most {MAX_FILTERS} filters.")
        return [_parsed(query.property_filter, item) for item in raw]

    def clean_chart(self) -> str:
        return self.cleaned_data.get("chart") or DEFAULTS["chart"]

    def clean(self) -> dict:
        data = super().clean()
        if self.limit_length and not self.errors:
            self._check_length()
        return data

    def _check_length(self) -> None:
        """Refuse settings whose URL state would pass MAX_QUERY_STRING, on the field that makes it long."""
        data = self.cleaned_data
        n = len(data["event"])
        refuse_long_state(
            self,
            state=query_string(self.settings()),
            parts=[
                StatePart(
                    "event",
                    [("event", e) for e in data["event"]],
                    f"These {n} event{'s' if n != 1 else ''} make",
                    "pick fewer events, or events with shorter names.",
                ),
                filters_part(data["filter"]),
            ],
        )

    def settings(self) -> ChartSettings:
        """Return the chart settings of a valid form."""
        data = self.cleaned_data
        custom = data["range"] == "custom"
        return ChartSettings(
            events=tuple(data["event"]),
            measure=data["measure"],
            interval=data["interval"],
            range=data["range"],
            start=data["start"] if custom else None,
            end=data["end"] if custom else None,
            breakdown=data["breakdown"],
            top=data["top"],
            filters=tuple(data["filter"]),
            compare=data["compare"],
            chart=data["chart"],
        )

    def filter_values(self) -> list[str]:
        """Return the filters as typed, for redrawing their inputs (valid or not)."""
        return [v for v in self.data.getlist("filter") if v.strip()] if hasattr(self.data, "getlist") else []


@dataclass(frozen=True)
class StatePart:
    """A field's share of a chart's URL state, and what its refusal says when the state is too long."""

    field: str
    params: list[tuple[str, str]]
    subject: str  # "These 3 events make"
    advice: str  # "pick fewer events, or events with shorter names."


def filters_part(filters: list[tuple[str, str]]) -> StatePart:
    """Return the filters' share of a chart's URL state (trends and the analyses write them alike)."""
    params = [("filter", f"{k}={v}") for k, v in filters]
    return StatePart("filter", params, "These filters make", "use fewer or shorter filters.")


def refuse_long_state(form: forms.Form, *, state: str, parts: list[StatePart]) -> None:
    """Refuse a URL state longer than MAX_QUERY_STRING on the field of `parts` whose parameters take most of
    it (the first of equals)."""
    if len(state) <= MAX_QUERY_STRING:
        return
    part = max(parts, key=lambda part: len(urlencode(part.params)))
    form.add_error(
        part.field,
        f"{part.subject} the chart’s address {len(state):,} characters long (at most {MAX_QUERY_STRING:,}): "
        f"{part.advice}",
    )


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.astimezone(UTC) if timezone.is_aware(value) else value.replace(tzinfo=UTC)


def clean_custom_range(form: forms.Form, data: dict) -> None:
    """Check a custom range's ends (UTC) in the form's cleaned data, as every explorer form reads them."""
    if data.get("range") != "custom":
        return
    start, end = _utc(data.get("start")), _utc(data.get("end"))
    if start is None:
        form.add_error("start", "A custom range needs a start.")
    if end is None:
        form.add_error("end", "A custom range needs an end.")
    if start and end:
        if end <= start:
            raise forms.ValidationError("“To” must be after “From”.")
        if start < EARLIEST:
            form.add_error("start", "Events before 2000-01-01 are never stored.")
        if end - start > MAX_SPAN:
            raise forms.ValidationError("A custom range may span at most two years.")
    data["start"], data["end"] = start, end


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
        from .analyses import AnalysisForm, analysis_of  # analyses builds on this module
        from .analyses import query_string as analysis_query_string

        if analysis_of(QueryDict(value)) != "trends":
            analysis = AnalysisForm(QueryDict(value))
            if not analysis.is_valid():
                raise forms.ValidationError(
                    "This chart has invalid settings; fix them in the explorer first."
                )
            return analysis_query_string(analysis.settings())
        chart = ExplorerForm(QueryDict(value))
        if not chart.is_valid():
            raise forms.ValidationError("This chart has invalid settings; fix them in the explorer first.")
        return query_string(chart.settings())

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
