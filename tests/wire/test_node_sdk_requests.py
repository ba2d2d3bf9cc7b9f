"""Requests exactly as the Node.js SDKs send them, captured from the real SDKs against a local listener:
@segment/analytics-node 3.1.0, posthog-node 5.74.0 and @opentelemetry/exporter-logs-otlp-http 0.301.2
(with @opentelemetry/sdk-logs 3.1.1), on Node 20. Only the key and the times are put in at run time.

Each of these was refused (404 or 400) and the SDK dropped the batch: analytics-node resolves its `host`
against an absolute path, posthog-node's `captureAi` posts to a path of its own, and the OTLP JSON
exporter writes what JSON.stringify writes (a lone surrogate as an escape, any integral Number as an
`intValue`, even beyond int64) where its protobuf twin writes U+FFFD and a `doubleValue`.
"""

import gzip
import json
from datetime import UTC

import pytest
from django.utils import timezone

from apps.ingest.models import RawEvent
from tests.wire.conftest import post, post_chunked

pytestmark = pytest.mark.django_db


def now_iso() -> str:
    """The time as JavaScript's Date.toISOString() writes it."""
    return timezone.now().astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def captured(template: str, key: str) -> str:
    return template.replace("KEY", key).replace("NOW", now_iso())


# --- @segment/analytics-node ------------------------------------------------------------------------------

# new Analytics({writeKey, host: "<portal>/segment"}): the SDK makes its URL as new URL("/v1/batch", host),
# which drops the host's path, so it posts to <portal>/v1/batch.
SEGMENT_NODE_HEADERS = {
    "HTTP_USER_AGENT": "analytics-node-next/latest",
    "HTTP_ACCEPT": "*/*",
    "HTTP_ACCEPT_ENCODING": "gzip, deflate",
}
SEGMENT_NODE_BATCH = (
    '{"batch":[{"timestamp":"NOW","integrations":{},"event":"Invoice Paid","type":"track","properties":'
    '{"amount":12,"correlation_id":"seg-node-1"},"context":{"library":{"name":"@segment/analytics-node",'
    '"version":"3.1.0"}},"userId":"user-7","messageId":"node-next-1796416680176-9816a60d-d1cf-472f-9f2d-'
    '2ca0b52330af","_metadata":{"nodeVersion":"v20.20.2","jsRuntime":"node"}},{"timestamp":"NOW",'
    '"integrations":{},"type":"identify","userId":"user-7","traits":{"plan":"pro"},"context":{"library":'
    '{"name":"@segment/analytics-node","version":"3.1.0"}},"messageId":"node-next-1796416680177-a60dd1cf-'
    'd72f-4f2d-aca0-b52330af64e1","_metadata":{"nodeVersion":"v20.20.2","jsRuntime":"node"}}],'
    '"writeKey":"KEY","sentAt":"NOW"}'
)


def segment_basic(key: str) -> dict[str, str]:
    import base64

    return {"HTTP_AUTHORIZATION": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}


@pytest.mark.parametrize("path", ["/v1/batch", "/segment/v1/batch"])
def test_analytics_node_batch_given_host_portal_segment_is_stored(client, make_key, path):
    """/v1/batch is where analytics-node posts given host=<portal>/segment (or host=<portal>)."""
    _, key = make_key(service="billing", stage="staging")

    response = post(
        client,
        path,
        raw=captured(SEGMENT_NODE_BATCH, key),
        headers={**SEGMENT_NODE_HEADERS, **segment_basic(key)},
    )

    assert response.status_code == 200, response.content
    assert response.json() == {"success": True, "accepted": 2, "duplicates": 0, "rejected": []}
    stored = {e.event: e for e in RawEvent.objects.all()}
    assert set(stored) == {"Invoice Paid", "identify"}
    paid = stored["Invoice Paid"]
    assert (paid.service, paid.stage, paid.user_id, paid.correlation_id) == (
        "billing",
        "staging",
        "user-7",
        "seg-node-1",
    )
    assert paid.properties["original_event_id"].startswith("node-next-1796416680176-")
    assert stored["identify"].properties["traits"] == {"plan": "pro"}
    assert "writeKey" not in json.dumps(paid.properties)


def test_analytics_node_batch_at_the_root_path_needs_the_write_key(client, make_key):
    make_key()

    response = post(client, "/v1/batch", raw=captured(SEGMENT_NODE_BATCH, "swk_deadbeef_wrong"))

    assert response.status_code == 401
    assert response.json()["code"] == "authentication_failed"
    assert RawEvent.objects.count() == 0


# --- posthog-node -----------------------------------------------------------------------------------------

# posthog.captureAi({...}) (and @posthog/ai's wrappers): the /batch/ body, gzip'd, to /i/v0/ai/batch/.
POSTHOG_NODE_HEADERS = {
    "HTTP_USER_AGENT": "posthog-node/5.74.0",
    "HTTP_CONTENT_ENCODING": "gzip",
    "HTTP_ACCEPT": "*/*",
}
POSTHOG_NODE_AI_BATCH = (
    '{"api_key":"KEY","batch":[{"event":"$ai_generation","properties":{"$ai_model":"gpt-4o-mini",'
    '"$ai_input_tokens":12,"$ai_trace_id":"trace-1","$lib":"posthog-node","$lib_version":"5.74.0",'
    '"$is_server":true,"$geoip_disable":true},"timestamp":"NOW","uuid":"01a242c7-32b7-7e93-abf6-'
    '89132082c618","distinct_id":"user-42"}],"sent_at":"NOW"}'
)


