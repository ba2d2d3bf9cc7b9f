"""GET /api/v1/traces/<id> says when it lists only the first TRAIL_LIMIT events of a request, as the page
does: a script that reads the trail must not take a cut one for the whole request."""

import json
from datetime import UTC, datetime, timedelta

import pytest

from tests.ingest.openapi_validation import response_schema, served_document

pytestmark = pytest.mark.django_db

START = datetime(2026, 11, 25, 10, tzinfo=UTC)


def events(correlation_id: str, count: int) -> list[dict]:
    return [
        {"event": f"step_{i}", "correlation_id": correlation_id, "timestamp": START + timedelta(seconds=i)}
        for i in range(count)
    ]


def test_a_trail_at_the_limit_is_answered_as_cut(support_client, trace_backend, store_events, monkeypatch):
    monkeypatch.setattr("apps.traces.search.base.TRAIL_LIMIT", 3)  # as if the request had 5,001 events
    store_events(events("req-long", 5) + events("req-short", 2))

    long = support_client.get("/api/v1/traces/req-long").json()
    short = support_client.get("/api/v1/traces/req-short").json()
    monkeypatch.setattr("apps.traces.api.DOWNLOAD_PAGES", 1)  # a download holds one page
    # Streamed: a cut trail's download is read a page at a time while it is sent.
    download = json.loads(
        b"".join(support_client.get("/api/v1/traces/req-long", {"download": "true"}).streaming_content)
    )

    assert [e["event"] for e in long["events"]] == ["step_0", "step_1", "step_2"]
    assert long["cut"] is True and download["cut"] is True
    assert short["cut"] is False and len(short["events"]) == 2


def test_the_document_names_cut_as_a_required_boolean(support_client, make_person):
    document = served_document(support_client)

    schema = response_schema(document, "/api/v1/traces/{correlation_id}", "get", 200)
    trace = document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    assert trace["properties"]["cut"]["type"] == "boolean"
    assert "cut" in trace["required"]
