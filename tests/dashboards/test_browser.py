"""Product in a real browser: explore, change the breakdown, download the CSV, save a dashboard, reopen it.

Also: no console errors, no request leaves the machine, hostile breakdown values stay text, and the page
tells a viewer in another time zone how UTC relates to their clock.
"""

import csv
import io
from datetime import timedelta
from urllib.parse import urlparse

import pytest
from django.utils import timezone

from tests.conftest import sign_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}
IMG = "<img src=x onerror=alert('xss-img')>"
LINK = '<a href="http://evil.example/">click</a>'


def recent(hours: float) -> str:
    return (timezone.now() - timedelta(hours=hours)).isoformat()


@pytest.fixture
def traffic(aggregate_events):
    events = []
    for i in range(30):
        service = ("search-api", "tiles", "download")[i % 3]
        plan = ("free", "pro", IMG, LINK)[i % 4]
        events.append(
            {
                "service": service,
                "event": "search_made",
                "user_id": f"u{i % 7}",
                "timestamp": recent(2 + i * 5),
                "properties": {"plan": plan, "duration_ms": 100 + i},
            }
        )
    events.append({"service": "tiles", "event": "tile_viewed", "user_id": "u1", "timestamp": recent(1)})
    return aggregate_events(events)


def plotted_traces(page) -> int:
    page.wait_for_function(
        "() => { const p = document.querySelector('.js-plotly-plot'); return p && p.data; }"
    )
    return page.evaluate("document.querySelector('.js-plotly-plot').data.length")


def guard_network(page) -> list[str]:
    """Fail any request to a non-loopback host (and record it); answer the browser's favicon probe."""
    external: list[str] = []

    def route(route) -> None:
        url = urlparse(route.request.url)
        if url.hostname not in LOOPBACK and url.scheme not in ("data", "blob"):
            external.append(route.request.url)
            route.abort()
        elif url.path == "/favicon.ico":  # base.html names no icon; the browser asks anyway
            route.fulfill(status=204, body="")
        else:
            route.continue_()

    page.route("**/*", route)
    return external


def test_explore_break_down_download_save_and_reopen(
    live_server, browser_page, make_person, traffic, artifacts_dir
):
    make_person("product", "pia")
    page = browser_page
    external = guard_network(page)
    sign_in(page, live_server.url, "pia")

    page.goto(f"{live_server.url}/dashboards/?event=search_made&range=7d&interval=day")
    assert plotted_traces(page) == 1
    assert page.inner_text("h1") == "Count of search_made"

    # Change the breakdown: one trace per service, named in the legend.
    page.select_option("#id_breakdown", "service")
    assert page.is_visible(".js-dirty-hint")
    page.click("button:has-text('Update chart')")
    page.wait_for_url("**breakdown=service**")
    assert plotted_traces(page) == 3
    legend = page.locator(".js-plotly-plot .legend .traces .legendtext")
    assert sorted(legend.all_text_contents()) == ["download", "search-api", "tiles"]
    assert "Times are UTC" in page.inner_text(".js-utc-offset")
    page.screenshot(path=str(artifacts_dir / "dashboards-explorer.png"), full_page=True)

    # The CSV of exactly this chart.
    with page.expect_download() as download_info:
        page.click("a:has-text('Download CSV')")
    download = download_info.value
    assert download.suggested_filename.startswith("skywatch-count-of-search_made-by-service-")
    with open(download.path(), encoding="utf-8") as fh:
        rows = list(csv.reader(io.StringIO(fh.read())))
    assert rows[0][0] == "bucket_start_utc"
    assert sorted(rows[0][1:]) == ["download", "search-api", "tiles"]
    assert sum(int(v) for row in rows[1:] for v in row[1:]) == 30

    # Save it to a new dashboard, then open that dashboard by its address.
    page.fill("#id_title", "Searches by service")
    page.fill("#id_new_name", "Search usage")
    page.click("button:has-text('Save chart')")
    page.wait_for_url(f"{live_server.url}/dashboards/d/search-usage/")
    assert "Saved “Searches by service”" in page.inner_text(".messages")
    share_url = page.input_value("#share-url")
    assert share_url == f"{live_server.url}/dashboards/d/search-usage/"

    page.goto(share_url)
    assert page.inner_text("h1") == "Search usage"
    assert page.inner_text(".chart-card h2") == "Searches by service"
    assert plotted_traces(page) == 3
    page.screenshot(path=str(artifacts_dir / "dashboards-saved.png"), full_page=True)

    # Another product person opens the shared link: same chart, no controls to change it.
    browser = page.context.browser
    other = browser.new_context(viewport={"width": 1280, "height": 900}, timezone_id="Asia/Kolkata")
    try:
        other_page = other.new_page()
        guard_network(other_page)
        make_person("product", "raj")
        sign_in(other_page, live_server.url, "raj")
        other_page.goto(share_url)
        assert plotted_traces(other_page) == 3
        assert other_page.locator("button:has-text('Remove')").count() == 0
        # Times stay UTC; the page says how that relates to the viewer's clock.
        assert other_page.inner_text(".js-utc-offset") == "Times are UTC; your browser is UTC+05:30."
    finally:
        other.close()

    assert page.console_errors == []
    assert page.dialogs == []
    assert external == []


def test_hostile_breakdown_values_are_drawn_as_text(
    live_server, browser_page, make_person, traffic, artifacts_dir
):
    make_person("product", "pia")
    page = browser_page
    external = guard_network(page)
    sign_in(page, live_server.url, "pia")

    page.goto(
        f"{live_server.url}/dashboards/?event=search_made&range=7d&interval=day&breakdown=prop:plan&top=5"
    )

    assert plotted_traces(page) == 4
    legend = page.locator(".js-plotly-plot .legend .legendtext").all_text_contents()
    assert IMG in legend and LINK in legend
    assert page.locator(".js-plotly-plot img, .js-plotly-plot a[href*='evil']").count() == 0
    # The table's only links are its own, each cell's users page; nothing a value could inject.
    assert page.locator("table.series-table img, table.series-table thead a").count() == 0
    cells = page.locator("table.series-table tbody a")
    assert cells.count() > 0
    hrefs = [cells.nth(k).get_attribute("href") for k in range(cells.count())]
    assert all(href.startswith("/dashboards/users/?") for href in hrefs), hrefs
    assert IMG in page.inner_text("table.series-table thead")
    page.hover(".js-plotly-plot .nsewdrag", position={"x": 300, "y": 120})  # the hover label names series too
    page.wait_for_timeout(200)
    assert page.locator(".hoverlayer img, .hoverlayer a").count() == 0
    assert page.dialogs == []
    assert page.console_errors == []
    assert external == []


def test_the_overview_draws_usage_and_pipeline_health(
    live_server, browser_page, make_person, traffic, artifacts_dir
):
    make_person("product", "pia")
    page = browser_page
    external = guard_network(page)
    sign_in(page, live_server.url, "pia")  # lands on / — the overview

    page.wait_for_function("document.querySelectorAll('.js-plotly-plot').length === 4")
    counts = page.evaluate("Array.from(document.querySelectorAll('.js-plotly-plot')).map(p => p.data.length)")
    assert counts == [2, 1, 1, 1]  # events per day (search_made, tile_viewed), DAU, services, ingest rate
    tiles = page.locator(".tile .value").all_inner_texts()
    assert tiles == ["31", "none", "none", "0"]
    page.screenshot(path=str(artifacts_dir / "dashboards-overview.png"), full_page=True)
    assert page.console_errors == []
    assert external == []
