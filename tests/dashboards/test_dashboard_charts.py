"""A saved dashboard answers at once with its charts' cards; each chart is read on its own URL.

The page must not wait for 40 series queries; the chart URL answers the drawing the page used to embed
(figure, numbers, notes, errors, point links) to exactly the people who may read the dashboard.
"""

import json
import re
from datetime import UTC, timedelta
from urllib.parse import urlencode

import pytest
from django.utils import timezone

from apps.accounts.models import AuditEntry
from apps.dashboards import charts
from apps.dashboards.models import Chart, Dashboard

pytestmark = pytest.mark.django_db


def day0():
    return (
        (timezone.now() - timedelta(days=3))
        .astimezone(UTC)
        .replace(hour=0, minute=0, second=0, microsecond=0)
    )


def custom_range(**params) -> str:
    start = day0()
    base = {
        "event": "search_made",
        "range": "custom",
        "start": start.strftime("%Y-%m-%dT%H:%M"),
        "end": (start + timedelta(days=3)).strftime("%Y-%m-%dT%H:%M"),
        "interval": "day",
    }
    base.update(params)
    return urlencode(base, doseq=True)


@pytest.fixture
def usage(aggregate_events):
    """search_made: 2 on day 0 (search-api), 1 on day 1 (tiles)."""
    at = lambda days, hours: (day0() + timedelta(days=days, hours=hours)).isoformat()  # noqa: E731
    return aggregate_events(
        [
            {"service": "search-api", "event": "search_made", "user_id": "u1", "timestamp": at(0, 1)},
            {"service": "search-api", "event": "search_made", "user_id": "u2", "timestamp": at(0, 2)},
            {"service": "tiles", "event": "search_made", "user_id": "u3", "timestamp": at(1, 5)},
        ]
    )


@pytest.fixture
def board(make_person, usage):
    owner = make_person("product", "olga")
    board = Dashboard.objects.create(name="Usage", slug="usage", owner=owner)
    Chart.objects.create(
        dashboard=board, title="By service", position=0, query_string=custom_range(breakdown="service")
    )
    Chart.objects.create(
        dashboard=board, title="Users", position=1, query_string=custom_range(measure="unique_users")
    )
    Chart.objects.create(dashboard=board, title="Total", position=2, query_string=custom_range())
    return board


def chart_of(board: Dashboard, title: str) -> Chart:
    return board.charts.get(title=title)


def chart_url(chart: Chart, **params) -> str:
    url = f"/dashboards/d/{chart.dashboard.slug}/charts/{chart.pk}/"
    return url + "?" + urlencode(params) if params else url


def figures_in(html: str) -> list[dict]:
    blocks = re.findall(r'<script type="application/json">(.*?)</script>', html, flags=re.S)
    return [json.loads(block) for block in blocks]


@pytest.fixture
def no_series_reads(monkeypatch):
    """Fail any series read: the dashboard page must answer without one."""

    def refuse(query):
        raise AssertionError("the dashboard page read a chart's series")

    monkeypatch.setattr(charts, "series_for", refuse)


# --- the page answers at once -----------------------------------------------------------------------------


def test_the_dashboard_page_shows_each_charts_card_without_reading_it(client, board, no_series_reads):
    client.force_login(board.owner)

    response = client.get("/dashboards/d/usage/")

    assert response.status_code == 200
    html = response.content.decode()
    assert figures_in(html) == []  # no chart drawn in the page itself
    assert html.index("By service") < html.index("Users") < html.index("Total")
    when = f"{day0():%Y-%m-%d %H:%M} to {day0() + timedelta(days=3):%Y-%m-%d %H:%M} UTC · by day"
    assert html.count(f'<p class="subtitle">{when}</p>') == 3  # each chart's settings, in words
    assert html.count("Loading this chart…") == 3
    for chart in board.charts.all():
        # The script's address, and the plain link that stands in for it without JavaScript.
        assert f'data-chart-url="{chart_url(chart)}?part=figure"' in html
        assert f'<a href="{chart_url(chart)}"' in html


