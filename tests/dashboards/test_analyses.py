"""The explorer's funnel and retention analyses: roles, the page (figure, table), errors, CSV, saving to a
dashboard and the dashboard page drawing them."""

import csv
import io
import json
import re
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

import pytest
from django.utils import timezone

from apps.dashboards.models import Dashboard

pytestmark = pytest.mark.django_db

SCRIPT = "<script>alert('x')</script>"


def day0() -> datetime:
    return (
        (timezone.now() - timedelta(days=3))
        .astimezone(UTC)
        .replace(hour=0, minute=0, second=0, microsecond=0)
    )


def at(days: float, hours: float = 0) -> str:
    return (day0() + timedelta(days=days, hours=hours)).isoformat()


def custom(**params) -> dict:
    return {
        "range": "custom",
        "start": day0().strftime("%Y-%m-%dT%H:%M"),
        "end": (day0() + timedelta(days=3)).strftime("%Y-%m-%dT%H:%M"),
        **params,
    }


FUNNEL = {"analysis": "funnel", "steps": "search_made,download_started", "window": "172800"}
RETENTION = {"analysis": "retention", "start_event": "search_made", "return_event": "download_started"}


@pytest.fixture
def paths(store_events):
    """u1: search, then download 25 hours later; u2: search only (hostile plan); u3: download, search."""
    return store_events(
        [
            {"service": "tiles", "event": "search_made", "user_id": "u1", "timestamp": at(0, 1)},
            {"service": "tiles", "event": "download_started", "user_id": "u1", "timestamp": at(1, 2)},
            {
                "service": "web",
                "event": "search_made",
                "user_id": "u2",
                "timestamp": at(0, 3),
                "properties": {"plan": SCRIPT},
            },
            {"service": "tiles", "event": "download_started", "user_id": "u3", "timestamp": at(0, 4)},
            {"service": "tiles", "event": "search_made", "user_id": "u3", "timestamp": at(0, 5)},
        ]
    )


def figures_in(page: str) -> list[dict]:
    blocks = re.findall(r'<script type="application/json">(.*?)</script>', page, flags=re.S)
    return [json.loads(block) for block in blocks]


@pytest.mark.parametrize("query", [FUNNEL, RETENTION])
def test_support_and_anonymous_people_may_not_open_an_analysis(client, make_person, query):
    assert client.get("/dashboards/", query).status_code == 302  # to the login page
    client.force_login(make_person("support"))
    assert client.get("/dashboards/", query).status_code == 403


@pytest.mark.parametrize("role", ["product", "admin"])
def test_product_and_admin_open_both_analyses(client, make_person, paths, role):
    client.force_login(make_person(role))
    for query in (FUNNEL, RETENTION):
        response = client.get("/dashboards/", custom(**query))
        assert response.status_code == 200
        assert response.templates[0].name == "dashboards/analysis.html"


def test_the_switch_opens_an_empty_funnel_form(product_client):
    response = product_client.get("/dashboards/", {"analysis": "funnel"})

    assert response.status_code == 200
    assert "Name 2 to 8 events in order" in response.content.decode()
    trends = product_client.get("/dashboards/", {"event": "x"}).content.decode()
    assert 'href="/dashboards/?analysis=retention"' in trends  # the switch is on the trends page too


def test_a_funnel_draws_its_steps_and_a_table(product_client, paths):
    response = product_client.get("/dashboards/", custom(**FUNNEL))

    page = response.content.decode()
    trace = figures_in(page)[0]["data"][0]
    assert trace["type"] == "funnel"
    assert trace["x"] == [3, 1]  # u1, u2, u3 searched; only u1 downloaded after (u3's was before)
    assert trace["y"] == ["1. search_made", "2. download_started"]
    assert "33.3 %" in page and "1 d 1 h" in page  # conversion, and u1's 25 hours to convert
    assert "Funnel: search_made → download_started" in page


def test_a_funnel_broken_down_by_a_property_keeps_its_values_as_text(product_client, paths):
    page = product_client.get("/dashboards/", custom(**FUNNEL, breakdown="prop:plan")).content.decode()

    names = [t["name"] for t in figures_in(page)[0]["data"]]
    assert names == ["(none)", "&lt;script&gt;alert('x')&lt;/script&gt;"]
    assert SCRIPT not in page


def test_retention_draws_a_heatmap_and_a_table_of_counts_and_percentages(product_client, paths):
    page = product_client.get("/dashboards/", custom(**RETENTION)).content.decode()

    trace = figures_in(page)[0]["data"][0]
    assert trace["type"] == "heatmap"
    assert trace["z"][0] == [0.0, 33.33, 0.0]  # day 0: u1, u2, u3; u1 back on day 1
    assert "retention-table" in page and "33.3 %" in page and "heat-3" in page


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({**FUNNEL, "steps": "search_made"}, "A funnel has 2 to 8 steps"),
        ({**FUNNEL, "window": "0"}, "greater than or equal to 1"),
        ({**FUNNEL, "breakdown": "event"}, "break it down by service, stage or a property"),
        ({**RETENTION, "start_event": ""}, "Name an event."),
        ({**RETENTION, "interval": "hour"}, "Select a valid choice"),
        (
            {**RETENTION, "range": "custom", "start": "2001-01-01T00:00", "end": "2002-12-01T00:00"},
            "More than 400",
        ),
    ],
)
def test_bad_settings_get_a_clear_message_never_a_500(product_client, params, message):
    response = product_client.get("/dashboards/", params)

    assert response.status_code == 400
    assert message in response.content.decode()


