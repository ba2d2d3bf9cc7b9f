"""OTLP log records and spans as canonical items (DESIGN.md, "Other wire formats"). Pure functions over
opentelemetry-proto messages: no database, no settings.

- resource `service.name` -> service (`unknown_service…`, the SDKs' name for none, is none: the key's
  service), `deployment.environment.name` (else `deployment.environment`) -> stage; conform applies the
  forwarder rule to both.
- trace id (32 hex) -> correlation_id; a log record without one may name it in a `correlation_id`
  attribute, else it takes the request's correlation header.
- `enduser.id` (else `user.id`), of the record, else of the resource -> user_id.
- every other record, scope and resource attribute -> properties under its own key (a scope or resource
  attribute whose key the record also has is kept as `_scope.<key>` or `_resource.<key>`), values
  flattened to JSON; what OTLP carries outside attributes under `otel.` names (scope name and version, a
  log record's span id, a span's kind, status, events, links and trace state), or `_otel.` ones where an
  attribute has the name.
- a log record: event = `event_name` (else "log"), timestamp = `time_unix_nano` (else when it was
  observed), level from `severity_number` (1-8 debug, 9-12 info, 13-16 warning, 17-20 error, 21-24
  critical), else from `severity_text` (kept as `otel.severity_text` when it names no level), message =
  the body (text as is, any other value as JSON text). Its event id is a UUID5 of a hash of its resource,
  scope and record, so a re-sent export is stored once.
- a span: type "span", event = its name, timestamp = its start, duration_ms = end - start, span_id and
  parent_span_id in hex, message = the status message; an error status is level "error", any other
  status no level (a span is not a log line: only its failure should raise a trail's worst level). Its
  event id is a UUID5 of its trace and span ids.
"""

import base64
import hashlib
import json
import math
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from google.protobuf.message import Message
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

from apps.ingest.conform import free_name

from . import otlp
from .ids import uuid5_text
from .items import Refused, correlation_from

# uuid5(NAMESPACE_URL, "https://skywatch-portal/wire/otlp"), written out because it is fixed forever: a new
# namespace would store every re-sent record as a new event.
NAMESPACE = uuid.UUID("1537c93a-dc79-5fe8-8dd8-58eee3855925")
SERVICE_NAME = "service.name"
# The SDKs' service.name when none was configured (`unknown_service`, `unknown_service:python`, ...).
UNKNOWN_SERVICE = "unknown_service"
STAGE_KEYS = ("deployment.environment.name", "deployment.environment")
USER_KEYS = ("enduser.id", "user.id")
TRACE_ID_BYTES = 16
SPAN_ID_BYTES = 8

# OTLP severity numbers, in ranges of four, onto conform's levels.
_SEVERITY_RANGES = ((1, "debug"), (5, "debug"), (9, "info"), (13, "warning"), (17, "error"), (21, "critical"))
# Severity texts loggers use, onto levels (a trailing digit, as in "INFO2", is OTel's short name's).
_SEVERITY_TEXTS = {
    "trace": "debug",
    "debug": "debug",
    "info": "info",
    "information": "info",
    "informational": "info",
    "notice": "info",
    "warn": "warning",
    "warning": "warning",
    "error": "error",
    "err": "error",
    "fatal": "critical",
    "critical": "critical",
    "crit": "critical",
    "alert": "critical",
    "emerg": "critical",
    "emergency": "critical",
}
_SPAN_KINDS = {1: "internal", 2: "server", 3: "client", 4: "producer", 5: "consumer"}
_STATUS_CODES = {trace_pb2.Status.STATUS_CODE_OK: "ok", trace_pb2.Status.STATUS_CODE_ERROR: "error"}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# Conform's field names, as an OTLP sender knows them (for refusals).
_SHARED_WIRE_NAMES = {
    "service": "resource.service.name",
    "stage": "resource.deployment.environment.name",
    "user_id": "attributes.enduser.id",
    "properties": "attributes",
}
LOG_WIRE_NAMES = {
    **_SHARED_WIRE_NAMES,
    "event": "event_name",
    "timestamp": "time_unix_nano",
    "message": "body",
    "level": "severity_text",
    "correlation_id": "attributes.correlation_id",
    "item": "log_record",
}
SPAN_WIRE_NAMES = {
    **_SHARED_WIRE_NAMES,
    "event": "name",
    "timestamp": "start_time_unix_nano",
    "duration_ms": "end_time_unix_nano",
    "message": "status.message",
    "item": "span",
}


