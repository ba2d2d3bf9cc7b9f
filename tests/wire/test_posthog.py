"""Reading posthog capture bodies and mapping posthog events (pure functions)."""

import json
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from apps.wire import posthog
from apps.wire.keys import ConflictingKeys


def test_the_three_body_shapes():
    batch = posthog.unpack(
        {"api_key": "k", "batch": [{"event": "a"}], "sent_at": "t", "historical_migration": False}
    )
    single = posthog.unpack({"event": "a", "token": "k", "sent_at": "t"})
    bare = posthog.unpack([{"event": "a", "api_key": "k"}, {"event": "b", "properties": {"token": "k"}}])

    assert (batch.events, batch.sent_at, batch.single, batch.key) == ([{"event": "a"}], "t", False, "k")
    assert (single.single, single.sent_at, single.key) == (True, "t", "k")
    assert (len(bare.events), bare.single, bare.key) == (2, False, "k")


@pytest.mark.parametrize("body", [42, "x", None, {"batch": "x"}, {"batch": []}, []])
def test_other_bodies_are_not_capture_requests(body):
    with pytest.raises(posthog.CaptureError):
        posthog.unpack(body)


def test_the_bodys_key_wins_over_the_events_and_two_event_keys_conflict():
    assert posthog.project_key({"api_key": "body", "batch": [{"api_key": "event"}]}) == "body"
    assert posthog.project_key({"batch": [{"token": "k"}, {"properties": {"token": "k"}}]}) == "k"
    assert posthog.project_key({"batch": [{"event": "a"}]}) is None
    with pytest.raises(ConflictingKeys):
        posthog.project_key([{"api_key": "k"}, {"api_key": "other"}])


def test_an_event_maps_onto_the_canonical_fields():
    item = posthog.to_item(
        {
            "event": "$pageview",
            "distinct_id": 1234,
            "uuid": "0190b6a2-3c4d-7e8f-9a0b-1c2d3e4f5a6b",
            "timestamp": "2026-11-26T10:15:00+00:00",
            "properties": {"$current_url": "/x", "correlation_id": "req-1", "token": "k"},
            "$set": {"plan": "pro"},
            "api_key": "k",
            "type": "capture",
        },
        service="svc",
    )

    assert item == {
        "event": "$pageview",
        "event_id": "0190b6a2-3c4d-7e8f-9a0b-1c2d3e4f5a6b",
        "user_id": 1234,
        "timestamp": "2026-11-26T10:15:00+00:00",
        "correlation_id": "req-1",
        "properties": {
            "$current_url": "/x",
            "correlation_id": "req-1",
            "$set": {"plan": "pro"},
            "type": "capture",
        },
    }


def test_distinct_id_may_come_in_properties():
    assert (
        posthog.to_item({"event": "a", "properties": {"distinct_id": "u1"}}, service="s")["user_id"] == "u1"
    )
    assert (
        posthog.to_item({"event": "a", "properties": {"$distinct_id": "u2"}}, service="s")["user_id"] == "u2"
    )


def test_what_conform_must_refuse_is_passed_on():
    assert posthog.to_item("x", service="s") == "x"
    assert posthog.to_item({"event": "a", "properties": [1]}, service="s")["properties"] == [1]


@given(
    event=st.dictionaries(
        st.sampled_from(["event", "distinct_id", "uuid", "timestamp", "$set", "api_key", "token", "x"]),
        st.text(),
    ),
    properties=st.dictionaries(st.sampled_from(["token", "a", "$lib"]), st.text()),
)
def test_the_key_is_never_kept_wherever_posthog_puts_it(event, properties):
    item = posthog.to_item({**event, "properties": properties}, service="s")

    assert "api_key" not in item["properties"] and "token" not in item["properties"]
    assert set(item) <= {"event", "event_id", "user_id", "timestamp", "correlation_id", "properties"}
    json.dumps(item)


@pytest.mark.parametrize(
    ("version", "shape"),
    [(None, "list"), ("1", "list"), ("0", "list"), ("x", "list"), ("2", "map"), ("3", "v1"), ("9", "v2")],
)
def test_decide_versions_map_onto_posthogs_shapes(version, shape):
    answer = posthog.flags_answer(version=version, config=None, decide=True, request_id="r", evaluated_at=1)

    found = {
        "list": answer.get("featureFlags") == [],
        "map": answer.get("featureFlags") == {} and "errorsWhileComputingFlags" not in answer,
        "v1": answer.get("featureFlagPayloads") == {},
        "v2": answer.get("flags") == {},
    }
    assert [name for name, matched in found.items() if matched] == [shape]
    assert answer["supportedCompression"] == ["gzip", "gzip-js"]  # /decide/ always carries the config


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1764900000000", datetime(2025, 12, 5, 2, 0, tzinfo=UTC)),
        ("1764900000", None),
        ("x", None),
        (None, None),
    ],
)
def test_the_query_time_is_read_as_posthog_reads_it(value, expected):
    assert posthog.query_sent_at(value) == expected
