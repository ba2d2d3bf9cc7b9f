"""Turn a ``track()``/``log()`` call into the JSON the portal stores, in two halves.

``capture`` runs in the caller and does only what must happen there: copy what the caller may change later,
stamp time, correlation ID and event ID. ``encode`` runs in the sender thread: timestamp formatting, JSON,
the 32 KiB limit and truncation."""

from __future__ import annotations

import binascii
import json
import math
import os
import time
import uuid
from collections.abc import Mapping
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, NamedTuple

import orjson

from . import correlation
from .config import MAX_EVENT_BYTES

__all__ = [
    "AT_INDEX",
    "EVENT_ID_INDEX",
    "EXPONENT_GROWTH",
    "LOG_LEVELS",
    "Encoded",
    "PendingEvent",
    "PLAIN",
    "capture",
    "copy_properties",
    "discard_spare_event_ids",
    "dumps",
    "encode",
    "new_event_id",
    "next_spare_event_id",
    "normalise_level",
    "snapshot_properties",
    "take_user_id",
    "unflatten",
    "utc_iso",
]

LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
_LEVEL_ALIASES = {"warn": "warning", "fatal": "critical", "exception": "error", "err": "error"}
_TRUNCATE_BYTES = 8_192  # of JSON: a truncated string keeps this much of its head, escapes and UTF-8 counted
# How many bytes longer json.dumps, which the portal measures events with, writes a float than orjson: a
# sign and a leading zero in the exponent at most ("1e16" -> "1e+16", "1e-7" -> "1e-07"). Floats that
# orjson writes without an exponent come out alike (tests/observatory/test_tracker.py checks both).
EXPONENT_GROWTH = 2
# Values of these exact types are immutable and JSON as they are: a shallow copy of a dict of them is a
# snapshot. Anything else is copied or turned into its JSON form in the caller (see _snapshot).
PLAIN = frozenset({str, int, float, bool, type(None)})
_EVENT_ID_BATCH = 1024
_VARIANT_DIGITS = bytes.maketrans(b"0123456789abcdef", b"89ab89ab89ab89ab")
_ID_SLOT = 37  # an ID and the space after it
_spare_event_ids: list[str] = []
# The spare IDs' pop, for the hot path: atomic, so two threads never get the same ID; IndexError when empty.
next_spare_event_id = _spare_event_ids.pop


class PendingEvent(NamedTuple):
    """An event as ``track()``/``log()`` captured it, as the sender thread reads it."""

    kind: str  # "metric" or "log"
    name: str
    user_id: str | None
    timestamp: datetime | float | str | None  # as the caller gave it; formatted by encode()
    at: float  # time.time() when tracked: the timestamp when none (or an unusable one) was given
    correlation_id: str | None
    event_id: str
    level: str | None  # logs only
    message: str | None  # logs only
    properties: dict[Any, Any]  # the tracker's own copy


# Queued events are flat tuples: PendingEvent's fields but the last, then the property keys, then their
# values. The garbage collector stops tracking a plain tuple of immutable values after its first pass, but
# never a tuple subclass, a dict, or a tuple that held a tracked one then; a queue of 10,000 tracked
# objects makes every track() pay for collections. See capture() and unflatten().
_HEAD = len(PendingEvent._fields) - 1
EVENT_ID_INDEX = PendingEvent._fields.index("event_id")
AT_INDEX = PendingEvent._fields.index("at")


class Encoded(NamedTuple):
    """One event as it goes on the wire, with its event_id kept for delivery reports."""

    event_id: str
    data: bytes


# -- the caller's half ---------------------------------------------------------------------------------


