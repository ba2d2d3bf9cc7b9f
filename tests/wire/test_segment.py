"""Reading Segment tracking bodies and mapping Segment messages (pure functions)."""

import pytest

from apps.wire import segment
from apps.wire.items import Refused
from apps.wire.keys import ConflictingKeys


def test_a_batch_and_one_message_typed_by_its_path():
    batch = segment.unpack_batch({"batch": [{"type": "track"}], "sentAt": "t", "writeKey": "k"})
    single = segment.unpack_single({"type": "track", "sentAt": "t"}, kind="page")

    assert (batch.messages, batch.sent_at, batch.single) == ([{"type": "track"}], "t", False)
    assert (single.messages[0]["type"], single.sent_at, single.single) == ("page", "t", True)


@pytest.mark.parametrize("body", [[], "x", {"batch": "x"}, {"batch": []}, {"events": []}])
def test_other_batch_bodies_are_refused(body):
    with pytest.raises(segment.TrackingError):
        segment.unpack_batch(body)


def test_the_write_key_of_a_body_or_its_messages():
    assert segment.write_key({"writeKey": "k", "batch": [{"writeKey": "other"}]}) == "k"
    assert segment.write_key({"batch": [{"writeKey": "k"}, {}]}) == "k"
    assert segment.write_key({"type": "track"}) is None
    with pytest.raises(ConflictingKeys):
        segment.write_key({"batch": [{"writeKey": "k"}, {"writeKey": "other"}]})
    with pytest.raises(segment.TrackingError):
        segment.write_key([])


def test_a_track_message_maps_onto_the_canonical_fields():
    item = segment.to_item(
        {
            "type": "track",
            "event": "Order Completed",
            "userId": "u1",
            "anonymousId": "a1",
            "messageId": "ajs-next-1",
            "originalTimestamp": "2026-11-26T10:15:00.000Z",
            "properties": {"total": 12},
            "context": {"correlationId": "req-1", "ip": "10.0.0.1"},
            "writeKey": "k",
            "sentAt": "2026-11-26T10:15:01.000Z",
        },
        service="svc",
    )

    assert item["event"] == "Order Completed"
    assert item["user_id"] == "u1"
    assert item["timestamp"] == "2026-11-26T10:15:00.000Z"
    assert item["correlation_id"] == "req-1"
    assert item["properties"] == {
        "total": 12,
        "anonymousId": "a1",
        "context": {"correlationId": "req-1", "ip": "10.0.0.1"},
        "original_event_id": "ajs-next-1",
    }


def test_other_types_are_named_after_themselves_and_keep_their_fields():
    item = segment.to_item(
        {"type": "group", "anonymousId": "a1", "groupId": "g", "traits": {"n": 1}}, service="s"
    )

    assert (item["event"], item["user_id"]) == ("group", "a1")
    assert item["properties"] == {"groupId": "g", "traits": {"n": 1}}


def test_an_unknown_type_refuses_only_its_message():
    with pytest.raises(Refused) as refused:
        segment.to_item({"type": "pageview"}, service="s")

    assert "must be one of track" in refused.value.errors["type"]
