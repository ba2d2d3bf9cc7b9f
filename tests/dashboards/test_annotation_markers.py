"""Annotations drawn on every chart that covers their time: the figure function, and the pages."""

import json
import re
from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from apps.annotations.models import Annotation
from apps.annotations.selectors import MAX_ANNOTATIONS
from apps.annotations.services import create_annotation
from apps.dashboards import figures
from apps.dashboards.services import chart_add, dashboard_create
from apps.metrics.selectors import Series

T = datetime(2026, 11, 30, 0, 0, tzinfo=UTC)


def _trend() -> dict:
    points = [(T + timedelta(days=d), float(d)) for d in range(7)]
    return figures.series_figure(
        [Series(name="total", kind="total", points=points)], chart_type="line", measure_label="events"
    ).to_plotly_json()


def _markers(figure: dict) -> list[dict]:
    return [trace for trace in figure["data"] if trace.get("yaxis") == figures.ANNOTATION_AXIS]


def test_an_annotation_inside_the_range_is_a_line_and_a_marker_with_its_text():
    figure = _trend()
    inside = Annotation(service="checkout", text="deploy <b>v2</b>", timestamp=T + timedelta(days=2, hours=3))
    outside = Annotation(service="checkout", text="old deploy", timestamp=T - timedelta(days=1))

    figures.add_annotation_markers(figure, [outside, inside], start=T, end=T + timedelta(days=7))

    (marker,) = _markers(figure)
    assert list(marker["x"]) == ["2026-12-02 03:00:00"]
    assert list(marker["text"]) == ["checkout: deploy &lt;b&gt;v2&lt;/b&gt;"]  # plotly shows it as text
    lines = [s for s in figure["layout"]["shapes"] if s["type"] == "line"]
    assert [(s["x0"], s["x1"], s["yref"]) for s in lines] == [
        ("2026-12-02 03:00:00", "2026-12-02 03:00:00", "paper")
    ]
    assert len(figure["data"]) == 2  # the series, then the markers


def test_a_figure_without_annotations_in_its_range_is_unchanged():
    figure = _trend()
    before = json.dumps(figure, sort_keys=True, default=str)
    far = Annotation(service="checkout", text="deploy", timestamp=T + timedelta(days=30))

    figures.add_annotation_markers(figure, [far], start=T, end=T + timedelta(days=7))

    assert json.dumps(figure, sort_keys=True, default=str) == before


def _page_figures(html: str) -> list[dict]:
    """Return every plotly figure a page embeds with json_script."""
    scripts = re.findall(r'<script[^>]*type="application/json"[^>]*>(.*?)</script>', html, re.S)
    return [json.loads(s) for s in scripts]


def _annotation_texts(html: str) -> list[list[str]]:
    return [
        [
            t
            for trace in fig.get("data", [])
            if trace.get("yaxis") == figures.ANNOTATION_AXIS
            for t in trace["text"]
        ]
        for fig in _page_figures(html)
        if isinstance(fig, dict) and "data" in fig
    ]


@pytest.fixture
def annotated_traffic(aggregate_events):
    now = timezone.now()
    aggregate_events(
        [
            {
                "service": "checkout",
                "event": "search_made",
                "timestamp": (now - timedelta(days=d)).isoformat(),
            }
            for d in (0, 1, 3)
        ]
    )
    create_annotation(service="checkout", text="deploy v2.14", timestamp=now - timedelta(days=2))
    create_annotation(service="checkout", text="deploy v1.0", timestamp=now - timedelta(days=60))
    return now


def test_the_explorer_draws_the_annotations_of_its_range(product_client, annotated_traffic):
    response = product_client.get("/dashboards/", {"event": "search_made", "interval": "day", "range": "7d"})

    assert response.status_code == 200
    assert _annotation_texts(response.content.decode()) == [["checkout: deploy v2.14"]]


def test_the_explorer_draws_no_annotation_outside_its_range(product_client, annotated_traffic):
    response = product_client.get(
        "/dashboards/", {"event": "search_made", "interval": "hour", "range": "24h"}
    )

    assert response.status_code == 200
    assert _annotation_texts(response.content.decode()) == [[]]


def test_the_overview_draws_annotations_on_its_time_series_charts(product_client, annotated_traffic):
    response = product_client.get("/")

    texts = _annotation_texts(response.content.decode())
    # Events per day and daily active users cover 30 days; the bar of volume by service and the last
    # hour's ingest rate do not cover the deploy.
    assert texts.count(["checkout: deploy v2.14"]) == 2
    assert all(t in ([], ["checkout: deploy v2.14"]) for t in texts)


def test_each_chart_of_a_saved_dashboard_reads_annotations_once(product_client, annotated_traffic):
    owner = get_user_model().objects.get(username="product-person")
    dashboard = dashboard_create(name="Checkout", owner=owner)
    for title in ("one", "two", "three"):
        chart_add(dashboard=dashboard, title=title, query_string="event=search_made&interval=day&range=7d")

    # The page reads no chart; its script reads each on its own URL.
    assert product_client.get(f"/dashboards/d/{dashboard.slug}/").status_code == 200
    for chart in dashboard.charts.all():
        with CaptureQueriesContext(connection) as queries:
            response = product_client.get(_chart_url(chart), {"part": "figure"})

        assert response.status_code == 200
        assert _annotation_texts(response.content.decode()) == [["checkout: deploy v2.14"]]
        annotation_reads = [q for q in queries.captured_queries if "annotations_annotation" in q["sql"]]
        assert len(annotation_reads) == 1


def _chart_url(chart) -> str:
    return f"/dashboards/d/{chart.dashboard.slug}/charts/{chart.pk}/"


@pytest.fixture
def busy_month(annotated_traffic):
    """More annotations 20 days back than a chart shows, and one deploy ten minutes ago."""
    now = annotated_traffic
    Annotation.objects.bulk_create(
        Annotation(service="ci", text=f"nightly {n}", timestamp=now - timedelta(days=20, minutes=n))
        for n in range(MAX_ANNOTATIONS + 10)
    )
    create_annotation(service="checkout", text="deploy v2.15", timestamp=now - timedelta(minutes=10))
    return now


def test_a_short_chart_keeps_its_markers_beside_a_long_chart_that_has_too_many(product_client, busy_month):
    owner = get_user_model().objects.get(username="product-person")
    dashboard = dashboard_create(name="Checkout", owner=owner)
    chart_add(dashboard=dashboard, title="month", query_string="event=search_made&interval=day&range=30d")
    chart_add(dashboard=dashboard, title="day", query_string="event=search_made&interval=hour&range=24h")

    texts = [
        _annotation_texts(product_client.get(_chart_url(c), {"part": "figure"}).content.decode())[0]
        for c in dashboard.charts.all()
    ]

    assert len(texts[0]) == MAX_ANNOTATIONS  # the month's chart shows as many as a chart shows
    assert texts[1] == ["checkout: deploy v2.15"]


def test_the_last_hour_on_the_overview_keeps_its_marker_in_a_busy_month(product_client, busy_month):
    texts = _annotation_texts(product_client.get("/").content.decode())

    assert ["checkout: deploy v2.15"] in texts  # the ingest rate of the last hour