def capture(
    kind: str,
    name: Any,
    properties: Any,
    user_id: Any,
    timestamp: datetime | float | str | None,
    correlation_id: str | None,
    event_id: str | uuid.UUID | None,
    level: str | None = None,
    message: str | None = None,
) -> tuple[Any, ...]:
    """Return the event as it is now, flat (see :func:`unflatten`), so later changes cannot reach it.

    ``user_id`` falls back to ``properties["user_id"]`` (or ``"userId"``), both removed from the copy. Values
    other than str, int, float, bool and None are copied (dicts, lists, tuples, sets) or turned into their
    JSON form (datetimes, UUIDs, any other object through ``str()``) here, in the caller's thread, so no
    caller code (``__str__`` of a lazy object, say) ever runs in the sender thread.

    ``Tracker.track`` does the same steps in its own frame (it is the hot path); keep the two alike.
    """
    props = properties.copy() if type(properties) is dict else copy_properties(properties)
    if "user_id" in props or "userId" in props:
        user_id = take_user_id(props, user_id)
    for value in props.values():
        if type(value) not in PLAIN:
            props = snapshot_properties(props)
            break
    if correlation_id is None:
        correlation_id = correlation.get()
    if event_id is None:
        try:
            event_id = _spare_event_ids.pop()  # new_event_id() inlined: this is the hot path
        except IndexError:
            event_id = new_event_id()
    else:
        event_id = str(event_id)
    return (
        kind,
        str(name),
        None if user_id is None else str(user_id),
        timestamp,
        time.time(),
        None if correlation_id is None else str(correlation_id),
        event_id,
        level,
        message,
        *props,
        *props.values(),
    )


def copy_properties(properties: Any) -> dict[Any, Any]:
    """Return a new dict of ``properties``: a mapping's items, none for None, else ``{"value": ...}``."""
    if properties is None:
        return {}
    if isinstance(properties, Mapping):
        return dict(properties)
    return {"value": properties}


def take_user_id(props: dict[Any, Any], user_id: Any) -> Any:
    """Remove ``user_id`` and ``userId`` from ``props``; return ``user_id``, or else the first of them set.

    Both spellings are removed so user ids never end up duplicated inside properties.
    """
    from_props = props.pop("user_id", None)
    camel = props.pop("userId", None)
    if user_id is None:
        user_id = from_props if from_props is not None else camel
    return user_id


def unflatten(fields: tuple[Any, ...]) -> PendingEvent:
    """Return the PendingEvent of a tuple made by :func:`capture`."""
    properties = fields[_HEAD:]
    half = len(properties) // 2
    return PendingEvent(*fields[:_HEAD], dict(zip(properties[:half], properties[half:], strict=True)))


def new_event_id() -> str:
    """Return a new random UUID4 string (taken from a batch made with one ``os.urandom`` call)."""
    try:
        return _spare_event_ids.pop()  # atomic: two threads never get the same ID
    except IndexError:
        fresh = _make_event_ids(_EVENT_ID_BATCH)
        event_id = fresh.pop()
        _spare_event_ids.extend(fresh)
        return event_id


def discard_spare_event_ids() -> None:
    """Forget the IDs made in advance (a forked child must not hand out its parent's)."""
    _spare_event_ids.clear()


def _make_event_ids(count: int) -> list[str]:
    """Return ``count`` random UUID4 strings made from one ``os.urandom`` call.

    ``str(uuid.uuid4())`` costs about 2 µs; this well under 0.1 µs an ID. Each ID gets 36 random hex
    digits and a space after them, in one ``hexlify`` call; then one strided write per column fixes the
    dashes, the version and the variant for all IDs at once.
    """
    text = bytearray(binascii.hexlify(os.urandom(18 * count), b" ", 18))  # 18 bytes: 36 digits
    for slot in (8, 13, 18, 23):
        text[slot::_ID_SLOT] = b"-" * count
    text[14::_ID_SLOT] = b"4" * count  # the version digit
    text[19::_ID_SLOT] = text[19::_ID_SLOT].translate(_VARIANT_DIGITS)  # variant bits 10xx
    return text.decode("ascii").split(" ")


os.register_at_fork(after_in_child=discard_spare_event_ids)


def normalise_level(level: str | int) -> str:
    """Return the portal's level name for a level name, alias or :mod:`logging` level number."""
    if isinstance(level, int):
        for threshold, name in ((50, "critical"), (40, "error"), (30, "warning"), (20, "info")):
            if level >= threshold:
                return name
        return "debug"
    name = str(level).strip().lower()
    name = _LEVEL_ALIASES.get(name, name)
    return name if name in LOG_LEVELS else "info"


