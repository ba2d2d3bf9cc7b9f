"""The download service of the tile example: the second hop, which hands the rendering to a Celery task.

The same instrumentation as the gateway (one Tracker, `TrackerHandler`, `CorrelationMiddleware`), plus
the Celery side: `download_tasks` calls `observatory.celery.install(app)`, so publishing the task puts
the request's correlation ID into the message headers and the worker's events join the same trail.

    SERVICE_NAME=download OBSERVATORY_URL=http://127.0.0.1:8000 OBSERVATORY_API_KEY=<key> \\
        EXAMPLE_BROKER_URL=redis://127.0.0.1:6379/12 python examples/download.py --port 8002
"""

from __future__ import annotations

import argparse
import logging
import re
from collections.abc import Iterable
from typing import Any

from _plumbing import (
    StartResponse,
    errors_answered,
    json_response,
    query_param,
    serve,
    user_refused,
    valid_user_id,
)
from download_tasks import render_tile
from kombu.exceptions import OperationalError

import observatory
from observatory import correlation
from observatory.logging import CorrelationFilter, JsonFormatter, TrackerHandler
from observatory.wsgi import CorrelationMiddleware

log = logging.getLogger("download")

DOWNLOAD_PATH = re.compile(r"/download/(?P<tile_id>[A-Za-z0-9_.-]{1,64})")


def make_app(tracker: observatory.Tracker) -> CorrelationMiddleware:
    """Return the WSGI app: `GET /download/<tile_id>?user=<id>` queues the rendering and answers 200."""

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/healthz":
            return json_response(start_response, 200, {"ok": True})
        match = DOWNLOAD_PATH.fullmatch(path)
        if match is None or environ.get("REQUEST_METHOD") != "GET":
            return json_response(start_response, 404, {"detail": "try GET /download/<tile_id>?user=<id>"})
        tile_id, user_id = match["tile_id"], query_param(environ, "user")
        if not valid_user_id(user_id):
            return user_refused(start_response, log, tile_id)

        tracker.track("download_started", {"tile_id": tile_id}, user_id=user_id)
        log.info(
            "download of tile %s started, rendering it in the background", tile_id, extra={"user_id": user_id}
        )
        try:
            task = render_tile.delay(tile_id, user_id)  # the correlation ID rides in the task headers
        except OperationalError as exc:
            log.error("the task broker is unreachable: %s", exc, extra={"user_id": user_id})
            return json_response(start_response, 503, {"detail": "the task broker is unreachable"})
        body = {
            "tile_id": tile_id,
            "status": "rendering",
            "task_id": task.id,
            "correlation_id": correlation.get(),
        }
        return json_response(start_response, 200, body)

    return CorrelationMiddleware(errors_answered(app, log))


def configure_logging(tracker: observatory.Tracker) -> None:
    """Write JSON lines on stderr and ship every record to the portal as a `type: "log"` event."""
    console = logging.StreamHandler()
    console.addFilter(CorrelationFilter())
    console.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.addHandler(console)
    root.addHandler(TrackerHandler(tracker))
    root.setLevel(logging.INFO)


def main(argv: list[str] | None = None) -> None:
    """Run the download service until SIGINT/SIGTERM, then deliver the events still queued."""
    parser = argparse.ArgumentParser(description="The tile example's download service.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8002)
    args = parser.parse_args(argv)

    tracker = observatory.Tracker()  # OBSERVATORY_URL, OBSERVATORY_API_KEY, SERVICE_NAME from the env
    configure_logging(tracker)
    log.info("download service on http://%s:%d", args.host, args.port)
    try:
        serve(make_app(tracker), args.host, args.port)
    finally:
        tracker.shutdown()


if __name__ == "__main__":
    main()
