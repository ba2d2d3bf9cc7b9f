"""The gateway of the tile example: the first hop of a request, instrumented with the observatory client.

It shows what a company service writes to join the portal's trails, with no framework: one Tracker for
the process, log lines shipped through `logging`, the correlation ID taken from the incoming request
(`CorrelationMiddleware`) and carried on the outgoing HTTP call (`requests_propagation.install()`).

    SERVICE_NAME=gateway OBSERVATORY_URL=http://127.0.0.1:8000 OBSERVATORY_API_KEY=<key> \\
        DOWNLOAD_URL=http://127.0.0.1:8002 python examples/gateway.py --port 8001
"""

from __future__ import annotations

import argparse
import logging
import os
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote

import requests
from _plumbing import (
    StartResponse,
    errors_answered,
    json_response,
    query_param,
    raw_response,
    serve,
    user_refused,
    valid_user_id,
)

import observatory
import observatory.requests_propagation
from observatory.logging import CorrelationFilter, JsonFormatter, TrackerHandler
from observatory.wsgi import CorrelationMiddleware

log = logging.getLogger("gateway")

TILE_PATH = re.compile(r"/tiles/(?P<tile_id>[A-Za-z0-9_.-]{1,64})")


def make_app(tracker: observatory.Tracker, download_url: str) -> CorrelationMiddleware:
    """Return the WSGI app: `GET /tiles/<tile_id>?user=<id>` asks the download service for the tile."""
    download_url = download_url.rstrip("/")

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/healthz":
            return json_response(start_response, 200, {"ok": True})
        match = TILE_PATH.fullmatch(path)
        if match is None or environ.get("REQUEST_METHOD") != "GET":
            return json_response(start_response, 404, {"detail": "try GET /tiles/<tile_id>?user=<id>"})
        tile_id, user_id = match["tile_id"], query_param(environ, "user")
        if not valid_user_id(user_id):
            return user_refused(start_response, log, tile_id)

        # Both carry the request's correlation ID: the middleware set it in this thread's context.
        tracker.track("tile_requested", {"tile_id": tile_id}, user_id=user_id)
        log.info("tile %s requested, asking the download service", tile_id, extra={"user_id": user_id})

        # install() makes every `requests` call send X-Correlation-ID, so the download service joins in.
        try:
            answer = requests.get(
                f"{download_url}/download/{quote(tile_id)}",
                params={"user": user_id} if user_id else None,
                timeout=10,
            )
        except requests.RequestException as exc:
            log.error("download service unreachable: %s", exc, extra={"user_id": user_id})
            return json_response(start_response, 502, {"detail": "the download service is unreachable"})
        content_type = answer.headers.get("Content-Type", "application/octet-stream")
        return raw_response(start_response, answer.status_code, answer.content, content_type)

    return CorrelationMiddleware(errors_answered(app, log))


def configure_logging(tracker: observatory.Tracker) -> None:
    """Write JSON lines on stderr and ship every record to the portal as a `type: "log"` event."""
    console = logging.StreamHandler()
    console.addFilter(CorrelationFilter())
    console.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.addHandler(console)
    root.addHandler(TrackerHandler(tracker))  # skips requests/urllib3/observatory records: no feedback loop
    root.setLevel(logging.INFO)


def main(argv: list[str] | None = None) -> None:
    """Run the gateway until SIGINT/SIGTERM, then deliver the events still queued."""
    parser = argparse.ArgumentParser(description="The tile example's gateway.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--download-url", default=os.environ.get("DOWNLOAD_URL", "http://127.0.0.1:8002"))
    args = parser.parse_args(argv)

    tracker = observatory.Tracker()  # OBSERVATORY_URL, OBSERVATORY_API_KEY, SERVICE_NAME from the env
    configure_logging(tracker)
    observatory.requests_propagation.install()
    log.info("gateway on http://%s:%d, download service at %s", args.host, args.port, args.download_url)
    try:
        serve(make_app(tracker, args.download_url), args.host, args.port)
    finally:
        tracker.shutdown()  # atexit would do it too; explicit is clearer in an example


if __name__ == "__main__":
    main()
