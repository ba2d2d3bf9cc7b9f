"""The trace search form: what support types, turned into a TraceQuery."""

from datetime import UTC, datetime, timedelta

from django import forms
from django.utils import timezone

from apps.common.timebounds import BoundedDateTimeField

from .search.base import LEVEL_RANK, MAX_RESULT_WINDOW, TraceQuery

QUICK_RANGES = {
    "15m": ("last 15 minutes", timedelta(minutes=15)),
    "1h": ("last hour", timedelta(hours=1)),
    "24h": ("last 24 hours", timedelta(hours=24)),
    "7d": ("last 7 days", timedelta(days=7)),
    "30d": ("last 30 days", timedelta(days=30)),
    "all": ("all time", None),
    "custom": ("custom range", None),
}
DEFAULT_RANGE = "7d"
PER_PAGE = 50
# Message text searched at once: the detailed form's field and the paste box, which searches it as text.
TEXT_MAX_LENGTH = 500
# The deepest page both search backends serve; older requests are reached by narrowing the range (the
# last page links the rest: the same search, ending where it stopped).
MAX_PAGE = MAX_RESULT_WINDOW // PER_PAGE


class TraceSearchForm(forms.Form):
    correlation_id = forms.CharField(required=False, max_length=200, label="Correlation ID")
    user_id = forms.CharField(required=False, max_length=200, label="User ID")
    text = forms.CharField(required=False, max_length=TEXT_MAX_LENGTH, label="Message text")
    service = forms.CharField(required=False, max_length=100)
    event = forms.CharField(required=False, max_length=200)
    level = forms.ChoiceField(
        required=False, choices=[("", "any level")] + [(lv, lv) for lv in LEVEL_RANK if lv]
    )
    range = forms.ChoiceField(required=False, choices=[(k, v[0]) for k, v in QUICK_RANGES.items()])
    start = BoundedDateTimeField(
        required=False, label="From (UTC)", widget=forms.DateTimeInput(attrs={"type": "datetime-local"})
    )
    end = BoundedDateTimeField(
        required=False, label="To (UTC)", widget=forms.DateTimeInput(attrs={"type": "datetime-local"})
    )
    # Pages end where both search backends stop paging (a deeper page was a 500 on Elasticsearch).
    page = forms.IntegerField(
        required=False,
        min_value=1,
        max_value=MAX_PAGE,
        error_messages={
            "max_value": "Pages stop at %(limit_value)s: for older requests, follow “older” on page "
            "%(limit_value)s, or narrow the time range (From and To)."
        },
    )

    def clean(self) -> dict:
        data = super().clean()
        for name in ("correlation_id", "user_id", "service", "event", "text"):
            data[name] = (data.get(name) or "").strip()
        if (
            data.get("range") == "custom"
            and data.get("start")
            and data.get("end")
            and data["end"] <= data["start"]
        ):
            raise forms.ValidationError("“To” must be after “From”.")
        return data

    def time_bounds(self, now: datetime | None = None) -> tuple[datetime | None, datetime | None]:
        data = self.cleaned_data
        now = now or timezone.now()
        chosen = data.get("range") or DEFAULT_RANGE
        if chosen == "custom":
            return _utc(data.get("start")), _utc(data.get("end"))
        span = QUICK_RANGES[chosen][1]
        return (now - span if span else None), None

    def to_query(self) -> TraceQuery:
        data = self.cleaned_data
        start, end = self.time_bounds()
        return TraceQuery(
            start=start,
            end=end,
            correlation_id=data["correlation_id"],
            user_id=data["user_id"],
            service=data["service"],
            level=data.get("level") or "",
            event=data["event"],
            text=data["text"],
        )

    def has_criteria(self) -> bool:
        data = self.cleaned_data
        return any(data.get(n) for n in ("correlation_id", "user_id", "service", "event", "text", "level"))


class PasteBoxForm(forms.Form):
    """The one paste box: `q` is whatever support pasted (trimmed); the rest of the query string is the
    detailed form's, which the text search uses for its range and page."""

    q = forms.CharField(
        required=False,
        max_length=TEXT_MAX_LENGTH,
        label="Find",
        error_messages={
            "max_length": "Too long to look up: it has %(show_value)d characters, at most %(limit_value)d "
            "are searched."
        },
    )


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if timezone.is_aware(value) else value.replace(tzinfo=UTC)
