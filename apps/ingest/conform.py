"""Conform: map the shapes services really send onto the canonical event, or say exactly what is wrong.

A pure function of one item and its sending context; no database, no settings. Every change it makes is
written down as a note, so support staff can see that `userId` became `user_id` or that a clock was off.
"""

import functools
import json
import math
import re
import unicodedata
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import ROUND_FLOOR, Context, Decimal, InvalidOperation
from typing import Any

MAX_EVENT_BYTES = 32 * 1024
MAX_DEPTH = 16
MAX_NAME_LENGTH = 200
MAX_SERVICE_LENGTH = 100
MAX_STAGE_LENGTH = 50
TYPES = ("metric", "log", "span")
LEVELS = ("debug", "info", "warning", "error", "critical")
LEVEL_ALIASES = {"warn": "warning", "err": "error", "fatal": "critical", "crit": "critical", "trace": "debug"}

# Earliest plausible timestamp: older values are refused as clock or unit bugs (1970 from a zero epoch).
EARLIEST_TIMESTAMP = datetime(2000, 1, 1, tzinfo=UTC)
# A timestamp further ahead than this (after skew correction) is clamped to the received time.
FUTURE_TOLERANCE = timedelta(minutes=5)
# Differences between sent_at and the received time below this are network latency, not clock skew.
SKEW_TOLERANCE = timedelta(seconds=2)
# sent_at further off than this is not trusted to correct timestamps.
MAX_SKEW_CORRECTION = timedelta(hours=24)
# Epoch values above this are milliseconds (1e11 seconds is the year 5138).
EPOCH_MILLISECONDS_ABOVE = 1e11
# Epoch values are cut to the microsecond, as ISO text with more fraction digits and OTLP's nanoseconds are:
# rounding put the last 500 ns of a day on the next day. Decimal arithmetic that only ever rounds down, with
# more digits than any time in the calendar has, so that cutting the digits it keeps is cutting the value.
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_FLOOR = Context(prec=40, rounding=ROUND_FLOOR)
# An epoch value this large is past the calendar (year 9999 is 2.5e14 milliseconds).
_EPOCH_OUT_OF_RANGE = 10**16
# Epoch text of at most this many characters (16 digits and a point) is read as a double, which holds it to
# the microsecond; longer text is read digit by digit.
_FLOAT_EXACT_CHARACTERS = 17

# What only a span carries (OTLP traces): its id, its parent's id and how long it took.
SPAN_FIELDS = ("span_id", "parent_span_id", "duration_ms")
# W3C and OTLP span ids are 16 hex digits, trace ids 32: no id a tracer makes is longer.
MAX_SPAN_ID_LENGTH = 32
_HEX = re.compile(r"[0-9a-f]+")

# Aliases seen in the wild -> canonical field. The canonical name wins when both are present.
ALIASES = {
    "userId": "user_id",
    "userID": "user_id",
    "user": "user_id",
    "uid": "user_id",
    "correlationId": "correlation_id",
    "correlationID": "correlation_id",
    "correlation": "correlation_id",
    "cid": "correlation_id",
    "eventId": "event_id",
    "eventID": "event_id",
    "time": "timestamp",
    "ts": "timestamp",
    "@timestamp": "timestamp",
    "eventTime": "timestamp",
    "msg": "message",
    "severity": "level",
    "levelname": "level",
    "loglevel": "level",
    "eventName": "event",
    "event_name": "event",
    "serviceName": "service",
    "service_name": "service",
}
CANONICAL = {
    "event_id",
    "type",
    "event",
    "timestamp",
    "user_id",
    "correlation_id",
    "level",
    "message",
    "properties",
    "service",
    "stage",
    *SPAN_FIELDS,
}
_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")
# NUL cannot be stored (PostgreSQL text and jsonb refuse it); log lines carry it from binary garbage, and
# losing the line is worse than changing one character, so it becomes the replacement character.
NUL, REPLACEMENT_CHARACTER = "\x00", "\ufffd"


class OutOfRangeNumber(str):
    """A JSON number beyond what can be stored (1e400, thousands of digits), kept as its text.

    The body parser makes these instead of failing the whole body, so conform refuses only their item.
    """