def snapshot_properties(props: dict[Any, Any]) -> dict[Any, Any]:
    """Return a copy of ``props`` whose values are all plain (see :func:`capture`)."""
    try:
        return _snapshot(props, set())
    except Exception:  # circular references, a broken __str__ ...: keep the event, lose the properties
        return {"_unserialisable": True}


def _snapshot(value: Any, path: set[int]) -> Any:
    """Return a copy of ``value`` that JSON-encodes as ``json.dumps(value, default=_json_default)`` would."""
    if type(value) in PLAIN:
        return value
    if isinstance(value, dict | list | tuple | set | frozenset):
        ident = id(value)
        if ident in path:
            raise ValueError("circular reference")
        path.add(ident)
        try:
            if isinstance(value, dict):
                return {_json_key(key): _snapshot(item, path) for key, item in value.items()}
            return [_snapshot(item, path) for item in value]
        finally:
            path.discard(ident)
    # Subclasses (IntEnum, StrEnum ...) are JSON as their base type's value, as the json module writes them.
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, int):
        return int.__int__(value)
    if isinstance(value, float):
        return float.__float__(value)
    return _json_default(value)


def _json_key(key: Any) -> Any:
    """Return ``key`` as a JSON object key: what json.dumps writes itself as it is, else a string.

    json.dumps refuses keys other than str, int, float, bool and None (a date, a UUID, a tuple): one such
    key would cost the event all of its properties.
    """
    if key is None or isinstance(key, str | int | float):
        return key
    value = _json_default(key)
    return value if isinstance(value, str) else str(key)


def _string_keys(obj: Any) -> Any:
    """Return ``obj`` with every dict key turned into one JSON takes (see :func:`_json_key`)."""
    if isinstance(obj, dict):
        return {_json_key(key): _string_keys(value) for key, value in obj.items()}
    if isinstance(obj, list | tuple):
        return [_string_keys(value) for value in obj]
    return obj


def _json_default(obj: Any) -> Any:
    if isinstance(obj, datetime | date):
        return obj.isoformat()
    if isinstance(obj, uuid.UUID | Decimal):
        return str(obj)
    if isinstance(obj, set | frozenset | tuple):
        return list(obj)
    if isinstance(obj, bytes):
        return obj.decode("utf-8", "replace")
    return str(obj)


# -- the sender's half ---------------------------------------------------------------------------------


def encode(event: PendingEvent, service: str | None = None, stage: str | None = None) -> bytes | None:
    """Return the event as compact UTF-8 JSON of at most ``MAX_EVENT_BYTES``, or None when it cannot fit.

    An oversized event keeps the head of its long strings (message and property values); if that is not
    enough its properties are replaced by a note of the original size. Raise when it cannot be encoded
    at all (a lone surrogate in its name, say).
    """
    payload: dict[str, Any] = {
        "event_id": event.event_id,
        "type": event.kind,
        "event": event.name,
        "timestamp": _event_time(event),
        "properties": event.properties,
    }
    if event.user_id is not None:
        payload["user_id"] = event.user_id
    if event.correlation_id is not None:
        payload["correlation_id"] = event.correlation_id
    if service is not None:
        payload["service"] = service
    if stage is not None:
        payload["stage"] = stage
    if event.level is not None:
        payload["level"] = event.level
        payload["message"] = event.message
    try:
        data = dumps(payload)
    except _UNENCODABLE:
        try:  # a key JSON cannot take (a tuple, say, in properties whose values needed no snapshot)
            payload["properties"] = _string_keys(event.properties)
            data = dumps(payload)
        except _UNENCODABLE:  # e.g. a lone surrogate in a property: keep the event, lose the properties
            payload["properties"] = {"_unserialisable": True}
            data = dumps(payload)
    if _fits(payload, data):
        return data
    # Usually a huge log message or traceback: keep the head of long strings, then the rest.
    original = len(data)
    if "message" in payload:
        payload["message"] = _truncate(payload["message"])
    payload["properties"] = {k: _truncate(v) for k, v in payload["properties"].items()}
    data = dumps(payload)
    if not _fits(payload, data):
        payload["properties"] = {"_truncated": True, "_original_bytes": original}
        data = dumps(payload)
    if not _fits(payload, data):
        return None
    return data


