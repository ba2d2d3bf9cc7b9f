"""A saved dashboard in a real browser: the page comes first, then its charts, a few at a time in page
order, each drawn in its card; one that fails says so and retries alone; without JavaScript, each card's
link opens the chart on its own page."""

import threading

import pytest
from django.db import DatabaseError

from apps.dashboards import charts
from apps.dashboards.services import chart_add, dashboard_create
from tests.conftest import sign_in
from tests.dashboards.test_browser import guard_network, recent

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

EVENTS = ("search_made", "tile_viewed", "report_exported", "download_started", "page_viewed", "flaky")
LOADED = """() => Array.from(document.querySelectorAll('.js-chart-body')).every(
  body => !body.hasAttribute('aria-busy'))"""


@pytest.fixture
def board(make_person, aggregate_events):
    owner = make_person("product", "pia")
    aggregate_events(
        [{"service": "web", "event": name, "user_id": "u1", "timestamp": recent(2)} for name in EVENTS]
    )
    board = dashboard_create(name="Everything", owner=owner)
    for name in EVENTS:
        chart_add(
            dashboard=board, title=f"Chart of {name}", query_string=f"event={name}&range=7d&interval=day"
        )
    return board


@pytest.fixture
def watched_reads(monkeypatch):
    """Series reads, slowed so that they overlap, counted as they run; `flaky` fails its first read."""
    real = charts.series_for
    changed = threading.Condition()
    seen = {"running": 0, "most": 0, "started": [], "failed": False}

    def series_for(query):
        with changed:
            seen["running"] += 1
            seen["most"] = max(seen["most"], seen["running"])
            seen["started"].append(query.events[0])
            fail = query.events == ("flaky",) and not seen["failed"]
            seen["failed"] = seen["failed"] or fail
            changed.notify_all()
            # Held until four run at once (a fifth would show in "most"), or for at most 0.3 s when fewer
            # are left to load.
            changed.wait_for(lambda: seen["running"] >= 4, timeout=0.3)
        try:
            if fail:
                raise DatabaseError("canceling statement due to statement timeout")
            return real(query)
        finally:
            with changed:
                seen["running"] -= 1
                changed.notify_all()

    monkeypatch.setattr(charts, "series_for", series_for)
    return seen


def test_a_dashboards_charts_appear_after_the_page_and_a_failed_one_retries(
    live_server, browser_page, board, watched_reads, artifacts_dir
):
    page = browser_page
    external = guard_network(page)
    sign_in(page, live_server.url, "pia")
    watched_reads.update(started=[], most=0)  # the overview, where signing in lands, reads series too

    page.goto(f"{live_server.url}/dashboards/d/{board.slug}/")
    page.wait_for_function(LOADED, timeout=20_000)

    cards = page.locator(".chart-card")
    assert cards.count() == 6
    for i, name in enumerate(EVENTS[:-1]):  # each drawn in its own card, with its numbers
        card = cards.nth(i)
        assert card.locator("h2").inner_text() == f"Chart of {name}"
        assert card.locator(".js-plotly-plot").count() == 1
        assert card.locator(".series-table").count() == 1
    failed = cards.nth(5)
    assert failed.locator(".js-plotly-plot").count() == 0
    assert "This chart could not be loaded: the server answered 503" in failed.inner_text()
    # A few at a time, in page order.
    assert 2 <= watched_reads["most"] <= 4
    assert set(watched_reads["started"][:4]) == set(EVENTS[:4])

    failed.locator("a:has-text('Retry')").click()
    page.wait_for_function(LOADED, timeout=20_000)
    assert failed.locator(".js-plotly-plot").count() == 1
    assert page.locator(".js-plotly-plot").count() == 6
    page.screenshot(path=str(artifacts_dir / "dashboards-lazy-charts.png"), full_page=True)

    # The only error the console saw is the one failed request (the browser reports its status).
    assert [e for e in page.console_errors if "503" not in e] == []
    assert page.dialogs == []
    assert external == []


def test_without_javascript_each_card_links_to_its_chart(live_server, browser_page, board):
    context = browser_page.context.browser.new_context(java_script_enabled=False)
    try:
        page = context.new_page()
        sign_in(page, live_server.url, "pia")
        page.goto(f"{live_server.url}/dashboards/d/{board.slug}/")
        first = page.locator(".chart-card").first

        first.locator("a:has-text('Open it on its own page')").click()

        page.wait_for_url("**/charts/*/")
        assert page.inner_text("h1") == "Chart of search_made"
        assert page.locator(".series-table tbody tr").count() >= 1
    finally:
        context.close()


def test_without_javascript_no_card_says_it_is_busy(live_server, browser_page, board):
    # A busy region may be kept from screen readers until it is done: without the script, never.
    context = browser_page.context.browser.new_context(java_script_enabled=False)
    try:
        page = context.new_page()
        sign_in(page, live_server.url, "pia")
        page.goto(f"{live_server.url}/dashboards/d/{board.slug}/")

        assert page.locator(".chart-card").count() == 6
        assert page.locator("[aria-busy='true']").count() == 0
    finally:
        context.close()


def test_a_chart_retried_from_the_keyboard_keeps_the_focus_in_its_card(
    live_server, browser_page, board, watched_reads
):
    page = browser_page
    sign_in(page, live_server.url, "pia")
    page.goto(f"{live_server.url}/dashboards/d/{board.slug}/")
    page.wait_for_function(LOADED, timeout=20_000)
    failed = page.locator(".chart-card").nth(5)

    failed.locator("a:has-text('Retry')").focus()
    page.keyboard.press("Enter")
    page.wait_for_function(LOADED, timeout=20_000)

    assert failed.locator(".js-plotly-plot").count() == 1
    assert failed.evaluate("(card) => card.contains(document.activeElement)")