def test_forty_charts_answer_in_a_fixed_number_of_queries(
    client, board, no_series_reads, django_assert_max_num_queries
):
    Chart.objects.bulk_create(
        Chart(dashboard=board, title=f"More {n}", position=3 + n, query_string=custom_range())
        for n in range(37)
    )
    client.force_login(board.owner)

    with django_assert_max_num_queries(8):
        response = client.get("/dashboards/d/usage/")

    assert response.content.decode().count("Loading this chart…") == 40


def test_the_dashboard_over_another_range_asks_its_charts_for_that_range(client, board, no_series_reads):
    client.force_login(board.owner)

    html = client.get("/dashboards/d/usage/", {"range": "24h"}).content.decode()

    chart = chart_of(board, "Users")
    assert f'data-chart-url="{chart_url(chart)}?part=figure&amp;range=24h"' in html
    assert f'<a href="{chart_url(chart)}?range=24h"' in html
    assert html.count('<p class="subtitle">last 24 hours · by day</p>') == 3


def test_stale_settings_are_said_on_the_page_at_once(client, board, no_series_reads):
    Chart.objects.create(dashboard=board, title="Old", position=9, query_string="event=a&measure=median")
    client.force_login(board.owner)

    html = client.get("/dashboards/d/usage/").content.decode()

    assert "saved settings are no longer valid" in html and "is not a measure" in html
    assert html.count("Loading this chart…") == 3  # the valid ones still load


# --- each chart on its own URL ----------------------------------------------------------------------------


def test_a_chart_url_answers_the_charts_figure_numbers_and_point_links(client, board):
    client.force_login(board.owner)

    response = client.get(chart_url(chart_of(board, "By service"), part="figure"))

    assert response.status_code == 200
    html = response.content.decode()
    assert "<html" not in html and "<nav" not in html  # a fragment for the card
    [figure] = figures_in(html)
    assert [t["name"] for t in figure["data"]] == ["search-api", "tiles"]
    assert 'class="series-table"' in html and "<summary>Numbers</summary>" in html
    assert 'href="/dashboards/users/?event=search_made' in html  # each number opens its users
    assert all(link.startswith("/dashboards/users/?") for t in figure["data"] for link in t["customdata"])


def test_a_chart_url_says_when_its_numbers_are_estimates(client, board):
    client.force_login(board.owner)

    response = client.get(chart_url(chart_of(board, "Users"), part="figure"))

    series = response.context["item"].rendered.series
    assert [s.name for s in series] == ["total"]
    assert (charts.ESTIMATE_NOTE in response.content.decode()) == any(s.estimate for s in series)


def test_a_chart_url_keeps_the_charts_notes(client, board):
    chart = Chart.objects.create(
        dashboard=board, title="Fine", position=5, query_string="event=search_made&range=90d&interval=minute"
    )
    client.force_login(board.owner)

    html = client.get(chart_url(chart, part="figure")).content.decode()

    assert '<p class="notice">Showing hours: minute buckets over this range would be' in html


def test_a_chart_url_over_another_range(client, board):
    client.force_login(board.owner)

    response = client.get(chart_url(chart_of(board, "Total"), part="figure", range="24h"))

    assert response.status_code == 200
    assert response.context["item"].rendered.spec.subtitle == "last 24 hours · by day"


def test_a_chart_url_without_the_script_is_a_page_of_its_own(client, board):
    client.force_login(board.owner)
    chart = chart_of(board, "By service")

    response = client.get(chart_url(chart))

    assert response.status_code == 200
    html = response.content.decode()
    assert "<h1>By service</h1>" in html
    assert len(figures_in(html)) == 1 and 'class="series-table"' in html
    assert f'href="/dashboards/d/usage/#chart-{chart.pk}"' in html  # back to its dashboard
    explorer = response.context["item"].explorer_query.replace("&", "&amp;")
    assert f'href="/dashboards/?{explorer}"' in html
    assert "js/dashboards.js" in html  # the figure is drawn there too


