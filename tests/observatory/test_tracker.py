"""Tracker delivery, batching, retries, overflow, flush/shutdown and event building (loopback server)."""

from __future__ import annotations

import enum
import json
import logging
import math
import random
import socket
import struct
import threading
import time
import uuid
from datetime import UTC, date, datetime
from decimal import Decimal

import orjson
import pytest

import observatory
from observatory import correlation
from observatory.encoding import EXPONENT_GROWTH, Encoded
from observatory.sender import chunks
from observatory.tracker import Tracker


def _parse_ts(value: str) -> datetime:
    parsed = datetime.fromisoformat(value)
    assert parsed.utcoffset() is not None and parsed.utcoffset().total_seconds() == 0
    return parsed


def test_delivers_gzipped_batch_with_canonical_fields(ingest_server, make_tracker):
    tracker = make_tracker()
    before = datetime.now(UTC)
    ids = [tracker.track("search_made", {"query": "q", "n_results": 12, "user_id": 7}) for _ in range(3)]

    assert tracker.flush(5)

    [post] = ingest_server.posts()
    assert post.path == "/api/v1/batch"
    assert post.raw[:2] == b"\x1f\x8b"  # really gzip on the wire
    assert post.headers["Content-Encoding"] == "gzip"
    assert post.headers["Content-Type"] == "application/json"
    assert post.headers["Authorization"] == "Bearer test-key"
    assert _parse_ts(post.body["sent_at"]) >= before
    assert post.event_ids == ids
    for event in post.body["batch"]:
        assert uuid.UUID(event["event_id"]).version == 4
        assert event["type"] == "metric"
        assert event["event"] == "search_made"
        assert _parse_ts(event["timestamp"]) >= before
        assert event["user_id"] == "7"
        assert event["properties"] == {"query": "q", "n_results": 12}
        assert "service" not in event and "stage" not in event  # the API key decides by default
        assert "correlation_id" not in event
    stats = tracker.stats()
    assert stats["sent"] == stats["accepted"] == 3
    assert stats["queued"] == stats["dropped"] == stats["retries"] == stats["failed_batches"] == 0


def test_batches_by_size_then_flush_sends_the_rest(ingest_server, make_tracker, wait_until):
    tracker = make_tracker(batch_size=10, flush_interval=60)
    for i in range(25):
        tracker.track("e", {"i": i})

    # Two full batches go out without waiting for the (huge) interval.
    wait_until(lambda: len(ingest_server.posts()) >= 2)
    assert [len(p.event_ids) for p in ingest_server.posts()] == [10, 10]
    assert tracker.flush(5)
    assert [len(p.event_ids) for p in ingest_server.posts()] == [10, 10, 5]
    assert [e["properties"]["i"] for e in ingest_server.events()] == list(range(25))  # order kept


def test_batches_by_interval_without_flush(ingest_server, make_tracker):
    tracker = make_tracker(batch_size=100, flush_interval=0.2)
    for i in range(3):
        tracker.track("e", {"i": i})
    ingest_server.wait_for_events(3, timeout=3)
    assert len(ingest_server.posts()) == 1


@pytest.mark.parametrize("failures", [[500, 500], [(503, "0")], ["drop", "drop"]])
def test_retries_the_same_batch_until_delivered(ingest_server, make_tracker, failures):
    ingest_server.answer_next(*failures)
    tracker = make_tracker()
    ids = [tracker.track("e", {"i": i}) for i in range(5)]

    assert tracker.flush(5)

    posts = ingest_server.posts()
    assert len(posts) == len(failures) + 1
    assert all(p.event_ids == ids for p in posts)  # same event_ids on every attempt
    assert sorted(e["event_id"] for e in ingest_server.events()) == sorted(ids)
    stats = tracker.stats()
    assert stats["retries"] == len(failures)
    assert stats["accepted"] == 5 and stats["failed_batches"] == 0


def test_lost_answer_is_retried_and_deduplicated_by_the_server(ingest_server, make_tracker):
    # The server stores the batch but the connection drops before the answer: the client cannot know,
    # retries, and the server reports duplicates instead of storing twice.
    ingest_server.answer_next("store_then_drop")
    tracker = make_tracker()
    ids = [tracker.track("e", {"i": i}) for i in range(3)]

    assert tracker.flush(5)

    assert [p.event_ids for p in ingest_server.posts()] == [ids, ids]
    assert len(ingest_server.events()) == 3
    stats = tracker.stats()
    assert (stats["accepted"], stats["duplicates"], stats["retries"]) == (0, 3, 1)


