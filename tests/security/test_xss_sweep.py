"""XSS sweep: hostile text in every field a service controls, every page opened in headless Chromium.

Zero payloads may execute (no dialog) and none may become markup (no injected element).
"""

from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import pytest

from apps.pipeline.services import aggregate_chunk
from tests.conftest import sign_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PAYLOADS = [
    "<script>alert('x1')</script>",
    "<img src=x onerror=alert('x2')>",
    "<svg onload=alert('x3')>",
    '"><iframe src="javascript:alert(\'x4\')">',
    "javascript:alert('x5')",
    "</title><body onload=alert('x6')>",
    "{{7*7}}<b onmouseover=alert('x7')>hover</b>",
]
INJECTED = "img[src='x'], svg[onload], iframe, b[onmouseover], body[onload], script:not([src]):not([type])"


def test_no_payload_executes_or_becomes_markup_on_any_page(
    live_server, browser_page, store_events, make_person
):
    t0 = datetime.now(tz=UTC) - timedelta(hours=1)
    events = []
    for i, payload in enumerate(PAYLOADS):
        events.append(
            {
                "service": payload[:100],
                "event": payload,
                "correlation_id": f"cid-{i}",
                "user_id": payload,
                "message": payload,
                "timestamp": (t0 + timedelta(seconds=i)).isoformat(),
                "properties": {payload: payload, "nested": {payload: [payload]}, "n": i},
            }
        )
    events.append(
        {
            "service": "gateway",
            "type": "log",
            "level": "error",
            "message": PAYLOADS[1],
            "correlation_id": PAYLOADS[0],
            "timestamp": t0.isoformat(),
        }
    )
    # A trace whose spans carry the payloads in their names, services, messages and attributes: bars and
    # their tooltips on the trail page.
    for i, payload in enumerate(PAYLOADS):
        events.append(
            {
                "service": payload[:100] if i % 2 else "gateway",
                "type": "span",
                "event": payload,
                "span_id": f"{i + 1:016x}",
                "parent_span_id": f"{i:016x}" if i else "",
                "duration_ms": 10.0 * (len(PAYLOADS) - i),
                "level": "error" if i % 3 == 0 else None,
                "message": payload,
                "correlation_id": "cid-spans",
                "timestamp": (t0 + timedelta(milliseconds=i)).isoformat(),
                "properties": {
                    payload: payload,
                    "otel.events": [{"name": payload, "attributes": {payload: 1}}],
                },
            }
        )
    aggregate_chunk(event_ids=store_events(events))
    make_person("admin", "ada")
    page = browser_page
    sign_in(page, live_server.url, "ada")

    urls = [
        "/",
        "/traces/?range=all&service=" + quote(PAYLOADS[0][:100]),
        "/traces/?range=all&text=alert",
        f"/traces/{quote(PAYLOADS[0], safe='')}/",
        "/traces/cid-1/",
        "/traces/cid-2/",
        "/traces/cid-spans/",
        f"/users/{quote(PAYLOADS[1], safe='')}/?range=all",
        f"/traces/cid-1/surrounding/?service={quote(PAYLOADS[1][:100])}&at={quote(t0.isoformat())}&seconds=60",
        "/dashboards/?" + "&".join(f"event={quote(p)}" for p in PAYLOADS) + "&breakdown=service&range=24h",
        f"/dashboards/?event={quote(PAYLOADS[2])}&breakdown=prop:{quote(PAYLOADS[2])}&range=24h",
        "/admin/ingest/rawevent/",
        "/admin/accounts/auditentry/",
        "/keys/",
    ]
    for url in urls:
        response = page.goto(live_server.url + url)
        assert response.status < 500, url
        for details in page.locator("details.props").all()[:3]:  # property trees render on demand
            details.locator("summary").first.click()
        page.wait_for_timeout(150)
        assert page.locator(INJECTED).count() == 0, url

    assert page.dialogs == []
    # A payload that became a script or handler but was stopped by the Content-Security-Policy shows here.
    assert [error for error in page.console_errors if "Content Security Policy" in error] == []
