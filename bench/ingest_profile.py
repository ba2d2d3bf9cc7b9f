"""Where a `POST /api/v1/batch` request's time goes: 100-event batches through the portal's WSGI handler in
this one process (no gunicorn, no HTTP), with the real PostgreSQL and Celery broker, wall and CPU time per
request, then a cProfile of the handler's calls sorted by own and by cumulative time.

Not part of `make bench` (its figures are shares, not rates beside a baseline). Run it with the bench's
environment (see scripts/bench.sh): `python -m bench.ingest_profile [events]` (default 30,000). It makes
the bench database afresh and empties the bench Redis DB at the end.
"""

import cProfile
import io
import json
import os
import pstats
import sys
import time

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "skywatch_portal.settings")

from . import (
    common,  # noqa: E402
    ingest,  # noqa: E402
)
from .workload import as_sent, make_events  # noqa: E402

BATCH = 100


def STEPS(api, services):  # noqa: N802 - (object, attribute, step) of the request, timed by wrapping
    return (
        (api, "batch_from_body", "decode the body"),
        (services, "conform_event", "conform (each item)"),
        (services, "raw_events_store", "INSERT (wall)"),
        (services, "_announce_stored", "Celery announce"),
        (api, "events_ingest", "events_ingest in all"),
        (api, "api_key_touch", "key touch"),
    )


def _environ(body: bytes, key: str) -> dict:
    return {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/api/v1/batch",
        "QUERY_STRING": "",
        "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": str(len(body)),
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_HOST": "127.0.0.1:8000",
        "HTTP_AUTHORIZATION": f"Bearer {key}",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
        "wsgi.version": (1, 0),
    }


def main() -> None:
    common.check_isolation()
    total = int(sys.argv[1]) if len(sys.argv) > 1 else 30_000
    common.recreate_database()
    common.manage("migrate", "--noinput")
    django.setup()
    from django.core.wsgi import get_wsgi_application

    key, _ = ingest._service_key()
    app = get_wsgi_application()
    events = make_events(total, seed=11)
    bodies = [
        json.dumps({"batch": [as_sent(ev) for ev in events[i : i + BATCH]]}).encode()
        for i in range(0, total, BATCH)
    ]

    def post(body: bytes) -> None:
        status: list[str] = []
        answer = b"".join(app(_environ(body, key), lambda s, h: status.append(s)))
        if not status[0].startswith("202"):
            raise RuntimeError(f"{status[0]}: {answer[:300]!r}")

    from collections import defaultdict

    from apps.ingest import api as ingest_api
    from apps.ingest import services as ingest_services

    timers: dict[str, float] = defaultdict(float)

    def timed(owner: object, name: str, step: str) -> None:
        function = getattr(owner, name)

        def wrapper(*args, **kwargs):
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                timers[step] += time.perf_counter() - started

        setattr(owner, name, wrapper)

    for owner, name, step in STEPS(ingest_api, ingest_services):
        timed(owner, name, step)
    try:
        third = len(bodies) // 3
        for body in bodies[:third]:  # warm up
            post(body)
        timers.clear()
        wall, cpu = time.perf_counter(), time.process_time()
        for body in bodies[third : 2 * third]:
            post(body)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        print(
            f"{third} requests: {wall / third * 1000:.2f} ms wall, "
            f"{cpu / third * 1000:.2f} ms CPU per request"
        )
        for step, seconds in timers.items():
            print(f"  {step}: {seconds / third * 1000:.3f} ms per request (wall)")
        timers.clear()
        profiler = cProfile.Profile()
        profiler.enable()
        for body in bodies[2 * third :]:
            post(body)
        profiler.disable()
        stats = pstats.Stats(profiler).sort_stats("cumulative")
        stats.print_stats(70)
        stats.sort_stats("tottime").print_stats(30)
    finally:
        common.flush_broker()


if __name__ == "__main__":
    main()