@dataclass(frozen=True)
class Origin:
    """What the records of one resource and scope share."""

    service: Any
    stage: Any
    user_id: Any
    # Scope and resource attributes by key, and where each came from ("scope" or "resource").
    properties: dict[str, Any]
    sources: dict[str, str]
    # A hash of the resource and the scope, which a log record's own bytes complete into its id.
    digest: Any


@dataclass(slots=True)
class Record:
    """One log record or span, with what it shares with its neighbours and where it sat in the request
    (positions: its resource's, its scope's and its own, named by `path` only for a refusal)."""

    message: Any
    origin: Origin
    keys: tuple[str, str, str]
    positions: tuple[int, int, int]

    @property
    def path(self) -> str:
        (resource_key, scope_key, record_key), (r, s, i) = self.keys, self.positions
        return f"{resource_key}[{r}].{scope_key}[{s}].{record_key}[{i}]"


# --- the records of a request ------------------------------------------------------------------------


def log_records(request: Message) -> list[Record]:
    """Return the log records of an ExportLogsServiceRequest, in the order they were sent."""
    return list(_records(request.resource_logs, "resource_logs", "scope_logs", "log_records"))


def spans(request: Message) -> list[Record]:
    """Return the spans of an ExportTraceServiceRequest, in the order they were sent."""
    return list(_records(request.resource_spans, "resource_spans", "scope_spans", "spans"))


def _records(resources: Iterable[Any], resource_key: str, scope_key: str, record_key: str):
    keys = (resource_key, scope_key, record_key)
    for r, resource_group in enumerate(resources):
        resource = resource_group.resource
        resource_attributes = attributes(resource.attributes)
        service = resource_attributes.pop(SERVICE_NAME, None)
        if isinstance(service, str) and service.startswith(UNKNOWN_SERVICE):
            service = None
        stages = [resource_attributes.pop(key) for key in STAGE_KEYS if key in resource_attributes]
        user_id = _pop_first(resource_attributes, USER_KEYS)
        resource_bytes = resource.SerializeToString(deterministic=True)
        for s, scope_group in enumerate(getattr(resource_group, scope_key)):
            scope = scope_group.scope
            shared: dict[str, Any] = attributes(scope.attributes)
            if scope.name:
                _put_otel(shared, "otel.scope.name", scope.name)
            if scope.version:
                _put_otel(shared, "otel.scope.version", scope.version)
            sources = dict.fromkeys(shared, "scope")
            for key, value in resource_attributes.items():
                name = free_name(shared, key, prefix="_resource.")
                shared[name] = value
                sources[name] = "resource"
            digest = hashlib.sha256()
            for part in (resource_bytes, scope.SerializeToString(deterministic=True)):
                digest.update(len(part).to_bytes(8, "big"))
                digest.update(part)
            origin = Origin(
                service=service,
                stage=stages[0] if stages else None,
                user_id=user_id,
                properties=shared,
                sources=sources,
                digest=digest,
            )
            for i, record in enumerate(getattr(scope_group, record_key)):
                yield Record(record, origin, keys, (r, s, i))


# --- one record -----------------------------------------------------------------------------------------


def log_item(record: Record, *, service: str = "") -> dict[str, Any]:
    """Return the canonical item of one log record; raise Refused for ids of the wrong size.

    `service` (the key's) is not used: a record names its service in its resource, or takes the key's.
    Every record of an export pays for this function, so it reads each protobuf field once.
    """
    log = record.message
    origin = record.origin
    own = attributes(log.attributes)
    user_id = _pop_first(own, USER_KEYS)
    properties = _merged(own, origin)
    trace_id = _hex_id(log.trace_id, TRACE_ID_BYTES, "trace_id")
    span_id = _hex_id(log.span_id, SPAN_ID_BYTES, "span_id")
    if span_id:
        _put_otel(properties, "otel.span_id", span_id)
    severity_text = log.severity_text
    level = level_for(log.severity_number, severity_text)
    if level is None and severity_text:
        _put_otel(properties, "otel.severity_text", severity_text)
    digest = origin.digest.copy()
    digest.update(log.SerializeToString(deterministic=True))
    item: dict[str, Any] = {
        "event_id": uuid5_text(NAMESPACE, "log\n" + digest.hexdigest()),
        "type": "log",
        "message": _text(log.body) if log.HasField("body") else "",
        "properties": properties,
    }
    event_name = log.event_name
    if event_name:
        item["event"] = event_name
    if level is not None:
        item["level"] = level
    _add_common(
        item,
        origin,
        timestamp=log.time_unix_nano or log.observed_time_unix_nano,
        user_id=user_id,
        correlation_id=trace_id or correlation_from(properties),
    )
    return item