def read_json_float(text: str) -> float | OutOfRangeNumber:
    """Parse a JSON number with a fraction or exponent; out-of-range values become OutOfRangeNumber."""
    value = float(text)
    return value if math.isfinite(value) else OutOfRangeNumber(text)


def read_json_int(text: str) -> int | OutOfRangeNumber:
    """Parse a JSON integer; one too long to convert becomes OutOfRangeNumber."""
    try:
        return int(text)
    except ValueError:  # beyond sys.get_int_max_str_digits()
        return OutOfRangeNumber(text)


@dataclass(frozen=True)
class SendContext:
    """What the server knows about the request an item came in: who sent it, when, with which headers."""

    service: str
    stage: str
    can_forward: bool
    received_at: datetime
    sent_at: datetime | None = None
    header_correlation_id: str = ""


@dataclass
class Conformed:
    """A canonical event ready to store, or the errors that refused it (field -> message)."""

    event: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)
    # True when the item names a service or stage its key may not send for (403 rather than 400).
    out_of_scope: bool = False

    @property
    def ok(self) -> bool:
        return not self.errors


class ConformError(Exception):
    """A field of an item cannot be conformed; `field_name` says which."""

    def __init__(self, field_name: str, message: str, *, out_of_scope: bool = False) -> None:
        # Field paths and messages quote what was sent, which may hold lone surrogates: the error body
        # must render whatever the input, so they are escaped here, once.
        message = renderable(message)
        super().__init__(message)
        self.field_name = renderable(field_name)
        self.message = message
        self.out_of_scope = out_of_scope


def conform_event(item: Any, context: SendContext, *, raw: bytes | None = None) -> Conformed:
    """Return the canonical event for one received item, with notes of what changed, or its errors.

    `raw` is the item's JSON text when a strict decoder read it (msgspec: no lone surrogates, no NaN, no
    number out of range); it spares the structure walk for the items that plainly pass it.
    """
    result = Conformed()
    if not isinstance(item, dict):
        result.errors["item"] = f"must be a JSON object, got {_json_type(item)}"
        return result
    try:
        nul_paths = [] if raw is not None and _plainly_storable(raw) else _check_structure(item)
    except ConformError as refused:
        result.errors[refused.field_name] = refused.message
        return result
    if nul_paths:
        item = _without_nul(item)
        shown = ", ".join(nul_paths[:5]) + (f" and {len(nul_paths) - 5} more" if len(nul_paths) > 5 else "")
        shown = renderable(_without_nul(shown))
        result.notes.append(f"NUL characters (\\u0000) replaced by U+FFFD in {shown}")

    fields, extra = _rename_aliases(item, result.notes)
    event: dict[str, Any] = {}
    for field_name, step in _STEPS:
        try:
            step(fields, extra, event, context, result.notes)
        except ConformError as refused:
            result.errors[refused.field_name or field_name] = refused.message
            result.out_of_scope = result.out_of_scope or refused.out_of_scope
    if result.errors:
        return result
    result.event = event
    return result


# --- structure: size, depth, characters that cannot be stored ----------------------------------------


# How much longer json.dumps can write a float than its JSON text: repr is at most 24 characters
# ("-2.2250738585072014e-308"), a JSON number at least 3 ("1e5" becomes "100000.0"). Other values never
# grow: text is written as sent or shorter (escapes undone), integers as sent ("-0" shorter).
_FLOAT_GROWTH = 21


def _plainly_storable(raw: bytes) -> bool:
    """Return whether an item whose JSON text is `raw`, read by a strict decoder, passes the structure
    check with nothing to replace: within the size limit even after every float is re-encoded, at most
    MAX_DEPTH brackets, no NUL escape. Counting bytes over-counts (a "." or an "e" in text), never under.
    """
    size = len(raw)
    # Short texts cannot reach the limit even if every byte began a float: no need to count them.
    if size * (1 + _FLOAT_GROWTH) > MAX_EVENT_BYTES:
        size += _FLOAT_GROWTH * (raw.count(b".") + raw.count(b"e") + raw.count(b"E"))
    return (
        size <= MAX_EVENT_BYTES and raw.count(b"{") + raw.count(b"[") <= MAX_DEPTH and b"\\u0000" not in raw
    )


