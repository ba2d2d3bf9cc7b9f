"""Server plumbing shared by the example web services, kept apart so they show only the instrumentation.

Nothing here knows about the observatory: a threaded wsgiref server that stops cleanly on SIGTERM (so
trackers flush at exit) and small JSON responses.
"""

from __future__ import annotations

import json
import signal
import socketserver
from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs
from wsgiref.simple_server import WSGIServer, make_server

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


class ThreadingWSGIServer(socketserver.ThreadingMixIn, WSGIServer):
    """wsgiref's server, one thread per request (each thread has its own correlation ID context)."""

    daemon_threads = True


def serve(app: WSGIApp, host: str, port: int) -> None:
    """Serve `app` until SIGINT or SIGTERM; return normally so `finally` blocks and atexit hooks run."""
    signal.signal(signal.SIGTERM, _interrupt)
    with make_server(host, port, app, server_class=ThreadingWSGIServer) as server:
        try:
            server.serve_forever(poll_interval=0.2)
        except KeyboardInterrupt:
            pass


def query_param(environ: dict[str, Any], name: str) -> str | None:
    """Return the first value of a query-string parameter, or None."""
    return parse_qs(environ.get("QUERY_STRING", "")).get(name, [None])[0]


def json_response(start_response: StartResponse, status: int, body: dict[str, Any]) -> list[bytes]:
    """Answer with a JSON body."""
    return raw_response(start_response, status, json.dumps(body).encode(), "application/json")


def raw_response(start_response: StartResponse, status: int, body: bytes, content_type: str) -> list[bytes]:
    """Answer with the given bytes."""
    try:
        reason = HTTPStatus(status).phrase
    except ValueError:
        reason = "Unknown"
    start_response(f"{status} {reason}", [("Content-Type", content_type), ("Content-Length", str(len(body)))])
    return [body]


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt
