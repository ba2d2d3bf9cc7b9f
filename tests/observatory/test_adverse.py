"""The client under adverse conditions: redirects, answers that trickle, track() from inside a send (an
on_delivery callback, a signal handler), shutdown() called twice, property keys JSON cannot take."""

from __future__ import annotations

import http.server
import json
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import uuid
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest

import observatory

REPO = Path(__file__).resolve().parents[2]


class _Portal(http.server.ThreadingHTTPServer):
    daemon_threads = True


@pytest.fixture
def serve() -> Iterator[object]:
    """Start a loopback server for a handler class; return its base URL."""
    servers: list[_Portal] = []

    def start(handler: type[http.server.BaseHTTPRequestHandler]) -> str:
        server = _Portal(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_a_redirect_to_a_page_that_answers_200_is_not_taken_for_delivery(serve):
    # A proxy in front of the portal (SSO, or nginx's http -> https 301) redirects the POST. requests turns
    # it into a GET; a page answering 200 to that GET must not make the batch count as acknowledged.
    seen_paths: list[tuple[str, str]] = []

    class Redirecting(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format, *args):  # noqa: A002 - the base class's name
            pass

        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            seen_paths.append(("POST", self.path))
            self.send_response(302)
            self.send_header("Location", "/login/?next=/api/v1/batch")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_GET(self):
            seen_paths.append(("GET", self.path))
            body = b"<html><body>Sign in</body></html>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    url = serve(Redirecting)
    seen: list[observatory.Delivery] = []
    tracker = observatory.Tracker(url=url, api_key="k", flush_interval=0.01, on_delivery=seen.append)
    try:
        event_id = tracker.track("checkout_done")
        assert tracker.flush(5)
    finally:
        tracker.shutdown(2)

    assert [d.acknowledged for d in seen] == [()], seen
    [delivery] = seen
    assert delivery.failed == (event_id,) and delivery.status == 302
    assert "/login/" in delivery.reason  # says where the portal's address points
    assert seen_paths == [("POST", "/api/v1/batch")]  # the batch was not turned into a GET
    assert tracker.stats()["accepted"] == 0


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("text/html", b"<html><body>Welcome to nginx!</body></html>"),
        ("application/json", b'{"ok": true}'),
        ("application/json", b"[]"),
        ("text/plain", b""),
    ],
)
def test_a_2xx_that_is_not_the_portals_answer_is_not_taken_for_delivery(serve, content_type, body):
    # OBSERVATORY_URL pointing at a catch-all (a default nginx site, a health endpoint, a mock): it
    # answers 200 to anything. Counting that as delivered would lose every event without a word.
    class CatchAll(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format, *args):  # noqa: A002
            pass

        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    seen: list[observatory.Delivery] = []
    tracker = observatory.Tracker(
        url=serve(CatchAll), api_key="k", flush_interval=0.01, on_delivery=seen.append
    )
    try:
        event_id = tracker.track("checkout_done")
        assert tracker.flush(5)
    finally:
        tracker.shutdown(2)

    [delivery] = seen
    assert delivery.acknowledged == () and delivery.failed == (event_id,) and delivery.status == 200
    assert "not the portal's answer" in delivery.reason and content_type in delivery.reason
    stats = tracker.stats()
    assert (stats["accepted"], stats["failed_events"]) == (0, 1)


def test_sync_track_returns_within_its_timeout_when_the_answer_trickles(serve):
    # A portal (or a proxy) that sends its answer a byte at a time never trips the per-read timeout.
    stop = threading.Event()

    class Trickling(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format, *args):  # noqa: A002
            pass

        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            self.send_response(202)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", "1000")
            self.end_headers()
            self.wfile.flush()
            while not stop.wait(0.05):  # pacing of the trickle, not synchronisation
                try:
                    self.wfile.write(b" ")
                    self.wfile.flush()
                except OSError:
                    return

    url = serve(Trickling)
    seen: list[observatory.Delivery] = []
    tracker = observatory.Tracker(
        url=url, api_key="k", sync=True, timeout=0.5, max_retries=0, on_delivery=seen.append
    )
    returned = threading.Event()
    caller = threading.Thread(target=lambda: (tracker.track("e"), returned.set()), daemon=True)
    try:
        caller.start()
        assert returned.wait(3), "track() in sync mode stayed blocked far past timeout=0.5"
        [delivery] = seen
        assert delivery.failed and not delivery.acknowledged
    finally:
        stop.set()
        caller.join(5)
        tracker.shutdown(1)