def _check_structure(item: dict) -> list[str]:
    """Refuse what cannot be stored (size, depth, lone surrogates, numbers out of range); return the paths
    of keys and values that hold a NUL character."""
    text = json.dumps(item, ensure_ascii=False, separators=(",", ":"), default=_datetime_text)
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_EVENT_BYTES:
        raise ConformError("item", f"event is {size} bytes serialized; the limit is {MAX_EVENT_BYTES} bytes")
    nul_paths: list[str] = []
    # Iterative walk: deep nesting must not exhaust the interpreter's stack.
    stack: list[tuple[Any, int, str]] = [(item, 1, "")]
    while stack:
        value, depth, path = stack.pop()
        if isinstance(value, dict):
            if depth > MAX_DEPTH:
                raise ConformError(path or "item", f"nested deeper than {MAX_DEPTH} levels")
            for key, child in value.items():
                child_path = f"{path}.{key}" if path else key
                if _check_text(key, child_path, what="key"):
                    nul_paths.append(f"key {child_path}")
                stack.append((child, depth + 1, child_path))
        elif isinstance(value, list):
            if depth > MAX_DEPTH:
                raise ConformError(path or "item", f"nested deeper than {MAX_DEPTH} levels")
            stack.extend((child, depth + 1, f"{path}[{i}]") for i, child in enumerate(value))
        elif type(value) is OutOfRangeNumber:
            raise ConformError(path, f"number {clip(value)} is out of range")
        elif isinstance(value, str):
            if _check_text(value, path, what="value"):
                nul_paths.append(path)
        elif isinstance(value, float) and not math.isfinite(value):
            raise ConformError(path, "NaN and Infinity are not allowed")
    return sorted(nul_paths)


def _datetime_text(value: Any) -> str:
    """JSON text for a datetime, the one value beyond JSON's a mapping hands over (see parse_timestamp)."""
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON")


def _check_text(text: str, path: str, *, what: str) -> bool:
    """Refuse text that cannot be stored; return whether it holds a NUL (to be replaced)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ConformError(
            path or "item", f"{what} contains an unpaired UTF-16 surrogate (invalid Unicode)"
        ) from None
    return NUL in text


def _without_nul(value: Any) -> Any:
    """Return a copy of a checked item with every NUL in keys and text replaced (depth is bounded)."""
    if isinstance(value, str):
        return value.replace(NUL, REPLACEMENT_CHARACTER)
    if isinstance(value, dict):
        return {_without_nul(key): _without_nul(child) for key, child in value.items()}
    if isinstance(value, list):
        return [_without_nul(child) for child in value]
    return value


def renderable(text: str) -> str:
    """Return text that encodes as UTF-8: lone surrogates become their escape (\\udfff)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def _rename_aliases(item: dict, notes: list[str]) -> tuple[dict, dict]:
    """Split an item into canonical fields (aliases renamed) and everything else. The steps only read the
    fields: an item with canonical keys only (most items) is its own fields, not copied."""
    extra: dict[str, Any] = {}
    if CANONICAL.issuperset(item):
        return item, extra
    fields = {key: value for key, value in item.items() if key in CANONICAL}
    for key, value in item.items():
        if key in CANONICAL:
            continue
        canonical = ALIASES.get(key)
        if canonical is None:
            extra[key] = value
        elif canonical in fields:
            extra[key] = value
            notes.append(f"{key} kept in properties: {canonical} was also given")
        else:
            fields[canonical] = value
            notes.append(f"{key} renamed to {canonical}")
    return fields, extra


# --- one step per canonical field ----------------------------------------------------------------------