def test_429_retry_after_is_honoured(ingest_server, make_tracker):
    ingest_server.answer_next((429, "1"))
    tracker = make_tracker(backoff_max=0.05)  # jittered backoff alone would retry within 50 ms
    tracker.track("e")

    assert tracker.flush(5)

    first, second = ingest_server.posts()
    assert second.at - first.at >= 0.9
    assert first.event_ids == second.event_ids
    assert first.body["sent_at"] != second.body["sent_at"]  # stamped per POST
    assert tracker.stats()["retries"] == 1


def test_a_long_retry_after_pauses_sending_and_new_events_overflow(ingest_server, make_tracker, wait_until):
    # The portal's rate limits may be per hour: Retry-After up to 3600 s, far beyond the retry budget.
    ingest_server.answer_next(*[(429, "300")] * 10)
    seen: list[observatory.Delivery] = []
    tracker = make_tracker(batch_size=10, max_queue=20, flush_interval=60, on_delivery=seen.append)
    for i in range(10):
        tracker.track("e", {"i": i})
    wait_until(lambda: ingest_server.posts())  # the sender now pauses with this batch at its head
    for i in range(10, 40):
        tracker.track("e", {"i": i})  # 20 fit in the queue, 10 overflow as usual

    assert tracker.flush(0.3) is False  # nothing given up, nothing sent: paused
    assert (seen, len(ingest_server.posts())) == ([], 1)
    stats = tracker.stats()
    assert (stats["queued"], stats["dropped"], stats["failed_events"]) == (30, 10, 0)

    start = time.monotonic()
    assert tracker.shutdown(0.2) is False  # shutdown cuts the pause short and gives up what is left
    assert time.monotonic() - start < 2.0
    assert sum(len(d.failed) for d in seen) == 30 and tracker.stats()["failed_events"] == 30
    assert all("Retry-After pause of 300s" in d.reason for d in seen), {d.reason for d in seen}


def test_retry_after_pauses_are_outside_the_retry_budget(ingest_server, make_tracker):
    ingest_server.answer_next((503, "1"), (429, "1"))
    tracker = make_tracker(max_retries=0, max_retry_time=0.5)  # neither allows a single retry
    event_id = tracker.track("e")

    assert tracker.flush(5)

    assert [p.event_ids for p in ingest_server.posts()] == [[event_id]] * 3
    stats = tracker.stats()
    assert (stats["accepted"], stats["retries"], stats["failed_events"]) == (1, 2, 0)


def test_sync_mode_never_pauses_the_caller(ingest_server, make_tracker):
    ingest_server.answer_next((429, "300"))
    seen: list[observatory.Delivery] = []
    tracker = make_tracker(sync=True, max_retry_time=5, on_delivery=seen.append)

    start = time.monotonic()
    event_id = tracker.track("e")
    assert time.monotonic() - start < 1.0

    [failure] = seen
    assert failure.failed == (event_id,) and failure.status == 429
    assert "Retry-After 300s" in failure.reason and "budget" in failure.reason


@pytest.mark.parametrize("status", [400, 401, 403, 404])
def test_other_4xx_are_not_retried(ingest_server, make_tracker, caplog, status):
    ingest_server.answer_next(status)
    tracker = make_tracker()
    tracker.track("e")

    assert tracker.flush(5)  # given up counts as done

    assert len(ingest_server.posts()) == 1
    stats = tracker.stats()
    assert (stats["retries"], stats["failed_batches"], stats["failed_events"], stats["sent"]) == (0, 1, 1, 0)
    assert any(f"HTTP {status}" in r.getMessage() for r in caplog.records if r.name.startswith("observatory"))


def test_gives_up_after_max_retries(ingest_server, make_tracker):
    ingest_server.answer_next(*[500] * 10)
    tracker = make_tracker(max_retries=2)
    tracker.track("e")

    assert tracker.flush(5)

    assert len(ingest_server.posts()) == 3
    stats = tracker.stats()
    assert (stats["retries"], stats["failed_batches"]) == (2, 1)


def test_connection_refused_is_retried_then_given_up(make_tracker):
    with socket.socket() as sock:  # find a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    tracker = make_tracker(url=f"http://127.0.0.1:{port}", max_retries=2)
    tracker.track("e")

    assert tracker.flush(5)

    stats = tracker.stats()
    assert (stats["retries"], stats["failed_batches"], stats["failed_events"]) == (2, 1, 1)


