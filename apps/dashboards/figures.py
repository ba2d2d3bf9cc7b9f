"""Plotly figures from series: rows in, `plotly.graph_objects.Figure` out. No queries, no request, no clock.

The page embeds `figure.to_plotly_json()` with `json_script`, and static/js/dashboards.js draws it.
Plotly renders trace names as a small HTML dialect (links, <b>, <br>), and breakdown values come from what
services sent, so every name is entity-escaped here: plotly then shows it as plain text.
"""

import html
from collections.abc import Sequence
from datetime import UTC, datetime

import plotly.graph_objects as go

from apps.metrics.selectors import Series

CHART_TYPES = ("line", "bar", "area")
# Colour-blind-friendly (Okabe–Ito based), the portal's blue first; "other" is always grey.
PALETTE = (
    "#1f5fbf",
    "#e69f00",
    "#009e73",
    "#cc79a7",
    "#56b4e9",
    "#d55e00",
    "#7a3e9d",
    "#b8a000",
    "#0b7a75",
    "#8c564b",
)
OTHER_COLOR = "#9aa3b2"
FONT = "system-ui, -apple-system, Segoe UI, Roboto, sans-serif"
GRID = "#e3e7ee"


def plotly_text(value: str) -> str:
    """Return `value` escaped so plotly shows it literally (its labels understand a little HTML)."""
    return html.escape(value, quote=False)


def _x(moment: datetime) -> str:
    # Plotly has no time zones: give it UTC wall-clock time, and say "UTC" on the axis.
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def series_label(series: Series) -> str:
    """Return what a legend or a table column calls a series (display only: nothing reads it back)."""
    return f"{series.name} (previous period)" if series.kind == "previous" else series.name


def paired_order(series: Sequence[Series]) -> list[Series]:
    """Return the series with each previous-period series right after its current one.

    series_for lists the previous-period series after the current ones, in the same order.
    """
    current = [s for s in series if s.kind != "previous"]
    previous = [s for s in series if s.kind == "previous"]
    ordered: list[Series] = []
    for position, s in enumerate(current):
        ordered.append(s)
        if position < len(previous):
            ordered.append(previous[position])
    return ordered + previous[len(current) :]


def _colors(series: Sequence[Series]) -> list[str]:
    """Return each series' colour (in the order of `paired_order`): the rest grey, a previous period in
    its current series' colour."""
    colors: list[str] = []
    next_color = 0
    for s in series:
        if s.kind == "previous" and colors:
            colors.append(colors[-1])
        elif s.kind == "rest":
            colors.append(OTHER_COLOR)
        else:
            colors.append(PALETTE[next_color % len(PALETTE)])
            next_color += 1
    return colors


def base_layout(*, y_title: str, height: int = 420, show_legend: bool = True) -> dict:
    """Return the portal's chart layout: quiet grid, legend under the plot, UTC time axis."""
    return {
        "template": "none",
        "height": height,
        "margin": {"l": 64, "r": 16, "t": 36, "b": 8},
        "font": {"family": FONT, "size": 13, "color": "#1d2330"},
        "paper_bgcolor": "#ffffff",
        "plot_bgcolor": "#ffffff",
        "hovermode": "x unified",
        "showlegend": show_legend,
        # Under the chart, so the modebar (top right, on hover) never covers an entry.
        "legend": {
            "orientation": "h",
            "yref": "container",
            "yanchor": "bottom",
            "y": 0,
            "x": 0,
            "traceorder": "normal",
            "font": {"size": 12},
        },
        "xaxis": {
            "type": "date",
            "title": {"text": "time (UTC)", "font": {"size": 12, "color": "#5b6475"}},
            "gridcolor": GRID,
            "linecolor": "#c5cbd6",
            "automargin": True,
        },
        "yaxis": {
            "title": {"text": plotly_text(y_title), "font": {"size": 12, "color": "#5b6475"}},
            "gridcolor": GRID,
            "zerolinecolor": "#c5cbd6",
            "rangemode": "tozero",
            "separatethousands": True,
            "automargin": True,
        },
    }