def test_a_stale_chart_url_says_why(client, board):
    chart = Chart.objects.create(
        dashboard=board, title="Old", position=9, query_string="event=a&measure=median"
    )
    client.force_login(board.owner)

    response = client.get(chart_url(chart, part="figure"))

    assert response.status_code == 200
    assert "saved settings are no longer valid" in response.content.decode()


def test_a_chart_the_database_cannot_answer_fails_alone(client, board, monkeypatch):
    from django.db import DatabaseError

    real = charts.series_for

    def failing_for_users(query):
        if query.measure == "unique_users":
            raise DatabaseError("canceling statement due to statement timeout")
        return real(query)

    monkeypatch.setattr(charts, "series_for", failing_for_users)
    client.force_login(board.owner)

    failed = client.get(chart_url(chart_of(board, "Users"), part="figure"))
    drawn = client.get(chart_url(chart_of(board, "Total"), part="figure"))

    assert failed.status_code == 503  # the script offers to retry
    assert "could not be drawn: the database did not answer" in failed.content.decode()
    assert drawn.status_code == 200 and len(figures_in(drawn.content.decode())) == 1


def test_reading_a_chart_reads_annotations_once(client, board, django_assert_max_num_queries):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client.force_login(board.owner)

    with CaptureQueriesContext(connection) as queries:
        assert client.get(chart_url(chart_of(board, "Total"), part="figure")).status_code == 200

    assert len([q for q in queries.captured_queries if "annotations_annotation" in q["sql"]]) == 1


# --- who may read it --------------------------------------------------------------------------------------


def test_a_chart_url_is_readable_exactly_by_who_may_read_the_dashboard(client, make_person, board):
    url = chart_url(chart_of(board, "Total"), part="figure")

    assert client.get(url)["Location"].startswith("/login/")
    client.force_login(make_person("support"))
    assert client.get(url).status_code == 403
    client.force_login(make_person("product", "pete"))  # a shared dashboard: any product reader
    assert client.get(url).status_code == 200
    assert client.get("/dashboards/d/usage/").status_code == 200
    client.force_login(make_person("admin"))
    assert client.get(url).status_code == 200
    assert client.post(url).status_code == 405


def test_a_chart_of_another_dashboard_is_not_found_through_this_one(client, board):
    other = Dashboard.objects.create(name="Other", slug="other", owner=board.owner)
    theirs = Chart.objects.create(dashboard=other, title="Theirs", query_string=custom_range())
    client.force_login(board.owner)

    assert client.get(f"/dashboards/d/usage/charts/{theirs.pk}/").status_code == 404
    assert client.get(f"/dashboards/d/other/charts/{chart_of(board, 'Total').pk}/").status_code == 404
    assert client.get("/dashboards/d/usage/charts/999999/").status_code == 404
    assert client.get(f"/dashboards/d/nothing-here/charts/{theirs.pk}/").status_code == 404


def test_viewing_a_dashboard_and_its_charts_writes_no_audit_entry(client, board):
    # Dashboards show aggregates, not a person's data: neither the page nor its charts are audited (and
    # 40 charts must never be 40 entries).
    client.force_login(board.owner)
    before = AuditEntry.objects.count()

    client.get("/dashboards/d/usage/")
    for chart in board.charts.all():
        client.get(chart_url(chart, part="figure"))

    assert AuditEntry.objects.count() == before


def test_a_chart_saved_before_the_address_limit_still_draws(client, board):
    # Saved when the explorer took any address the server did: a limit added later must not break it.
    from apps.dashboards.forms import MAX_QUERY_STRING

    events = ["search_made"] + [f"e{i:02d}_" + "x" * 120 for i in range(25)]
    query = custom_range(event=events)
    assert MAX_QUERY_STRING < len(query) < 4000
    chart = Chart.objects.create(dashboard=board, title="Long", position=7, query_string=query)
    client.force_login(board.owner)

    response = client.get(chart_url(chart, part="figure"))

    assert response.status_code == 200
    [figure] = figures_in(response.content.decode())
    assert "search_made" in [t["name"] for t in figure["data"]]