def test_413_splits_the_batch(ingest_server, make_tracker):
    ingest_server.answer_next(413)
    tracker = make_tracker(flush_interval=60)
    ids = [tracker.track("e", {"i": i}) for i in range(4)]

    assert tracker.flush(5)

    assert [p.event_ids for p in ingest_server.posts()] == [ids, ids[:2], ids[2:]]
    assert tracker.stats()["accepted"] == 4


def test_queue_overflow_drops_and_counts(ingest_server, make_tracker, caplog, wait_until):
    ingest_server.answer_next("block")
    tracker = make_tracker(batch_size=1, max_queue=5)
    tracker.track("first")
    wait_until(lambda: ingest_server.posts())  # the sender is now stuck inside the first POST

    with caplog.at_level(logging.WARNING, logger="observatory"):
        start = time.monotonic()
        results = [tracker.track("e", {"i": i}) for i in range(20)]
        elapsed = time.monotonic() - start

    assert elapsed < 0.5  # track() never blocks, even with a stuck server and a full queue
    assert sum(r is not None for r in results) == 5
    stats = tracker.stats()
    assert (stats["dropped"], stats["queued"]) == (15, 6)
    overflow_warnings = [r for r in caplog.records if "queue full" in r.getMessage()]
    assert len(overflow_warnings) == 1  # rate-limited, not one per dropped event

    ingest_server.release.set()
    assert tracker.flush(5)
    assert len(ingest_server.events()) == 6


def test_flush_timeout_returns_false_while_server_hangs(ingest_server, make_tracker):
    ingest_server.answer_next("block")
    tracker = make_tracker()
    tracker.track("e")

    start = time.monotonic()
    assert tracker.flush(0.2) is False
    assert time.monotonic() - start < 1.0

    ingest_server.release.set()
    assert tracker.flush(5) is True
    assert tracker.stats()["queued"] == 0


def test_shutdown_flushes_and_stops_the_thread(ingest_server, make_tracker):
    tracker = make_tracker(flush_interval=60)
    for i in range(3):
        tracker.track("e", {"i": i})

    assert tracker.shutdown(5)

    assert len(ingest_server.events()) == 3
    assert tracker._sender.thread is not None and not tracker._sender.thread.is_alive()
    assert tracker.track("late") is None
    assert tracker.stats()["dropped"] == 1


def test_shutdown_gives_up_after_timeout(ingest_server, make_tracker):
    ingest_server.answer_next(*[500] * 1000)
    tracker = make_tracker(backoff_base=0.05, max_retries=1000, max_retry_time=60)
    tracker.track("e")

    start = time.monotonic()
    assert tracker.shutdown(0.3) is False
    assert time.monotonic() - start < 2.0
    assert tracker.stats()["failed_events"] == 1


def test_sync_mode_sends_in_the_callers_thread(ingest_server, make_tracker):
    ingest_server.answer_next(500)
    tracker = make_tracker(sync=True)

    event_id = tracker.track("now", {"a": 1})

    # Delivered (after one inline retry) before track() returned: no waiting needed.
    assert [e["event_id"] for e in ingest_server.events()] == [event_id]
    assert tracker._sender.thread is None
    assert tracker.stats()["retries"] == 1
    assert tracker.flush(0) is True


def test_sync_mode_from_environment(monkeypatch, ingest_server):
    monkeypatch.setenv("OBSERVATORY_SYNC", "1")
    monkeypatch.setenv("OBSERVATORY_URL", ingest_server.url)
    tracker = Tracker()
    assert tracker.sync
    tracker.track("now")
    assert len(ingest_server.events()) == 1


def test_environment_defaults(monkeypatch, ingest_server, make_tracker):
    monkeypatch.setenv("OBSERVATORY_URL", ingest_server.url + "/")
    monkeypatch.setenv("OBSERVATORY_API_KEY", "env-key")
    monkeypatch.setenv("SERVICE_NAME", "search")
    monkeypatch.setenv("STAGE", "prod")
    tracker = make_tracker(url=None, api_key=None, service=None, stage=None, send_service=True)
    tracker.track("e")
    assert tracker.flush(5)

    [post] = ingest_server.posts()
    assert post.headers["Authorization"] == "Bearer env-key"
    assert post.path == "/api/v1/batch"
    assert (post.body["batch"][0]["service"], post.body["batch"][0]["stage"]) == ("search", "prod")


