"""What support reads in the trace page's property tree is the number the service sent: integers beyond
2^53 (IDs, byte counts, nanosecond times) are not rounded by the browser's JSON.parse."""

import pytest

from tests.conftest import sign_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SENT = {
    "order_id": 12345678901234567891,
    "bytes": 2**63 + 1,
    "nanos": 1795219199999999999,
    "debt": -(2**60) - 1,
    "count": 42,
    "ratio": 0.25,
}


def test_large_integers_are_shown_as_sent(live_server, browser_page, make_person, store_events):
    make_person("support", "sam")
    store_events(
        [{"service": "billing", "event": "charged", "correlation_id": "big-numbers", "properties": SENT}]
    )
    page = browser_page
    sign_in(page, live_server.url, "sam")
    page.goto(f"{live_server.url}/traces/big-numbers/")

    page.click("details.props summary")
    page.locator("details.props .tree li").first.wait_for()
    shown = page.locator("details.props .tree").inner_text()

    for name, value in SENT.items():
        assert f"{name}: {value}" in shown, shown