def test_the_csvs_have_a_row_per_step_and_per_cohort(product_client, paths):
    funnel = product_client.get("/dashboards/", custom(**FUNNEL, breakdown="prop:plan", format="csv"))
    rows = list(csv.reader(io.StringIO(funnel.content.decode())))
    assert funnel["Content-Type"].startswith("text/csv")
    assert rows[0] == [
        "group_kind",
        "group",
        "step",
        "event",
        "users",
        "conversion",
        "conversion_from_previous",
        "median_seconds",
    ]
    assert rows[1:3] == [
        ["all", "", "1", "search_made", "3", "1.0", "1.0", ""],
        ["all", "", "2", "download_started", "1", "0.333333", "0.333333", "90000.0"],
    ]
    assert rows[3][:5] == ["absent", "(none)", "1", "search_made", "2"]

    retention = product_client.get("/dashboards/", custom(**RETENTION, format="csv"))
    rows = list(csv.reader(io.StringIO(retention.content.decode())))
    assert rows[0] == ["cohort_start_utc", "size", "day_0", "day_1", "day_2"]
    assert rows[1] == [day0().strftime("%Y-%m-%dT%H:%M:%SZ"), "3", "0", "1", "0"]

    bad = product_client.get("/dashboards/", {**FUNNEL, "steps": "a", "format": "csv"})
    assert bad.status_code == 400 and "steps" in bad.content.decode()


def test_the_funnel_csv_tells_the_users_without_the_property_from_a_value_that_reads_none(
    product_client, store_events
):
    def search(user: str, hours: float, **properties) -> dict:
        event = {"service": "tiles", "event": "search_made", "user_id": user, "timestamp": at(0, hours)}
        return {**event, "properties": properties} if properties else event

    store_events(
        [
            search("lacks-plan", 1),
            search("sends-none", 2, plan="(none)"),
            search("sends-empty", 3, plan=""),
            {"service": "tiles", "event": "download_started", "user_id": "sends-none", "timestamp": at(0, 4)},
        ]
    )

    answer = product_client.get("/dashboards/", custom(**FUNNEL, breakdown="prop:plan", format="csv"))

    assert answer.status_code == 200
    rows = list(csv.reader(io.StringIO(answer.content.decode())))
    step_two = {(kind, group): users for kind, group, step, _, users, *_ in rows[1:] if step == "2"}
    assert step_two == {
        ("all", ""): "1",
        ("absent", "(none)"): "0",
        ("value", "(none)"): "1",
        ("value", ""): "0",
    }


def test_both_analyses_save_to_a_dashboard_that_draws_them(product_client, paths):
    for query, title in ((custom(**FUNNEL), "Searches to downloads"), (custom(**RETENTION), "Coming back")):
        response = product_client.post(
            "/dashboards/charts/",
            {
                "title": title,
                "query_string": urlencode(query),
                "dashboard": str(Dashboard.objects.get().pk) if Dashboard.objects.exists() else "new",
                "new_name": "Product",
            },
        )
        assert response.status_code == 302
    charts = list(Dashboard.objects.get().charts.all())
    assert charts[0].query_string.startswith(
        "analysis=funnel&steps=search_made%2Cdownload_started&window=172800"
    )
    assert charts[1].query_string.startswith("analysis=retention&start_event=search_made")

    page = product_client.get("/dashboards/d/product/").content.decode()
    # Each chart is drawn from its own URL, which the page's script fetches.
    drawn = [
        product_client.get(f"/dashboards/d/product/charts/{c.pk}/", {"part": "figure"}).content.decode()
        for c in charts
    ]

    assert [f["data"][0]["type"] for d in drawn for f in figures_in(d)] == ["funnel", "heatmap"]
    assert f'href="/dashboards/?{charts[0].query_string.replace("&", "&amp;")}"' in page
    assert "within 2 days of step 1" in page and "cohorts by day" in page


def test_saving_refuses_invalid_analysis_settings(product_client):
    response = product_client.post(
        "/dashboards/charts/",
        {"title": "x", "query_string": "analysis=funnel&steps=a", "dashboard": "new", "new_name": "P"},
    )

    assert response.status_code == 302
    assert not Dashboard.objects.exists()


def tab_link(html: str, name: str) -> str:
    from html import unescape

    return unescape(re.search(rf'<a href="([^"]*)"[^>]*>{name}</a>', html).group(1))


def test_the_analysis_switch_keeps_the_range_and_the_filters(product_client, aggregate_events):
    aggregate_events(
        [
            {"event": "search_made", "user_id": "u1", "timestamp": at(0, 1), "properties": {"plan": "pro"}},
            {"event": "search_made", "user_id": "u2", "timestamp": at(0, 2), "properties": {"plan": "free"}},
        ]
    )
    trends = product_client.get(
        "/dashboards/", custom(event="search_made", filter="plan=pro", interval="hour")
    ).content.decode()

    funnel_link = tab_link(trends, "Funnel")
    funnel = product_client.get(funnel_link)

    assert funnel.status_code == 200
    page = funnel.content.decode()
    assert re.search(r'<option value="custom" selected>', page)
    assert f'value="{day0().strftime("%Y-%m-%dT%H:%M")}"' in page  # the start, as the trend had it
    assert 'value="plan=pro"' in page
    assert "search_made" not in funnel_link  # the trend's events are not funnel steps

    back = product_client.get(tab_link(page, "Trends"))

    assert back.status_code == 200
    form = back.context["form"]
    assert (form.cleaned_data["range"], form.cleaned_data["start"]) == ("custom", day0())
    assert form.filter_values() == ["plan=pro"]