def test_without_url_drops_counts_and_warns_once(caplog):
    tracker = Tracker()
    with caplog.at_level(logging.WARNING, logger="observatory"):
        assert tracker.track("e") is None
        assert tracker.log("info", "hello") is None
    assert tracker.stats()["dropped"] == 2
    assert not tracker.enabled
    assert tracker.flush(0.1)
    assert len([r for r in caplog.records if "OBSERVATORY_URL" in r.getMessage()]) == 1
    assert all(r.name.startswith("observatory") for r in caplog.records)


@pytest.mark.parametrize(
    ("properties", "user_id", "expected_user", "expected_props"),
    [
        ({"user_id": 42, "a": 1}, None, "42", {"a": 1}),
        ({"userId": "u-9", "a": 1}, None, "u-9", {"a": 1}),
        ({"user_id": 42, "a": 1}, "explicit", "explicit", {"a": 1}),
        ({"a": 1}, None, None, {"a": 1}),
        (None, 5, "5", {}),
    ],
)
def test_user_id_from_argument_or_properties(
    ingest_server, make_tracker, properties, user_id, expected_user, expected_props
):
    original = dict(properties) if properties else None
    tracker = make_tracker()
    tracker.track("e", properties, user_id)
    assert tracker.flush(5)

    [event] = ingest_server.events()
    assert event.get("user_id") == expected_user
    assert event["properties"] == expected_props
    assert properties == original  # the caller's dict is not modified


def test_correlation_id_from_context_or_argument(ingest_server, make_tracker):
    tracker = make_tracker()
    with correlation.use("req-123"):
        tracker.track("ctx")
        tracker.track("arg", correlation_id="explicit-1")
    tracker.track("none")
    assert tracker.flush(5)

    by_name = {e["event"]: e for e in ingest_server.events()}
    assert by_name["ctx"]["correlation_id"] == "req-123"
    assert by_name["arg"]["correlation_id"] == "explicit-1"
    assert "correlation_id" not in by_name["none"]


def test_log_events(ingest_server, make_tracker):
    tracker = make_tracker()
    tracker.log("warning", "disk low", {"free_gb": 3})
    tracker.log(logging.ERROR, "boom")
    tracker.log("WARN", 123)
    tracker.track("e", timestamp=datetime(2024, 5, 1, 12, 0, tzinfo=UTC))
    assert tracker.flush(5)

    first, second, third, metric = ingest_server.events()
    assert (first["type"], first["event"], first["level"], first["message"]) == (
        "log",
        "log",
        "warning",
        "disk low",
    )
    assert first["properties"] == {"free_gb": 3}
    assert (second["level"], second["message"]) == ("error", "boom")
    assert (third["level"], third["message"]) == ("warning", "123")
    assert metric["timestamp"] == "2024-05-01T12:00:00.000000+00:00"


def test_awkward_properties_are_serialised(ingest_server, make_tracker):
    tracker = make_tracker()
    when = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    tracker.track(
        "e", {"when": when, "price": Decimal("1.50"), "tags": {"x"}, "ratio": math.nan, "obj": object()}
    )
    loop: dict = {}
    loop["self"] = loop
    tracker.track("circular", loop)
    assert tracker.flush(5)

    first, second = ingest_server.events()
    props = first["properties"]
    assert props["when"] == when.isoformat() and props["price"] == "1.50" and props["tags"] == ["x"]
    assert props["ratio"] is None
    assert props["obj"].startswith("<object object")
    assert second["event"] == "circular" and second["properties"] == {"_unserialisable": True}


def test_oversized_events_are_truncated_to_fit(ingest_server, make_tracker):
    tracker = make_tracker()
    tracker.log("error", "x" * 100_000, {"trace": "y" * 100_000})
    tracker.track("many_keys", {f"k{i}": i for i in range(10_000)})
    assert tracker.flush(5)

    log_event, many = ingest_server.events()
    assert log_event["message"].endswith("[truncated]") and len(log_event["message"]) < 10_000
    assert log_event["properties"]["trace"].endswith("[truncated]")
    assert many["properties"]["_truncated"] is True
    assert all(len(p.raw) < 1_000_000 for p in ingest_server.posts())


