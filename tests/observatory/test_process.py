"""Process lifecycle: events tracked right before a normal exit are flushed (atexit); forked children,
multiprocessing children (which leave without atexit) and Trackers dropped without shutdown()."""

from __future__ import annotations

import gc
import json
import multiprocessing
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

import observatory
from tests.conftest import wait_for


def _run_script(code: str, env_overrides: dict[str, str], timeout: float = 20) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OBSERVATORY_", "DJANGO_"))}
    package_parent = str(Path(observatory.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_parent, env.get("PYTHONPATH")]))
    env.update(env_overrides)
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_atexit_flushes_events_of_a_process_that_exits_normally(ingest_server):
    result = _run_script(
        """
        import observatory
        tracker = observatory.Tracker(flush_interval=60)  # nothing would be sent before exit otherwise
        for i in range(5):
            tracker.track("exit_test", {"i": i})
        observatory.track("module_level")  # the lazily created default tracker is flushed too
        """,
        {"OBSERVATORY_URL": ingest_server.url, "OBSERVATORY_API_KEY": "k"},
    )
    assert result.returncode == 0, result.stderr

    events = ingest_server.events()
    assert sorted(e["event"] for e in events) == ["exit_test"] * 5 + ["module_level"]


def test_exit_is_not_held_up_by_an_unreachable_server(ingest_server):
    ingest_server.answer_next(*[500] * 1000)
    start = time.monotonic()
    result = _run_script(
        """
        import observatory
        # Retries that never run out on their own: only shutdown's timeout can end the send (with the
        # default 8 retries, jittered backoff sometimes used them all up within the 0.5 s).
        tracker = observatory.Tracker(
            shutdown_timeout=0.5, backoff_base=0.1, backoff_max=0.2, max_retries=1000, max_retry_time=60
        )
        tracker.track("doomed")
        """,
        {"OBSERVATORY_URL": ingest_server.url},
    )
    assert result.returncode == 0, result.stderr
    assert time.monotonic() - start < 10
    assert "shutdown timed out" in result.stderr  # told, via logging's last-resort handler


def test_sync_mode_in_a_script(ingest_server):
    result = _run_script(
        """
        import os, observatory
        observatory.track("from_script", {"user_id": 1})
        os._exit(0)  # skip atexit: only sync mode can have delivered the event by now
        """,
        {"OBSERVATORY_URL": ingest_server.url, "OBSERVATORY_SYNC": "1"},
    )
    assert result.returncode == 0, result.stderr
    [event] = ingest_server.events()
    assert (event["event"], event["user_id"]) == ("from_script", "1")


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_forked_child_sends_its_own_events_and_never_the_parents(ingest_server, make_tracker, wait_until):
    ingest_server.answer_next("block")  # the parent's first POST hangs, so its later events stay queued
    tracker = make_tracker(batch_size=1)
    tracker.track("parent", {"n": 0})
    wait_until(lambda: ingest_server.posts())
    for n in range(1, 4):
        tracker.track("parent", {"n": n})
    assert tracker.stats()["queued"] == 4

    pid = os.fork()
    if pid == 0:  # child: must leave through os._exit whatever happens
        code = 99
        try:
            fresh = tracker.stats()["queued"] == 0
            tracker.track("child")
            delivered = tracker.flush(5)
            stats = tracker.stats()
            code = 0 if (fresh and delivered and stats["sent"] == 1 and stats["queued"] == 0) else 1
        finally:
            os._exit(code)

    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    # The child's event arrived while the parent's batch is still stuck: the child did not take over
    # (or duplicate) the parent's queue.
    assert [e["event"] for e in ingest_server.events()] == ["child"]

    ingest_server.release.set()
    assert tracker.flush(5)
    events = ingest_server.events()
    assert sorted(e["properties"].get("n", -1) for e in events) == [-1, 0, 1, 2, 3]
    posted_ids = [i for post in ingest_server.posts() for i in post.event_ids]
    assert len(posted_ids) == len(set(posted_ids)) == 5  # every event sent exactly once


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_never_hands_out_the_parents_event_ids(make_tracker):
    tracker = make_tracker()
    tracker.track("parent")  # event IDs are made in batches: the parent now holds some in advance
    read_end, write_end = os.pipe()

    pid = os.fork()
    if pid == 0:  # child: must leave through os._exit whatever happens
        code = 99
        try:
            os.close(read_end)
            os.write(write_end, json.dumps([tracker.track("child") for _ in range(50)]).encode())
            code = 0
        finally:
            os._exit(code)

    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        child_ids = json.loads(pipe.read())
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    parent_ids = [tracker.track("parent") for _ in range(50)]
    assert len(set(child_ids)) == len(set(parent_ids)) == 50
    assert not set(child_ids) & set(parent_ids)


