"""The dashboards pages: roles, the explorer (chart, table, errors, CSV), saved dashboards, the overview."""

import csv
import io
import json
import re
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

import pytest
from django.utils import timezone

from apps.dashboards.models import Chart, Dashboard

pytestmark = pytest.mark.django_db

SCRIPT = "<script>alert('x')</script>"
FORMULA = '=HYPERLINK("http://evil.example")'


def day0() -> datetime:
    """Midnight UTC three days ago: the tests' fixed custom range is [day0, day0 + 3 days)."""
    return (
        (timezone.now() - timedelta(days=3))
        .astimezone(UTC)
        .replace(hour=0, minute=0, second=0, microsecond=0)
    )


def at(days: float, hours: float = 0) -> str:
    return (day0() + timedelta(days=days, hours=hours)).isoformat()


def custom_range(**params) -> dict:
    start = day0()
    base = {
        "range": "custom",
        "start": start.strftime("%Y-%m-%dT%H:%M"),
        "end": (start + timedelta(days=3)).strftime("%Y-%m-%dT%H:%M"),
        "interval": "day",
        "event": "search_made",
    }
    base.update(params)
    return base


@pytest.fixture
def usage(aggregate_events):
    """search_made: 3 on day 0 (search-api), 1 on day 1 (tiles); download_started: 2 on day 1."""
    return aggregate_events(
        [
            {"service": "search-api", "event": "search_made", "user_id": "u1", "timestamp": at(0, 1),
             "properties": {"plan": "free", "duration_ms": 100}},
            {"service": "search-api", "event": "search_made", "user_id": "u2", "timestamp": at(0, 2),
             "properties": {"plan": "pro", "duration_ms": 200}},
            {"service": "search-api", "event": "search_made", "user_id": "u1", "timestamp": at(0, 3),
             "properties": {"plan": "free", "duration_ms": 300}},
            {"service": "tiles", "event": "search_made", "user_id": "u3", "timestamp": at(1, 5),
             "properties": {"plan": SCRIPT, "duration_ms": 50}},
            {"service": "download", "event": "download_started", "user_id": "u1", "timestamp": at(1, 6)},
            {"service": "download", "event": "download_started", "user_id": "u4", "timestamp": at(1, 7)},
        ]
    )  # fmt: skip


def figures_in(page: str) -> list[dict]:
    blocks = re.findall(r'<script type="application/json">(.*?)</script>', page, flags=re.S)
    return [json.loads(block) for block in blocks]


def traces(page: str, index: int = 0) -> list[dict]:
    return figures_in(page)[index]["data"]


# --- who may see what -------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/dashboards/", "/dashboards/d/", "/dashboards/d/some-board/", "/"])
def test_anonymous_people_are_sent_to_the_login_page(client, path):
    response = client.get(path)

    assert response.status_code == 302
    assert response["Location"].startswith("/login/?next=")


@pytest.mark.parametrize("path", ["/dashboards/", "/dashboards/d/"])
def test_support_may_not_open_the_explorer_or_dashboards(client, make_person, path):
    client.force_login(make_person("support"))

    assert client.get(path).status_code == 403


@pytest.mark.parametrize("role", ["product", "admin"])
def test_product_and_admin_open_the_explorer(client, make_person, usage, role):
    client.force_login(make_person(role))

    response = client.get("/dashboards/")

    assert response.status_code == 200
    assert response.templates[0].name == "dashboards/explorer.html"


def test_support_may_not_save_charts(client, make_person):
    client.force_login(make_person("support"))

    response = client.post(
        "/dashboards/charts/", {"title": "x", "query_string": "event=a", "dashboard": "new"}
    )

    assert response.status_code == 403
    assert not Dashboard.objects.exists()


# --- the explorer ------------------------------------------------------------------------------------


