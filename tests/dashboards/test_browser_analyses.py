"""The funnel and the retention heatmap drawn by plotly in a real browser under the strict CSP: no console
errors, nothing fetched from elsewhere, and a saved funnel drawn on its dashboard."""

import pytest

from tests.conftest import sign_in
from tests.dashboards.test_browser import guard_network, recent

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def paths(store_events):
    events = []
    for i in range(6):
        events.append({"event": "search_made", "user_id": f"u{i}", "timestamp": recent(30 + i)})
        if i % 2 == 0:
            events.append({"event": "report_exported", "user_id": f"u{i}", "timestamp": recent(29 + i)})
    return store_events(events)


def drawn_type(page) -> str:
    page.wait_for_function(
        "() => { const p = document.querySelector('.js-plotly-plot'); return p && p.data; }"
    )
    return page.evaluate("document.querySelector('.js-plotly-plot').data[0].type")


def test_funnel_and_retention_are_drawn_and_a_funnel_saved(
    live_server, browser_page, make_person, paths, artifacts_dir
):
    make_person("product", "pia")
    page = browser_page
    external = guard_network(page)
    sign_in(page, live_server.url, "pia")

    page.goto(
        f"{live_server.url}/dashboards/?analysis=funnel&steps=search_made,report_exported&window=7200&range=7d"
    )
    assert drawn_type(page) == "funnel"
    assert page.locator(".js-plotly-plot .funnellayer path").count() > 0
    assert "50.0 %" in page.inner_text(".funnel-table")
    page.screenshot(path=str(artifacts_dir / "dashboards-funnel.png"), full_page=True)

    page.fill("#id_new_name", "Product")
    page.click("button:has-text('Save chart')")
    page.wait_for_url(f"{live_server.url}/dashboards/d/product/")
    assert drawn_type(page) == "funnel"

    page.goto(
        f"{live_server.url}/dashboards/?analysis=retention&start_event=search_made&return_event=report_exported"
        "&interval=day&range=7d"
    )
    assert drawn_type(page) == "heatmap"
    assert page.locator(".retention-table tbody tr").count() == 8  # 7 days back, aligned to whole days
    page.screenshot(path=str(artifacts_dir / "dashboards-retention.png"), full_page=True)

    assert page.console_errors == []
    assert page.dialogs == []
    assert external == []
