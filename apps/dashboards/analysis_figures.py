"""Plotly figures of the product analyses: a funnel (one trace per breakdown group) and a retention
heatmap. Results in, `go.Figure` out; no queries. Names from services are escaped as in `figures`."""

import plotly.graph_objects as go

from apps.metrics.funnel import Funnel, FunnelStep
from apps.metrics.retention import Retention

from .figures import FONT, PALETTE, plotly_text


def _layout(height: int, *, legend: bool) -> dict:
    return {
        "template": "none",
        "height": height,
        "margin": {"l": 16, "r": 16, "t": 24, "b": 8},
        "font": {"family": FONT, "size": 13, "color": "#1d2330"},
        "paper_bgcolor": "#ffffff",
        "plot_bgcolor": "#ffffff",
        "showlegend": legend,
        "legend": {"orientation": "h", "yref": "container", "yanchor": "bottom", "y": 0, "x": 0},
    }


def duration_text(seconds: float | None) -> str:
    """Return a median wait for reading: "42 s", "3 min 20 s", "2 h 5 min", "1 d 4 h"; "—" for none."""
    if seconds is None:
        return "—"
    whole = round(seconds)
    if whole < 60:
        return f"{seconds:.3g} s" if seconds < 10 else f"{whole} s"
    for big, big_size, small, small_size in (
        ("d", 86400, "h", 3600),
        ("h", 3600, "min", 60),
        ("min", 60, "s", 1),
    ):
        if whole >= big_size:
            rest = (whole % big_size) // small_size
            return f"{whole // big_size} {big}" + (f" {rest} {small}" if rest else "")
    return f"{whole} s"


def _funnel_trace(
    steps: list[FunnelStep], *, name: str, color: str, links: list[str] | None = None
) -> go.Funnel:
    labels = [plotly_text(f"{n}. {step.event}") for n, step in enumerate(steps, start=1)]
    conversion = ["—" if s.conversion is None else f"{100 * s.conversion:.1f} % of step 1" for s in steps]
    previous = [
        ""
        if n == 0 or s.conversion_from_previous is None
        else f"{100 * s.conversion_from_previous:.1f} % of the previous step"
        for n, s in enumerate(steps)
    ]
    waits = [
        "" if n == 0 else f"median {duration_text(s.median_seconds)} after the previous step"
        for n, s in enumerate(steps)
    ]
    return go.Funnel(
        name=plotly_text(name),
        y=labels,
        x=[s.count for s in steps],
        text=[f"{s.count:,} · {c}" for s, c in zip(steps, conversion, strict=True)],
        textinfo="text",
        # The last item, when there, is the step's users page (static/js/dashboards.js follows it on a click).
        customdata=[
            [*texts, *([links[n]] if links else [])]
            for n, texts in enumerate(zip(conversion, previous, waits, strict=True))
        ],
        hovertemplate="%{y}<br>%{x:,} users<br>%{customdata[0]}<br>%{customdata[1]}<br>%{customdata[2]}"
        "<extra>%{fullData.name}</extra>",
        marker={"color": color},
        connector={"line": {"color": "#c5cbd6", "width": 1}},
    )


def funnel_figure(funnel: Funnel, *, height: int = 420, links: list[list[str]] | None = None) -> go.Figure:
    """Return the funnel: one trace for everyone, or one per breakdown group (the overall in the table);
    `links`: each step's users page, for everyone then for each group in the funnel's order (two groups
    may share a name: the absent group and the text "(none)")."""
    links = links or []
    groups = funnel.groups
    figure = go.Figure(layout=_layout(max(height, 80 * len(funnel.steps)), legend=bool(groups)))
    figure.update_layout(yaxis={"automargin": True}, hovermode="closest")
    if groups:
        for index, group in enumerate(groups):
            figure.add_trace(
                _funnel_trace(
                    group.steps,
                    name=group.name,
                    color=PALETTE[index % len(PALETTE)],
                    links=links[index + 1] if index + 1 < len(links) else None,
                )
            )
    else:
        figure.add_trace(
            _funnel_trace(funnel.steps, name="All users", color=PALETTE[0], links=links[0] if links else None)
        )
    if not funnel.steps or funnel.steps[0].count == 0:
        figure.add_annotation(
            text="Nobody did step 1 in this range", showarrow=False, xref="paper", yref="paper", x=0.5, y=0.5
        )
    return figure


def retention_figure(retention: Retention, *, height: int = 420) -> go.Figure:
    """Return the cohorts as a heatmap: rows are cohorts (oldest on top), columns intervals after, colour
    the percentage who came back, the count and percentage written in each cell."""
    cohorts = retention.cohorts
    width = len(cohorts[0].values) if cohorts else 0
    unit = retention.interval.capitalize()
    x = [f"{unit} {k}" for k in range(width)]
    y = [f"{c.start:%Y-%m-%d} ({c.size:,})" for c in cohorts]
    z = [[*c.percentages, *([None] * (width - len(c.values)))] for c in cohorts]
    text = [
        [
            *(
                f"{v:,}<br>{p:.0f} %" if p is not None else ""
                for v, p in zip(c.values, c.percentages, strict=True)
            ),
            *([""] * (width - len(c.values))),
        ]
        for c in cohorts
    ]
    layout = _layout(max(height, 60 + 28 * len(cohorts)), legend=False)
    layout["margin"]["l"] = 8
    figure = go.Figure(layout=layout)
    figure.add_trace(
        go.Heatmap(
            x=x,
            y=y,
            z=z,
            text=text,
            texttemplate="%{text}",
            zmin=0,
            zmax=100,
            colorscale="Blues",
            colorbar={"title": {"text": "% back"}},
            hovertemplate="cohort %{y}<br>%{x}: %{z:.1f} % back<extra></extra>",
            xgap=2,
            ygap=2,
        )
    )
    figure.update_yaxes(autorange="reversed", automargin=True, type="category")
    figure.update_xaxes(side="top", type="category")
    if not any(c.size for c in cohorts):
        figure.add_annotation(
            text="Nobody did the start event in this range",
            showarrow=False,
            xref="paper",
            yref="paper",
            x=0.5,
            y=0.5,
        )
    return figure