def span_item(record: Record, *, service: str = "") -> dict[str, Any]:
    """Return the canonical item of one span; raise Refused when its ids are missing or of the wrong size.

    `service` (the key's) is not used: a span names its service in its resource, or takes the key's.
    """
    span = record.message
    trace_id = _hex_id(span.trace_id, TRACE_ID_BYTES, "trace_id", required=True)
    span_id = _hex_id(span.span_id, SPAN_ID_BYTES, "span_id", required=True)
    parent_span_id = _hex_id(span.parent_span_id, SPAN_ID_BYTES, "parent_span_id")
    own = attributes(span.attributes)
    user_id = _pop_first(own, USER_KEYS)
    properties = _merged(own, record.origin)
    if span.kind in _SPAN_KINDS:
        _put_otel(properties, "otel.span.kind", _SPAN_KINDS[span.kind])
    if span.status.code in _STATUS_CODES:
        _put_otel(properties, "otel.status_code", _STATUS_CODES[span.status.code])
    if span.trace_state:
        _put_otel(properties, "otel.trace_state", span.trace_state)
    if span.events:
        events = [
            {
                "name": event.name,
                "time": _iso(event.time_unix_nano),
                "attributes": attributes(event.attributes),
            }
            for event in span.events
        ]
        _put_otel(properties, "otel.events", events)
    if span.links:
        links = [
            {
                "trace_id": link.trace_id.hex(),
                "span_id": link.span_id.hex(),
                "attributes": attributes(link.attributes),
            }
            for link in span.links
        ]
        _put_otel(properties, "otel.links", links)
    item: dict[str, Any] = {
        "event_id": uuid5_text(NAMESPACE, f"span\n{trace_id}\n{span_id}"),
        "type": "span",
        "event": span.name,
        "span_id": span_id,
        "parent_span_id": parent_span_id,
        "message": span.status.message,
        "properties": properties,
    }
    if span.start_time_unix_nano and span.end_time_unix_nano:
        item["duration_ms"] = (span.end_time_unix_nano - span.start_time_unix_nano) / 1e6
    if span.status.code == trace_pb2.Status.STATUS_CODE_ERROR:
        item["level"] = "error"
    _add_common(
        item, record.origin, timestamp=span.start_time_unix_nano, user_id=user_id, correlation_id=trace_id
    )
    return item


def _add_common(
    item: dict[str, Any], origin: Origin, *, timestamp: int, user_id: Any, correlation_id: str | None
) -> None:
    """Add what log records and spans map alike; fields left out are left to conform's defaults."""
    if timestamp:
        item["timestamp"] = _moment(timestamp)
    if user_id is None:
        user_id = origin.user_id
    if user_id is not None:
        item["user_id"] = user_id
    if correlation_id:
        item["correlation_id"] = correlation_id
    if origin.service is not None:
        item["service"] = origin.service
    if origin.stage is not None:
        item["stage"] = origin.stage


def _merged(own: dict[str, Any], origin: Origin) -> dict[str, Any]:
    """Return a record's attributes with its scope's and resource's; a shared key the record also has is
    kept under `_scope.` or `_resource.`."""
    shared = origin.properties
    if shared.keys().isdisjoint(own):
        return {**own, **shared}
    merged = dict(own)
    for key, value in shared.items():
        merged[free_name(merged, key, prefix=f"_{origin.sources[key]}.")] = value
    return merged


def _put_otel(properties: dict[str, Any], key: str, value: Any) -> None:
    """Add what OTLP carries outside attributes under its `otel.` name, or under `_otel.…` when the sender's
    attributes already have that name (theirs is kept as sent)."""
    properties[free_name(properties, key, prefix="_")] = value


