"""A trail longer than one answer (TRAIL_LIMIT events) is read whole by following its cursor: the API's
`next` and `?after=`, the download, and the trace page's link to the rest. Pages neither lose nor repeat an
event, even where many events share one moment."""

import json
import re
from datetime import UTC, datetime, timedelta

import pytest

from apps.ingest.models import RawEvent
from tests.ingest.openapi_validation import served_document

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 11, 25, 10, tzinfo=UTC)


@pytest.fixture
def short_pages(monkeypatch):
    monkeypatch.setattr("apps.traces.search.base.TRAIL_LIMIT", 3)  # as if the request had 5,001 events


@pytest.fixture
def crowded_trail(store_events) -> list[str]:
    """Store a trail of 11 events, 8 of them at one moment (in two batches: two received times), and return
    its event IDs in the trail's order."""
    same = T0.isoformat()
    store_events([{"event": f"a{i}", "correlation_id": "req-crowd", "timestamp": same} for i in range(5)])
    store_events([{"event": f"b{i}", "correlation_id": "req-crowd", "timestamp": same} for i in range(3)])
    store_events(
        [
            {
                "event": f"c{i}",
                "correlation_id": "req-crowd",
                "timestamp": (T0 + timedelta(seconds=i)).isoformat(),
            }
            for i in (-1, 1, 2)
        ]
    )
    return [
        str(event_id)
        for event_id in RawEvent.objects.filter(correlation_id="req-crowd")
        .order_by("timestamp", "received_at", "pk")
        .values_list("event_id", flat=True)
    ]


def body_of(response) -> dict:
    content = b"".join(response.streaming_content) if response.streaming else response.content
    return json.loads(content)


def test_following_next_walks_the_whole_trail_once_in_order(
    support_client, trace_backend, short_pages, crowded_trail
):
    pages, after = [], None
    while len(pages) < 10:
        response = support_client.get("/api/v1/traces/req-crowd", {"after": after} if after else {})
        assert response.status_code == 200, response.content
        pages.append(response.json())
        after = pages[-1]["next"]
        if after is None:
            break

    walked = [event["event_id"] for page in pages for event in page["events"]]
    assert walked == crowded_trail  # none lost, none repeated, the same order as one long read
    assert [len(page["events"]) for page in pages] == [3, 3, 3, 2]
    assert [page["cut"] for page in pages] == [True, True, True, False]
    assert all(isinstance(page["next"], str) for page in pages[:-1])


def test_a_trail_of_exactly_one_page_is_not_cut(support_client, trace_backend, short_pages, store_events):
    store_events(
        [{"event": f"e{i}", "correlation_id": "req-3", "timestamp": T0.isoformat()} for i in range(3)]
    )

    body = support_client.get("/api/v1/traces/req-3").json()

    assert len(body["events"]) == 3
    assert body["cut"] is False and body["next"] is None


@pytest.mark.parametrize(
    "after",
    ["", "nonsense", "1.2", "1.2.3.4", "-1.2.3", "1.2.x", "１.2.3", "12345678901234567.1.1", "1.2.3\n"],
)
def test_a_bad_cursor_is_a_400_naming_after(support_client, store_events, after):
    store_events([{"event": "e", "correlation_id": "req-1", "timestamp": T0.isoformat()}])

    response = support_client.get("/api/v1/traces/req-1", {"after": after})

    assert response.status_code == 400
    body = response.json()
    assert set(body) == {"after"} and "is not a trail cursor" in body["after"]  # ParameterErrors


def test_a_cursor_past_the_last_event_is_a_404(support_client, trace_backend, store_events):
    store_events([{"event": "e", "correlation_id": "req-1", "timestamp": T0.isoformat()}])
    far = int((T0 + timedelta(days=1) - datetime(1970, 1, 1, tzinfo=UTC)).total_seconds() * 1_000_000)

    response = support_client.get("/api/v1/traces/req-1", {"after": f"{far}.{far}.1"})

    assert response.status_code == 404
    assert "after this cursor" in response.json()["detail"]


def test_the_download_holds_the_whole_trail_up_to_its_cap(
    support_client, trace_backend, short_pages, crowded_trail, monkeypatch
):
    whole = support_client.get("/api/v1/traces/req-crowd", {"download": "1"})
    body = body_of(whole)  # read before the cap changes: the file is read from the backend as it is sent
    monkeypatch.setattr("apps.traces.api.DOWNLOAD_PAGES", 2)
    capped = support_client.get("/api/v1/traces/req-crowd", {"download": "1"})

    assert whole.status_code == capped.status_code == 200
    assert whole["Content-Disposition"] == 'attachment; filename="trace-req-crowd.json"'
    assert whole["Content-Type"].startswith("application/json")
    assert [event["event_id"] for event in body["events"]] == crowded_trail
    assert body["cut"] is False and body["next"] is None
    # At the cap the file says so, and its cursor reads on from there.
    body = body_of(capped)
    assert [event["event_id"] for event in body["events"]] == crowded_trail[:6]
    assert body["cut"] is True
    rest = support_client.get("/api/v1/traces/req-crowd", {"after": body["next"]}).json()
    assert [event["event_id"] for event in rest["events"]] == crowded_trail[6:9]


def test_the_trace_pages_cut_notice_links_to_the_rest(
    support_client, trace_backend, short_pages, crowded_trail
):
    html = support_client.get("/traces/req-crowd/").content.decode()
    shown = []
    for _ in range(10):
        shown += re.findall(r"<code>([0-9a-f-]{36})</code> ·", html)
        if 'id="trail-cut"' not in html:
            break
        notice = html[html.index('id="trail-cut"') : html.index("</p>", html.index('id="trail-cut"'))]
        [href] = re.findall(r'<a id="trail-next" href="([^"]+)"', notice)
        assert href.startswith("/traces/req-crowd/?after=")
        response = support_client.get(href.replace("&amp;", "&"))
        assert response.status_code == 200
        html = response.content.decode()
        assert 'href="/traces/req-crowd/"' in html  # back to the start of the request

    assert shown == crowded_trail


def test_a_bad_cursor_on_the_trace_page_is_a_400(support_client, store_events):
    store_events([{"event": "e", "correlation_id": "req-1", "timestamp": T0.isoformat()}])

    response = support_client.get("/traces/req-1/", {"after": "nonsense"})

    assert response.status_code == 400
    assert "cursor" in response.content.decode()


def test_the_document_describes_after_and_next(support_client):
    document = served_document(support_client)

    operation = document["paths"]["/api/v1/traces/{correlation_id}"]["get"]
    [after] = [p for p in operation["parameters"] if p["name"] == "after"]
    assert after["in"] == "query" and after["schema"]["type"] == "string"
    assert re.fullmatch(after["schema"]["pattern"].strip("^$"), "1764064800000000.1764064800000001.42")
    trace = document["components"]["schemas"]["Trace"]
    assert "next" in trace["required"]
    assert trace["properties"]["next"]["type"] == "string" and trace["properties"]["next"]["nullable"]
