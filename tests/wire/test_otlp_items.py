"""apps/wire/otlp_items on its own: OTLP log records and spans mapped onto canonical items (property-tested:
conform stores or refuses whatever an exporter sends, never fails)."""

import json
import uuid
from datetime import UTC, datetime, timedelta

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from apps.ingest.conform import SendContext, conform_event
from apps.wire import otlp_items
from apps.wire.items import Refused
from tests.wire.otlp_messages import (
    PARENT_SPAN_ID,
    SPAN_ID,
    TRACE_ID,
    any_value,
    key_values,
    log_record,
    logs_request,
    span,
    traces_request,
)

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
CONTEXT = SendContext(service="search-api", stage="prod", can_forward=False, received_at=NOW)


def log_items(*records, resource=None):
    return [otlp_items.log_item(r) for r in otlp_items.log_records(logs_request(*records, resource=resource))]


def span_items(*spans, resource=None):
    return [otlp_items.span_item(r) for r in otlp_items.spans(traces_request(*spans, resource=resource))]


@pytest.mark.parametrize(
    ("number", "text", "level"),
    [
        (1, "", "debug"),
        (5, "", "debug"),
        (9, "", "info"),
        (12, "", "info"),
        (13, "", "warning"),
        (17, "whatever", "error"),
        (21, "", "critical"),
        (24, "", "critical"),
        (0, "WARN", "warning"),
        (0, "Information", "info"),
        (0, "INFO2", "info"),
        (0, "fatal", "critical"),
        (0, "trace", "debug"),
        (0, "loud", None),
        (0, "", None),
        (25, "", None),
    ],
)
def test_severity_numbers_by_range_then_texts_make_the_level(number, text, level):
    assert otlp_items.level_for(number, text) == level


def test_attribute_values_flatten_to_json():
    value = any_value(
        {"s": "x", "b": True, "i": 2**62, "d": 0.5, "bytes": b"\x00\xff", "list": [1, [2, {"k": "v"}]]}
    )

    assert otlp_items.plain(value) == {
        "s": "x",
        "b": True,
        "i": 2**62,
        "d": 0.5,
        "bytes": "AP8=",
        "list": [1, [2, {"k": "v"}]],
    }
    assert [
        otlp_items.plain(AnyValue(double_value=v)) for v in (float("nan"), float("inf"), -float("inf"))
    ] == [
        "NaN",
        "Infinity",
        "-Infinity",
    ]
    assert otlp_items.plain(AnyValue()) is None


def test_a_log_record_maps_onto_a_canonical_log_item():
    nanos = int(NOW.timestamp()) * 10**9 + 5_000
    [item] = log_items(
        log_record(
            {"order": 7},
            time_unix_nano=nanos,
            severity_number=17,
            trace_id=TRACE_ID,
            span_id=SPAN_ID,
            event_name="order.failed",
            attributes={"user.id": "u-2", "enduser.id": "u-1", "http.route": "/orders"},
        ),
        resource={"service.name": "orders", "deployment.environment": "staging", "host.name": "h1"},
    )

    assert {k: v for k, v in item.items() if k != "event_id"} == {
        "type": "log",
        "event": "order.failed",
        "message": '{"order": 7}',
        "level": "error",
        "timestamp": NOW + timedelta(microseconds=5),
        "user_id": "u-1",
        "correlation_id": TRACE_ID.hex(),
        "service": "orders",
        "stage": "staging",
        "properties": {
            "user.id": "u-2",  # a second, different user ID is kept, not dropped
            "http.route": "/orders",
            "otel.scope.name": "tests",
            "host.name": "h1",
            "otel.span_id": SPAN_ID.hex(),
        },
    }