@pytest.mark.parametrize("char", ["\U0001f6f0", "\x01"], ids=["4-byte", "escaped"])
def test_long_lines_of_wide_characters_are_truncated_not_dropped(ingest_server, make_tracker, char):
    # 20,000 satellites are 80 KB of UTF-8, 20,000 "\x01" 120 KB of JSON: cut by bytes, not characters.
    seen: list[observatory.Delivery] = []
    tracker = make_tracker(on_delivery=seen.append)
    event_id = tracker.log("error", char * 20_000, {"detail": char * 20_000})
    assert tracker.flush(5)

    assert not [d for d in seen if d.rejected], seen
    [event] = ingest_server.events()
    assert event["event_id"] == event_id
    assert event["message"].endswith("[truncated]") and event["message"].startswith(char * 1000)
    assert event["properties"]["detail"].endswith("[truncated]")


def test_the_size_limit_is_judged_as_the_portal_measures(ingest_server, make_tracker):
    from apps.ingest.conform import SendContext, conform_event  # the portal's own check: pure, no Django

    # The portal re-measures with json.dumps, which writes some floats longer than orjson ("1e-7" becomes
    # "1e-07"): 3,000 of them are 15 KB as sent and 18 KB as measured, over the limit with the padding.
    scores = [round((i % 9 + 1) * 1e-7, 12) for i in range(3000)]
    tracker = make_tracker()
    tracker.track("forecast_scored", {"scores": scores, "pad": "x" * 16_800})
    assert tracker.flush(5)

    [event] = ingest_server.events()
    assert event["properties"]["scores"] == scores and event["properties"]["pad"].endswith("[truncated]")
    context = SendContext(service="svc", stage="test", can_forward=False, received_at=datetime.now(UTC))
    assert conform_event(event, context).errors == {}


def test_json_dumps_spells_floats_longer_only_in_their_exponent():
    # What the encoder's quick size judgement relies on (see encoding.EXPONENT_GROWTH).
    rng = random.Random(7)
    values = [struct.unpack("<d", rng.getrandbits(64).to_bytes(8, "little"))[0] for _ in range(50_000)]
    values += [
        float(f"{sign}{mantissa}e{exponent}")
        for sign in "+-"
        for mantissa in ("1", "2.5", "9.999999999999999")
        for exponent in range(-323, 308)
    ]
    for value in filter(math.isfinite, values):
        ours, theirs = orjson.dumps(value), json.dumps(value).encode()
        assert len(theirs) - len(ours) <= (EXPONENT_GROWTH if b"e" in ours else 0), (ours, theirs)


def test_chunks_respect_count_and_bytes():
    events = [Encoded(str(i), b"x" * 10) for i in range(7)]
    assert [len(c) for c in chunks(events, 3, 10_000)] == [3, 3, 1]
    assert [len(c) for c in chunks(events, 100, 25)] == [2, 2, 2, 1]
    assert [item for chunk in chunks(events, 3, 10_000) for item in chunk] == events  # order kept


def test_module_level_track_uses_a_lazy_default_tracker(monkeypatch, ingest_server):
    monkeypatch.setenv("OBSERVATORY_URL", ingest_server.url)
    observatory.set_tracker(None)
    try:
        observatory.track("module_level", {"user_id": 3})
        assert observatory.get_tracker() is observatory.get_tracker()
        assert observatory.flush(5)
        [event] = ingest_server.events()
        assert (event["event"], event["user_id"]) == ("module_level", "3")
    finally:
        observatory.shutdown(2)
        observatory.set_tracker(None)


def test_module_level_track_passes_timestamp_correlation_and_event_id(monkeypatch, ingest_server):
    monkeypatch.setenv("OBSERVATORY_URL", ingest_server.url)
    observatory.set_tracker(None)
    chosen = str(uuid.uuid4())
    try:
        returned = observatory.track(
            "replayed",
            {"n": 1},
            "u-1",
            timestamp=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
            correlation_id="corr-1",
            event_id=chosen,
        )
        assert observatory.flush(5)
        [event] = ingest_server.events()
        assert returned == event["event_id"] == chosen
        assert (event["correlation_id"], event["user_id"]) == ("corr-1", "u-1")
        assert _parse_ts(event["timestamp"]) == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    finally:
        observatory.shutdown(2)
        observatory.set_tracker(None)


def test_event_ids_are_distinct_uuid4_strings_beyond_one_batch_of_spares(ingest_server, make_tracker):
    tracker = make_tracker(batch_size=1000, max_queue=5000)
    ids = [tracker.track("e", {"i": i}) for i in range(2500)]  # the spares come 1024 at a time

    assert tracker.flush(10)

    assert len(set(ids)) == len(ids)
    for event_id in ids:
        parsed = uuid.UUID(event_id)
        assert str(parsed) == event_id and parsed.version == 4 and parsed.variant == uuid.RFC_4122
    assert sorted(event["event_id"] for event in ingest_server.events()) == sorted(ids)