# A UUID as most senders write it, and as it is stored: lowercase hex with hyphens.
_CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _event_id(fields: dict, extra: dict, event: dict, context: SendContext, notes: list[str]) -> None:
    """The event's id as canonical UUID text: as sent when sent so (no UUID object made and written out
    again for each event), else rewritten from any spelling uuid.UUID reads (upper case, braces, no
    hyphens, a urn:uuid: prefix)."""
    raw = fields.get("event_id")
    if raw is None:
        event["event_id"] = str(uuid.uuid4())
        notes.append("event_id assigned by the server")
        return
    if not isinstance(raw, str):
        raise ConformError("event_id", f"must be a UUID string, got {_json_type(raw)}")
    if _CANONICAL_UUID.fullmatch(raw):
        event["event_id"] = raw
        return
    try:
        event["event_id"] = str(uuid.UUID(raw))
    except ValueError:
        raise ConformError("event_id", f"{clip(raw)!r} is not a UUID") from None


def _service_and_stage(
    fields: dict, extra: dict, event: dict, context: SendContext, notes: list[str]
) -> None:
    service = fields.get("service", context.service)
    stage = fields.get("stage", context.stage)
    # Most items name the key's own service and stage (OTLP's and other SDKs' spell them out), or neither.
    if service == context.service and stage == context.stage and _plain_names(service, stage):
        event["service"], event["stage"] = context.service, context.stage
        return
    _check_service_and_stage(service, stage)
    service, stage = service.strip(), stage.strip()
    if (service, stage) != (context.service, context.stage) and not context.can_forward:
        raise ConformError(
            "service",
            f"this key sends for {context.service}/{context.stage} only; "
            f"records for {service}/{stage} need a forwarder key",
            out_of_scope=True,
        )
    event["service"], event["stage"] = service, stage


@functools.lru_cache(maxsize=256)
def _plain_names(service: str, stage: str) -> bool:
    """Return whether a key's service and stage pass the checks unchanged (as every key's do), so that an
    item naming neither, or naming exactly those, takes them without checking them again; else the item
    goes the long way."""
    try:
        _check_service_and_stage(service, stage)
    except ConformError:
        return False
    return (service.strip(), stage.strip()) == (service, stage)


def _check_service_and_stage(service: Any, stage: Any) -> None:
    for name, value, limit in (("service", service, MAX_SERVICE_LENGTH), ("stage", stage, MAX_STAGE_LENGTH)):
        if not isinstance(value, str) or not value.strip():
            raise ConformError(name, "must be a non-empty string")
        if len(value.strip()) > limit or _CONTROL_CHARS.search(value):
            raise ConformError(name, f"must be at most {limit} printable characters")


def _properties(fields: dict, extra: dict, event: dict, context: SendContext, notes: list[str]) -> None:
    props = fields.get("properties", {})
    if props is None:
        props = {}
    if not isinstance(props, dict):
        raise ConformError("properties", f"must be a JSON object, got {_json_type(props)}")
    props = dict(props)
    for key, value in extra.items():
        name = free_name(props, key, prefix="_top.")
        props[name] = value
        if name != key:
            notes.append(f"{key} moved to properties as {name}: properties already had {key}")
    if extra:
        notes.append(f"moved to properties: {', '.join(sorted(extra))}")
    event["properties"] = props


def free_name(properties: dict[str, Any], key: str, *, prefix: str) -> str:
    """Return the name under which a value moved into `properties` overwrites nothing the sender sent:
    `key` when it is free, else the first free one of `<prefix>key`, `<prefix><prefix>key`, ..."""
    while key in properties:
        key = prefix + key
    return key


def _type_and_event(fields: dict, extra: dict, event: dict, context: SendContext, notes: list[str]) -> None:
    kind = fields.get("type")
    name = fields.get("event")
    if kind is None:
        # A record with a message or a level but no event name is a log line (the lessons' metric logs).
        kind = "log" if name is None and ("message" in fields or "level" in fields) else "metric"
        if kind == "log":
            notes.append("type set to log: a message without an event name")
    if kind not in TYPES:
        raise ConformError("type", f'must be "metric", "log" or "span", got {clip(kind)!r}')
    if name is None:
        if kind == "metric":
            raise ConformError("event", "is required for metrics (the metric's name, e.g. search_made)")
        if kind == "span":
            raise ConformError("event", "is required for spans (the operation's name, e.g. GET /tiles)")
        name = "log"
    if not isinstance(name, str) or not name.strip():
        raise ConformError("event", "must be a non-empty string")
    if len(name.strip()) > MAX_NAME_LENGTH or _CONTROL_CHARS.search(name):
        raise ConformError("event", f"must be at most {MAX_NAME_LENGTH} printable characters")
    event["type"], event["event"] = kind, name.strip()


