"""Fixtures for the observatory client tests: a scriptable loopback ingestion server and wait helpers."""

from __future__ import annotations

import gzip
import http.server
import importlib.util
import json
import socket
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from requests.structures import CaseInsensitiveDict

REPO_ROOT = Path(__file__).resolve().parents[2]


def _ensure_importable() -> None:
    # Let `pytest tests/observatory` work from a plain checkout; an installed copy is used if present.
    # A spec without origin is this very tests/observatory dir seen as a namespace package.
    spec = importlib.util.find_spec("observatory")
    if spec is None or spec.origin is None:
        sys.modules.pop("observatory", None)
        sys.path.insert(0, str(REPO_ROOT))


_ensure_importable()


def _wait_until(predicate: Callable[[], Any], timeout: float = 5.0, interval: float = 0.01) -> Any:
    """Poll ``predicate`` until it returns something truthy; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(interval)


@dataclass
class Attempt:
    """One HTTP request the server saw, whatever it answered."""

    at: float
    method: str
    path: str
    headers: CaseInsensitiveDict[str]
    body: dict[str, Any] | None
    raw: bytes
    action: str

    @property
    def event_ids(self) -> list[str]:
        return [e["event_id"] for e in (self.body or {}).get("batch", [])]


@dataclass
class IngestServer:
    """Fake ``/api/v1/batch`` that dedupes by event_id and can be scripted to misbehave."""

    url: str = ""
    attempts: list[Attempt] = field(default_factory=list)
    stored: dict[str, dict[str, Any]] = field(default_factory=dict)  # event_id -> first copy received
    script: deque[Any] = field(default_factory=deque)
    release: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answer_next(self, *actions: Any) -> None:
        """Script the next POST answers: 500, 400, 401, (429, "1"), "drop", "store_then_drop", "block", or
        {"status": 202, "body": {...}} (answered as is, nothing stored)."""
        with self.lock:
            self.script.extend(actions)

    def events(self) -> list[dict[str, Any]]:
        with self.lock:
            return list(self.stored.values())

    def posts(self) -> list[Attempt]:
        with self.lock:
            return [a for a in self.attempts if a.method == "POST"]

    def gets(self) -> list[Attempt]:
        with self.lock:
            return [a for a in self.attempts if a.method == "GET"]

    def wait_for_events(self, n: int, timeout: float = 5.0) -> list[dict[str, Any]]:
        _wait_until(lambda: len(self.events()) >= n, timeout)
        return self.events()


def _make_handler(server: IngestServer) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive like a real server, so reused connections get tested

        def log_message(self, format: str, *args: Any) -> None:  # quiet test output
            pass

        def _reply(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)

        def _drop(self) -> None:
            # Close without any answer: the client sees the connection dropped mid-request.
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

        def do_GET(self) -> None:
            with server.lock:
                server.attempts.append(
                    Attempt(
                        time.monotonic(),
                        "GET",
                        self.path,
                        CaseInsensitiveDict(self.headers.items()),
                        None,
                        b"",
                        "echo",
                    )
                )
            self._reply(200, {"headers": dict(self.headers.items())})

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            data = gzip.decompress(raw) if self.headers.get("Content-Encoding") == "gzip" else raw
            try:
                body = json.loads(data)
            except ValueError:
                body = None
            with server.lock:
                action = server.script.popleft() if server.script else "ok"
                server.attempts.append(
                    Attempt(
                        time.monotonic(),
                        "POST",
                        self.path,
                        CaseInsensitiveDict(self.headers.items()),
                        body,
                        raw,
                        str(action),
                    )
                )
            if action == "block":
                server.release.wait(10)
                action = "ok"
            if action == "drop":
                return self._drop()
            if isinstance(action, dict):
                return self._reply(action["status"], action["body"])
            if isinstance(action, tuple):
                status, retry_after = action
                return self._reply(status, {"detail": "slow down"}, {"Retry-After": retry_after})
            if isinstance(action, int):
                return self._reply(action, {"detail": f"scripted {action}"})
            if body is None or self.path != "/api/v1/batch":
                return self._reply(400, {"detail": "malformed"})
            accepted = duplicates = 0
            with server.lock:
                for event in body["batch"]:
                    if event["event_id"] in server.stored:
                        duplicates += 1
                    else:
                        server.stored[event["event_id"]] = event
                        accepted += 1
            if action == "store_then_drop":  # stored, but the answer is lost: the retry must dedupe
                return self._drop()
            self._reply(202, {"accepted": accepted, "duplicates": duplicates, "rejected": []})

    return Handler


@pytest.fixture
def wait_until() -> Callable[..., Any]:
    """Return ``wait_until(predicate, timeout=5.0)``: poll until truthy, fail after the deadline.

    A fixture rather than an import so it works under every pytest import mode.
    """
    return _wait_until


@pytest.fixture
def ingest_server() -> Iterator[IngestServer]:
    """Run an IngestServer on 127.0.0.1 (random port) for the duration of a test."""
    state = IngestServer()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(state))
    httpd.daemon_threads = True
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        state.release.set()
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


@pytest.fixture
def make_tracker(ingest_server: IngestServer) -> Iterator[Callable[..., Any]]:
    """Build Trackers aimed at the loopback server with test-friendly timings; shut them down after."""
    from observatory import Tracker

    made: list[Tracker] = []

    def factory(**kwargs: Any) -> Tracker:
        options: dict[str, Any] = {
            "url": ingest_server.url,
            "api_key": "test-key",
            "service": "svc",
            "stage": "test",
            "flush_interval": 0.05,
            "backoff_base": 0.01,
            "backoff_max": 0.05,
            "timeout": 2.0,
            "shutdown_timeout": 2.0,
        }
        options.update(kwargs)
        tracker = Tracker(**options)
        made.append(tracker)
        return tracker

    yield factory
    ingest_server.release.set()
    for tracker in made:
        tracker.shutdown(timeout=2.0)


_TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
_TRACEPARENT = f"00-{_TRACE_ID}-00f067aa0ba902b7-01"
# Incoming headers and the correlation ID a middleware must pick from them (None: a new UUID4).
_PRECEDENCE_CASES = [
    ({"X-Correlation-ID": "x-1", "Correlation-ID": "guid-1", "traceparent": _TRACEPARENT}, "x-1"),
    ({"Correlation-ID": "guid-1", "traceparent": _TRACEPARENT}, "guid-1"),
    ({"traceparent": _TRACEPARENT}, _TRACE_ID),
    ({"X-Correlation-ID": "bad id", "Correlation-ID": "guid-1", "traceparent": _TRACEPARENT}, "guid-1"),
    ({"X-Correlation-ID": "bad id", "Correlation-ID": "bad, too", "traceparent": _TRACEPARENT}, _TRACE_ID),
    ({"Correlation-ID": "guid-1", "traceparent": f"00-{'0' * 32}-00f067aa0ba902b7-01"}, "guid-1"),
    ({"traceparent": f"00-{'0' * 32}-00f067aa0ba902b7-01"}, None),  # all-zero trace id
    ({"traceparent": "00-not-a-trace-id-01"}, None),
    ({"Correlation-ID": "", "traceparent": f"00-{_TRACE_ID}-00f067aa0ba902b7"}, None),  # no flags
]


@pytest.fixture(scope="session")
def precedence_cases() -> list[tuple[dict[str, str], str | None]]:
    """Return every (incoming headers, expected correlation ID or None for a new UUID4) case."""
    return _PRECEDENCE_CASES


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Run a test asking for ``precedence_case`` once per header-precedence case (WSGI and Django)."""
    if "precedence_case" in metafunc.fixturenames:
        ids = [f"case{i}" for i in range(len(_PRECEDENCE_CASES))]
        metafunc.parametrize("precedence_case", _PRECEDENCE_CASES, ids=ids)


@pytest.fixture(autouse=True)
def _clean_observatory_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Isolate tests from OBSERVATORY_* / SERVICE_NAME / STAGE set in the developer's shell."""
    for name in ("OBSERVATORY_URL", "OBSERVATORY_API_KEY", "OBSERVATORY_SYNC", "SERVICE_NAME", "STAGE"):
        monkeypatch.delenv(name, raising=False)