def test_service_and_stage_are_left_to_the_api_key_by_default(ingest_server, make_tracker):
    tracker = make_tracker()
    tracker.track("e")
    assert tracker.flush(5)
    [event] = ingest_server.events()
    assert "service" not in event and "stage" not in event


def test_flush_delivers_in_the_caller_when_no_sender_thread_can_start(
    ingest_server, make_tracker, monkeypatch
):
    # As at interpreter shutdown on newer Pythons, where starting a thread raises RuntimeError.
    start = threading.Thread.start

    def refuse(thread: threading.Thread) -> None:
        if thread.name == "observatory-sender":
            raise RuntimeError("can't create new thread at interpreter shutdown")
        start(thread)  # the loopback server's request threads

    tracker = make_tracker()
    monkeypatch.setattr(threading.Thread, "start", refuse)
    tracker.track("late")
    assert tracker._sender.thread is None and tracker.stats()["queued"] == 1

    assert tracker.flush(5)

    assert [e["event"] for e in ingest_server.events()] == ["late"]
    assert tracker._sender.thread is None


def test_properties_changed_after_track_are_delivered_as_they_were(ingest_server, make_tracker):
    class Box:
        def __init__(self, text: str) -> None:
            self.text = text

        def __str__(self) -> str:
            return self.text

    tracker = make_tracker(flush_interval=60)  # the sender thread only looks at the event at flush()
    tags = ["a"]
    box = Box("before")
    props = {"count": 1, "tags": tags, "nested": {"k": "v", "items": tags}, "box": box, "user_id": 7}
    tracker.track("e", props)

    props["count"] = 2
    props["added"] = True
    del props["user_id"]
    tags.append("b")
    props["nested"]["k"] = "changed"
    box.text = "after"
    assert tracker.flush(5)

    [event] = ingest_server.events()
    assert event["user_id"] == "7"
    assert event["properties"] == {
        "count": 1,
        "tags": ["a"],
        "nested": {"k": "v", "items": ["a"]},
        "box": "before",
    }


def test_str_of_a_property_value_runs_in_the_callers_thread(ingest_server, make_tracker):
    # A lazy object (a Django user or translation, say) must be evaluated where the request lives.
    threads: list[threading.Thread] = []

    class Lazy:
        def __str__(self) -> str:
            threads.append(threading.current_thread())
            return "evaluated"

    tracker = make_tracker()
    tracker.track("e", {"who": Lazy(), "in_a_list": [Lazy()]})
    assert tracker.flush(5)

    assert threads == [threading.current_thread()] * 2
    [event] = ingest_server.events()
    assert event["properties"] == {"who": "evaluated", "in_a_list": ["evaluated"]}


def test_odd_values_come_out_as_the_json_module_wrote_them(ingest_server, make_tracker):
    class Colour(enum.Enum):
        RED = "r"

    class Size(enum.IntEnum):
        BIG = 3

    day = date(2024, 1, 2)
    when = datetime(2024, 1, 2, 3, 4, 5, 678, tzinfo=UTC)
    ident = uuid.UUID("12345678-1234-5678-1234-567812345678")
    tracker = make_tracker()
    tracker.track(
        "e",
        {
            "uuid": ident,
            "day": day,
            "bytes": b"ok \xff",
            "tuple": (1, "two"),
            "frozen": frozenset({"x"}),
            "big": 2**70,
            "enum": Colour.RED,
            "int_enum": Size.BIG,
            "deep": {"when": [when], "inf": -math.inf},
        },
    )
    tracker.track("int_keys", {1: "one", "s": {2: "two"}})
    tracker.track("surrogate", {"text": "\ud800"})
    assert tracker.flush(5)

    odd, int_keys, surrogate = ingest_server.events()
    assert odd["properties"] == {
        "uuid": str(ident),
        "day": "2024-01-02",
        "bytes": "ok \ufffd",
        "tuple": [1, "two"],
        "frozen": ["x"],
        "big": 2**70,
        "enum": "Colour.RED",
        "int_enum": 3,
        "deep": {"when": [when.isoformat()], "inf": None},
    }
    assert int_keys["properties"] == {"1": "one", "s": {"2": "two"}}
    assert surrogate["properties"] == {"_unserialisable": True}
