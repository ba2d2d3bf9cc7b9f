"""Correlation IDs: context handling, header parsing, WSGI middleware and propagation on ``requests``."""

from __future__ import annotations

import asyncio
import contextvars
import threading
import uuid
import wsgiref.simple_server
import wsgiref.util
from collections.abc import Iterator

import pytest
import requests

from observatory import correlation, requests_propagation
from observatory.wsgi import ENVIRON_KEY, CorrelationMiddleware

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


def _is_uuid4(value: str) -> bool:
    try:
        return uuid.UUID(value).version == 4 and str(uuid.UUID(value)) == value
    except ValueError:
        return False


@pytest.mark.parametrize(
    ("value", "valid"),
    [
        ("abc", True),
        ("req-77", True),
        ("a.b:c_d-E9", True),
        (str(uuid.uuid4()), True),
        ("x" * 200, True),
        ("x" * 201, False),
        ("", False),
        ("has space", False),
        ("a,b", False),
        ("new\nline", False),
        ("<script>", False),
        ("ünïcode", False),
        (None, False),
        (123, False),
    ],
)
def test_is_valid(value, valid):
    assert correlation.is_valid(value) is valid


def test_context_get_set_use_new_reset():
    assert correlation.get() is None
    with correlation.use("outer") as outer:
        assert outer == correlation.get() == "outer"
        with correlation.use() as generated:  # no argument: a fresh UUID4
            assert _is_uuid4(generated) and correlation.get() == generated
        assert correlation.get() == "outer"
        token = correlation.set("other")
        assert correlation.get() == "other"
        correlation.reset(token)
        assert correlation.get() == "outer"
    assert correlation.get() is None
    with pytest.raises(ValueError):
        correlation.set("bad value")


def test_new_sets_and_returns_a_uuid4():
    def run() -> None:
        cid = correlation.new()
        assert _is_uuid4(cid) and correlation.get() == cid

    # Run in a copied context so the test leaves no ID behind.
    contextvars.copy_context().run(run)
    assert correlation.get() is None


def test_threads_and_tasks_do_not_share_ids():
    seen: list[str | None] = []
    with correlation.use("main"):
        thread = threading.Thread(target=lambda: seen.append(correlation.get()))
        thread.start()
        thread.join()
    assert seen == [None]  # a new thread starts from an empty context

    async def handler(cid: str) -> str | None:
        with correlation.use(cid):
            await asyncio.sleep(0.01)
            return correlation.get()

    async def main() -> list[str | None]:
        return await asyncio.gather(handler("a"), handler("b"))

    assert asyncio.run(main()) == ["a", "b"]


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"X-Correlation-ID": "req-77"}, "req-77"),
        ({"x-correlation-id": "  req-77  "}, "req-77"),  # any case, surrounding spaces stripped
        ({"X-Correlation-ID": b"bytes-1"}, "bytes-1"),
        ({"traceparent": TRACEPARENT}, TRACE_ID),
        ({"Traceparent": TRACEPARENT.upper()}, TRACE_ID),
        ({"X-Correlation-ID": "bad value!", "traceparent": TRACEPARENT}, TRACE_ID),
        ({"X-Correlation-ID": "req-1", "traceparent": TRACEPARENT}, "req-1"),  # explicit ID wins
    ],
)
def test_from_headers_picks(headers, expected):
    assert correlation.from_headers(headers) == expected


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-Correlation-ID": ""},
        {"X-Correlation-ID": "x" * 201},
        {"X-Correlation-ID": "a, b"},
        {"X-Correlation-ID": "evil\r\nSet-Cookie: a=b"},
        {"traceparent": f"00-{'0' * 32}-00f067aa0ba902b7-01"},  # all-zero trace id
        {"traceparent": f"00-{TRACE_ID}-{'0' * 16}-01"},  # all-zero parent id
        {"traceparent": f"ff-{TRACE_ID}-00f067aa0ba902b7-01"},  # forbidden version
        {"traceparent": f"00-{TRACE_ID}-00f067aa0ba902b7-01-extra"},  # v00 has exactly four fields
        {"traceparent": f"00-{TRACE_ID[:-1]}-00f067aa0ba902b7-01"},  # short trace id
        {"traceparent": "garbage"},
    ],
)
def test_from_headers_replaces_missing_or_malformed_with_a_new_uuid4(headers):
    first = correlation.from_headers(headers)
    assert _is_uuid4(first)
    assert correlation.from_headers(headers) != first


def test_parse_traceparent_accepts_future_versions_with_extra_fields():
    assert correlation.parse_traceparent(f"01-{TRACE_ID}-00f067aa0ba902b7-01-what-ever") == TRACE_ID
    assert correlation.parse_traceparent(None) is None


# -- WSGI -------------------------------------------------------------------------------------------


def _environ(**headers: str) -> dict:
    environ: dict = {}
    wsgiref.util.setup_testing_defaults(environ)
    environ.update(headers)
    return environ


def _call(app, environ) -> tuple[str, list[tuple[str, str]], bytes]:
    captured: dict = {}

    def start_response(status, headers, exc_info=None):
        captured["status"], captured["headers"] = status, headers

    result = app(environ, start_response)
    try:
        body = b"".join(result)
    finally:
        if hasattr(result, "close"):
            result.close()
    return captured["status"], captured["headers"], body


