"""Support staff in a real browser: search a user, open a trail, expand properties; payloads stay text."""

from datetime import UTC, datetime, timedelta

import pytest

from tests.conftest import sign_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

T0 = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
SCRIPT = "<script>alert('xss-script')</script>"
IMG = "<img src=x onerror=alert('xss-img')>"


def test_search_open_expand_and_payloads_shown_as_text(
    live_server, browser_page, store_events, make_person, artifacts_dir
):
    make_person("support", "sam")
    store_events(
        [
            {
                "service": "gateway",
                "event": "request_received",
                "correlation_id": "req-xss",
                "user_id": "u-42",
                "timestamp": T0.isoformat(),
                "message": SCRIPT,
                "properties": {"query": IMG, IMG: {"nested": SCRIPT, "n": 3}, "long": "x" * 1000},
            },
            {
                "service": "download",
                "type": "log",
                "level": "error",
                "message": IMG,
                "correlation_id": "req-xss",
                "timestamp": (T0 + timedelta(seconds=1)).isoformat(),
            },
        ]
    )
    page = browser_page
    sign_in(page, live_server.url, "sam")

    page.goto(f"{live_server.url}/traces/")
    page.fill("#id_user_id", "u-42")
    page.select_option("#id_range", "all")
    page.click("button:has-text('Search')")
    page.click("a:has-text('req-xss')")
    page.wait_for_url("**/traces/req-xss/")
    page.click("details.props summary")
    page.click("details.props .tree summary")  # the nested object, rendered when first opened
    page.click("button.show-all")  # the 1000-character string, truncated until asked

    tree = page.inner_text("details.props")
    assert IMG in tree
    assert SCRIPT in tree
    assert "x" * 1000 in tree
    assert SCRIPT in page.inner_text("table.events")
    assert page.locator("table.events img").count() == 0
    assert page.locator("table.events script").count() == 0
    page.screenshot(path=str(artifacts_dir / "trace-viewer.png"), full_page=True)
    assert page.dialogs == []


def test_a_traceparent_pasted_into_the_header_box_opens_the_trace(
    live_server, browser_page, store_events, make_person, artifacts_dir
):
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    make_person("support", "sam")
    store_events(
        [
            {
                "service": "tiles",
                "type": "span",
                "event": "GET /tiles",
                "span_id": "00f067aa0ba902b7",
                "duration_ms": 12.5,
                "correlation_id": trace_id,
                "timestamp": T0.isoformat(),
            }
        ]
    )
    page = browser_page
    sign_in(page, live_server.url, "sam")

    # From any page (here the overview), the box in the header.
    page.fill("header .paste-box input[name=q]", f"  traceparent: 00-{trace_id}-00f067aa0ba902b7-01 ")
    page.press("header .paste-box input[name=q]", "Enter")
    page.wait_for_url(f"**/traces/{trace_id}/")

    assert page.inner_text("ul.messages") == f"Looked up as trace ID: {trace_id}"
    assert "GET /tiles" in page.inner_text("table.events")
    # The box's stylesheet applied (no CSP refusal): it is not stretched across the header.
    assert page.locator("header .paste-box input").bounding_box()["width"] < 500
    page.screenshot(path=str(artifacts_dir / "paste-box.png"))
    assert page.console_errors == []