def test_without_parameters_the_explorer_charts_the_busiest_event(product_client, usage):
    response = product_client.get("/dashboards/")

    page = response.content.decode()
    assert "Count of search_made" in page
    assert "last 7 days · by hour" in page
    (trace,) = traces(page)
    assert trace["type"] == "scatter"
    assert sum(trace["y"]) == 4


def test_without_any_event_recorded_the_explorer_says_so(product_client):
    response = product_client.get("/dashboards/")

    assert response.status_code == 200
    assert "No events have been recorded yet" in response.content.decode()


def test_a_chart_with_a_breakdown_draws_a_trace_per_value_and_a_table(product_client, usage):
    response = product_client.get("/dashboards/", custom_range(breakdown="service"))

    page = response.content.decode()
    assert response.status_code == 200
    data = traces(page)
    assert [(t["name"], t["y"]) for t in data] == [("search-api", [3, 0, 0]), ("tiles", [0, 1, 0])]
    table = response.context["chart"].table
    assert table.columns == ["search-api", "tiles"]
    assert [label for label, _ in table.rows] == [f"{day0() + timedelta(days=i):%Y-%m-%d}" for i in range(3)]
    assert table.totals == ["3", "1"]
    assert "Count of search_made by service" in page


def test_several_events_unique_users_compare_and_bars(product_client, usage, aggregate_events):
    aggregate_events(  # the previous period: [day0 - 3 days, day0)
        [
            {"event": "search_made", "user_id": "u9", "timestamp": at(-2)},
            {"event": "download_started", "user_id": "u9", "timestamp": at(-1)},
        ]
    )
    params = custom_range(measure="unique_users", chart="bar", compare="on")
    params["event"] = ["search_made", "download_started"]

    response = product_client.get("/dashboards/", params)

    data = traces(response.content.decode())
    names = [t["name"] for t in data]
    assert names == [
        "search_made",
        "search_made (previous period)",
        "download_started",
        "download_started (previous period)",
    ]
    assert data[0]["type"] == "bar" and data[1]["type"] == "scatter"
    assert data[0]["y"] == [2, 1, 0]  # u1 and u2 on day 0, u3 on day 1
    assert data[1]["y"] == [0, 1, 0]  # shifted onto the current buckets
    assert response.context["chart"].table.totals is None  # unique users do not add up


def test_an_average_keeps_empty_buckets_as_gaps(product_client, usage):
    response = product_client.get("/dashboards/", custom_range(measure="avg:duration_ms"))

    (trace,) = traces(response.content.decode())
    assert trace["y"] == [200, 50, None]
    assert response.context["chart"].table.rows[2][1] == [("—", None)]


def test_a_property_breakdown_and_filter(product_client, usage):
    params = custom_range(breakdown="prop:plan", top="3")
    params["filter"] = ["duration_ms=100", ""]

    response = product_client.get("/dashboards/", params)

    data = traces(response.content.decode())
    assert [(t["name"], t["y"]) for t in data] == [("free", [1, 0, 0])]
    assert response.context["form"].cleaned_data["filter"] == [("duration_ms", "100")]