def _fits(payload: dict[str, Any], data: bytes) -> bool:
    """Return whether the portal finds the event ``data`` (the JSON of ``payload``) within its limit.

    The portal measures an event as json.dumps writes it, which spells some floats longer than orjson.
    Only events near the limit, with room for that, are written a second time to measure.
    """
    size = len(data)
    # A float with an exponent takes 4 bytes at least ("1e16") and a separator: at most one in 5 bytes.
    # Most events cannot reach the limit even then.
    if size + EXPONENT_GROWTH * (size // 5 + 1) <= MAX_EVENT_BYTES:
        return True
    if size > MAX_EVENT_BYTES:
        return False
    # Every "e" may be an exponent (both encoders write it lower-case): text has them too, so this
    # over-counts, never under-counts.
    if size + EXPONENT_GROWTH * data.count(b"e") <= MAX_EVENT_BYTES:
        return True
    return len(_stdlib_dumps(payload)) <= MAX_EVENT_BYTES


# What json.dumps raises for what it cannot write: a key of another type (TypeError), a lone surrogate
# (UnicodeEncodeError, a ValueError), a reference cycle (ValueError, or RecursionError through _finite).
_UNENCODABLE = (TypeError, ValueError, RecursionError)


def dumps(obj: Any) -> bytes:
    """Return compact UTF-8 JSON; NaN and infinities become null (Postgres jsonb refuses them)."""
    try:
        return orjson.dumps(obj)
    except TypeError:  # orjson.JSONEncodeError: ints beyond 64 bits, non-str keys, lone surrogates ...
        return _stdlib_dumps(obj)


def _stdlib_dumps(obj: Any) -> bytes:
    try:
        text = json.dumps(
            obj, default=_json_default, ensure_ascii=False, separators=(",", ":"), allow_nan=False
        )
    except ValueError:
        # Non-finite floats (or a circular reference, which _finite turns into RecursionError).
        text = json.dumps(_finite(obj), default=_json_default, ensure_ascii=False, separators=(",", ":"))
    return text.encode("utf-8")


def _finite(obj: Any) -> Any:
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, Mapping):
        return {str(k): _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple | set | frozenset):
        return [_finite(v) for v in obj]
    return obj


def _event_time(event: PendingEvent) -> str:
    try:
        return utc_iso(event.timestamp if event.timestamp is not None else event.at)
    except (TypeError, ValueError, OverflowError, OSError):  # not a time, or out of datetime's range
        return utc_iso(event.at)


def utc_iso(value: datetime | float | int | str | None) -> str:
    """Format a timestamp as ISO-8601 UTC (None: now); naive datetimes are taken to be UTC already."""
    if value is None:
        moment = datetime.now(UTC)
    elif isinstance(value, str):
        return value
    elif isinstance(value, datetime):
        moment = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    elif isinstance(value, int | float):
        moment = datetime.fromtimestamp(value, UTC)
    else:
        raise TypeError(f"timestamp must be datetime, epoch seconds or ISO string, not {type(value)!r}")
    return moment.isoformat(timespec="microseconds")


def _truncate(value: Any) -> Any:
    """Return a string of more than ``_TRUNCATE_BYTES`` of JSON cut to that and marked; else ``value``."""
    # No character takes more than 6 bytes of JSON ("\u0001"): short strings need no measuring.
    if not isinstance(value, str) or len(value) <= _TRUNCATE_BYTES // 6:
        return value
    head = value
    size = len(dumps(head)) - 2  # without the quotes
    while size > _TRUNCATE_BYTES:
        # Keep the share of characters that fits if they are alike; a few rounds when they are not.
        head = head[: len(head) * _TRUNCATE_BYTES // size]
        size = len(dumps(head)) - 2
    return value if head is value else head + "...[truncated]"
