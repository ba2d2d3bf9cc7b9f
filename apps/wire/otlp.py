"""OTLP/HTTP as OpenTelemetry SDKs and Collectors speak it: request bodies decoded with opentelemetry-proto's
generated messages, and the answers the OTLP specification prescribes. Pure functions: no database, no
settings.

Bodies are binary protobuf (`application/x-protobuf`) or OTLP JSON (`application/json`). OTLP JSON is
protobuf's JSON mapping with lowerCamelCase keys, integer enums, unknown fields ignored and one deviation
read here: trace and span ids are hex, not base64. Answers use the request's encoding: an
`Export…ServiceResponse` (with `partial_success` when records were refused), or a `google.rpc.Status` for
a failure.
"""

import base64
import json
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message
from google.rpc import code_pb2, error_details_pb2, status_pb2
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
MEDIA_TYPES = (PROTOBUF, JSON)


class BodyError(ValueError):
    """The body does not decode as the signal's export request (400); nothing of it is stored."""


@dataclass(frozen=True)
class Signal:
    """One OTLP signal: its messages, and where its records and their ids sit in OTLP JSON."""

    name: str
    record_plural: str
    request_type: type[Message]
    response_type: type[Message]
    rejected_field: str
    # OTLP JSON keys: resources, scopes within a resource, records within a scope (lowerCamelCase, as the
    # specification spells them; protobuf's JSON mapping reads the snake_case names too).
    json_path: tuple[str, str, str]


LOGS = Signal(
    name="logs",
    record_plural="log records",
    request_type=logs_service_pb2.ExportLogsServiceRequest,
    response_type=logs_service_pb2.ExportLogsServiceResponse,
    rejected_field="rejected_log_records",
    json_path=("resourceLogs", "scopeLogs", "logRecords"),
)
TRACES = Signal(
    name="traces",
    record_plural="spans",
    request_type=trace_service_pb2.ExportTraceServiceRequest,
    response_type=trace_service_pb2.ExportTraceServiceResponse,
    rejected_field="rejected_spans",
    json_path=("resourceSpans", "scopeSpans", "spans"),
)


def decode(raw: bytes, *, signal: Signal, media_type: str) -> Message:
    """Return the export request a body holds; raise BodyError for one that does not decode.

    An empty body is an empty request (the specification answers it with success).
    """
    if media_type == PROTOBUF:
        try:
            return signal.request_type.FromString(raw)
        except DecodeError as exc:
            raise BodyError(f"Body is not a protobuf {signal.request_type.__name__}: {exc}") from None
    return _decode_json(raw, signal)


def _decode_json(raw: bytes, signal: Signal) -> Message:
    try:
        # OTLP JSON is UTF-8 (json.loads would also read UTF-16 and UTF-32 from bytes).
        data = json.loads(raw.decode("utf-8"), parse_constant=_refuse_constant)
    except RecursionError:
        raise BodyError("JSON is nested too deeply.") from None
    except UnicodeDecodeError as exc:
        raise BodyError(f"Body is not UTF-8 text: {exc.reason} at byte {exc.start}.") from None
    except ValueError as exc:
        raise BodyError(f"Malformed JSON: {exc}.") from None
    if not isinstance(data, dict):
        raise BodyError(f"Send a JSON object with {signal.json_path[0]} (an OTLP {signal.name} request).")
    _hex_ids_to_base64(data, signal)
    try:
        return _parse(data, signal)
    except (json_format.ParseError, ValueError, RecursionError) as exc:
        try:
            repaired = _repair_js_values(data)
        except RecursionError:
            repaired = False
        if not repaired:
            raise BodyError(f"Body is not an OTLP JSON {signal.name} request: {exc}") from None
    try:
        return _parse(data, signal)
    except (json_format.ParseError, ValueError, RecursionError) as exc:
        raise BodyError(f"Body is not an OTLP JSON {signal.name} request: {exc}") from None


def _parse(data: dict, signal: Signal) -> Message:
    message = signal.request_type()
    json_format.ParseDict(data, message, ignore_unknown_fields=True)
    return message


# Unicode's surrogate range: in a str that json.loads made, any of them is unpaired (a pair is one char).
_SURROGATE = re.compile("[\ud800-\udfff]")
_INT64 = (-(2**63), 2**63 - 1)
_INT_KEYS = ("intValue", "int_value")


def _repair_js_values(value: Any) -> bool:
    """Make what JavaScript's OTLP JSON serializer writes readable as what its protobuf serializer sends
    for the same record, in place; return whether anything changed. Only tried on a body that did not
    parse, so a well-formed body costs no walk.

    - A lone surrogate (a string cut inside an emoji, which JSON.stringify writes as `\\ud83d`) becomes
      U+FFFD, as protobuf's UTF-8 encoder writes it.
    - An `intValue` that is no int64 (any integral Number is one to the JS serializer: 1e21,
      Number.MAX_VALUE) becomes the `doubleValue` the protobuf serializer writes for it.
    """
    if isinstance(value, dict):
        changed = _int_as_double(value)
        children: Iterator[tuple[Any, Any]] = iter(list(value.items()))
    elif isinstance(value, list):
        changed, children = False, enumerate(value)
    else:
        return False
    for place, child in children:
        if isinstance(child, str):
            if _SURROGATE.search(child):
                value[place] = _SURROGATE.sub("\ufffd", child)
                changed = True
        elif isinstance(child, dict | list):
            changed = _repair_js_values(child) or changed
    return changed