def test_a_span_maps_onto_a_canonical_span_item():
    start = int(NOW.timestamp()) * 10**9
    [item] = span_items(
        span(
            "GET /orders",
            parent_span_id=PARENT_SPAN_ID,
            start_time_unix_nano=start,
            end_time_unix_nano=start + 1_234_567,
            kind=Span.SPAN_KIND_CLIENT,
            status=Status(code=Status.STATUS_CODE_ERROR, message="boom"),
            attributes={"enduser.id": "u-1"},
            events=[Span.Event(name="exception", time_unix_nano=start + 10_000)],
            links=[Span.Link(trace_id=TRACE_ID, span_id=PARENT_SPAN_ID)],
        )
    )

    assert item["event_id"] == str(
        uuid.uuid5(otlp_items.NAMESPACE, f"span\n{TRACE_ID.hex()}\n{SPAN_ID.hex()}")
    )
    assert {k: v for k, v in item.items() if k not in ("event_id", "properties")} == {
        "type": "span",
        "event": "GET /orders",
        "span_id": SPAN_ID.hex(),
        "parent_span_id": PARENT_SPAN_ID.hex(),
        "duration_ms": 1.234567,
        "level": "error",
        "message": "boom",
        "timestamp": NOW,
        "user_id": "u-1",
        "correlation_id": TRACE_ID.hex(),
        "service": "search-api",
        "stage": "prod",
    }
    assert item["properties"] == {
        "otel.scope.name": "tests",
        "otel.span.kind": "client",
        "otel.status_code": "error",
        "otel.events": [{"name": "exception", "time": "2026-11-26T12:00:00.000010+00:00", "attributes": {}}],
        "otel.links": [{"trace_id": TRACE_ID.hex(), "span_id": PARENT_SPAN_ID.hex(), "attributes": {}}],
    }
    assert conform_event(item, CONTEXT).ok


def test_a_shared_attribute_the_record_also_has_is_kept_under_where_it_came_from():
    [item] = log_items(log_record(attributes={"host.name": "mine"}), resource={"host.name": "theirs"})

    assert item["properties"]["host.name"] == "mine"
    assert item["properties"]["_resource.host.name"] == "theirs"


def test_what_otlp_carries_outside_attributes_overwrites_no_sender_attribute_of_the_same_name():
    sent = {
        "otel.span_id": "sender's",
        "otel.severity_text": "sender's",
        "otel.span.kind": "sender's",
        "otel.status_code": "sender's",
        "otel.trace_state": "sender's",
        "otel.events": "sender's",
        "otel.links": "sender's",
    }
    [log] = log_items(log_record(attributes=sent, span_id=SPAN_ID, severity_text="loud"))
    [traced] = span_items(
        span(
            attributes=sent,
            kind=Span.SPAN_KIND_SERVER,
            status=Status(code=Status.STATUS_CODE_OK),
            trace_state="k=v",
            events=[Span.Event(name="retry")],
            links=[Span.Link(trace_id=TRACE_ID, span_id=PARENT_SPAN_ID)],
        )
    )
    request = logs_request(log_record(attributes={"otel.scope.name": "sender's"}))
    scope = request.resource_logs[0].scope_logs[0].scope
    scope.attributes.extend(key_values({"otel.scope.version": "sender's"}))
    scope.version = "2.0"
    [scoped] = [otlp_items.log_item(r) for r in otlp_items.log_records(request)]

    for key in ("otel.span_id", "otel.severity_text"):
        assert log["properties"][key] == "sender's"
    assert log["properties"]["_otel.span_id"] == SPAN_ID.hex()
    assert log["properties"]["_otel.severity_text"] == "loud"
    assert {key: traced["properties"][key] for key in sent} == sent
    assert traced["properties"]["_otel.span.kind"] == "server"
    assert traced["properties"]["_otel.status_code"] == "ok"
    assert traced["properties"]["_otel.trace_state"] == "k=v"
    assert traced["properties"]["_otel.events"][0]["name"] == "retry"
    assert traced["properties"]["_otel.links"][0]["span_id"] == PARENT_SPAN_ID.hex()
    assert scoped["properties"]["otel.scope.name"] == "sender's"
    assert scoped["properties"]["_scope.otel.scope.name"] == "tests"
    assert scoped["properties"]["otel.scope.version"] == "sender's"
    assert scoped["properties"]["_otel.scope.version"] == "2.0"


