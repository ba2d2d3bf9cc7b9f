"""The explorer form and the chart spec: defaults, the canonical URL state, interval coarsening, buckets."""

from datetime import UTC, datetime, timedelta

import pytest
from django.http import QueryDict

from apps.dashboards.chartspec import COARSEN_ABOVE_BUCKETS, chart_spec, query_string
from apps.dashboards.forms import ExplorerForm
from apps.metrics import buckets

NOW = datetime(2026, 11, 26, 15, 37, 12, tzinfo=UTC)  # a Thursday


def settings_for(query: str):
    form = ExplorerForm(QueryDict(query))
    assert form.is_valid(), form.errors
    return form.settings()


def spec_for(query: str, now: datetime = NOW):
    return chart_spec(settings_for(query), now=now)


def test_left_out_settings_take_the_defaults():
    spec = spec_for("event=search_made")

    assert spec.query.measure == "count"
    assert spec.query.interval == "hour"
    assert spec.query.start == datetime(2026, 11, 19, 15, tzinfo=UTC)  # 7 days back, on an hour boundary
    assert spec.query.end == NOW
    assert spec.chart_type == "line"
    assert spec.additive


def test_the_query_string_round_trips_and_is_canonical():
    query = (
        "chart=area&compare=on&filter=plan%3Dpro&filter=&breakdown=prop%3Aplan&top=10&event=b&event=a"
        "&range=custom&start=2026-11-01T00%3A00&end=2026-11-08T00%3A00&interval=day&measure=avg%3Aduration_ms"
    )
    first = settings_for(query)
    canonical = query_string(first)

    assert canonical == (
        "event=b&event=a&measure=avg%3Aduration_ms&interval=day&range=custom&start=2026-11-01T00%3A00"
        "&end=2026-11-08T00%3A00&breakdown=prop%3Aplan&top=10&filter=plan%3Dpro&compare=on&chart=area"
    )
    assert query_string(settings_for(canonical)) == canonical
    spec = chart_spec(first, now=NOW)
    assert spec.query.filters == (("plan", "pro"),)
    assert spec.query.compare and spec.query.top_n == 10
    assert not spec.additive  # averages never stack
    assert spec.title == "Average duration_ms of b, a by plan"
    assert spec.subtitle == (
        "2026-11-01 00:00 to 2026-11-08 00:00 UTC · by day · where plan = pro · "
        "compared with the previous period"
    )


@pytest.mark.parametrize(
    ("range_", "interval", "shown"),
    [
        ("1h", "minute", "minute"),
        ("24h", "minute", "minute"),
        ("7d", "minute", "hour"),
        ("90d", "minute", "hour"),
    ],
)
def test_too_many_buckets_coarsen_the_interval_with_a_note(range_, interval, shown):
    spec = spec_for(f"event=a&range={range_}&interval={interval}")

    assert spec.query.interval == shown
    assert bool(spec.notes) == (shown != interval)
    step = {"minute": timedelta(minutes=1), "hour": timedelta(hours=1)}[shown]
    assert (spec.query.end - spec.query.start) / step <= COARSEN_ABOVE_BUCKETS


@pytest.mark.parametrize(
    ("interval", "expected"),
    [
        ("minute", datetime(2026, 11, 26, 15, 37, tzinfo=UTC)),
        ("hour", datetime(2026, 11, 26, 15, tzinfo=UTC)),
        ("day", datetime(2026, 11, 26, tzinfo=UTC)),
        ("week", datetime(2026, 11, 23, tzinfo=UTC)),  # Monday
    ],
)
def test_bucket_floor(interval, expected):
    assert buckets.floor(NOW, interval) == expected


def test_several_events_without_a_breakdown_say_one_line_per_event():
    spec = spec_for("event=a&event=b&range=24h")

    assert spec.subtitle == "last 24 hours · by hour · one line per event"


def test_a_custom_range_in_the_url_is_utc():
    spec = spec_for("event=a&range=custom&start=2026-11-01T10:30&end=2026-11-02T10:30&interval=hour")

    assert spec.query.start == datetime(2026, 11, 1, 10, tzinfo=UTC)
    assert spec.query.end == datetime(2026, 11, 2, 10, 30, tzinfo=UTC)