def series_figure(
    series: Sequence[Series], *, chart_type: str, measure_label: str, stack: bool = False, height: int = 420
) -> go.Figure:
    """Return a time-series figure: one trace per series, drawn as lines, bars or areas.

    `stack` piles bars and areas (right for counts and sums, wrong for unique users and averages).
    A previous-period series (in `paired_order`, after its current one) is drawn as a dashed line in its
    current series' colour, whatever the chart type. Missing values (None) stay gaps.
    """
    if chart_type not in CHART_TYPES:
        raise ValueError(f"chart_type must be one of {CHART_TYPES}, not {chart_type!r}")
    series = paired_order(series)
    colors = _colors(series)
    current = [s for s in series if s.kind != "previous"]
    longest = max((len(s.points) for s in series), default=0)
    figure = go.Figure(layout=base_layout(y_title=measure_label, height=height, show_legend=len(series) > 1))
    if chart_type == "bar":
        figure.update_layout(barmode="stack" if stack else "group", bargap=0.15)
    for s, color in zip(series, colors, strict=True):
        x = [_x(t) for t, _ in s.points]
        y = [v for _, v in s.points]
        name = plotly_text(series_label(s))
        hover = "%{y:,.4~f}"
        if s.kind == "previous":
            figure.add_trace(
                go.Scatter(
                    x=x,
                    y=y,
                    name=name,
                    mode="lines",
                    line={"color": color, "dash": "dash", "width": 1.5},
                    opacity=0.75,
                    connectgaps=False,
                    hovertemplate=hover,
                )
            )
        elif chart_type == "bar":
            figure.add_trace(go.Bar(x=x, y=y, name=name, marker={"color": color}, hovertemplate=hover))
        elif chart_type == "area":
            piled = stack and len(current) > 1
            figure.add_trace(
                go.Scatter(
                    x=x,
                    y=y,
                    name=name,
                    mode="lines",
                    line={"color": color, "width": 1.5},
                    stackgroup="total" if piled else None,
                    fill=None if piled else "tozeroy",
                    connectgaps=False,
                    hovertemplate=hover,
                )
            )
        else:
            figure.add_trace(
                go.Scatter(
                    x=x,
                    y=y,
                    name=name,
                    mode="lines+markers" if longest <= 60 else "lines",
                    line={"color": color, "width": 2},
                    marker={"size": 5},
                    connectgaps=False,
                    hovertemplate=hover,
                )
            )
    values = [v for s in series for _, v in s.points if v is not None]
    if values and all(float(v).is_integer() for v in values) and max(values) <= 6:
        figure.update_yaxes(dtick=1)  # small counts: no "0.5 events" ticks
    if not any(s.points for s in series):
        figure.add_annotation(
            text="No data in this range",
            showarrow=False,
            xref="paper",
            yref="paper",
            x=0.5,
            y=0.5,
            font={"size": 15, "color": "#5b6475"},
        )
    return figure


def totals_bar_figure(
    totals: Sequence[tuple[str, float]],
    *,
    measure_label: str,
    height: int = 320,
    rest: tuple[str, float] | None = None,
) -> go.Figure:
    """Return a horizontal bar per name (largest on top), e.g. events per service; `rest`, a label and a
    total, is drawn last in grey (the names left out, as one bar)."""
    bars = [*totals, *([rest] if rest else [])]
    names = [plotly_text(name) for name, _ in bars][::-1]
    values = [value for _, value in bars][::-1]
    colors = ([OTHER_COLOR] if rest else []) + [PALETTE[0]] * len(totals)
    layout = base_layout(y_title="", height=max(height, 40 + 28 * len(bars)), show_legend=False)
    layout["hovermode"] = "closest"
    layout["xaxis"] = {
        "title": {"text": plotly_text(measure_label), "font": {"size": 12, "color": "#5b6475"}},
        "gridcolor": GRID,
        "separatethousands": True,
        "rangemode": "tozero",
        "automargin": True,
    }
    layout["yaxis"] = {"type": "category", "automargin": True}
    layout["bargap"] = 0.35
    figure = go.Figure(layout=layout)
    figure.add_trace(
        go.Bar(
            x=values,
            y=names,
            orientation="h",
            marker={"color": colors},
            hovertemplate="%{y}: %{x:,}<extra></extra>",
        )
    )
    if not totals:
        figure.add_annotation(
            text="No data in this range", showarrow=False, xref="paper", yref="paper", x=0.5, y=0.5
        )
    return figure


ANNOTATION_COLOR = "#7a3e9d"
# An axis of its own for the markers; a high number leaves y2… free for charts that need a second scale.
ANNOTATION_AXIS = "y9"


def add_annotation_markers(figure: dict, annotations: Sequence, *, start: datetime, end: datetime) -> None:
    """Draw each annotation with start <= timestamp <= end on a time-series figure (plotly JSON, changed
    in place): a dotted vertical line, and a marker at the top whose hover names the service and the text.

    `annotations` are rows with `timestamp`, `service` and `text` (apps.annotations); the text came from a
    service, so it is escaped like every name here.
    """
    inside = [a for a in annotations if start <= a.timestamp <= end]
    if not inside:
        return
    layout = figure.setdefault("layout", {})
    x = [_x(a.timestamp) for a in inside]
    layout["shapes"] = [
        *layout.get("shapes", ()),
        *(
            {
                "type": "line",
                "xref": "x",
                "yref": "paper",
                "x0": moment,
                "x1": moment,
                "y0": 0,
                "y1": 1,
                "line": {"color": ANNOTATION_COLOR, "width": 1, "dash": "dot"},
                "layer": "below",
            }
            for moment in x
        ),
    ]
    # A hidden axis from 0 to 1 puts the markers along the top whatever the data's scale.
    layout["yaxis" + ANNOTATION_AXIS[1:]] = {
        "overlaying": "y",
        "range": [0, 1],
        "visible": False,
        "fixedrange": True,
    }
    marker = go.Scatter(
        x=x,
        y=[0.98] * len(inside),
        yaxis=ANNOTATION_AXIS,
        name="annotations",
        mode="markers",
        marker={"symbol": "triangle-down", "size": 10, "color": ANNOTATION_COLOR},
        text=[plotly_text(f"{a.service}: {a.text}") for a in inside],
        hovertemplate="%{text}<extra>annotation</extra>",
        showlegend=False,
    ).to_plotly_json()
    figure.setdefault("data", []).append(marker)
