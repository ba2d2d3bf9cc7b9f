"""Server plumbing shared by the example web services, kept apart so they show only the instrumentation.

Nothing here knows about the observatory: a threaded wsgiref server that stops cleanly on SIGTERM (so
trackers flush at exit) and small JSON responses.
"""

from __future__ import annotations

import json
import logging
import re
import signal
import socketserver
import sys
from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs
from wsgiref.simple_server import WSGIServer, make_server

# What the portal stores as a user ID: at most 200 characters, none of them a control character. An event
# with another is refused by the portal, so a request with such a `user` would leave no trail at all.
USER_ID = re.compile(r"[^\x00-\x1f\x7f]{1,200}")

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


def errors_answered(app: WSGIApp, log: logging.Logger) -> WSGIApp:
    """Wrap `app`: an exception it raises is logged with its traceback and answered with a 500.

    Wrapped inside the correlation middleware, the error line reaches the request's trail; unwrapped, it
    would only be printed on the server's stderr.
    """

    def wrapped(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        try:
            return app(environ, start_response)
        except Exception:  # anything the app did not handle: logged here, then a plain 500
            log.exception(
                "unhandled error answering %s %s", environ.get("REQUEST_METHOD"), environ.get("PATH_INFO")
            )
            body = json.dumps({"detail": "internal error"}).encode()
            headers = [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
            start_response("500 Internal Server Error", headers, sys.exc_info())
            return [body]

    return wrapped


def query_param(environ: dict[str, Any], name: str) -> str | None:
    """Return the first value of a query-string parameter, or None."""
    return parse_qs(environ.get("QUERY_STRING", "")).get(name, [None])[0]


def valid_user_id(value: str | None) -> bool:
    """Return whether `value` (None: an anonymous request) can be sent to the portal as a user ID."""
    return value is None or USER_ID.fullmatch(value) is not None


def user_refused(start_response: StartResponse, log: logging.Logger, tile_id: str) -> list[bytes]:
    """Answer 400 to a `user` the portal cannot store, with a warning in the request's trail.

    Refused here, not by the portal later: there every event carrying it (this hop's and the next ones')
    would be dropped, and the request would leave no trail. The value itself is not logged.
    """
    log.warning("request for tile %s refused: the user parameter is not a valid user ID", tile_id)
    return json_response(start_response, 400, {"detail": "user must be 1-200 printable characters"})


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
