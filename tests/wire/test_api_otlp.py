"""POST /otlp/v1/logs and /otlp/v1/traces as an OTLP/HTTP exporter sees them: protobuf and OTLP JSON bodies,
the mapping onto canonical events, and every answer the OTLP specification prescribes."""

import gzip
import json
from datetime import UTC, datetime

import pytest
from django.db import OperationalError
from google.protobuf import json_format
from google.rpc import error_details_pb2, status_pb2
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from opentelemetry.proto.trace.v1.trace_pb2 import Status

from apps.accounts.actors import Actor
from apps.ingest.models import RawEvent
from apps.ingest.services import service_key_revoke
from apps.wire import services as wire_services
from tests.wire.conftest import post, post_chunked
from tests.wire.otlp_messages import (
    PARENT_SPAN_ID,
    SPAN_ID,
    TRACE_ID,
    json_logs,
    json_spans,
    log_record,
    logs_request,
    now_nanos,
    span,
    traces_request,
)

pytestmark = pytest.mark.django_db

PROTOBUF = "application/x-protobuf"
TRACE_HEX = TRACE_ID.hex()


def bearer(key: str) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Bearer {key}"}


def send(client, path, body: bytes, key: str | None, *, content_type=PROTOBUF, headers=None):
    return post(
        client,
        path,
        raw=body,
        content_type=content_type,
        headers={**(bearer(key) if key else {}), **(headers or {})},
    )


def status_of(response) -> status_pb2.Status:
    """Return the google.rpc.Status of a failure, read in the encoding the answer says it has."""
    if response["Content-Type"] == PROTOBUF:
        return status_pb2.Status.FromString(response.content)
    return json_format.Parse(response.content, status_pb2.Status())


# --- the mapping, from bodies shaped like the specification's examples -----------------------------------


def test_otlp_json_log_records_are_stored_with_the_mapping(client, make_key):
    _, key = make_key(service="search-api", stage="prod")
    moment = datetime(2026, 11, 26, 10, 15, 0, 123456, tzinfo=UTC)
    nanos = int(moment.timestamp()) * 10**9 + 123456789

    response = send(
        client, "/otlp/v1/logs", json_logs(time_unix_nano=nanos), key, content_type="application/json"
    )

    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "application/json"
    assert response.json() == {}  # full success: partial_success left unset
    stored = RawEvent.objects.get()
    assert (stored.service, stored.stage, stored.type, stored.event) == ("search-api", "prod", "log", "log")
    assert (stored.message, stored.level, stored.user_id) == ("Example log record", "info", "user-7")
    assert stored.correlation_id == TRACE_HEX  # hex, read case-insensitively, stored as W3C writes it
    assert stored.timestamp == moment
    assert stored.properties == {
        "string.attribute": "some string",
        "boolean.attribute": True,
        "int.attribute": 10,
        "double.attribute": 637.704,
        "array.attribute": ["many", "values"],
        "map.attribute": {"some.map.key": "some value"},
        "my.scope.attribute": "some scope attribute",
        "otel.scope.name": "my.library",
        "otel.scope.version": "1.0.0",
        "otel.span_id": SPAN_ID.hex(),
    }
    assert (stored.span_id, stored.duration_ms) == ("", None)


def test_otlp_json_spans_are_stored_as_spans(client, make_key):
    _, key = make_key(service="search-api", stage="prod")
    start = now_nanos(5)

    response = send(client, "/otlp/v1/traces", json_spans(start=start), key, content_type="application/json")

    assert (response.status_code, response.json()) == (200, {}), response.content
    stored = RawEvent.objects.get()
    assert (stored.type, stored.event, stored.user_id) == ("span", "I'm a server span", "user-7")
    assert (stored.span_id, stored.parent_span_id) == (SPAN_ID.hex(), PARENT_SPAN_ID.hex())
    assert (stored.duration_ms, stored.correlation_id, stored.level) == (1000.0, TRACE_HEX, "")
    assert stored.timestamp.timestamp() == pytest.approx(start / 1e9, abs=1e-6)
    assert stored.properties["otel.span.kind"] == "server"
    assert stored.properties["my.span.attr"] == "some value"