def test_the_sdks_unknown_service_is_no_service_and_the_resources_user_is_the_fallback():
    [item] = log_items(log_record(), resource={"service.name": "unknown_service:python", "enduser.id": "u-9"})

    assert "service" not in item and "stage" not in item
    assert item["user_id"] == "u-9"


def test_log_ids_are_stable_for_the_same_record_and_differ_for_another():
    record = log_record("same", time_unix_nano=1_795_687_200_000_000_000)

    first, again = log_items(record)[0], log_items(record)[0]
    other_resource = log_items(record, resource={"service.name": "other"})[0]
    later = log_items(log_record("same", time_unix_nano=1_795_687_200_000_000_001))[0]

    assert first["event_id"] == again["event_id"]
    assert len({first["event_id"], other_resource["event_id"], later["event_id"]}) == 3


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"trace_id": b""}, {"trace_id": "is required: 16 bytes, not all zero"}),
        ({"trace_id": bytes(16)}, {"trace_id": "is required: 16 bytes, not all zero"}),
        ({"span_id": b"\x01\x02"}, {"span_id": "must be 8 bytes (16 hex digits), got 2 bytes"}),
        ({"parent_span_id": b"\x01" * 9}, {"parent_span_id": "must be 8 bytes (16 hex digits), got 9 bytes"}),
    ],
)
def test_spans_without_usable_ids_are_refused_by_field(fields, error):
    with pytest.raises(Refused) as refused:
        span_items(span(**fields))

    assert refused.value.errors == error


def test_a_log_records_zero_trace_id_is_none_and_a_short_one_is_refused():
    [item] = log_items(log_record(trace_id=bytes(16)))
    assert "correlation_id" not in item

    with pytest.raises(Refused):
        log_items(log_record(trace_id=b"\x01" * 4))


def test_refusals_name_where_each_record_sat_and_why():
    records = otlp_items.log_records(logs_request(*[log_record(str(n)) for n in range(13)]))
    rejected = [{"index": n, "errors": {"time_unix_nano": "too old"}} for n in range(12)]

    message = otlp_items.refusals(rejected, records, plural="log records", shown=2)

    assert message == (
        "12 of 13 log records refused (and 10 more): "
        "resource_logs[0].scope_logs[0].log_records[0]: time_unix_nano: too old | "
        "resource_logs[0].scope_logs[0].log_records[1]: time_unix_nano: too old"
    )
    assert otlp_items.refusals([], records, plural="log records") == ""


# Protobuf text is UTF-8: no lone surrogates.
texts = st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=12)
attribute_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats()
    | texts
    | st.binary(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(texts, children, max_size=4),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(
    attributes=st.dictionaries(texts, attribute_values, max_size=6),
    body=attribute_values,
    severity=st.integers(0, 30),
    text=texts,
    nanos=st.integers(0, 2**64 - 1),
)
def test_any_log_record_becomes_an_item_that_conform_stores_or_refuses_clearly(
    attributes, body, severity, text, nanos
):
    record = log_record(
        body, attributes=attributes, severity_number=severity, severity_text=text, time_unix_nano=nanos
    )
    [item] = log_items(record)

    result = conform_event(item, CONTEXT)

    # The endpoints hand conform each item's msgspec text (json_ready): it must decide exactly the same.
    fast = conform_event(item, CONTEXT, raw=msgspec.json.encode(item))
    assert (fast.ok, fast.errors, fast.notes) == (result.ok, result.errors, result.notes)
    assert {k: v for k, v in fast.event.items() if k != "event_id"} == {
        k: v for k, v in result.event.items() if k != "event_id"
    }
    if result.ok:
        json.dumps(result.event["properties"])
        assert result.event["timestamp"] <= NOW + timedelta(minutes=5)
    else:
        assert set(result.errors) <= {"timestamp", "user_id", "item"} or any(
            key.startswith("properties") for key in result.errors
        ), result.errors