def test_hostile_breakdown_values_stay_text(product_client, usage):
    response = product_client.get("/dashboards/", custom_range(breakdown="prop:plan"))

    page = response.content.decode()
    assert SCRIPT not in page  # escaped in the table, \u003C-escaped in the figure JSON
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page
    names = [t["name"] for t in traces(page)]
    assert "&lt;script&gt;alert('x')&lt;/script&gt;" in names  # plotly shows entities as text


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"measure": "median"}, "is not a measure"),
        ({"measure": "sum:"}, "Give a property name"),
        ({"interval": "fortnight"}, "Select a valid choice"),
        ({"range": "forever"}, "Select a valid choice"),
        ({"range": "custom", "start": "", "end": ""}, "A custom range needs a start"),
        ({"range": "custom", "start": "yesterday"}, "Enter a valid date/time"),
        ({"range": "custom", "start": "2026-11-20T10:00", "end": "2026-11-20T09:00"}, "must be after"),
        ({"range": "custom", "start": "1990-01-01T00:00", "end": "1990-02-01T00:00"}, "before 2000-01-01"),
        ({"range": "custom", "start": "2020-01-01T00:00", "end": "2026-01-01T00:00"}, "at most two years"),
        ({"breakdown": "prop: "}, "Give a property name"),
        ({"top": "7"}, "Select a valid choice"),
        ({"filter": "nonsense"}, "is not a filter: write property=value"),
        ({"filter": "=x"}, "is not a filter"),
        ({"chart": "pie"}, "Select a valid choice"),
        ({"event": ""}, "Tick at least one event"),
        ({"event": "x" * 201}, "Select a valid choice"),
        # Near the calendar's ends: aligning, adding a bucket or a period went past it (a 500).
        ({"range": "custom", "start": "9999-12-31T22:00", "end": "9999-12-31T23:59"}, "out of range"),
        ({"range": "custom", "start": "0001-01-01T00:00", "end": "0001-01-02T00:00"}, "out of range"),
    ],
)
def test_bad_values_get_a_clear_message_never_a_500(product_client, usage, params, message):
    response = product_client.get("/dashboards/", custom_range(**params))

    assert response.status_code == 400
    page = response.content.decode()
    assert "These chart settings need fixing" in page
    assert message in page.replace("&quot;", '"').replace("&#x27;", "'")


@pytest.mark.parametrize(
    "params",
    [
        custom_range(filter="plan=a\x00b"),
        custom_range(filter="plan=a\x00b", format="csv"),
        {"analysis": "funnel", "steps": "search_made,download_started", "filter": "plan=\x00"},
    ],
)
def test_a_nul_in_a_filter_value_is_a_400_never_a_500(product_client, usage, params):
    response = product_client.get("/dashboards/", params)

    assert response.status_code == 400
    assert "NUL" in response.content.decode()


def test_a_url_may_name_an_event_without_data(product_client, usage):
    response = product_client.get("/dashboards/", custom_range(event="not_seen_yet"))

    assert response.status_code == 200
    assert 'value="not_seen_yet"' in response.content.decode()
    assert traces(response.content.decode())[0]["y"] == [0, 0, 0]


def test_a_too_fine_interval_is_coarsened_and_said(product_client, usage):
    response = product_client.get(
        "/dashboards/", {"event": "search_made", "range": "90d", "interval": "minute"}
    )

    assert response.status_code == 200
    spec = response.context["chart"].spec
    assert spec.query.interval == "hour"
    assert "Showing hours: minute buckets over this range would be 129,6" in response.content.decode()