def _track_in_child(tracker: observatory.Tracker) -> None:
    tracker.track("from_child", {"pid": os.getpid()})


def _track_on_default(i: int) -> None:
    observatory.track("pool_item", {"i": i})


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_events_of_a_multiprocessing_fork_child_are_flushed_at_its_exit(ingest_server, make_tracker):
    # multiprocessing's children leave through os._exit: atexit never runs there.
    tracker = make_tracker(flush_interval=60)  # nothing would be sent before the child's exit otherwise
    tracker.track("from_parent")
    assert tracker.flush(5)

    child = multiprocessing.get_context("fork").Process(target=_track_in_child, args=(tracker,))
    child.start()
    child.join(20)

    assert child.exitcode == 0
    assert sorted(e["event"] for e in ingest_server.events()) == ["from_child", "from_parent"]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_events_of_fork_pool_workers_are_flushed_when_the_pool_closes(ingest_server, make_tracker):
    observatory.set_tracker(make_tracker(flush_interval=60))
    try:
        pool = multiprocessing.get_context("fork").Pool(2)
        pool.map(_track_on_default, range(10))
        pool.close()  # workers finish and exit on their own (terminate() kills them: nothing can flush)
        pool.join()
    finally:
        observatory.set_tracker(None)

    assert sorted(e["properties"]["i"] for e in ingest_server.events()) == list(range(10))


def test_a_tracker_dropped_without_shutdown_is_flushed(ingest_server):
    ingest_server.answer_next((503, "0.5"))  # the first sender is still at it when the script ends
    result = _run_script(
        """
        import observatory

        def handler(i):  # a job handler that makes its own tracker and never shuts it down
            obs = observatory.Tracker(flush_interval=60)
            obs.track("job_done", {"i": i})

        for i in range(3):
            handler(i)
        observatory.Tracker(flush_interval=60).track("job_done", {"i": 3})  # still sending at exit
        """,
        {"OBSERVATORY_URL": ingest_server.url, "OBSERVATORY_API_KEY": "k"},
    )
    assert result.returncode == 0, result.stderr
    assert sorted(e["properties"]["i"] for e in ingest_server.events()) == [0, 1, 2, 3]


def test_a_collected_tracker_delivers_what_it_holds_and_ends_its_thread(ingest_server):
    def senders() -> list[threading.Thread]:
        return [t for t in threading.enumerate() if t.name == "observatory-sender" and t.is_alive()]

    before = senders()
    for i in range(5):
        tracker = observatory.Tracker(ingest_server.url, "k", flush_interval=60)
        tracker.track("e", {"i": i})  # queued, not sent: a minute before its batch is due
        del tracker
    gc.collect()

    wait_for(
        lambda: len(senders()) == len(before) and len(ingest_server.events()) >= 5,
        timeout=5,
        interval=0.01,
        message="the collected trackers' events sent and their threads ended",
    )
    assert sorted(e["properties"]["i"] for e in ingest_server.events()) == list(range(5))
    assert len(senders()) == len(before), "sender threads of collected trackers are still running"
