"""From a chart's point to the trails behind it, in a real browser: open the overview, click a point of the
events chart, land on the users page, open a user (as support) and reach one of their trails. Product
without support lands on the same list with no way to the trails. Screenshots go to test-artifacts/."""

from datetime import timedelta
from urllib.parse import parse_qsl, urlsplit

import pytest
from django.contrib.auth.models import Group
from django.core.management import call_command, get_commands
from django.utils import timezone

from tests.conftest import sign_in
from tests.dashboards.test_browser import guard_network

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# Where the events chart's busiest point is, in the page's pixels, and the address it carries.
BUSIEST_POINT = """() => {
  const plot = document.querySelector('.js-plotly-plot');
  const index = plot.data.findIndex((trace) => Array.isArray(trace.customdata));
  const trace = plot.data[index];
  let k = 0;
  trace.y.forEach((v, j) => { if (v > trace.y[k]) k = j; });
  const xa = plot._fullLayout.xaxis, ya = plot._fullLayout.yaxis, box = plot.getBoundingClientRect();
  return {
    x: box.left + xa._offset + xa.l2p(xa.d2l(trace.x[k])),
    y: box.top + ya._offset + ya.l2p(ya.d2l(trace.y[k])),
    link: trace.customdata[k],
    value: trace.y[k],
  };
}"""


@pytest.fixture
def demo_traffic(aggregate_events, settings):
    """The demo traffic when seed_demo is installed (a few days of it), else a small day of searches."""
    if "seed_demo" in get_commands():
        settings.CELERY_TASK_ALWAYS_EAGER = True  # the rollups and the index fill in before the page opens
        call_command("seed_demo", "--days", "3", "--users", "60", "--seed", "7")
        from apps.traces.search import get_trace_backend

        if get_trace_backend().name == "elasticsearch":
            from apps.traces.search.elasticsearch import alias_name, es_client

            es_client().indices.refresh(index=alias_name())
        return
    now = timezone.now()
    events = []
    for i in range(40):
        user = f"user-{i % 6}"
        events.append(
            {
                "service": ("gateway", "search-api")[i % 2],
                "event": "search_made",
                "user_id": user,
                "correlation_id": f"req-{i:03d}",
                "timestamp": (now - timedelta(hours=i % 3, minutes=i)).isoformat(),
            }
        )
    aggregate_events(events)


def click_busiest_point(page) -> dict:
    page.wait_for_function("document.querySelectorAll('.js-plotly-plot').length >= 1")
    page.wait_for_function(
        "() => { const p = document.querySelector('.js-plotly-plot'); return p && p.data && p._fullLayout; }"
    )
    point = page.evaluate(BUSIEST_POINT)
    assert point["value"] > 0
    page.mouse.move(point["x"], point["y"])
    page.mouse.click(point["x"], point["y"])
    page.wait_for_url("**/dashboards/users/?**")
    return point


def test_click_a_point_then_a_user_then_reach_their_trail(
    live_server, browser_page, make_person, demo_traffic, artifacts_dir
):
    person = make_person("product", "sia")
    person.groups.add(Group.objects.get_or_create(name="support")[0])
    page = browser_page
    external = guard_network(page)
    sign_in(page, live_server.url, "sia")  # lands on the overview

    point = click_busiest_point(page)

    assert page.url == live_server.url + point["link"]
    assert dict(parse_qsl(urlsplit(page.url).query))["breakdown"] == "event"
    rows = page.locator(".point-users-table tbody tr")
    assert rows.count() >= 1
    counts = [int(c) for c in page.locator(".point-users-table tbody td:nth-child(3)").all_inner_texts()]
    assert counts == sorted(counts, reverse=True)  # most active first
    page.screenshot(path=str(artifacts_dir / "users-behind-point.png"), full_page=True)

    first_user = page.locator(".point-users-table td.user-id a").first
    user_id = first_user.inner_text()
    first_user.click()
    page.wait_for_url("**/users/**")
    assert user_id in page.inner_text("h1")
    page.screenshot(path=str(artifacts_dir / "users-behind-user.png"), full_page=True)

    page.locator("table.requests tbody a").first.click()
    page.wait_for_url("**/traces/**")
    assert user_id in page.content()
    page.screenshot(path=str(artifacts_dir / "users-behind-trail.png"), full_page=True)

    assert page.console_errors == []
    assert page.dialogs == []
    assert external == []