def _span(fields: dict, extra: dict, event: dict, context: SendContext, notes: list[str]) -> None:
    event["span_id"], event["parent_span_id"], event["duration_ms"] = "", "", None
    given = [name for name in SPAN_FIELDS if name in fields]
    if not given:
        return
    # Refused when malformed whatever the type, so that what the schema documents is what is accepted.
    values = {name: _span_id(fields.get(name), name) for name in ("span_id", "parent_span_id")}
    values["duration_ms"] = _duration_ms(fields.get("duration_ms"))
    kind, properties = event.get("type"), event.get("properties")
    if kind is None or properties is None:  # the type or the properties were refused: so is the item
        return
    if kind == "span":
        for name in ("span_id", "parent_span_id"):
            if values[name] != (fields.get(name) or ""):
                notes.append(f"{name} read as {values[name]}")
        event.update(values)
        return
    # Only spans have a place for these: anything else keeps them as it keeps any other field.
    for name in given:
        properties[free_name(properties, name, prefix="_top.")] = fields[name]
    notes.append(f"{', '.join(given)} kept in properties: only spans are stored with span fields")


def _span_id(raw: Any, name: str) -> str:
    """Return a span id as lowercase hex ("" when none was given), or refuse it."""
    if raw is None or raw == "":
        return ""
    if not isinstance(raw, str):
        raise ConformError(name, f"must be a hex string, got {_json_type(raw)}")
    value = raw.lower()
    if len(value) > MAX_SPAN_ID_LENGTH or not _HEX.fullmatch(value):
        raise ConformError(name, f"{clip(raw)!r} is not a hex id of at most {MAX_SPAN_ID_LENGTH} digits")
    return value


def _duration_ms(raw: Any) -> float | None:
    if raw is None:
        return None
    if isinstance(raw, bool) or not isinstance(raw, (int, float)):
        raise ConformError("duration_ms", f"must be a number of milliseconds, got {_json_type(raw)}")
    try:
        value = float(raw)
    except OverflowError:  # an integer beyond a float's range
        raise ConformError("duration_ms", f"{clip(raw)!r} is out of range") from None
    if not math.isfinite(value) or value < 0:
        raise ConformError(
            "duration_ms", f"must be a finite number of milliseconds, at least 0, got {clip(raw)}"
        )
    return value


def _level(fields: dict, extra: dict, event: dict, context: SendContext, notes: list[str]) -> None:
    raw = fields.get("level")
    if raw is None:
        if event.get("type") == "log":
            notes.append("level set to info (none given)")
            event["level"] = "info"
        else:
            event["level"] = ""
        return
    if not isinstance(raw, str):
        raise ConformError("level", f"must be one of {', '.join(LEVELS)}")
    level = raw.strip().lower()
    level = LEVEL_ALIASES.get(level, level)
    if level not in LEVELS:
        raise ConformError("level", f"{clip(raw)!r} is not one of {', '.join(LEVELS)}")
    if level != raw:
        notes.append(f"level {clip(raw)!r} read as {level}")
    event["level"] = level


def _message(fields: dict, extra: dict, event: dict, context: SendContext, notes: list[str]) -> None:
    raw = fields.get("message", "")
    if raw is None:
        raw = ""
    if not isinstance(raw, str):
        raise ConformError("message", f"must be a string, got {_json_type(raw)}")
    event["message"] = raw


