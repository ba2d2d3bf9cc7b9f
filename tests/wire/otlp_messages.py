"""OTLP test data: export requests built with opentelemetry-proto's messages, and OTLP JSON bodies shaped like
the specification's examples (hex ids in upper case, 64-bit integers as numbers or text, integer enums)."""

import json
import time
from typing import Any

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue, KeyValueList
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

TRACE_ID = bytes.fromhex("5b8efff798038103d269b633813fc60c")
SPAN_ID = bytes.fromhex("eee19b7ec3c1b174")
PARENT_SPAN_ID = bytes.fromhex("eee19b7ec3c1b173")


def now_nanos(seconds_ago: float = 0) -> int:
    return time.time_ns() - int(seconds_ago * 1e9)


def any_value(value: Any) -> AnyValue:
    if value is None:
        return AnyValue()
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, int):
        return AnyValue(int_value=value)
    if isinstance(value, float):
        return AnyValue(double_value=value)
    if isinstance(value, bytes):
        return AnyValue(bytes_value=value)
    if isinstance(value, list):
        return AnyValue(array_value=ArrayValue(values=[any_value(v) for v in value]))
    if isinstance(value, dict):
        return AnyValue(kvlist_value=KeyValueList(values=key_values(value)))
    return AnyValue(string_value=value)


def key_values(attributes: dict[str, Any]) -> list[KeyValue]:
    return [KeyValue(key=key, value=any_value(value)) for key, value in attributes.items()]


def log_record(body: Any = "tile cache miss", *, attributes: dict | None = None, **fields) -> LogRecord:
    fields.setdefault("time_unix_nano", now_nanos())
    return LogRecord(body=any_value(body), attributes=key_values(attributes or {}), **fields)


def span(name: str = "GET /tiles", *, attributes: dict | None = None, status=None, **fields) -> Span:
    start = fields.pop("start_time_unix_nano", now_nanos(1))
    fields.setdefault("end_time_unix_nano", start + 42_000_000)
    fields.setdefault("trace_id", TRACE_ID)
    fields.setdefault("span_id", SPAN_ID)
    return Span(
        name=name,
        start_time_unix_nano=start,
        attributes=key_values(attributes or {}),
        status=status or Status(),
        **fields,
    )


def resource_attributes(service: str | None = "search-api", stage: str | None = "prod", **more) -> dict:
    attributes = {}
    if service is not None:
        attributes["service.name"] = service
    if stage is not None:
        attributes["deployment.environment.name"] = stage
    return {**attributes, **more}


def logs_request(
    *records: LogRecord, resource: dict | None = None, scope: str = "tests"
) -> ExportLogsServiceRequest:
    request = ExportLogsServiceRequest()
    group = request.resource_logs.add()
    group.resource.attributes.extend(key_values(resource_attributes() if resource is None else resource))
    scope_group = group.scope_logs.add()
    scope_group.scope.name = scope
    scope_group.log_records.extend(records)
    return request


def traces_request(
    *spans: Span, resource: dict | None = None, scope: str = "tests"
) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    group = request.resource_spans.add()
    group.resource.attributes.extend(key_values(resource_attributes() if resource is None else resource))
    scope_group = group.scope_spans.add()
    scope_group.scope.name = scope
    scope_group.spans.extend(spans)
    return request


def _json_attributes(attributes: dict[str, Any]) -> list[dict]:
    return [{"key": key, "value": value} for key, value in attributes.items()]


def json_logs(*, service="search-api", stage="prod", time_unix_nano=None, **record_fields) -> bytes:
    """An OTLP JSON logs request in the shape of the specification's example, with our service."""
    record = {
        "timeUnixNano": time_unix_nano if time_unix_nano is not None else now_nanos(),
        "observedTimeUnixNano": now_nanos(),
        "severityText": "Information",
        "traceId": "5B8EFFF798038103D269B633813FC60C",
        "spanId": "EEE19B7EC3C1B174",
        "body": {"stringValue": "Example log record"},
        "attributes": _json_attributes(
            {
                "string.attribute": {"stringValue": "some string"},
                "boolean.attribute": {"boolValue": True},
                "int.attribute": {"intValue": 10},
                "double.attribute": {"doubleValue": 637.704},
                "array.attribute": {
                    "arrayValue": {"values": [{"stringValue": "many"}, {"stringValue": "values"}]}
                },
                "map.attribute": {
                    "kvlistValue": {
                        "values": [{"key": "some.map.key", "value": {"stringValue": "some value"}}]
                    }
                },
                "enduser.id": {"stringValue": "user-7"},
            }
        ),
        **record_fields,
    }
    return json.dumps(
        {
            "resourceLogs": [
                {
                    "resource": {
                        "attributes": _json_attributes(
                            {
                                "service.name": {"stringValue": service},
                                "deployment.environment.name": {"stringValue": stage},
                            }
                        )
                    },
                    "scopeLogs": [
                        {
                            "scope": {
                                "name": "my.library",
                                "version": "1.0.0",
                                "attributes": _json_attributes(
                                    {"my.scope.attribute": {"stringValue": "some scope attribute"}}
                                ),
                            },
                            "logRecords": [record],
                        }
                    ],
                }
            ]
        }
    ).encode()


def json_spans(*, service="search-api", stage="prod", start=None, **span_fields) -> bytes:
    """An OTLP JSON traces request in the shape of the specification's example, with our service."""
    start = start if start is not None else now_nanos(1)
    return json.dumps(
        {
            "resourceSpans": [
                {
                    "resource": {
                        "attributes": _json_attributes(
                            {
                                "service.name": {"stringValue": service},
                                "deployment.environment.name": {"stringValue": stage},
                            }
                        )
                    },
                    "scopeSpans": [
                        {
                            "scope": {
                                "name": "my.library",
                                "version": "1.0.0",
                                "attributes": _json_attributes(
                                    {"my.scope.attribute": {"stringValue": "some scope attribute"}}
                                ),
                            },
                            "spans": [
                                {
                                    "traceId": "5B8EFFF798038103D269B633813FC60C",
                                    "spanId": "EEE19B7EC3C1B174",
                                    "parentSpanId": "EEE19B7EC3C1B173",
                                    "name": "I'm a server span",
                                    "startTimeUnixNano": start,
                                    "endTimeUnixNano": str(start + 1_000_000_000),
                                    "kind": 2,
                                    "attributes": _json_attributes(
                                        {
                                            "my.span.attr": {"stringValue": "some value"},
                                            "enduser.id": {"stringValue": "user-7"},
                                        }
                                    ),
                                    **span_fields,
                                }
                            ],
                        }
                    ],
                }
            ]
        }
    ).encode()
