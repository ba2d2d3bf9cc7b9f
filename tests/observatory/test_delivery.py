"""Per-event delivery reports (`on_delivery`) and caller-chosen event_ids for idempotent re-sends."""

from __future__ import annotations

import logging
import socket
import uuid

import pytest

from observatory import Delivery


def _recorder() -> tuple[list[Delivery], object]:
    seen: list[Delivery] = []
    return seen, seen.append


def test_a_2xx_acknowledges_every_event_of_the_post(ingest_server, make_tracker):
    seen, record = _recorder()
    tracker = make_tracker(on_delivery=record)
    ids = [tracker.track("e", {"i": i}) for i in range(3)]

    assert tracker.flush(5)

    assert seen == [Delivery(acknowledged=tuple(ids), status=202)]


def test_items_refused_in_a_2xx_answer_are_reported_rejected(ingest_server, make_tracker):
    ingest_server.answer_next(
        {"status": 202, "body": {"accepted": 2, "duplicates": 0, "rejected": [{"index": 1, "errors": {}}]}}
    )
    seen, record = _recorder()
    tracker = make_tracker(on_delivery=record)
    ids = [tracker.track("e", {"i": i}) for i in range(3)]

    assert tracker.flush(5)

    assert seen == [Delivery(acknowledged=(ids[0], ids[2]), rejected=(ids[1],), status=202)]


def test_a_refused_batch_is_reported_failed_with_its_status(ingest_server, make_tracker):
    ingest_server.answer_next(400)
    seen, record = _recorder()
    tracker = make_tracker(on_delivery=record)
    event_id = tracker.track("e")

    assert tracker.flush(5)

    [delivery] = seen
    assert (delivery.acknowledged, delivery.failed, delivery.status) == ((), (event_id,), 400)
    assert "HTTP 400" in delivery.reason


def test_retries_are_reported_once_with_the_final_outcome(ingest_server, make_tracker):
    ingest_server.answer_next(503, "drop")
    seen, record = _recorder()
    tracker = make_tracker(on_delivery=record)
    event_id = tracker.track("e")

    assert tracker.flush(5)

    assert seen == [Delivery(acknowledged=(event_id,), status=202)]


def test_retries_running_out_are_reported_failed(make_tracker):
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    seen, record = _recorder()
    tracker = make_tracker(url=f"http://127.0.0.1:{port}", max_retries=1, on_delivery=record)
    event_id = tracker.track("e")

    assert tracker.flush(5)

    [delivery] = seen
    assert (delivery.failed, delivery.status) == ((event_id,), None)
    assert "ConnectionError" in delivery.reason


def test_a_chosen_event_id_makes_a_resend_a_duplicate(ingest_server, make_tracker):
    seen, record = _recorder()
    tracker = make_tracker(on_delivery=record)
    event_id = str(uuid.uuid4())

    assert tracker.track("e", {"n": 1}, event_id=event_id) == event_id
    assert tracker.flush(5)
    assert tracker.log("info", "again", event_id=uuid.UUID(event_id)) == event_id
    assert tracker.flush(5)

    assert [e["event_id"] for e in ingest_server.events()] == [event_id]
    assert [d.acknowledged for d in seen] == [(event_id,), (event_id,)]
    stats = tracker.stats()
    assert (stats["accepted"], stats["duplicates"]) == (1, 1)


def test_a_failing_callback_is_logged_and_delivery_goes_on(ingest_server, make_tracker, caplog):
    def explode(delivery: Delivery) -> None:
        raise RuntimeError("callback broke")

    tracker = make_tracker(on_delivery=explode)
    tracker.track("first")
    assert tracker.flush(5)
    tracker.track("second")
    assert tracker.flush(5)

    assert [e["event"] for e in ingest_server.events()] == ["first", "second"]
    assert any(
        r.levelno == logging.ERROR and "on_delivery" in r.getMessage()
        for r in caplog.records
        if r.name.startswith("observatory")
    )


def test_sync_mode_reports_in_the_callers_thread(ingest_server, make_tracker):
    seen, record = _recorder()
    tracker = make_tracker(sync=True, on_delivery=record)

    event_id = tracker.track("e")

    assert seen == [Delivery(acknowledged=(event_id,), status=202)]