def _user_id(fields: dict, extra: dict, event: dict, context: SendContext, notes: list[str]) -> None:
    raw = fields.get("user_id")
    if raw is None:
        event["user_id"] = ""
        return
    if isinstance(raw, bool) or not isinstance(raw, (str, int)):
        raise ConformError("user_id", f"must be a string or an integer, got {_json_type(raw)}")
    if isinstance(raw, int):
        notes.append("user_id number stored as text")
    value = str(raw).strip()
    # One person, one ID: "é" composed and "e" + a combining accent look the same to the people who search
    # for the user, and must count once. Most IDs are ASCII, which is normalized already (one C-level scan).
    # Before the length check: a few characters (U+0958) take two code points in NFC.
    if not value.isascii() and not unicodedata.is_normalized("NFC", value):
        value = unicodedata.normalize("NFC", value)
        notes.append("user_id normalized to Unicode NFC (the same characters, composed)")
    if len(value) > MAX_NAME_LENGTH or _CONTROL_CHARS.search(value):
        raise ConformError("user_id", f"must be at most {MAX_NAME_LENGTH} printable characters")
    event["user_id"] = value


def user_id_spellings(user_id: str) -> list[str]:
    """Return the user ID as given, then its other Unicode normal forms (composed, decomposed) where they
    differ: what to look up or purge for a typed ID, since rows stored before conform normalized user IDs
    keep the form their service sent."""
    if user_id.isascii():
        return [user_id]
    forms = [user_id, unicodedata.normalize("NFC", user_id), unicodedata.normalize("NFD", user_id)]
    return list(dict.fromkeys(forms))


def _correlation_id(fields: dict, extra: dict, event: dict, context: SendContext, notes: list[str]) -> None:
    raw = fields.get("correlation_id")
    if raw is None or raw == "":
        if context.header_correlation_id:
            notes.append("correlation_id taken from the request's correlation header")
        event["correlation_id"] = context.header_correlation_id
        return
    if not isinstance(raw, str):
        raise ConformError("correlation_id", f"must be a string, got {_json_type(raw)}")
    value = raw.strip()
    if len(value) > MAX_NAME_LENGTH or _CONTROL_CHARS.search(value):
        raise ConformError("correlation_id", f"must be at most {MAX_NAME_LENGTH} printable characters")
    event["correlation_id"] = value


def _timestamp(fields: dict, extra: dict, event: dict, context: SendContext, notes: list[str]) -> None:
    raw = fields.get("timestamp")
    received = context.received_at
    if raw is None:
        event["timestamp"] = received
        event["client_timestamp"] = None
        notes.append("timestamp missing: received time used")
        return
    moment = parse_timestamp(raw, notes)
    event["client_timestamp"] = moment  # as sent: the same on every re-send (see RawEvent.client_timestamp)
    if context.sent_at is not None:
        skew = received - context.sent_at
        if abs(skew) > MAX_SKEW_CORRECTION:
            # A sent_at this far off is a broken clock or a bug: shifting events by it would misplace them.
            notes.append(
                f"clock skew of {skew.total_seconds():+.0f}s from sent_at is beyond 24 h: not corrected"
            )
        elif abs(skew) > SKEW_TOLERANCE:
            try:
                moment += skew
                notes.append(f"clock skew of {skew.total_seconds():+.1f}s corrected from sent_at")
            except OverflowError:  # past year 9999 or before year 1: clamped or refused below, as sent
                notes.append(
                    f"clock skew of {skew.total_seconds():+.1f}s from sent_at not corrected: the timestamp "
                    "would leave the calendar"
                )
    if moment < EARLIEST_TIMESTAMP:
        # A number above 1e11 is read as milliseconds, so seconds far in the future land before 2000.
        how = " when read as epoch milliseconds" if "timestamp read as epoch milliseconds" in notes else ""
        raise ConformError("timestamp", f"{clip(raw)!r} is before 2000-01-01{how}, which is not plausible")
    if moment > received + FUTURE_TOLERANCE:
        notes.append(f"timestamp clamped to the received time: it was {moment.isoformat()}, in the future")
        moment = received
    event["timestamp"] = moment


# The steps of conform_event, in order: each fills its field of the event or refuses the item.
_STEPS = (
    ("event_id", _event_id),
    ("service", _service_and_stage),
    ("properties", _properties),
    ("type", _type_and_event),
    ("span_id", _span),
    ("level", _level),
    ("message", _message),
    ("user_id", _user_id),
    ("correlation_id", _correlation_id),
    ("timestamp", _timestamp),
)