def test_on_delivery_that_tracks_in_sync_mode_does_not_deadlock(ingest_server):
    # Counting delivery failures on the portal itself is a natural callback; in sync mode it runs inside
    # the caller's own send.
    tracker: observatory.Tracker | None = None
    reported: list[str] = []

    def on_delivery(delivery: observatory.Delivery) -> None:
        if delivery.failed and not reported:
            reported.append(delivery.failed[0])
            tracker.track("observatory_delivery_failed", {"events": len(delivery.failed)})

    tracker = observatory.Tracker(
        url=ingest_server.url, api_key="k", sync=True, max_retries=0, on_delivery=on_delivery
    )
    ingest_server.answer_next(400)
    returned = threading.Event()
    caller = threading.Thread(target=lambda: (tracker.track("e"), returned.set()), daemon=True)
    caller.start()
    assert returned.wait(3), "track() deadlocked on the Transport lock held by its own thread"
    assert [e["event"] for e in ingest_server.events()] == ["observatory_delivery_failed"]
    tracker.shutdown(1)


_SIGNAL_CHILD = """
import signal, sys
sys.path.insert(0, {repo!r})
import observatory

tracker = observatory.Tracker(url={url!r}, api_key="k", sync=True, timeout=10)

def on_term(signum, frame):
    tracker.track("job_cancelled")
    print("handler done", flush=True)
    sys.exit(3)

signal.signal(signal.SIGTERM, on_term)
print("ready", flush=True)
tracker.track("job_step")
"""


def test_track_from_a_signal_handler_during_a_sync_send(ingest_server, wait_until):
    # A short script (OBSERVATORY_SYNC=1) records from its SIGTERM handler that it was cancelled, then
    # exits; the signal lands while the script's own track() waits for the portal's answer.
    ingest_server.answer_next("block")  # the first POST waits for release
    code = textwrap.dedent(_SIGNAL_CHILD).format(repo=str(REPO), url=ingest_server.url)
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "ready"
        wait_until(ingest_server.posts, timeout=5)
        child.send_signal(signal.SIGTERM)
        assert _readline_within(child, 3) == "handler done", "the SIGTERM handler's track() deadlocked"
        child.wait(5)
        assert child.returncode == 3
        ingest_server.release.set()
        wait_until(lambda: len(ingest_server.events()) == 2, timeout=5)
        assert sorted(e["event"] for e in ingest_server.events()) == ["job_cancelled", "job_step"]
    finally:
        ingest_server.release.set()
        if child.poll() is None:
            child.kill()
            child.wait(5)


_SHUTDOWN_IN_HANDLER_CHILD = """
import os, signal, sys
sys.path.insert(0, {repo!r})
import observatory

tracker = observatory.Tracker(url={url!r}, api_key="k", flush_interval=0.01)

def on_term(signum, frame):
    stats = tracker.stats()
    delivered = tracker.shutdown(5)
    print("handler done", stats["tracked"], delivered, flush=True)
    sys.exit(3)

signal.signal(signal.SIGTERM, on_term)
tracker.track("job_step")
# The window a signal can land in: the main thread holding one of the tracker's locks (a stats() call,
# a drop counted). Python runs the handler in the main thread at its next instruction, so sending the
# signal from inside the lock makes that landing certain instead of rare.
with tracker.{lock}:
    os.kill(os.getpid(), signal.SIGTERM)
    print("not reached", flush=True)
"""