def test_an_error_status_makes_an_error_span_with_its_message(client, make_key):
    _, key = make_key()
    failed = span(status=Status(code=Status.STATUS_CODE_ERROR, message="upstream timed out"))

    response = send(client, "/otlp/v1/traces", traces_request(failed).SerializeToString(), key)

    assert response.status_code == 200
    stored = RawEvent.objects.get()
    assert (stored.level, stored.message, stored.properties["otel.status_code"]) == (
        "error",
        "upstream timed out",
        "error",
    )


def test_protobuf_is_answered_in_protobuf(client, make_key):
    _, key = make_key()
    body = logs_request(log_record("one"), log_record("two")).SerializeToString()

    response = send(client, "/otlp/v1/logs", body, key)

    assert (response.status_code, response["Content-Type"]) == (200, PROTOBUF)
    answer = ExportLogsServiceResponse.FromString(response.content)
    assert not answer.HasField("partial_success")
    assert sorted(RawEvent.objects.values_list("message", flat=True)) == ["one", "two"]


@pytest.mark.parametrize(
    ("path", "body", "answer_type"),
    [
        ("/otlp/v1/traces", lambda: traces_request(span()), ExportTraceServiceResponse),
        ("/otlp/v1/logs", lambda: logs_request(log_record()), ExportLogsServiceResponse),
    ],
    ids=["traces", "logs"],
)
def test_an_export_that_accepts_only_protobuf_is_stored_not_406(client, make_key, path, body, answer_type):
    # As the browser build of opentelemetry-js's proto exporter sent it; a 406 is not retried.
    _, key = make_key()

    response = send(client, path, body().SerializeToString(), key, headers={"HTTP_ACCEPT": PROTOBUF})

    assert (response.status_code, response["Content-Type"]) == (200, PROTOBUF)
    assert not answer_type.FromString(response.content).HasField("partial_success")
    assert RawEvent.objects.count() == 1


def test_severity_numbers_and_texts_become_levels(client, make_key):
    _, key = make_key()
    records = [
        log_record("n", severity_number=13, severity_text="WARN"),
        log_record("t", severity_text="FATAL"),
        log_record("odd", severity_text="Loud"),
        log_record({"structured": [1, 2]}),
    ]

    send(client, "/otlp/v1/logs", logs_request(*records).SerializeToString(), key)

    stored = {e.message: e for e in RawEvent.objects.all()}
    assert [stored[m].level for m in ("n", "t", "odd")] == ["warning", "critical", "info"]
    assert stored["odd"].properties["otel.severity_text"] == "Loud"
    assert '{"structured": [1, 2]}' in stored
    assert "otel.severity_text" not in stored["n"].properties


def test_a_record_without_a_trace_id_takes_its_correlation_id_attribute_or_the_header(client, make_key):
    _, key = make_key()
    records = [log_record("attribute", attributes={"correlation_id": "req-1"}), log_record("header")]

    send(
        client,
        "/otlp/v1/logs",
        logs_request(*records).SerializeToString(),
        key,
        headers={"HTTP_X_CORRELATION_ID": "req-2"},
    )

    assert dict(RawEvent.objects.values_list("message", "correlation_id")) == {
        "attribute": "req-1",
        "header": "req-2",
    }


def test_unknown_service_is_the_keys_service_and_another_service_needs_a_forwarder(client, make_key):
    _, key = make_key(service="search-api", stage="prod")
    _, shipper = make_key(service="collector", stage="prod", forwarder=True)
    default = logs_request(log_record("sdk default"), resource={"service.name": "unknown_service:python"})
    other = logs_request(
        log_record("for tiles"), resource={"service.name": "tiles", "deployment.environment": "prod"}
    )

    answers = [
        send(client, "/otlp/v1/logs", default.SerializeToString(), key),
        send(client, "/otlp/v1/logs", other.SerializeToString(), key),
        send(client, "/otlp/v1/logs", other.SerializeToString(), shipper),
    ]

    assert [a.status_code for a in answers] == [200, 200, 200]
    refused = ExportLogsServiceResponse.FromString(answers[1].content).partial_success
    assert refused.rejected_log_records == 1
    assert "resource.service.name: this key sends for search-api/prod only" in refused.error_message
    assert sorted(RawEvent.objects.values_list("service", "message")) == [
        ("search-api", "sdk default"),
        ("tiles", "for tiles"),
    ]