def test_a_chart_of_raw_events_says_when_retention_has_deleted_them(
    product_client, aggregate_events, settings
):
    from apps.lifecycle.services import retention_apply

    settings.RETENTION_RAW_DAYS = 90
    old = (timezone.now() - timedelta(days=100)).astimezone(UTC).replace(hour=12, minute=0, second=0)
    aggregate_events([{"event": "search_made", "timestamp": old.isoformat(), "properties": {"plan": "pro"}}])
    retention_apply()
    span = {
        "event": "search_made",
        "range": "custom",
        "start": (old - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M"),
        "end": (old + timedelta(days=20)).strftime("%Y-%m-%dT%H:%M"),
        "interval": "day",
    }
    note = "computed from raw events, which are deleted after 90 days"

    # The rollups keep the event: a chart by service still counts it, and needs no note.
    by_service = product_client.get("/dashboards/", {**span, "breakdown": "service"}).content.decode()
    assert sum(traces(by_service)[0]["y"]) == 1
    assert note not in by_service
    # A property breakdown reads raw events, gone by now: the chart says why it is empty there.
    by_plan = product_client.get("/dashboards/", {**span, "breakdown": "prop:plan"}).content.decode()
    assert note in by_plan
    funnel = {"analysis": "funnel", "steps": "search_made,x", "range": "custom"}
    funnel_page = product_client.get("/dashboards/", {**span, **funnel}).content.decode()
    assert "This funnel is " + note in funnel_page
    recent = product_client.get("/dashboards/", {**custom_range(breakdown="prop:plan")}).content.decode()
    assert note not in recent


def test_the_explorer_page_relaxes_only_styles_in_its_content_security_policy(product_client, usage):
    policy = product_client.get("/dashboards/")["Content-Security-Policy"]

    assert "script-src 'self';" in policy
    assert re.search(r"style-src 'self' 'unsafe-inline'", policy)


# --- CSV ---------------------------------------------------------------------------------------------


def test_the_csv_has_a_column_per_series_and_a_row_per_bucket(product_client, usage):
    response = product_client.get("/dashboards/", custom_range(breakdown="service", format="csv"))

    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert re.fullmatch(
        r'attachment; filename="skywatch-count-of-search_made-by-service-\d{8}-\d{4}\.csv"',
        response["Content-Disposition"],
    )
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert rows[0] == ["bucket_start_utc", "search-api", "tiles"]
    assert rows[1:] == [
        [f"{day0() + timedelta(days=i):%Y-%m-%dT%H:%M:%SZ}", a, b]
        for i, (a, b) in enumerate([("3", "0"), ("0", "1"), ("0", "0")])
    ]


def test_the_csv_never_hands_a_spreadsheet_a_formula(product_client, aggregate_events):
    aggregate_events([{"event": "search_made", "timestamp": at(0), "properties": {"plan": FORMULA}}])

    response = product_client.get("/dashboards/", custom_range(breakdown="prop:plan", format="csv"))

    header = next(csv.reader(io.StringIO(response.content.decode())))
    assert header == ["bucket_start_utc", "'" + FORMULA]


def test_an_average_csv_leaves_empty_buckets_empty(product_client, usage):
    response = product_client.get("/dashboards/", custom_range(measure="avg:duration_ms", format="csv"))

    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert [row[1] for row in rows[1:]] == ["200", "50", ""]


def test_bad_settings_for_a_csv_answer_400_in_words(product_client, usage):
    response = product_client.get(
        "/dashboards/", {"event": "search_made", "measure": "median", "format": "csv"}
    )

    assert response.status_code == 400
    assert response["Content-Type"].startswith("text/plain")
    assert "is not a measure" in response.content.decode()


# --- saved dashboards --------------------------------------------------------------------------------


def save(client, query: dict, *, title: str, dashboard: str = "new", new_name: str = ""):
    return client.post(
        "/dashboards/charts/",
        {
            "title": title,
            "query_string": urlencode(query, doseq=True),
            "dashboard": dashboard,
            "new_name": new_name,
        },
    )


def test_save_to_a_new_dashboard_then_add_another_chart(product_client, usage):
    first = save(product_client, custom_range(breakdown="service"), title="Searches", new_name="Search usage")

    board = Dashboard.objects.get()
    assert first.status_code == 302
    assert first["Location"] == "/dashboards/d/search-usage/"
    assert board.name == "Search usage" and board.owner.username == "product-person"

    second = save(
        product_client, custom_range(measure="unique_users"), title="Searchers", dashboard=str(board.pk)
    )

    assert second["Location"] == "/dashboards/d/search-usage/"
    charts = list(board.charts.all())
    assert [(c.title, c.position) for c in charts] == [("Searches", 0), ("Searchers", 1)]
    # The canonical query string: every setting spelled out, no `format`, in a fixed order.
    assert charts[0].query_string.startswith(
        "event=search_made&measure=count&interval=day&range=custom&start="
    )
    assert charts[0].query_string.endswith("&breakdown=service&top=5&chart=line")

    page = product_client.get("/dashboards/d/search-usage/")
    assert page.status_code == 200
    content = page.content.decode()
    assert content.index("Searches") < content.index("Searchers")
    assert f'href="/dashboards/?{charts[0].query_string.replace("&", "&amp;")}"' in content
    # Each chart is drawn from its own URL, which the page's script fetches.
    assert [t["name"] for t in traces(chart_figure(product_client, charts[0]), 0)] == ["search-api", "tiles"]
    assert [t["name"] for t in traces(chart_figure(product_client, charts[1]), 0)] == ["total"]


def chart_figure(client, chart: Chart, **params) -> str:
    """Return a saved chart's drawing as its dashboard page loads it (its own URL, `part=figure`)."""
    response = client.get(
        f"/dashboards/d/{chart.dashboard.slug}/charts/{chart.pk}/", {"part": "figure", **params}
    )
    assert response.status_code == 200
    return response.content.decode()


def test_saving_needs_a_name_for_a_new_dashboard(product_client, usage):
    response = save(product_client, custom_range(), title="Searches")

    assert response.status_code == 302
    assert response["Location"].startswith("/dashboards/?") and "event=search_made" in response["Location"]
    assert not Dashboard.objects.exists()
    assert "Name the new dashboard." in product_client.get(response["Location"]).content.decode()


def test_saving_refuses_invalid_chart_settings(product_client, usage):
    save(product_client, {"event": "search_made", "measure": "median"}, title="x", new_name="Board")

    assert not Dashboard.objects.exists()


def test_one_may_only_add_to_ones_own_dashboards(client, make_person, usage):
    owner = make_person("product", "olga")
    board = Dashboard.objects.create(name="Olga's", slug="olgas", owner=owner)
    client.force_login(make_person("product", "pete"))

    save(client, custom_range(), title="x", dashboard=str(board.pk))

    assert not board.charts.exists()


def test_names_make_unique_slugs(product_client, usage):
    for _ in range(2):
        save(product_client, custom_range(), title="Searches", new_name="Search usage!")
    save(product_client, custom_range(), title="Searches", new_name="Ünïcode ✓")
    save(product_client, custom_range(), title="Searches", new_name="✓✓")

    assert sorted(Dashboard.objects.values_list("slug", flat=True)) == [
        "dashboard",
        "search-usage",
        "search-usage-2",
        "unicode",
    ]


@pytest.fixture
def board(make_person, usage):
    owner = make_person("product", "olga")
    board = Dashboard.objects.create(name="Usage <b>board</b>", slug="usage", owner=owner)
    for position, title in enumerate(["A", "B", "C"]):
        Chart.objects.create(
            dashboard=board,
            title=title,
            position=position,
            query_string=urlencode(custom_range(), doseq=True),
        )
    return board


def titles(board: Dashboard) -> list[str]:
    return list(board.charts.order_by("position", "pk").values_list("title", flat=True))


def test_the_owner_moves_charts_up_and_down_and_removes_them(client, board):
    client.force_login(board.owner)
    b = board.charts.get(title="B")

    assert client.post(f"/dashboards/d/usage/charts/{b.pk}/move/", {"direction": "up"}).status_code == 302
    assert titles(board) == ["B", "A", "C"]
    client.post(f"/dashboards/d/usage/charts/{b.pk}/move/", {"direction": "up"})  # already first
    assert titles(board) == ["B", "A", "C"]
    client.post(f"/dashboards/d/usage/charts/{b.pk}/move/", {"direction": "down"})
    client.post(f"/dashboards/d/usage/charts/{b.pk}/move/", {"direction": "down"})
    assert titles(board) == ["A", "C", "B"]
    assert (
        client.post(f"/dashboards/d/usage/charts/{b.pk}/move/", {"direction": "sideways"}).status_code == 400
    )

    response = client.post(f"/dashboards/d/usage/charts/{board.charts.get(title='C').pk}/remove/")

    assert response["Location"] == "/dashboards/d/usage/"
    assert titles(board) == ["A", "B"]


def test_a_shared_dashboard_is_readable_by_other_product_people_but_not_changeable(
    client, make_person, board
):
    client.force_login(make_person("product", "pete"))

    page = client.get("/dashboards/d/usage/")

    assert page.status_code == 200
    content = page.content.decode()
    assert "Usage &lt;b&gt;board&lt;/b&gt;" in content
    assert "By olga" in content
    assert "/move/" not in content and "/remove/" not in content
    assert 'value="http://testserver/dashboards/d/usage/"' in content
    chart = board.charts.first()
    assert (
        client.post(f"/dashboards/d/usage/charts/{chart.pk}/move/", {"direction": "down"}).status_code == 403
    )
    assert client.post(f"/dashboards/d/usage/charts/{chart.pk}/remove/").status_code == 403
    assert client.post("/dashboards/d/usage/delete/").status_code == 403
    assert titles(board) == ["A", "B", "C"]


def test_admins_may_arrange_and_delete_anyones_dashboard(client, make_person, board):
    client.force_login(make_person("admin"))
    chart = board.charts.get(title="A")

    client.post(f"/dashboards/d/usage/charts/{chart.pk}/move/", {"direction": "down"})
    assert titles(board) == ["B", "A", "C"]
    response = client.post("/dashboards/d/usage/delete/")

    assert response["Location"] == "/dashboards/d/"
    assert not Dashboard.objects.exists() and not Chart.objects.exists()


def test_support_may_not_read_a_shared_dashboard(client, make_person, board):
    client.force_login(make_person("support"))

    assert client.get("/dashboards/d/usage/").status_code == 403


def test_an_unknown_dashboard_is_404(product_client):
    assert product_client.get("/dashboards/d/nothing-here/").status_code == 404


def test_a_saved_chart_with_stale_settings_shows_why_instead_of_failing(client, board):
    Chart.objects.create(dashboard=board, title="Old", position=9, query_string="event=a&measure=median")
    client.force_login(board.owner)

    response = client.get("/dashboards/d/usage/")

    assert response.status_code == 200
    content = response.content.decode()
    assert "saved settings are no longer valid" in content
    assert "is not a measure" in content
    assert content.count("Loading this chart…") == 3  # the others are drawn, each from its own URL
    assert all(len(figures_in(chart_figure(client, c))) == 1 for c in board.charts.exclude(title="Old"))


def test_a_saved_chart_filtering_on_a_numeric_property_name_draws(client, board, aggregate_events):
    # "-1" was read as a JSON array index: a false "database unavailable" and a 500 on the dashboard.
    aggregate_events([{"event": "search_made", "timestamp": at(1), "properties": {"-1": "1"}}])
    Chart.objects.create(
        dashboard=board,
        title="Numeric name",
        position=9,
        query_string=urlencode(custom_range(filter="-1=1", event="search_made"), doseq=True),
    )
    client.force_login(board.owner)

    response = client.get(f"/dashboards/d/usage/charts/{board.charts.get(title='Numeric name').pk}/")

    assert response.status_code == 200
    drawn = response.context["item"]
    assert drawn.errors == []
    assert sum(v for s in drawn.rendered.series for _, v in s.points) == 1


def test_a_saved_chart_the_database_cannot_answer_shows_a_message(client, board, monkeypatch):
    from django.db import DatabaseError

    from apps.dashboards import charts

    def failing(query):
        raise DatabaseError("canceling statement due to statement timeout")

    monkeypatch.setattr(charts, "series_for", failing)  # a failure that cannot be caused on demand
    client.force_login(board.owner)

    page = client.get("/dashboards/d/usage/")
    chart = client.get(f"/dashboards/d/usage/charts/{board.charts.first().pk}/", {"part": "figure"})

    assert page.status_code == 200  # the page reads no chart
    assert chart.status_code == 503  # the chart's card says so, and its script offers a retry
    assert "could not be drawn" in chart.content.decode()


def test_a_dashboard_can_show_every_chart_over_another_range(client, board):
    client.force_login(board.owner)

    response = client.get("/dashboards/d/usage/", {"range": "24h"})

    assert [item.subtitle for item in response.context["charts"]] == ["last 24 hours · by day"] * 3
    assert 'value="24h" selected' in response.content.decode()
    chart = board.charts.first()
    drawn = client.get(f"/dashboards/d/usage/charts/{chart.pk}/", {"part": "figure", "range": "24h"})
    assert drawn.context["item"].rendered.spec.subtitle == "last 24 hours · by day"


def test_the_list_shows_mine_and_others_in_a_fixed_number_of_queries(
    client, make_person, board, django_assert_max_num_queries
):
    me = make_person("product", "pete")
    Dashboard.objects.create(name="Mine", slug="mine", owner=me)
    client.force_login(me)

    with django_assert_max_num_queries(6):
        response = client.get("/dashboards/d/")

    assert [d.name for d in response.context["mine"]] == ["Mine"]
    assert [(d.name, d.n_charts) for d in response.context["others"]] == [("Usage <b>board</b>", 3)]


def test_creating_an_empty_dashboard_from_the_list(product_client):
    response = product_client.post("/dashboards/d/", {"name": "  Weekly review "})

    assert response["Location"] == "/dashboards/d/weekly-review/"
    assert Dashboard.objects.get().name == "Weekly review"
    assert product_client.post("/dashboards/d/", {"name": "   "}).status_code == 400


# --- the overview ------------------------------------------------------------------------------------


def test_the_overview_shows_product_usage_and_pipeline_health(product_client, usage):
    response = product_client.get("/")

    assert response.status_code == 200
    content = response.content.decode()
    figures = figures_in(content)
    per_event, active_users, by_service, ingest = figures
    assert [t["name"] for t in per_event["data"]] == ["search_made", "download_started"]
    assert sum(active_users["data"][0]["y"]) == 3 + 2  # u1, u2 on day 0; u3, u1, u4 on day 1
    assert list(by_service["data"][0]["y"]) == ["tiles", "download", "search-api"]
    assert sum(ingest["data"][0]["y"]) == 6
    assert [(t.name, t.count) for t in response.context["usage"].top_events] == [
        ("search_made", 4),
        ("download_started", 2),
    ]
    assert "Pipeline health" in content
    assert [tile.value for tile in response.context["tiles"]] == ["6", "none", "none", "0"]


def test_support_sees_pipeline_health_and_a_way_to_traces(client, make_person, usage):
    client.force_login(make_person("support"))

    response = client.get("/")

    content = response.content.decode()
    assert response.status_code == 200
    assert "Pipeline health" in content
    assert 'href="/traces/"' in content
    assert "Usage, last 30 days" not in content
    assert len(figures_in(content)) == 1


def test_the_overview_with_nothing_recorded(product_client):
    response = product_client.get("/")

    assert response.status_code == 200
    assert "No events in the last 30 days." in response.content.decode()


def test_the_overview_reads_in_a_bounded_number_of_queries(
    product_client, usage, django_assert_max_num_queries
):
    # Pipeline health reads each backlog from its own table (and the few the index refused apart), never the
    # raw rows whole: one query more than an EXISTS over the raw table, which read every row.
    with django_assert_max_num_queries(13):
        response = product_client.get("/")

    assert response.status_code == 200


def test_a_person_without_a_role_sees_only_the_pipeline_health(client, usage):
    from django.contrib.auth import get_user_model

    client.force_login(get_user_model().objects.create_user("nobody", password="correct-horse-battery"))

    content = client.get("/").content.decode()

    assert "Your account has no role yet" in content
    assert "Pipeline health" in content


@pytest.mark.parametrize(("role", "shown"), [("support", False), ("product", True), ("admin", True)])
def test_the_nav_filter_says_who_may_read_dashboards(make_person, role, shown):
    from django.template import Context, Template

    template = Template("{% load dashboards_tags %}{% if user|can_read_dashboards %}yes{% endif %}")

    assert (template.render(Context({"user": make_person(role)})) == "yes") is shown
