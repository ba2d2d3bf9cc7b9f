"""apps/wire/otlp on its own: bodies in (protobuf, OTLP JSON with hex ids), answers out."""

import base64
import json

import pytest
from google.protobuf import json_format
from google.rpc import error_details_pb2, status_pb2

from apps.wire import otlp
from tests.wire.otlp_messages import SPAN_ID, TRACE_ID, log_record, logs_request, span, traces_request


def test_protobuf_bodies_decode_into_the_signals_request():
    sent = traces_request(span("GET /tiles"))

    decoded = otlp.decode(sent.SerializeToString(), signal=otlp.TRACES, media_type=otlp.PROTOBUF)

    assert decoded == sent


def test_otlp_json_hex_ids_in_either_case_and_spelling_are_read_as_bytes():
    body = {
        "resourceSpans": [
            {
                "scopeSpans": [
                    {
                        "spans": [
                            {
                                "traceId": TRACE_ID.hex().upper(),
                                "spanId": SPAN_ID.hex(),
                                "parentSpanId": "",
                                "name": "camel",
                                "links": [{"traceId": TRACE_ID.hex(), "spanId": SPAN_ID.hex().upper()}],
                            }
                        ]
                    }
                ]
            },
            {
                "scope_spans": [
                    {"spans": [{"trace_id": TRACE_ID.hex(), "span_id": SPAN_ID.hex(), "name": "snake"}]}
                ]
            },
        ]
    }

    decoded = otlp.decode(json.dumps(body).encode(), signal=otlp.TRACES, media_type=otlp.JSON)

    camel = decoded.resource_spans[0].scope_spans[0].spans[0]
    snake = decoded.resource_spans[1].scope_spans[0].spans[0]
    assert (camel.trace_id, camel.span_id, camel.parent_span_id) == (TRACE_ID, SPAN_ID, b"")
    assert (camel.links[0].trace_id, camel.links[0].span_id) == (TRACE_ID, SPAN_ID)
    assert (snake.trace_id, snake.span_id, snake.name) == (TRACE_ID, SPAN_ID, "snake")


def test_otlp_json_ignores_unknown_fields_and_reads_integer_enums_and_64_bit_text():
    body = {
        "resourceLogs": [
            {
                "futureField": {"anything": [1, 2]},
                "scopeLogs": [
                    {
                        "logRecords": [
                            {
                                "timeUnixNano": "1795687200000000001",
                                "severityNumber": 17,
                                "body": {"stringValue": "x"},
                                "newerThanThisReceiver": True,
                            }
                        ]
                    }
                ],
            }
        ]
    }

    decoded = otlp.decode(json.dumps(body).encode(), signal=otlp.LOGS, media_type=otlp.JSON)

    record = decoded.resource_logs[0].scope_logs[0].log_records[0]
    assert (record.time_unix_nano, record.severity_number, record.body.string_value) == (
        1795687200000000001,
        17,
        "x",
    )


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"not json", "Malformed JSON"),
        (b'{"resourceLogs": NaN}', "Malformed JSON"),
        (b"\xff\xfe", "not UTF-8"),
        (b"[" * 100_000, "nested too deeply"),
        (b'"text"', "Send a JSON object"),
        (b'{"resourceLogs": [{"scopeLogs": [{"logRecords": [{"spanId": "abc"}]}]}]}', "is not a hex id"),
        (
            b'{"resourceLogs": [{"scopeLogs": [{"logRecords": [{"timeUnixNano": "soon"}]}]}]}',
            "not an OTLP JSON",
        ),
    ],
)
def test_json_that_does_not_decode_says_why(raw, message):
    with pytest.raises(otlp.BodyError, match=message):
        otlp.decode(raw, signal=otlp.LOGS, media_type=otlp.JSON)