def _pop_first(values: dict[str, Any], keys: Iterable[str]) -> Any:
    """Remove the first of `keys` that `values` has as an ID (text or a whole number) and return it (None
    when none is there). The others are removed when they say the same, and kept as properties when they
    differ, as is a value that is no ID (a double, a bool, an array): nothing is lost, and the record is
    stored without a user rather than refused."""
    first = None
    for key in keys:
        if key not in values or not _is_id(values[key]):
            continue
        if first is None:
            first = values.pop(key)
        elif values[key] == first:
            del values[key]
    return first


def _is_id(value: Any) -> bool:
    return isinstance(value, (str, int)) and not isinstance(value, bool)


def _hex_id(raw: bytes, size: int, name: str, *, required: bool = False) -> str:
    """Return an id as lowercase hex; "" for none (or all zeros, which OTLP calls invalid) unless required."""
    if len(raw) not in (0, size):
        raise Refused({name: f"must be {size} bytes ({size * 2} hex digits), got {len(raw)} bytes"})
    if not raw or not any(raw):
        if required:
            raise Refused({name: f"is required: {size} bytes, not all zero"})
        return ""
    return raw.hex()


def level_for(severity_number: int, severity_text: str) -> str | None:
    """Return the level of an OTLP severity: by its number when set, else by its text; None for neither."""
    if 1 <= severity_number <= 24:
        return next(level for start, level in reversed(_SEVERITY_RANGES) if severity_number >= start)
    if not severity_text:
        return None
    return _SEVERITY_TEXTS.get(severity_text.strip().lower().rstrip("1234"))


def _moment(nanos: int) -> datetime:
    """Return an OTLP time (nanoseconds since the epoch) as an aware UTC datetime, to the microsecond."""
    return _EPOCH + timedelta(microseconds=nanos // 1000)


def _iso(nanos: int) -> str:
    """Return an OTLP time as ISO-8601 text, to the microsecond."""
    return _moment(nanos).isoformat()


# --- attribute values -----------------------------------------------------------------------------------


def attributes(pairs: Iterable[Any]) -> dict[str, Any]:
    """Return OTLP key-value pairs as a JSON object (a repeated key keeps its last value)."""
    return {pair.key: plain(pair.value) for pair in pairs}


_SCALARS = ("string_value", "bool_value", "int_value")


def plain(value: common_pb2.AnyValue) -> Any:
    """Return an OTLP AnyValue as JSON: text, booleans and integers as they are, non-finite doubles as
    their names ("NaN", "Infinity", "-Infinity"), bytes as base64 text, arrays and maps nested."""
    kind = value.WhichOneof("value")
    if kind in _SCALARS:
        return getattr(value, kind)
    if kind == "double_value":
        number = value.double_value
        if math.isfinite(number):
            return number
        return "NaN" if math.isnan(number) else ("Infinity" if number > 0 else "-Infinity")
    if kind == "array_value":
        return [plain(item) for item in value.array_value.values]
    if kind == "kvlist_value":
        return attributes(value.kvlist_value.values)
    if kind == "bytes_value":
        return base64.b64encode(value.bytes_value).decode("ascii")
    return None  # empty, or a value kind this version of OTLP does not know


def _text(body: common_pb2.AnyValue) -> str:
    """Return a log body as text: text as is, any other value as its JSON."""
    value = plain(body)
    if isinstance(value, str):
        return value
    return "" if value is None else json.dumps(value, ensure_ascii=False)


# --- what the endpoints need of each signal -------------------------------------------------------------


@dataclass(frozen=True)
class SignalMapping:
    signal: otlp.Signal
    records: Callable[[Message], list[Record]]
    to_item: Callable[..., dict[str, Any]]
    wire_names: Mapping[str, str]


LOGS = SignalMapping(otlp.LOGS, log_records, log_item, LOG_WIRE_NAMES)
TRACES = SignalMapping(otlp.TRACES, spans, span_item, SPAN_WIRE_NAMES)


def refusals(rejected: list[dict[str, Any]], records: list[Record], *, plural: str, shown: int = 10) -> str:
    """Return the partial-success message: how many records were refused, and where and why (the first
    `shown` of them)."""
    if not rejected:
        return ""
    parts = [
        f"{records[item['index']].path}: "
        + "; ".join(f"{field}: {message}" for field, message in item["errors"].items())
        for item in rejected[:shown]
    ]
    more = f" (and {len(rejected) - shown} more)" if len(rejected) > shown else ""
    return f"{len(rejected)} of {len(records)} {plural} refused{more}: " + " | ".join(parts)
