"""Property tests: conform turns any JSON value into a canonical event or clear errors, never an exception."""

import json
from datetime import UTC, datetime, timedelta

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from apps.ingest.conform import MAX_EVENT_BYTES, SendContext, conform_event

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
CONTEXT = SendContext(
    service="svc",
    stage="prod",
    can_forward=False,
    received_at=NOW,
    sent_at=NOW - timedelta(seconds=30),
    header_correlation_id="hdr-1",
)

json_scalars = (
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text()
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5)
    ),
    max_leaves=30,
)
KEYS = [
    "event_id",
    "type",
    "event",
    "timestamp",
    "user_id",
    "userId",
    "correlation_id",
    "correlationId",
    "level",
    "message",
    "msg",
    "properties",
    "service",
    "stage",
    "time",
    "ts",
    "severity",
    "span_id",
    "parent_span_id",
    "duration_ms",
    "extra",
]
event_like = st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=8), json_values, max_size=10)


def check(result) -> None:
    if result.ok:
        event = result.event
        assert event["service"] == "svc" and event["stage"] == "prod"
        assert event["type"] in ("metric", "log", "span")
        if event["type"] != "span":
            assert (event["span_id"], event["parent_span_id"], event["duration_ms"]) == ("", "", None)
        assert isinstance(event["event"], str) and 0 < len(event["event"]) <= 200
        assert event["timestamp"].tzinfo is not None and event["timestamp"] <= NOW + timedelta(minutes=5)
        assert isinstance(event["properties"], dict)
        json.dumps(event["properties"])  # storable as JSON
        assert all(isinstance(note, str) for note in result.notes)
    else:
        assert result.errors and all(
            isinstance(k, str) and isinstance(v, str) and v for k, v in result.errors.items()
        )


@settings(max_examples=400, deadline=None)
@given(json_values)
def test_any_json_value_is_conformed_or_refused_clearly(value):
    check(conform_event(value, CONTEXT))


@settings(max_examples=600, deadline=None)
@given(event_like)
def test_event_shaped_objects_are_conformed_or_refused_clearly(item):
    check(conform_event(item, CONTEXT))


@settings(max_examples=200, deadline=None)
@given(st.builds(lambda piece, n: piece * n, st.text(min_size=1, max_size=3), st.integers(2000, 20000)))
def test_big_unicode_messages_respect_the_size_limit(text):
    result = conform_event({"event": "e", "message": text}, CONTEXT)

    size = len(
        json.dumps({"event": "e", "message": text}, ensure_ascii=False).encode("utf-8", "surrogatepass")
    )
    assert result.ok == (size <= MAX_EVENT_BYTES and not any(0xD800 <= ord(c) <= 0xDFFF for c in text))


# Any code point, lone surrogates and NUL included: what a JSON body's \\u escapes can carry.
any_text = st.text(alphabet=st.characters(exclude_categories=()), max_size=12)


@settings(max_examples=600, deadline=None)
@given(st.dictionaries(any_text, json_values | any_text, max_size=6), any_text)
def test_any_unicode_in_keys_and_values_is_stored_or_refused_renderably(properties, message):
    result = conform_event({"event": "e", "message": message, "properties": properties}, CONTEXT)

    # Errors and notes go into the answer (and notes into the database): they always encode.
    json.dumps([result.errors, result.notes], ensure_ascii=False).encode("utf-8")
    if result.ok:
        stored = json.dumps([result.event["properties"], result.event["message"]], ensure_ascii=False)
        assert "\\u0000" not in json.dumps(stored) and "\x00" not in stored
        stored.encode("utf-8")  # no lone surrogate reaches the database
        assert len(result.event["properties"]) == len({key.replace("\x00", "\ufffd") for key in properties})
    else:
        has_surrogate = any(
            0xD800 <= ord(c) <= 0xDFFF
            for text in [message, *properties, *map(str, properties.values())]
            for c in text
        )
        assert has_surrogate, result.errors


# --- an item's JSON text (from msgspec) spares the structure walk, and changes nothing conform decides ----


def _same_outcome(item, raw: bytes) -> None:
    """Conform `item` with and without its text; both must refuse, note and store the same."""
    with_text, without = conform_event(item, CONTEXT, raw=raw), conform_event(item, CONTEXT)
    assert (with_text.errors, with_text.notes, with_text.out_of_scope) == (
        without.errors,
        without.notes,
        without.out_of_scope,
    )
    if with_text.ok and "event_id assigned by the server" in with_text.notes:
        with_text.event.pop("event_id"), without.event.pop("event_id")
    assert with_text.event == without.event


@settings(max_examples=600, deadline=None)
@given(event_like, st.booleans(), st.booleans())
def test_an_items_text_changes_nothing_conform_decides(item, ascii_only, compact):
    separators = (",", ":") if compact else (", ", ": ")
    raw = json.dumps(item, ensure_ascii=ascii_only, separators=separators).encode("utf-8", "surrogatepass")
    try:
        decoded = msgspec.json.decode(raw)
    except msgspec.DecodeError:  # lone surrogates: msgspec refuses, conform never gets the text
        return
    _same_outcome(decoded, raw)


# Raw JSON numbers that json.dumps writes longer ("1e15" -> "1000000000000000.0"), text escapes it writes
# shorter, NUL escapes, and nesting around the limit: the cases the shortcut's bounds are about.
NUMBER_TEXTS = [b"1e15", b"-1E15", b"1e5", b"1e-7", b"0.1", b"12", b"-0", b"1.5e300"]


@settings(max_examples=400, deadline=None)
@given(
    st.integers(MAX_EVENT_BYTES - 3000, MAX_EVENT_BYTES + 10),
    st.lists(st.sampled_from(NUMBER_TEXTS), max_size=300),
    st.integers(0, 20),
    st.sampled_from([b"", b"\\u0000", b"\\u00e9", b"\\\\u0000", b"\\ud83d\\ude00"]),
)
def test_items_near_the_limits_get_the_same_answer_with_their_text(size, numbers, depth, escape):
    head = b'{"event": "e", "properties": {"n": [' + b",".join(numbers) + b'], "d": '
    nested = b'{"a": ' * depth + b"1" + b"}" * depth
    tail = b'}, "message": "' + escape
    pad = max(0, size - len(head) - len(nested) - len(tail) - 2)
    raw = head + nested + tail + b"x" * pad + b'"}'

    _same_outcome(msgspec.json.decode(raw), raw)


# --- spans: their fields are stored checked, or the span is refused naming the field ----------------------

span_ids = st.text(alphabet="0123456789abcdefABCDEF", max_size=34) | json_values
durations = st.floats() | st.integers() | json_values


@settings(max_examples=400, deadline=None)
@given(
    st.fixed_dictionaries(
        {"type": st.just("span"), "event": st.text(max_size=5)},
        optional={"span_id": span_ids, "parent_span_id": span_ids, "duration_ms": durations},
    )
)
def test_span_fields_are_stored_well_formed_or_refused_by_name(item):
    result = conform_event(item, CONTEXT)

    check(result)
    if result.ok:
        event = result.event
        for name in ("span_id", "parent_span_id"):
            assert len(event[name]) <= 32 and set(event[name]) <= set("0123456789abcdef")
        assert event["duration_ms"] is None or (
            isinstance(event["duration_ms"], float) and 0 <= event["duration_ms"] < float("inf")
        )
    else:
        assert set(result.errors) <= {"span_id", "parent_span_id", "duration_ms", "event", "item"}
