"""figures.py: series in, plotly figure out — a trace per series, the chart type asked for, names as text."""

from datetime import UTC, datetime, timedelta

import plotly.graph_objects as go
import pytest

from apps.dashboards import figures
from apps.metrics.selectors import Series

T0 = datetime(2026, 11, 20, tzinfo=UTC)


def series(name: str, values: list[float | None], kind: str = "value") -> Series:
    return Series(name, [(T0 + timedelta(hours=i), v) for i, v in enumerate(values)], kind=kind)


def test_one_line_trace_per_series_with_utc_times_and_gaps_kept():
    fig = figures.series_figure(
        [series("free", [1, 2, 3]), series("pro", [None, 5.5, None])],
        chart_type="line",
        measure_label="events",
    )

    assert isinstance(fig, go.Figure)
    assert [t.type for t in fig.data] == ["scatter", "scatter"]
    assert [t.name for t in fig.data] == ["free", "pro"]
    assert list(fig.data[0].x) == ["2026-11-20 00:00:00", "2026-11-20 01:00:00", "2026-11-20 02:00:00"]
    assert list(fig.data[1].y) == [None, 5.5, None]  # an average's empty bucket stays a gap
    assert fig.data[1].connectgaps is False
    assert fig.layout.yaxis.title.text == "events"
    assert fig.layout.xaxis.title.text == "time (UTC)"
    assert fig.data[0].line.color != fig.data[1].line.color


def test_bars_stack_only_when_asked():
    rows = [series("a", [1, 2]), series("b", [3, 4])]

    stacked = figures.series_figure(rows, chart_type="bar", measure_label="events", stack=True)
    grouped = figures.series_figure(rows, chart_type="bar", measure_label="unique users", stack=False)

    assert [t.type for t in stacked.data] == ["bar", "bar"]
    assert stacked.layout.barmode == "stack"
    assert grouped.layout.barmode == "group"


def test_areas_pile_up_for_additive_measures_and_fill_alone_otherwise():
    rows = [series("a", [1, 2]), series("b", [3, 4])]

    piled = figures.series_figure(rows, chart_type="area", measure_label="events", stack=True)
    alone = figures.series_figure(rows, chart_type="area", measure_label="average ms", stack=False)

    assert {t.stackgroup for t in piled.data} == {"total"}
    assert {t.stackgroup for t in alone.data} == {None}
    assert {t.fill for t in alone.data} == {"tozeroy"}


@pytest.mark.parametrize("chart_type", ["line", "bar", "area"])
def test_a_previous_period_is_a_dashed_line_in_its_series_colour(chart_type):
    rows = [
        series("free", [1, 2]),
        series("pro", [1, 1]),
        series("free", [0, 1], "previous"),
        series("pro", [1, 0], "previous"),
    ]

    fig = figures.series_figure(rows, chart_type=chart_type, measure_label="events", stack=True)

    assert [t.name for t in fig.data] == ["free", "free (previous period)", "pro", "pro (previous period)"]
    previous = fig.data[1]
    assert previous.type == "scatter"
    assert previous.line.dash == "dash"
    assert previous.stackgroup is None
    first_color = fig.data[0].marker.color if chart_type == "bar" else fig.data[0].line.color
    assert previous.line.color == first_color


def test_the_rest_is_grey_and_names_are_shown_as_text_not_markup():
    hostile = '<a href="http://evil.example/">click</a> & <b>bold</b>'
    fig = figures.series_figure(
        [series(hostile, [1]), series("other", [3]), series("other", [2], "rest")],
        chart_type="line",
        measure_label="events",
    )

    assert (
        fig.data[0].name
        == '&lt;a href="http://evil.example/"&gt;click&lt;/a&gt; &amp; &lt;b&gt;bold&lt;/b&gt;'
    )
    # A breakdown value that happens to be "other" is a value like any other; only the rest is grey.
    assert fig.data[1].line.color != figures.OTHER_COLOR
    assert fig.data[2].line.color == figures.OTHER_COLOR


def test_no_points_says_so():
    fig = figures.series_figure([], chart_type="line", measure_label="events")

    assert len(fig.data) == 0
    assert fig.layout.annotations[0].text == "No data in this range"


def test_an_unknown_chart_type_is_refused():
    with pytest.raises(ValueError):
        figures.series_figure([series("a", [1])], chart_type="pie", measure_label="events")


def test_previous_periods_follow_their_series():
    rows = [
        series("a", [1]),
        series("b", [1]),
        series("a", [2], "previous"),
        series("b", [3], "previous"),
    ]

    assert [(s.name, s.kind) for s in figures.paired_order(rows)] == [
        ("a", "value"),
        ("a", "previous"),
        ("b", "value"),
        ("b", "previous"),
    ]


def test_totals_are_horizontal_bars_largest_on_top():
    fig = figures.totals_bar_figure([("tiles", 30), ("search", 20), ("<i>x</i>", 1)], measure_label="events")

    (bars,) = fig.data
    assert bars.type == "bar" and bars.orientation == "h"
    assert list(bars.y) == ["&lt;i&gt;x&lt;/i&gt;", "search", "tiles"]  # plotly draws the last on top
    assert list(bars.x) == [1, 20, 30]


def test_the_figure_is_plain_json_for_the_page():
    import json

    fig = figures.series_figure([series("a", [1, None])], chart_type="bar", measure_label="events")

    payload = json.loads(json.dumps(fig.to_plotly_json()))
    assert payload["data"][0]["type"] == "bar"
    assert payload["layout"]["xaxis"]["type"] == "date"