@pytest.mark.parametrize("lock", ["_counters._lock", "_sender._lock"])
def test_stats_and_shutdown_from_a_signal_handler_that_lands_inside_the_trackers_lock(ingest_server, lock):
    # A service's SIGTERM handler that reads stats() and calls shutdown() (the usual way to flush on
    # exit) must finish wherever the signal landed, not hang until the process manager kills it.
    code = textwrap.dedent(_SHUTDOWN_IN_HANDLER_CHILD).format(
        repo=str(REPO), url=ingest_server.url, lock=lock
    )
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert _readline_within(child, 10) == "handler done 1 True", "the SIGTERM handler deadlocked"
        assert child.wait(5) == 3
        assert [e["event"] for e in ingest_server.events()] == ["job_step"]
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(5)


def _readline_within(child: subprocess.Popen, timeout: float) -> str | None:
    lines: list[str] = []
    got = threading.Event()

    def read() -> None:
        lines.append(child.stdout.readline().strip())
        got.set()

    threading.Thread(target=read, daemon=True).start()
    return lines[0] if got.wait(timeout) else None


def test_shutdown_called_twice_reports_the_same_outcome():
    # The portal is down: the first shutdown gives the event up and says so; a second call (the service's
    # own exit hook, then atexit's) must not claim that everything was delivered.
    seen: list[observatory.Delivery] = []
    tracker = observatory.Tracker(
        url=f"http://127.0.0.1:{_free_port()}", api_key="k", flush_interval=0.01, on_delivery=seen.append
    )
    tracker.track("e")
    assert tracker.shutdown(0.2) is False
    assert tracker.shutdown(0.2) is False
    assert [len(d.failed) for d in seen] == [1]


def test_shutdown_says_false_when_an_event_was_given_up_before_it(ingest_server, make_tracker):
    # A batch refused (a 4xx) or out of retries is done with, so the flush inside shutdown() finishes in
    # time; shutdown() must still not say that everything was delivered.
    ingest_server.answer_next(400)
    tracker = make_tracker(max_retries=0)
    tracker.track("refused_with_its_batch")
    assert tracker.flush(5)
    tracker.track("delivered")

    assert tracker.shutdown(5) is False
    assert tracker.shutdown(5) is False
    assert [e["event"] for e in ingest_server.events()] == ["delivered"]
    assert tracker.stats()["failed_events"] == 1


def test_shutdown_says_false_when_the_full_queue_dropped_an_event(ingest_server, make_tracker, wait_until):
    ingest_server.answer_next("block")
    tracker = make_tracker(max_queue=1, flush_interval=0.01)
    tracker.track("sending")
    wait_until(ingest_server.posts)  # the first event is on the wire, the queue empty
    tracker.track("queued")
    assert tracker.track("dropped_queue_full") is None
    ingest_server.release.set()

    assert tracker.shutdown(5) is False
    assert sorted(e["event"] for e in ingest_server.events()) == ["queued", "sending"]


def test_properties_with_keys_json_cannot_take_keep_their_values(ingest_server, make_tracker):
    ident = uuid.UUID("12345678-1234-5678-1234-567812345678")
    tracker = make_tracker()
    tracker.track("daily", {"by_day": {date(2024, 1, 1): 5, date(2024, 1, 2): 7}, "total": 12})
    tracker.track("pairs", {(1, 2): "pair", "n": 1})
    tracker.track("per_user", {ident: 3, "n": 1})
    assert tracker.flush(5)

    daily, pairs, per_user = ingest_server.events()
    assert daily["properties"] == {"by_day": {"2024-01-01": 5, "2024-01-02": 7}, "total": 12}
    assert pairs["properties"] == {"(1, 2)": "pair", "n": 1}
    assert per_user["properties"] == {str(ident): 3, "n": 1}
    json.dumps(per_user)  # as stored