# --- idempotency -----------------------------------------------------------------------------------------


def test_a_retried_export_is_stored_once_whatever_its_encoding(client, make_key):
    _, key = make_key()
    logs = logs_request(log_record("a"), log_record("b", trace_id=TRACE_ID))
    spans = traces_request(span("root", span_id=PARENT_SPAN_ID), span("child", parent_span_id=PARENT_SPAN_ID))

    for _ in range(2):
        assert send(client, "/otlp/v1/logs", logs.SerializeToString(), key).status_code == 200
        assert send(client, "/otlp/v1/traces", spans.SerializeToString(), key).status_code == 200
    as_json = json_format.MessageToJson(logs).encode()  # base64 ids in protobuf's mapping: rewrite as hex
    as_json = as_json.replace(b'"W47/95gDgQPSabYzgT/GDA=="', f'"{TRACE_HEX}"'.encode())
    again = send(client, "/otlp/v1/logs", as_json, key, content_type="application/json")

    assert again.status_code == 200, again.content
    assert RawEvent.objects.filter(type="log").count() == 2
    assert RawEvent.objects.filter(type="span").count() == 2


def test_two_records_that_differ_only_in_time_are_two_events(client, make_key):
    _, key = make_key()
    nanos = now_nanos()
    body = logs_request(
        log_record("same", time_unix_nano=nanos), log_record("same", time_unix_nano=nanos + 1)
    )

    send(client, "/otlp/v1/logs", body.SerializeToString(), key)

    assert RawEvent.objects.count() == 2


# --- partial success -------------------------------------------------------------------------------------


def test_one_bad_log_record_is_refused_by_name_and_the_rest_stored(client, make_key):
    _, key = make_key()
    ancient = int(datetime(1990, 1, 1, tzinfo=UTC).timestamp()) * 10**9
    body = logs_request(
        log_record("first"), log_record("ancient", time_unix_nano=ancient), log_record("third")
    )

    response = send(client, "/otlp/v1/logs", body.SerializeToString(), key)

    assert response.status_code == 200
    partial = ExportLogsServiceResponse.FromString(response.content).partial_success
    assert partial.rejected_log_records == 1
    assert partial.error_message.startswith("1 of 3 log records refused: ")
    assert "resource_logs[0].scope_logs[0].log_records[1]: time_unix_nano: " in partial.error_message
    assert "time_unix_nano: '1990-01-01T00:00:00+00:00' is before 2000-01-01" in partial.error_message
    assert sorted(RawEvent.objects.values_list("message", flat=True)) == ["first", "third"]


@pytest.mark.parametrize("sent", [12.5, True, ["u-1", "u-2"]])
def test_a_user_id_attribute_that_is_not_an_id_is_kept_and_the_record_stored(client, make_key, sent):
    # enduser.id as a double, a bool or an array names no user: the log line is still what support needs.
    _, key = make_key()
    body = logs_request(log_record("payment declined", attributes={"enduser.id": sent, "region": "eu"}))

    response = send(client, "/otlp/v1/logs", body.SerializeToString(), key)

    assert response.status_code == 200
    assert not ExportLogsServiceResponse.FromString(response.content).HasField("partial_success")
    stored = RawEvent.objects.get()
    assert (stored.message, stored.user_id) == ("payment declined", "")
    assert stored.properties["enduser.id"] == sent and stored.properties["region"] == "eu"