@pytest.mark.parametrize("sync", [False, True])
def test_an_event_too_large_for_the_portal_is_reported_rejected_and_not_sent(
    ingest_server, make_tracker, sync
):
    seen, record = _recorder()
    tracker = make_tracker(on_delivery=record, sync=sync)
    small = tracker.track("fits", {"n": 1})
    # Long properties are truncated to fit, but nothing can shorten a 40 KB event name.
    huge = tracker.track("x" * 40_000, {"n": 2})

    assert huge is not None  # track() does not encode, so it cannot know yet
    assert tracker.flush(5)

    assert [e["event"] for e in ingest_server.events()] == ["fits"]
    [refusal] = [d for d in seen if d.rejected]
    assert (refusal.rejected, refusal.acknowledged, refusal.failed, refusal.status) == ((huge,), (), (), None)
    assert "larger than" in refusal.reason
    assert [d.acknowledged for d in seen if d.acknowledged] == [(small,)]
    assert tracker.stats()["rejected"] == 1


def test_an_event_that_cannot_be_encoded_is_reported_rejected(ingest_server, make_tracker):
    seen, record = _recorder()
    tracker = make_tracker(on_delivery=record)
    broken = tracker.track("lone surrogate \ud800")  # not valid UTF-8, whatever the encoder

    assert tracker.flush(5)

    assert ingest_server.events() == []
    [refusal] = seen
    assert refusal.rejected == (broken,) and "encoded" in refusal.reason


def test_an_api_key_an_http_header_cannot_carry_is_refused_when_the_tracker_is_made(ingest_server):
    from observatory import Tracker

    with pytest.raises(ValueError, match=r"'…' at position 3") as refused:
        Tracker(ingest_server.url, "sk-…s3cret")  # "…" from a copy-paste: every send would fail
    assert "s3cret" not in str(refused.value)  # the key is a secret: never in the message


def test_the_same_key_in_the_environment_fails_every_send_but_track_does_not_raise(
    ingest_server, monkeypatch, caplog
):
    # The default Tracker is made on the first track(), inside a request: an error there, not an exception.
    from observatory import Tracker

    monkeypatch.setenv("OBSERVATORY_API_KEY", "sk-…s3cret")
    seen, record = _recorder()
    tracker = Tracker(ingest_server.url, on_delivery=record)
    try:
        event_id = tracker.track("e")
        assert tracker.flush(5)
    finally:
        tracker.shutdown()

    [failure] = seen
    assert failure.failed == (event_id,)
    assert any("OBSERVATORY_API_KEY is unusable" in r.getMessage() for r in caplog.records)
    assert not any("s3cret" in r.getMessage() for r in caplog.records)


def test_an_unexpected_error_in_the_post_is_reported_failed(ingest_server, make_tracker, caplog):
    seen, record = _recorder()
    tracker = make_tracker(on_delivery=record)

    def post(*args, **kwargs):
        raise UnicodeEncodeError("latin-1", "…", 0, 1, "ordinal not in range(256)")  # as http.client does

    tracker._transport._session.post = post
    event_id = tracker.track("e")

    assert tracker.flush(5)  # given up counts as done

    [failure] = seen
    assert failure.failed == (event_id,) and "UnicodeEncodeError" in failure.reason
    stats = tracker.stats()
    assert (stats["failed_batches"], stats["failed_events"], stats["retries"]) == (1, 1, 0)
    assert any(r.exc_info for r in caplog.records if r.name.startswith("observatory"))


def test_an_error_escaping_the_transport_reports_the_batch_and_the_sender_goes_on(
    ingest_server, make_tracker
):
    seen, record = _recorder()
    tracker = make_tracker(on_delivery=record, flush_interval=60)
    send = tracker._transport.send
    calls = []

    def broken_once(chunk, **kwargs):
        calls.append(len(chunk))
        if len(calls) == 1:
            raise RuntimeError("bug")
        return send(chunk, **kwargs)

    tracker._transport.send = broken_once
    lost = [tracker.track("e", {"i": i}) for i in range(3)]
    assert tracker.flush(5)
    later = tracker.track("later")
    assert tracker.flush(5)

    assert [(d.failed, d.acknowledged) for d in seen] == [(tuple(lost), ()), ((), (later,))]
    assert "RuntimeError" in seen[0].reason
    assert tracker.stats()["failed_events"] == 3


def test_a_tls_failure_is_reported_at_once_not_retried_like_a_network_outage(ingest_server, make_tracker):
    # https:// to a server that speaks plain HTTP: the handshake fails as a bad certificate would, and no
    # retry can get past it (with this back-off, a second attempt alone would take over a minute).
    seen, record = _recorder()
    tracker = make_tracker(
        url=ingest_server.url.replace("http://", "https://"),
        on_delivery=record,
        backoff_base=60.0,
        backoff_max=60.0,
    )
    event_id = tracker.track("e")

    assert tracker.flush(10)

    [delivery] = seen
    assert delivery.failed == (event_id,) and delivery.status is None
    assert delivery.reason.startswith("TLS: ")
