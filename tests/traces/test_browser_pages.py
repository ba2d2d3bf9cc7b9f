"""Support's pages in a real headless Chromium: very long IDs and right-to-left overrides sent by services
must not break the layout or the reading of the text around them; no page logs a console error."""

from datetime import timedelta
from urllib.parse import urlencode

import pytest
from django.utils import timezone

from tests.conftest import sign_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

LONG_CID = "c" * 200  # the longest correlation ID ingestion accepts
LONG_UID = "u" * 200  # the longest user ID
RLO = "\u202e"  # RIGHT-TO-LEFT OVERRIDE, never closed: a hostile (or careless) service's event name
RTL_EVENT = f"بحث_مُنجز_{RLO}שלום"


def recent(hours: float) -> str:
    return (timezone.now() - timedelta(hours=hours)).isoformat()


@pytest.fixture
def support_person(make_person):
    from django.contrib.auth.models import Group

    person = make_person("product", "sam")
    person.groups.add(Group.objects.get_or_create(name="support")[0])
    return person


@pytest.fixture
def long_ids(aggregate_events):
    return aggregate_events(
        [
            {"service": "gateway", "event": "search_made", "correlation_id": LONG_CID, "user_id": LONG_UID,
             "timestamp": recent(2), "properties": {"plan": "p" * 300}},
            {"service": "search-api", "type": "log", "level": "error", "message": "upstream timeout",
             "correlation_id": LONG_CID, "user_id": LONG_UID, "timestamp": recent(1.5)},
        ]
    )  # fmt: skip


def overflow(page) -> int:
    """How many pixels the page is wider than the window (a horizontal scroll bar when > 0)."""
    return page.evaluate("document.documentElement.scrollWidth - window.innerWidth")


@pytest.mark.parametrize(
    "path",
    [
        f"/traces/?{urlencode({'user_id': LONG_UID, 'range': '7d'})}",
        f"/users/{LONG_UID}/",
        f"/traces/{LONG_CID}/",
        f"/traces/?q={LONG_UID}",  # the paste box opens the user's page, saying what it looked up
    ],
)
def test_the_longest_ids_stay_within_the_page(live_server, browser_page, support_person, long_ids, path):
    page = browser_page
    sign_in(page, live_server.url, "sam")

    response = page.goto(live_server.url + path)

    assert response.status == 200
    assert page.locator(f"text={LONG_CID[:40]}").count() >= 1
    assert overflow(page) <= 0, f"{path} is {overflow(page)} px wider than the window"
    assert page.console_errors == []


# Where each character of the first `.message` is drawn, left to right on the screen.
CHARACTER_X = """(selector) => {
  const node = document.querySelector(selector).firstChild;
  return Array.from(node.textContent).map((_, i) => {
    const range = document.createRange();
    range.setStart(node, i);
    range.setEnd(node, i + 1);
    return range.getBoundingClientRect().left;
  });
}"""


def test_a_right_to_left_override_in_an_event_name_does_not_reverse_the_message(
    live_server, browser_page, support_person, aggregate_events
):
    aggregate_events(
        [{"service": "search-api", "type": "log", "level": "error", "event": RTL_EVENT, "message": "boom",
          "correlation_id": "req-rtl", "timestamp": recent(1)}]
    )  # fmt: skip
    page = browser_page
    sign_in(page, live_server.url, "sam")

    page.goto(f"{live_server.url}/traces/req-rtl/")
    xs = page.evaluate(CHARACTER_X, ".what .message")

    # "boom" must read b-o-o-m from left to right, not "moob".
    assert xs == sorted(xs), f"the message is drawn right to left: x = {xs}"