@pytest.mark.parametrize("path", ["/posthog/i/v0/ai/batch/", "/posthog/i/v0/ai/batch"])
def test_posthog_node_capture_ai_batch_is_stored(client, make_key, path):
    _, key = make_key(service="assistant", stage="prod")

    response = post(
        client,
        path,
        raw=gzip.compress(captured(POSTHOG_NODE_AI_BATCH, key).encode()),
        headers=POSTHOG_NODE_HEADERS,
    )

    assert response.status_code == 200, response.content
    assert response.json() == {"status": 1, "accepted": 1, "duplicates": 0, "rejected": []}
    stored = RawEvent.objects.get()
    assert str(stored.event_id) == "01a242c7-32b7-7e93-abf6-89132082c618"
    assert (stored.service, stored.event, stored.user_id) == ("assistant", "$ai_generation", "user-42")
    assert stored.properties["$ai_model"] == "gpt-4o-mini"


# --- @opentelemetry/exporter-logs-otlp-http (OTLP JSON) ---------------------------------------------------

# logger.emit({body: "title: " + "Zoë 😀".slice(0, 5), attributes: {title: <the same>}}): half an emoji,
# which JSON.stringify writes as the escape \ud83d; then {"tile.max_bytes": Number.MAX_VALUE, huge: 1e21,
# big: 2 ** 63, zoom: 12}: integral Numbers, all written as intValue (the protobuf exporter writes the first
# three as doubleValue); then a record with nothing odd. Sent chunked, without a Content-Length.
OTLP_JS_HEADERS = {"HTTP_USER_AGENT": "OTel-OTLP-Exporter-JavaScript/0.301.2"}
OTLP_JS_LOGS = (
    '{"resourceLogs":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"tiles-api"}}],'
    '"droppedAttributesCount":0},"scopeLogs":[{"scope":{"name":"tiles.handlers","version":"2.3.0"},'
    '"logRecords":[{"timeUnixNano":"NANOS","observedTimeUnixNano":"NANOS","severityNumber":9,"body":'
    '{"stringValue":"title: Zo\u00eb \\ud83d"},"attributes":[{"key":"title","value":{"stringValue":'
    '"Zo\u00eb \\ud83d"}}],"droppedAttributesCount":0},{"timeUnixNano":"NANOS","observedTimeUnixNano":'
    '"NANOS","severityNumber":9,"body":{"stringValue":"tile rendered"},"attributes":[{"key":'
    '"tile.max_bytes","value":{"intValue":1.7976931348623157e+308}},{"key":"huge","value":{"intValue":'
    '1e+21}},{"key":"big","value":{"intValue":9223372036854776000}},{"key":"zoom","value":{"intValue":12}}],'
    '"droppedAttributesCount":0},{"timeUnixNano":"NANOS","observedTimeUnixNano":"NANOS","severityNumber":'
    '13,"body":{"stringValue":"fine neighbour"},"attributes":[],"droppedAttributesCount":0}]}]}]}'
)


def otlp_js_logs() -> bytes:
    nanos = str(int(timezone.now().timestamp() * 1000) * 1_000_000)
    return OTLP_JS_LOGS.replace("NANOS", nanos).encode("utf-8")


def test_otlp_json_from_the_js_exporter_with_half_an_emoji_and_huge_numbers_is_stored(client, make_key):
    """Stored as the same records sent as protobuf are: U+FFFD for the lone surrogate, the numbers as the
    doubles they were; no 400 that would lose the whole export."""
    _, key = make_key(service="tiles-api", stage="prod")

    response = post_chunked(
        client,
        "/otlp/v1/logs",
        otlp_js_logs(),
        headers={**OTLP_JS_HEADERS, "HTTP_AUTHORIZATION": f"Bearer {key}"},
    )

    assert response.status_code == 200, response.content
    assert response.json() == {}
    stored = {e.message: e for e in RawEvent.objects.all()}
    assert set(stored) == {"title: Zo\u00eb \ufffd", "tile rendered", "fine neighbour"}
    assert stored["title: Zo\u00eb \ufffd"].properties["title"] == "Zo\u00eb \ufffd"
    numbers = stored["tile rendered"].properties
    # JSONB keeps numbers as decimals: an integral double reads back as the int it writes.
    assert tuple(float(numbers[k]) for k in ("tile.max_bytes", "huge", "big", "zoom")) == (
        1.7976931348623157e308,
        1e21,
        9.223372036854776e18,
        12,
    )
    assert isinstance(numbers["zoom"], int)


def test_otlp_json_that_is_still_wrong_after_the_repairs_is_a_400(client, make_key):
    _, key = make_key(service="tiles-api", stage="prod")
    body = otlp_js_logs().replace(b'{"intValue":12}', b'{"intValue":"twelve"}')

    response = post(client, "/otlp/v1/logs", raw=body, headers={"HTTP_AUTHORIZATION": f"Bearer {key}"})

    assert response.status_code == 400
    assert "twelve" in response.json()["message"]
    assert RawEvent.objects.count() == 0
