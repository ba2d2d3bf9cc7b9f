"""Ingestion bodies: msgspec's fast path reads every body exactly as the strict stdlib parser does."""

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rest_framework import exceptions

from apps.ingest import parsers
from apps.ingest.parsers import FAST_MAX_BRACKETS, batch_from_body, event_from_body

# Any code point (lone surrogates and NUL included), big integers, floats near the edges.
any_text = st.text(alphabet=st.characters(exclude_categories=()), max_size=8)
numbers = (
    st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from([0, -0.0, 1e15, 1e16, 1e-7, 5e-324, 1.7976931348623157e308, 2**63, -(2**64)])
)
scalars = st.none() | st.booleans() | numbers | any_text
values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(any_text, children, max_size=4),
    max_leaves=20,
)
events = st.dictionaries(
    st.sampled_from(["event", "event_id", "user_id", "timestamp", "properties", "message"]) | any_text,
    values,
    max_size=6,
)
timestamps = st.none() | st.sampled_from(
    ["2026-11-26T10:15:00Z", "1764152100", 1764152100.5, "soon", 10**400]
)
# Texts the JSON encoder never writes: numbers out of range, NaN, lone surrogates as raw bytes, bad UTF-8,
# a BOM, trailing commas, deep nesting, truncation.
SPLICES = [b"1e400", b"-1e400", b"9" * 5000, b"NaN", b"Infinity", b'"\xed\xa0\x80"', b'"\xff"', b"[" * 600]


def _text(value, ascii_only: bool, compact: bool) -> bytes:
    separators = (",", ":") if compact else (", ", ": ")
    return json.dumps(value, ensure_ascii=ascii_only, separators=separators).encode("utf-8", "surrogatepass")


@st.composite
def bodies(draw) -> bytes:
    items = draw(st.lists(events | values, min_size=0, max_size=5))
    ascii_only, compact = draw(st.booleans()), draw(st.booleans())
    shape = draw(st.sampled_from(["envelope", "bare", "extra key", "no batch", "scalar"]))
    if shape == "envelope":
        document = {"batch": items, "sent_at": draw(timestamps)}
    elif shape == "bare":
        document = items
    elif shape == "extra key":
        document = {"batch": items, "other": 1}
    elif shape == "no batch":
        document = {"events": items}
    else:
        document = draw(scalars)
    body = _text(document, ascii_only, compact)
    mutation = draw(st.sampled_from(["none", "none", "splice", "truncate", "bom", "trailing comma"]))
    if mutation == "splice" and b"0" in body:
        at = body.index(b"0")
        body = body[:at] + draw(st.sampled_from(SPLICES)) + body[at + 1 :]
    elif mutation == "truncate" and body:
        body = body[: draw(st.integers(0, len(body) - 1))]
    elif mutation == "bom":
        body = b"\xef\xbb\xbf" + body
    elif mutation == "trailing comma" and body.endswith(b"]"):
        body = body[:-1] + b",]"
    return body


def _outcome(read):
    """Return what reading a body gives, comparably: the values with their types, or the error."""
    try:
        batch = read()
    except (exceptions.APIException, parsers.PayloadTooLarge) as exc:
        return ("refused", type(exc).__name__, str(exc.detail))
    return ("read", repr(batch.items), batch.sent_at)


def _strict_batch(body: bytes):
    return parsers._strict_batch(parsers._strict(body))


@settings(max_examples=1500, deadline=None)
@given(bodies())
def test_the_fast_path_reads_any_body_as_the_strict_parser_does(body):
    assert _outcome(lambda: batch_from_body(body)) == _outcome(lambda: _strict_batch(body))


@settings(max_examples=300, deadline=None)
@given(st.lists(events, min_size=1, max_size=5), st.booleans())
def test_item_texts_are_the_items(items, ascii_only):
    body = _text({"batch": items}, ascii_only, compact=False)

    batch = batch_from_body(body)

    if batch.raws is not None:  # msgspec took it (no lone surrogate, every number in range)
        assert [json.loads(raw) for raw in batch.raws] == batch.items


def test_a_body_msgspec_refuses_is_read_by_the_strict_parser_item_by_item():
    body = (
        b'[{"event": "ok"}, {"event": "bad", "message": "\\udfff"}, {"n": 1e400}, {"n": '
        + b"9" * 5000
        + b"}]"
    )

    batch = batch_from_body(body)

    assert batch.raws is None
    assert batch.items[0] == {"event": "ok"}
    assert batch.items[1]["message"] == "\udfff"
    assert batch.items[2]["n"] == "1e400" and batch.items[3]["n"] == "9" * 5000  # OutOfRangeNumber


def test_a_well_formed_batch_takes_the_fast_path_with_each_items_text():
    body = b'{"sent_at": "2026-11-26T10:15:00Z", "batch": [{"event": "a"}, {"event": "b", "n": 1.5}]}'

    batch = batch_from_body(body)

    assert batch.raws == [b'{"event": "a"}', b'{"event": "b", "n": 1.5}']
    assert batch.items == [{"event": "a"}, {"event": "b", "n": 1.5}]
    assert batch.sent_at.isoformat() == "2026-11-26T10:15:00+00:00"


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (b'{"batch": [{"event": "a"}', "Malformed JSON"),
        (b"", "Request body is empty"),
        (b'{"batch": [], "x": 1}', "unexpected keys: x"),
        (b'{"batch": [{"event": "x"}], "sent_at": "soon"}', "sent_at:"),
        (b"[" * 200_000 + b"]" * 200_000, "nested too deeply"),
    ],
)
def test_bodies_that_are_not_batches_get_the_strict_parsers_400(body, detail):
    with pytest.raises(exceptions.ParseError) as refused:
        batch_from_body(body)

    assert detail in str(refused.value.detail)


def test_an_item_nested_past_the_guard_goes_to_the_strict_parser():
    deep = b"[" * (FAST_MAX_BRACKETS + 1) + b"]" * (FAST_MAX_BRACKETS + 1)

    batch = batch_from_body(b'[{"event": "a"}, {"event": "deep", "properties": {"a": ' + deep + b"}}]")

    assert batch.raws is None and len(batch.items) == 2


def test_one_event_keeps_its_text_unless_the_strict_parser_read_it():
    assert event_from_body(b'{"event": "a"}') == ({"event": "a"}, b'{"event": "a"}')
    assert event_from_body(b'{"event": "a", "n": 1e400}') == ({"event": "a", "n": "1e400"}, None)
    assert event_from_body(None) == ({}, None)  # no body at all: DRF's empty data
    with pytest.raises(exceptions.ParseError):
        event_from_body(b"[1]")