def _int_as_double(value: dict) -> bool:
    """Turn an AnyValue's intValue that int64 cannot hold into its doubleValue; return whether it did."""
    for key in _INT_KEYS:
        number = value.get(key)
        if _outside_int64(number):
            del value[key]
            value["doubleValue"] = float(number)
            return True
    return False


def _outside_int64(number: Any) -> bool:
    """Whether an intValue is a finite JSON number that int64 cannot hold (it is then a double)."""
    if isinstance(number, bool) or not isinstance(number, int | float):
        return False
    if isinstance(number, float) and not math.isfinite(number):
        return False
    return not (_INT64[0] <= number <= _INT64[1]) or (isinstance(number, float) and not number.is_integer())


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


# Fields that hold trace and span ids wherever they appear (spans, their links, log records), in both
# spellings protobuf's JSON mapping reads.
_ID_FIELDS = ("traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id")
_HEX = re.compile(r"(?:[0-9a-fA-F]{2})*")


def _hex_ids_to_base64(data: dict, signal: Signal) -> None:
    """Rewrite OTLP JSON's hex ids as the base64 that protobuf's JSON mapping reads, in place.

    Anything that is not where OTLP puts records is left alone, for the parser to refuse or ignore.
    """
    resources, scopes, records = signal.json_path
    for r, resource in _children(data, resources):
        for s, scope in _children(resource, scopes):
            for i, record in _children(scope, records):
                path = f"{resources}[{r}].{scopes}[{s}].{records}[{i}]"
                _rewrite_ids(record, path)
                for n, link in _children(record, "links"):
                    _rewrite_ids(link, f"{path}.links[{n}]")


def _children(container: Any, key: str) -> Iterator[tuple[int, dict]]:
    """Yield (position, object) for the objects in `container`'s list under `key` (camelCase or snake)."""
    if not isinstance(container, dict):
        return
    value = container.get(key)
    if value is None:
        value = container.get(_snake(key))
    if isinstance(value, list):
        yield from ((index, child) for index, child in enumerate(value) if isinstance(child, dict))


def _snake(name: str) -> str:
    return re.sub(r"([A-Z])", lambda m: "_" + m.group(1).lower(), name)


def _rewrite_ids(record: dict, path: str) -> None:
    for field in _ID_FIELDS:
        value = record.get(field)
        if not isinstance(value, str):
            continue  # absent, or a type the parser refuses
        if not _HEX.fullmatch(value):
            shown = value if len(value) <= 40 else value[:40] + "…"
            raise BodyError(f"{path}.{field}: {shown!r} is not a hex id (OTLP JSON ids are hex, not base64).")
        record[field] = base64.b64encode(bytes.fromhex(value)).decode("ascii")


# --- answers --------------------------------------------------------------------------------------------


def export_response(signal: Signal, *, rejected: int = 0, message: str = "") -> Message:
    """Return the success answer; `partial_success` is set only when records were refused (or a message
    is given), as the specification requires."""
    response = signal.response_type()
    if rejected or message:
        setattr(response.partial_success, signal.rejected_field, rejected)
        response.partial_success.error_message = message
    return response


# The gRPC code of a Status for each HTTP status the endpoints answer (OTLP clients do not read it; it
# helps whoever troubleshoots).
_GRPC_CODES = {
    400: code_pb2.INVALID_ARGUMENT,
    401: code_pb2.UNAUTHENTICATED,
    403: code_pb2.PERMISSION_DENIED,
    404: code_pb2.NOT_FOUND,
    405: code_pb2.UNIMPLEMENTED,
    411: code_pb2.INVALID_ARGUMENT,
    413: code_pb2.RESOURCE_EXHAUSTED,
    415: code_pb2.INVALID_ARGUMENT,
    429: code_pb2.RESOURCE_EXHAUSTED,
    503: code_pb2.UNAVAILABLE,
}


def failure(*, http_status: int, message: str) -> Message:
    """Return the `google.rpc.Status` of a failed request; a 400 names the bad data in a BadRequest."""
    status = status_pb2.Status(code=_GRPC_CODES.get(http_status, code_pb2.UNKNOWN), message=message)
    if http_status == 400:
        bad = error_details_pb2.BadRequest()
        bad.field_violations.add(field="body", description=message)
        status.details.add().Pack(bad)
    return status


def encode(message: Message, media_type: str) -> bytes:
    """Return a message in the encoding of `media_type` (binary protobuf or JSON)."""
    if media_type == PROTOBUF:
        return message.SerializeToString()
    return json.dumps(json_format.MessageToDict(message), ensure_ascii=False).encode("utf-8")