def test_what_the_js_json_serializer_writes_decodes_as_its_protobuf_twin():
    """Lone surrogates anywhere (names, keys, nested values, the resource) become U+FFFD; an intValue past
    int64 (JSON.stringify of 1e21, of 2 ** 63) becomes a doubleValue; a valid int64 stays an int."""
    values = '[{"intValue": 1e+21}, {"intValue": 9223372036854775807}, {"stringValue": "\\ud83d\\ude00 ok"}]'
    attributes = (
        f'[{{"key": "k\\ud83d", "value": {{"arrayValue": {{"values": {values}}}}}}}, '
        '{"key": "big", "value": {"kvlistValue": {"values": [{"key": "n", "value": '
        '{"intValue": 9223372036854776000}}]}}}]'
    )
    events = '[{"name": "e", "attributes": [{"key": "neg", "value": {"intValue": -1e+300}}]}]'
    resource = '{"attributes": [{"key": "host.name", "value": {"stringValue": "box \\ud83d"}}]}'
    raw = (
        f'{{"resourceSpans": [{{"resource": {resource}, "scopeSpans": [{{"spans": [{{"traceId": '
        f'"{TRACE_ID.hex()}", "spanId": "{SPAN_ID.hex()}", "name": "GET \\ude00", '
        f'"attributes": {attributes}, "events": {events}}}]}}]}}]}}'
    )
    assert json.loads(raw)  # the escapes are JSON's, as JSON.stringify writes them

    decoded = otlp.decode(raw.encode(), signal=otlp.TRACES, media_type=otlp.JSON)

    resource = decoded.resource_spans[0].resource
    sent = decoded.resource_spans[0].scope_spans[0].spans[0]
    assert resource.attributes[0].value.string_value == "box \ufffd"
    assert sent.name == "GET \ufffd"
    [listed, nested] = sent.attributes
    assert listed.key == "k\ufffd"
    [huge, largest, emoji] = listed.value.array_value.values
    assert (huge.WhichOneof("value"), huge.double_value) == ("double_value", 1e21)
    assert (largest.WhichOneof("value"), largest.int_value) == ("int_value", 2**63 - 1)
    assert emoji.string_value == "\U0001f600 ok"
    assert nested.value.kvlist_value.values[0].value.double_value == 2.0**63
    assert sent.events[0].attributes[0].value.double_value == -1e300
    assert (sent.trace_id, sent.span_id) == (TRACE_ID, SPAN_ID)


def test_protobuf_that_does_not_decode_says_so():
    with pytest.raises(otlp.BodyError, match="not a protobuf ExportTraceServiceRequest"):
        otlp.decode(b"\x0a\x05abc", signal=otlp.TRACES, media_type=otlp.PROTOBUF)


def test_the_json_of_a_protobuf_message_with_hex_ids_decodes_to_the_same_message():
    sent = logs_request(log_record("a", trace_id=TRACE_ID, span_id=SPAN_ID))
    as_dict = json_format.MessageToDict(sent)
    record = as_dict["resourceLogs"][0]["scopeLogs"][0]["logRecords"][0]
    assert base64.b64decode(record["traceId"]) == TRACE_ID
    record["traceId"], record["spanId"] = TRACE_ID.hex(), SPAN_ID.hex()

    assert otlp.decode(json.dumps(as_dict).encode(), signal=otlp.LOGS, media_type=otlp.JSON) == sent


def test_a_full_success_leaves_partial_success_unset_and_a_partial_one_counts_the_refused():
    full = otlp.export_response(otlp.LOGS)
    partial = otlp.export_response(otlp.TRACES, rejected=2, message="2 of 5 spans refused")

    assert not full.HasField("partial_success")
    assert otlp.encode(full, otlp.JSON) == b"{}"
    assert json.loads(otlp.encode(partial, otlp.JSON)) == {
        "partialSuccess": {"rejectedSpans": "2", "errorMessage": "2 of 5 spans refused"}
    }
    assert type(partial).FromString(otlp.encode(partial, otlp.PROTOBUF)).partial_success.rejected_spans == 2


def test_a_400_status_carries_a_bad_request_naming_the_body():
    status = otlp.failure(http_status=400, message="Malformed JSON")
    other = otlp.failure(http_status=503, message="later")

    decoded = status_pb2.Status.FromString(otlp.encode(status, otlp.PROTOBUF))
    bad = error_details_pb2.BadRequest()
    assert decoded.details[0].Unpack(bad)
    assert (bad.field_violations[0].field, bad.field_violations[0].description) == ("body", "Malformed JSON")
    assert json.loads(otlp.encode(other, otlp.JSON)) == {"code": 14, "message": "later"}
