"""Property tests: conform turns any JSON value into a canonical event or clear errors, never an exception."""

import json
from datetime import UTC, datetime, timedelta

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
    "extra",
]
event_like = st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=8), json_values, max_size=10)


def check(result) -> None:
    if result.ok:
        event = result.event
        assert event["service"] == "svc" and event["stage"] == "prod"
        assert event["type"] in ("metric", "log")
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
