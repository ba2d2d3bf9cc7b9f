"""The support pages in a real headless Chromium with what big incidents send: a 32 KB line of one unbroken
token stays one short row until asked, then shows whole inside the page's width."""

from datetime import UTC, datetime, timedelta

import pytest

from tests.conftest import sign_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

T0 = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
HUGE = "A" * 30_000


def test_a_32_kb_line_is_one_short_row_until_show_all_opens_it_within_the_page(
    live_server, browser_page, store_events, make_person
):
    make_person("support", "sam")
    store_events(
        [
            {"service": "gateway", "type": "log", "level": "error", "message": HUGE,
             "correlation_id": "req-huge", "timestamp": T0.isoformat()},
            {"service": "gateway", "type": "log", "message": "after", "correlation_id": "req-huge",
             "timestamp": (T0 + timedelta(seconds=1)).isoformat()},
        ]
    )  # fmt: skip
    page = browser_page
    sign_in(page, live_server.url, "sam")

    page.goto(f"{live_server.url}/traces/req-huge/")

    row = page.locator("#ev-0")
    assert row.bounding_box()["height"] < 400  # the start of the line, not 30,000 characters wrapped
    assert page.locator("#ev-0 details.message-all .message").is_hidden()
    page.click("#ev-0 details.message-all summary")
    whole = page.locator("#ev-0 details.message-all .message")
    assert whole.inner_text() == HUGE
    assert whole.bounding_box()["height"] < 900  # scrolls inside its box instead of filling screens
    assert page.evaluate("document.documentElement.scrollWidth - window.innerWidth") <= 0
    assert page.console_errors == []