def test_wsgi_middleware_sets_context_and_replaces_response_header():
    seen = {}

    def app(environ, start_response):
        seen["during"] = correlation.get()
        seen["environ"] = environ[ENVIRON_KEY]
        start_response("200 OK", [("Content-Type", "text/plain"), ("x-correlation-id", "app-made")])
        return [b"ok"]

    status, headers, body = _call(CorrelationMiddleware(app), _environ(HTTP_X_CORRELATION_ID="req-42"))

    assert (status, body) == ("200 OK", b"ok")
    assert seen == {"during": "req-42", "environ": "req-42"}
    assert [v for k, v in headers if k.lower() == "x-correlation-id"] == ["req-42"]  # replaced, not added
    assert correlation.get() is None  # restored after the request


def test_wsgi_middleware_traceparent_malformed_and_streaming_bodies():
    seen: list[str | None] = []

    def app(environ, start_response):
        start_response("200 OK", [])

        def body() -> Iterator[bytes]:  # runs while the server iterates, after app() returned
            seen.append(correlation.get())
            yield b"a"
            seen.append(correlation.get())
            yield b"b"

        return body()

    wrapped = CorrelationMiddleware(app)
    _, headers, body = _call(wrapped, _environ(HTTP_TRACEPARENT=TRACEPARENT))
    assert body == b"ab" and seen == [TRACE_ID, TRACE_ID] and dict(headers)["X-Correlation-ID"] == TRACE_ID
    assert correlation.get() is None

    seen.clear()
    _, headers, _ = _call(wrapped, _environ(HTTP_X_CORRELATION_ID="no good"))
    cid = dict(headers)["X-Correlation-ID"]
    assert _is_uuid4(cid) and seen == [cid, cid]


def test_wsgi_end_to_end_incoming_header_reaches_outgoing_requests(ingest_server):
    """A real WSGI server: the ID of the incoming request is carried on the app's outgoing call."""

    def app(environ, start_response):
        requests.get(ingest_server.url + "/downstream", timeout=5)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"done"]

    class QuietHandler(wsgiref.simple_server.WSGIRequestHandler):
        def log_message(self, format, *args):  # keep test output clean
            pass

    server = wsgiref.simple_server.make_server(
        "127.0.0.1", 0, CorrelationMiddleware(app), handler_class=QuietHandler
    )
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    requests_propagation.install()
    try:
        response = requests.get(
            f"http://127.0.0.1:{server.server_port}/", timeout=5, headers={"X-Correlation-ID": "edge-1"}
        )
    finally:
        requests_propagation.uninstall()
        server.shutdown()
        server.server_close()
    assert response.headers["X-Correlation-ID"] == "edge-1"
    [downstream] = ingest_server.gets()
    assert downstream.headers["X-Correlation-ID"] == "edge-1"


def test_wsgi_middleware_header_precedence(precedence_case):
    # X-Correlation-ID, then Correlation-ID (django-guid's), then traceparent's trace id, else a new UUID4.
    headers, expected = precedence_case
    seen = {}

    def app(environ, start_response):
        seen["during"] = correlation.get()
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    environ = _environ(**{"HTTP_" + name.upper().replace("-", "_"): value for name, value in headers.items()})
    _, response_headers, _ = _call(CorrelationMiddleware(app), environ)

    echoed = [v for k, v in response_headers if k.lower() == "x-correlation-id"]
    assert len(echoed) == 1 and echoed[0] == seen["during"] == environ[ENVIRON_KEY]
    if expected is None:
        assert _is_uuid4(echoed[0])
    else:
        assert echoed[0] == expected


# -- requests propagation ------------------------------------------------------------------------


@pytest.fixture
def propagation() -> Iterator[None]:
    requests_propagation.install()
    try:
        yield
    finally:
        requests_propagation.uninstall()


def _sent_header(ingest_server) -> str | None:
    return ingest_server.gets()[-1].headers.get("X-Correlation-ID")


def test_install_adds_the_header_to_every_requests_call(ingest_server, propagation):
    with correlation.use("out-1"):
        requests.get(ingest_server.url + "/a", timeout=5)
        assert _sent_header(ingest_server) == "out-1"
        with requests.Session() as session:
            session.get(ingest_server.url + "/b", timeout=5)
        assert _sent_header(ingest_server) == "out-1"
        requests.get(ingest_server.url + "/c", headers={"x-correlation-id": "caller-set"}, timeout=5)
        assert _sent_header(ingest_server) == "caller-set"  # the caller's header is left alone
    requests.get(ingest_server.url + "/d", timeout=5)
    assert _sent_header(ingest_server) is None  # no ID in context: no header


def test_install_is_idempotent_and_uninstall_restores():
    original = requests.Session.send
    try:
        requests_propagation.install()
        wrapped = requests.Session.send
        requests_propagation.install()
        assert requests.Session.send is wrapped is not original
        assert requests_propagation.is_installed()
    finally:
        requests_propagation.uninstall()
    assert requests.Session.send is original
    assert not requests_propagation.is_installed()


def test_session_with_correlation_needs_no_global_patch(ingest_server):
    assert not requests_propagation.is_installed()
    with correlation.use("sess-1"):
        requests_propagation.session_with_correlation().get(ingest_server.url + "/s", timeout=5)
        assert _sent_header(ingest_server) == "sess-1"
        requests.get(ingest_server.url + "/plain", timeout=5)
        assert _sent_header(ingest_server) is None
