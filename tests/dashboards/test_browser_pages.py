"""Product's pages in a real headless Chromium: a right-to-left override in a sent name does not reverse a
chart's title; Back shows the settings of the chart drawn; the API documentation logs no CSP violation."""

from datetime import timedelta
from urllib.parse import urlencode

import pytest
from django.utils import timezone

from tests.conftest import sign_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

RLO = "\u202e"  # RIGHT-TO-LEFT OVERRIDE, never closed: a hostile (or careless) service's event name
RTL_EVENT = f"بحث_مُنجز_{RLO}שלום"


def recent(hours: float) -> str:
    return (timezone.now() - timedelta(hours=hours)).isoformat()


# Where each character of `word` is drawn inside the first element matching the selector.
WORD_X = """([selector, word]) => {
  const node = document.querySelector(selector).firstChild;
  const at = node.textContent.indexOf(word);
  return Array.from(word).map((_, i) => {
    const range = document.createRange();
    range.setStart(node, at + i);
    range.setEnd(node, at + i + 1);
    return range.getBoundingClientRect().left;
  });
}"""


def test_a_right_to_left_override_in_one_event_name_does_not_reverse_the_chart_title(
    live_server, browser_page, make_person, aggregate_events
):
    aggregate_events(
        [{"event": RTL_EVENT, "user_id": "u1", "timestamp": recent(1)},
         {"event": "search_made", "user_id": "u1", "timestamp": recent(1)}]
    )  # fmt: skip
    make_person("product", "pia")
    page = browser_page
    sign_in(page, live_server.url, "pia")

    page.goto(f"{live_server.url}/dashboards/?{urlencode([('event', RTL_EVENT), ('event', 'search_made')])}")
    assert "search_made" in page.inner_text(".chart-card h1")
    xs = page.evaluate(WORD_X, [".chart-card h1", "search_made"])

    # The other event's name must read s-e-a-r-c-h from left to right, not "edam_hcraes".
    assert xs == sorted(xs), f"search_made is drawn right to left in the title: x = {xs}"


def test_back_to_the_explorer_shows_the_settings_of_the_chart_it_draws(
    live_server, browser_page, make_person, aggregate_events
):
    aggregate_events(
        [{"service": ("gateway", "tiles")[i % 2], "event": "search_made", "user_id": f"u{i}",
          "timestamp": recent(1 + i)} for i in range(6)]
    )  # fmt: skip
    make_person("product", "pia")
    page = browser_page
    sign_in(page, live_server.url, "pia")
    page.goto(f"{live_server.url}/dashboards/?event=search_made&range=7d&interval=day")
    drawn = "() => { const p = document.querySelector('.js-plotly-plot'); return p && p.data; }"
    page.wait_for_function(drawn)

    # A setting changed but not applied, then another page, then Back.
    page.select_option("#id_breakdown", "service")
    page.click("a:has-text('Saved dashboards')")
    page.wait_for_url("**/dashboards/d/")
    page.go_back()
    page.wait_for_function(drawn)

    # One line is drawn (no breakdown): the form must say so, or at least say it is not applied.
    assert page.evaluate("document.querySelector('.js-plotly-plot').data.length") == 1
    assert page.input_value("#id_breakdown") == "" or page.is_visible(".js-dirty-hint")


def test_the_api_documentation_logs_no_content_security_policy_violation(
    live_server, browser_page, make_person
):
    make_person("product", "pia")
    page = browser_page
    sign_in(page, live_server.url, "pia")

    page.goto(f"{live_server.url}/api/docs/")
    page.wait_for_selector(".opblock-tag")  # swagger-ui has drawn the operations

    assert page.console_errors == []