def test_product_alone_lands_on_the_list_without_trails(
    live_server, browser_page, make_person, demo_traffic, artifacts_dir
):
    make_person("product", "pia")
    page = browser_page
    external = guard_network(page)
    sign_in(page, live_server.url, "pia")

    click_busiest_point(page)

    assert page.locator(".point-users-table tbody tr").count() >= 1
    assert page.locator(".point-users-table a").count() == 0
    assert page.locator("a[href^='/traces/']:not([href='/traces/']), a[href^='/users/']").count() == 0
    page.screenshot(path=str(artifacts_dir / "users-behind-point-product.png"), full_page=True)
    assert page.console_errors == []
    assert external == []


def test_a_click_on_an_explorer_bar_opens_the_users_of_that_bar(
    live_server, browser_page, make_person, demo_traffic, artifacts_dir
):
    make_person("product", "pia")
    page = browser_page
    guard_network(page)
    sign_in(page, live_server.url, "pia")
    page.goto(f"{live_server.url}/dashboards/?event=search_made&range=7d&interval=day&chart=bar")

    point = click_busiest_point(page)

    assert page.url == live_server.url + point["link"]
    note = page.locator(".without-user")
    without_user = int(note.get_attribute("data-count")) if note.count() else 0
    events = []
    while True:  # every page of the list (25 users a page)
        events += [int(c) for c in page.locator(".point-users-table tbody td:nth-child(3)").all_inner_texts()]
        more = page.locator("nav.pager a", has_text="less active")
        if not more.count():
            break
        with page.expect_navigation():
            more.click()
    assert sum(events) + without_user == point["value"]  # the bar's events: listed, or said to have no user
    assert page.console_errors == []


POINT_OF_SERIES = """(name) => {
  const plot = document.querySelector('.js-plotly-plot');
  const trace = plot.data.find((t) => t.name === name);
  const k = trace.y.findIndex((v) => v > 0);
  const xa = plot._fullLayout.xaxis, ya = plot._fullLayout.yaxis, box = plot.getBoundingClientRect();
  return {
    x: box.left + xa._offset + xa.l2p(xa.d2l(trace.x[k])),
    y: box.top + ya._offset + ya.l2p(ya.d2l(trace.y[k])),
    link: trace.customdata[k],
  };
}"""


def test_with_several_lines_a_click_opens_the_line_under_the_pointer(
    live_server, browser_page, make_person, aggregate_events
):
    """The chart's hover is unified on x, so a click reports every line at that time: the one under the
    pointer wins."""
    hour_ago = timezone.now() - timedelta(hours=1)
    aggregate_events(
        [
            {
                "service": "gateway",
                "event": "search_made",
                "user_id": f"g{i}",
                "timestamp": hour_ago.isoformat(),
            }
            for i in range(6)
        ]
        + [
            {
                "service": "search-api",
                "event": "search_made",
                "user_id": "s0",
                "timestamp": hour_ago.isoformat(),
            }
        ]
    )
    make_person("product", "pia")
    page = browser_page
    sign_in(page, live_server.url, "pia")
    chart = f"{live_server.url}/dashboards/?event=search_made&range=24h&interval=hour&breakdown=service"

    for name, users in (("search-api", ["s0"]), ("gateway", [f"g{i}" for i in range(6)])):
        page.goto(chart)
        page.wait_for_function(
            "() => { const p = document.querySelector('.js-plotly-plot'); return p && p._fullLayout; }"
        )
        point = page.evaluate(POINT_OF_SERIES, name)
        page.mouse.move(point["x"], point["y"])
        page.mouse.click(point["x"], point["y"])
        page.wait_for_url("**/dashboards/users/?**")

        assert page.url == live_server.url + point["link"]
        assert dict(parse_qsl(urlsplit(page.url).query))["value"] == name
        assert page.locator(".point-users-table td.user-id").all_inner_texts() == users
    assert page.console_errors == []