def test_spans_with_bad_ids_or_times_are_refused_and_answered_in_json(client, make_key):
    _, key = make_key()
    start = now_nanos(2)
    good = json.loads(json_spans(start=start))
    spans = good["resourceSpans"][0]["scopeSpans"][0]["spans"]
    spans.append({**spans[0], "spanId": "ABCDEF", "name": "short id"})
    spans.append(
        {**spans[0], "spanId": "1111111111111111", "endTimeUnixNano": start - 1, "name": "ends early"}
    )

    response = send(
        client, "/otlp/v1/traces", json.dumps(good).encode(), key, content_type="application/json"
    )

    assert response.status_code == 200
    partial = response.json()["partialSuccess"]
    assert int(partial["rejectedSpans"]) == 2
    assert "spans[1]: span_id: must be 8 bytes (16 hex digits), got 3 bytes" in partial["errorMessage"]
    assert (
        "spans[2]: end_time_unix_nano: must be a finite number of milliseconds, at least 0"
        in partial["errorMessage"]
    )
    assert list(RawEvent.objects.values_list("event", flat=True)) == ["I'm a server span"]


# --- bodies ----------------------------------------------------------------------------------------------


def test_a_gzip_body_of_several_members_is_read_whole(client, make_key):
    # Two exports, each gzip'd, one after the other: the body is both (protobuf messages concatenated merge).
    _, key = make_key()
    body = b"".join(
        gzip.compress(logs_request(log_record(text)).SerializeToString()) for text in ("first", "second")
    )

    response = send(client, "/otlp/v1/logs", body, key, headers={"HTTP_CONTENT_ENCODING": "gzip"})

    assert response.status_code == 200
    assert sorted(RawEvent.objects.values_list("message", flat=True)) == ["first", "second"]


def test_gzip_and_chunked_bodies(client, make_key):
    _, key = make_key()
    zipped = gzip.compress(logs_request(log_record("zipped")).SerializeToString())
    chunked = logs_request(log_record("chunked")).SerializeToString()

    by_header = send(client, "/otlp/v1/logs", zipped, key, headers={"HTTP_CONTENT_ENCODING": "gzip"})
    json_zipped = send(
        client,
        "/otlp/v1/traces",
        gzip.compress(json_spans()),
        key,
        content_type="application/json",
        headers={"HTTP_CONTENT_ENCODING": "gzip"},
    )
    by_chunks = post_chunked(
        client, "/otlp/v1/logs", chunked, headers={**bearer(key), "CONTENT_TYPE": PROTOBUF}
    )

    assert [by_header.status_code, json_zipped.status_code, by_chunks.status_code] == [200, 200, 200]
    assert sorted(RawEvent.objects.values_list("message", flat=True)) == ["", "chunked", "zipped"]


def test_an_empty_export_is_a_success(client, make_key):
    _, key = make_key()

    # An empty protobuf message is zero bytes (the test client sends no Content-Type without a body).
    assert send(client, "/otlp/v1/logs", b"", key, headers={"CONTENT_TYPE": PROTOBUF}).status_code == 200
    assert send(client, "/otlp/v1/traces", b"{}", key, content_type="application/json").json() == {}


@pytest.mark.parametrize(
    ("body", "content_type", "reason"),
    [
        (b"\x0a\xff\xff", PROTOBUF, "is not a protobuf ExportLogsServiceRequest"),
        (b'{"resourceLogs": ', "application/json", "Malformed JSON"),
        (
            b'{"resourceLogs": [{"scopeLogs": [{"logRecords": [{"traceId": "W47/95gDgQPSabYzgT/GDA=="}]}]}]}',
            "application/json",
            "resourceLogs[0].scopeLogs[0].logRecords[0].traceId: 'W47/95gDgQPSabYzgT/GDA==' is not a hex id",
        ),
        (b'{"resourceLogs": {"oops": 1}}', "application/json", "not an OTLP JSON logs request"),
        (b"[]", "application/json", "Send a JSON object with resourceLogs"),
    ],
    ids=["protobuf", "json", "base64-id", "wrong-shape", "array"],
)
def test_a_body_that_does_not_decode_is_400_with_a_status_naming_it(
    client, make_key, body, content_type, reason
):
    _, key = make_key()

    response = send(client, "/otlp/v1/logs", body, key, content_type=content_type)

    assert (response.status_code, response["Content-Type"]) == (400, content_type)
    status = status_of(response)
    assert reason in status.message
    bad = error_details_pb2.BadRequest()
    assert status.details[0].Unpack(bad) and bad.field_violations[0].description == status.message
    assert RawEvent.objects.count() == 0


