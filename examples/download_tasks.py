"""The tile example's Celery task: the third hop, run by a worker process of its own.

`observatory.celery.install(app)` carries the correlation ID from the publisher (the download service)
in the message headers and sets it in the worker while the task runs, so the task's metric event and
log line land in the same trail as the HTTP hops before it.

    SERVICE_NAME=download-worker OBSERVATORY_URL=http://127.0.0.1:8000 OBSERVATORY_API_KEY=<key> \\
        EXAMPLE_BROKER_URL=redis://127.0.0.1:6379/12 celery -A examples.download_tasks worker -l info
"""

from __future__ import annotations

import logging
import os
import sys
import time
from typing import Any

from celery import Celery, signals

import observatory
import observatory.celery
from observatory.logging import CorrelationFilter, JsonFormatter, TrackerHandler

BROKER_URL = os.environ.get("EXAMPLE_BROKER_URL", "redis://127.0.0.1:6379/12")
QUEUE = "tiles"

app = Celery("tiles", broker=BROKER_URL)
app.conf.update(
    # Celery prefers a CELERY_BROKER_URL in the environment (the portal's broker, in a shell set up by
    # scripts/services.sh) over `broker_url`; the read/write URLs take precedence over that variable.
    broker_read_url=BROKER_URL,
    broker_write_url=BROKER_URL,
    broker_connection_retry_on_startup=True,
    broker_connection_timeout=3,
    task_default_queue=QUEUE,  # never the portal's `default` queue, even on a shared broker
    task_ignore_result=True,
    task_acks_late=True,
    worker_prefetch_multiplier=1,
)
observatory.celery.install(app)

# The task's own logger. Celery owns the worker's root logger and logs its bookkeeping there ("Task …
# received", "… succeeded"); shipping only this logger keeps the trail to what the task itself says —
# and a task's failure, which Celery logs at ERROR on `celery.app.trace` while the task's ID is still set.
log = logging.getLogger("tiles.render")
FAILURES = logging.getLogger("celery.app.trace")


@signals.after_setup_logger.connect
def ship_task_logs(logger: logging.Logger | None = None, **_: Any) -> None:
    """In worker processes only (this signal fires when a worker sets up logging), ship the task's log lines
    and write them as JSON lines, like the web services do, with the correlation ID, SERVICE_NAME and STAGE.

    The JSON lines go where Celery writes its own (stderr, or the `--logfile`) and only there: the logger
    does not also pass them up to Celery's handler, whose format has no correlation ID. The handler uses
    the process's default Tracker (from the environment), created on first use: in a prefork pool that is
    inside the child process that runs the task.
    """
    if any(isinstance(h, TrackerHandler) for h in log.handlers):
        return
    streams = [h.stream for h in getattr(logger, "handlers", ()) if isinstance(h, logging.StreamHandler)]
    console = logging.StreamHandler(streams[0] if streams else sys.__stderr__)
    console.setFormatter(JsonFormatter())
    log.addFilter(CorrelationFilter())
    log.addHandler(console)
    log.addHandler(TrackerHandler())
    log.propagate = False
    failures = TrackerHandler(level=logging.ERROR)  # "Task … raised …" with its traceback, not "succeeded"
    failures.addFilter(CorrelationFilter())
    FAILURES.addHandler(failures)


@app.task(name="tiles.render_tile")  # explicit: the publisher imports this module as `download_tasks`
def render_tile(tile_id: str, user_id: str | None = None) -> int:
    """Render a tile (here: a blank 256×256 image) and report it; the correlation ID is the publisher's."""
    started = time.perf_counter()
    tile = bytes(256 * 256)
    duration_ms = round((time.perf_counter() - started) * 1000, 3)
    observatory.get_tracker().track(
        "tile_rendered", {"tile_id": tile_id, "bytes": len(tile), "duration_ms": duration_ms}, user_id=user_id
    )
    log.info("tile %s rendered (%d bytes)", tile_id, len(tile), extra={"user_id": user_id})
    return len(tile)