def parse_timestamp(raw: Any, notes: list[str] | None = None) -> datetime:
    """Return an aware UTC datetime from ISO-8601 text or epoch seconds (number or numeric text), or from an
    aware datetime a wire format's mapping made (OTLP's nanoseconds: no text to write and read back).
    Every spelling is cut to the microsecond, never rounded up to the next one."""
    notes = notes if notes is not None else []
    if isinstance(raw, datetime) and raw.tzinfo is UTC:
        return raw
    if isinstance(raw, bool):
        raise ConformError("timestamp", "must be ISO-8601 text or epoch seconds, got a boolean")
    if isinstance(raw, str):
        text = raw.strip()
        if ":" in text:  # never a number (float() takes no colon): spare the failed conversion
            return _parse_iso(text, notes)
        number: float | Decimal
        try:
            # More digits than a double holds exactly to the microsecond are read as written.
            number = float(text) if len(text) <= _FLOAT_EXACT_CHARACTERS else Decimal(text)
        except (ValueError, InvalidOperation):
            return _parse_iso(text, notes)
        if not (number.is_finite() if isinstance(number, Decimal) else math.isfinite(number)):
            raise ConformError("timestamp", f"{clip(raw)!r} is not a time")
        notes.append("timestamp read from epoch seconds in a string")
        return _from_epoch(number, raw, notes)
    if isinstance(raw, (int, float)):
        if isinstance(raw, float) and not math.isfinite(raw):
            raise ConformError("timestamp", f"{clip(raw)!r} is not a time")
        return _from_epoch(raw, raw, notes)
    raise ConformError("timestamp", f"must be ISO-8601 text or epoch seconds, got {_json_type(raw)}")


def _from_epoch(number: float | Decimal, raw: Any, notes: list[str]) -> datetime:
    """Return epoch seconds (or milliseconds, above EPOCH_MILLISECONDS_ABOVE) as a time cut to the
    microsecond."""
    if abs(number) >= _EPOCH_OUT_OF_RANGE:
        raise ConformError("timestamp", f"{clip(raw)!r} is out of range")
    per_unit = 1_000_000
    if abs(number) > EPOCH_MILLISECONDS_ABOVE:
        per_unit = 1_000
        notes.append("timestamp read as epoch milliseconds")
    try:
        return _EPOCH + timedelta(microseconds=_microseconds(number, per_unit))
    except OverflowError:
        raise ConformError("timestamp", f"{clip(raw)!r} is out of range") from None


def _microseconds(number: float | Decimal, per_unit: int) -> int:
    """Return floor(number × per_unit): the microseconds of an epoch value, cut, as the sender wrote it."""
    if isinstance(number, int):
        return number * per_unit
    if isinstance(number, Decimal):
        return int(number.scaleb(len(str(per_unit)) - 1, _FLOOR).to_integral_value(context=_FLOOR))
    numerator, denominator = number.as_integer_ratio()
    cut = numerator * per_unit // denominator
    # A double is the nearest binary value to what was written, a hair above or below it: 1795219199.123456
    # is 1795219199.1234559…, whose floor is a microsecond short. When the next microsecond, written out,
    # reads back as this very double, it is what the sender wrote (int / int is correctly rounded).
    if (cut + 1) / per_unit == number:
        cut += 1
    return cut


def _parse_iso(text: str, notes: list[str]) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ConformError("timestamp", f"{clip(text)!r} is not ISO-8601 or epoch seconds") from None
    if moment.tzinfo is None:
        notes.append("timestamp without a time zone read as UTC")
        return moment.replace(tzinfo=UTC)
    try:
        converted = moment.astimezone(UTC)
    except OverflowError:  # e.g. 0001-01-01 with a positive offset
        raise ConformError("timestamp", f"{clip(text)!r} is out of range") from None
    if moment.utcoffset():
        notes.append(f"timestamp converted to UTC from {moment.isoformat()}")
    return converted


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def clip(value: Any, limit: int = 60) -> str:
    if isinstance(value, datetime):
        value = value.isoformat()
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[:limit] + "…"