def test_other_content_types_are_415(client, make_key):
    _, key = make_key()

    response = send(client, "/otlp/v1/logs", b"hello", key, content_type="text/plain")

    assert (response.status_code, response["Content-Type"]) == (415, "application/json")
    assert "send application/x-protobuf or application/json" in status_of(response).message


def test_bodies_and_exports_over_the_limits_are_413(client, make_key, settings):
    _, key = make_key()
    settings.INGEST_MAX_BATCH_EVENTS = 3
    too_big = logs_request(log_record("x" * settings.WIRE_MAX_BODY_BYTES)).SerializeToString()
    too_many = logs_request(*[log_record(str(n)) for n in range(4)]).SerializeToString()

    answers = [send(client, "/otlp/v1/logs", body, key) for body in (too_big, too_many)]

    assert [a.status_code for a in answers] == [413, 413]
    assert "4 events; the limit is 3" in status_of(answers[1]).message
    assert RawEvent.objects.count() == 0


# --- keys, throttling, the database ----------------------------------------------------------------------


def test_no_key_is_401_saying_where_the_key_goes(client, db):
    response = send(client, "/otlp/v1/logs", logs_request(log_record()).SerializeToString(), None)

    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert "Authorization: Bearer" in status_of(response).message


@pytest.mark.parametrize("header", ["Bearer swk_deadbeef_wrong", "Basic c3drOg==", "Bearer "])
def test_a_wrong_key_is_401_and_stores_nothing(client, make_key, header):
    make_key()

    response = send(
        client,
        "/otlp/v1/traces",
        json_spans(),
        None,
        content_type="application/json",
        headers={"HTTP_AUTHORIZATION": header},
    )

    assert (response.status_code, response["Content-Type"]) == (401, "application/json")
    assert status_of(response).message
    assert RawEvent.objects.count() == 0


def test_a_revoked_key_is_403(client, make_key):
    api_key, key = make_key()
    service_key_revoke(api_key=api_key, actor=Actor.command("tests"))

    response = send(client, "/otlp/v1/logs", logs_request(log_record()).SerializeToString(), key)

    assert (response.status_code, response["Content-Type"]) == (403, PROTOBUF)
    assert "revoked" in status_of(response).message
    assert RawEvent.objects.count() == 0


def test_a_throttled_key_gets_429_with_retry_after(client, make_key, settings):
    settings.INGEST_RATE_LIMIT = "1/min"
    _, key = make_key()
    body = traces_request(span()).SerializeToString()

    answers = [send(client, "/otlp/v1/traces", body, key) for _ in range(2)]

    assert [a.status_code for a in answers] == [200, 429]
    assert int(answers[1]["Retry-After"]) >= 1
    assert ExportTraceServiceResponse.FromString(answers[0].content) == ExportTraceServiceResponse()
    assert "throttled" in status_of(answers[1]).message.lower()


def test_with_the_database_down_the_answer_is_503_with_retry_after(client, make_key, monkeypatch):
    _, key = make_key()

    def down(**kwargs):
        raise OperationalError("connection refused")

    monkeypatch.setattr(wire_services, "events_ingest", down)
    response = send(client, "/otlp/v1/logs", logs_request(log_record()).SerializeToString(), key)

    assert (response.status_code, response["Retry-After"]) == (503, "5")
    assert "nothing was stored" in status_of(response).message


def test_the_endpoints_are_in_the_openapi_schema_with_their_tag(admin_client):
    paths = admin_client.get("/api/schema/", HTTP_ACCEPT="application/json").json()["paths"]

    otlp = {path: ops for path, ops in paths.items() if path.startswith("/otlp/")}
    assert set(otlp) == {"/otlp/v1/logs", "/otlp/v1/traces"}
    for ops in otlp.values():
        assert ops["post"]["tags"] == ["otlp"]
        assert set(ops["post"]["requestBody"]["content"]) == {PROTOBUF, "application/json"}
        assert set(ops["post"]["responses"]["200"]["content"]) == {PROTOBUF, "application/json"}
