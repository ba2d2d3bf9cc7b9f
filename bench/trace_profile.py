"""Where a trace API call's time goes: GET /api/v1/traces/<cid> through the portal's WSGI handler in this one
process (no gunicorn, no HTTP), beside the raw term query, then a cProfile of the handler's calls.

Not part of `make bench` (its figures are shares, not rates beside a baseline). Run it with the bench's
environment (see scripts/bench.sh): `python -m bench.trace_profile [documents]`. It makes the bench
database and indices afresh, indexes `documents` (default 200,000) generated trace documents, and deletes
the indices at the end. The HTTP side (gunicorn's parsing, loopback) is the bench's figure minus this one.
"""

import cProfile
import io
import os
import pstats
import random
import sys
import time
from datetime import UTC, datetime, timedelta

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "skywatch_portal.settings")

from . import (
    common,  # noqa: E402
    traces,  # noqa: E402
)

CALLS = 600


def _environ(path: str, token: str) -> dict:
    return {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_HOST": "127.0.0.1:8000",
        "HTTP_AUTHORIZATION": f"Bearer {token}",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(b""),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
        "wsgi.version": (1, 0),
    }


def main() -> None:
    common.check_isolation()
    documents = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
    common.recreate_database()
    common.manage("migrate", "--noinput")
    django.setup()
    from django.core.wsgi import get_wsgi_application
    from elasticsearch import Elasticsearch

    es = Elasticsearch(os.environ["ELASTICSEARCH_URL"], request_timeout=60)
    end = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
    try:
        traces.prepare_indices(es, end)
        made = traces.load(documents, end=end, timeout=600)
        traces.finish_indices(es)
        token = traces._support_token()
        app = get_wsgi_application()
        cids = random.Random(7).sample(sorted(made), CALLS)

        def call(cid: str) -> float:
            started = time.perf_counter()
            status: list[str] = []
            body = b"".join(app(_environ(f"/api/v1/traces/{cid}", token), lambda s, h: status.append(s)))
            elapsed = time.perf_counter() - started
            if not status[0].startswith("200") or not body:
                raise RuntimeError(f"{cid}: {status[0]}")
            return elapsed * 1000

        for cid in cids[:100]:
            call(cid)
            traces._raw_trail(es, cid, made[cid][0])
        api, raw = [], []
        for cid in cids[100:400]:
            api.append(call(cid))
            raw.append(traces._raw_trail(es, cid, made[cid][0]))
        p = traces.percentile
        print(
            f"in-process API p50 {p(api, 50):.2f} p95 {p(api, 95):.2f} ms; "
            f"raw p50 {p(raw, 50):.2f} p95 {p(raw, 95):.2f} ms"
        )
        from django.db import connection

        def floor(path: str) -> float:
            started = time.perf_counter()
            status: list[str] = []
            b"".join(app(_environ(path, token), lambda s, h: status.append(s)))
            return (time.perf_counter() - started) * 1000

        healthz = [floor("/healthz") for _ in range(300)]
        print(f"in-process /healthz p50 {p(healthz, 50):.2f} p95 {p(healthz, 95):.2f} ms")
        connection.health_check_enabled = False
        api, raw = [], []
        for cid in cids[100:400]:
            api.append(call(cid))
            raw.append(traces._raw_trail(es, cid, made[cid][0]))
        print(
            f"no health check: in-process API p50 {p(api, 50):.2f} p95 {p(api, 95):.2f} ms; "
            f"raw p50 {p(raw, 50):.2f} p95 {p(raw, 95):.2f} ms"
        )
        import contextlib

        from apps.traces import api as trace_api

        audited = trace_api.audit_while
        trace_api.audit_while = lambda **kw: contextlib.nullcontext()
        api, raw = [], []
        for cid in cids[100:400]:
            api.append(call(cid))
            raw.append(traces._raw_trail(es, cid, made[cid][0]))
        print(
            f"no health check, no audit: in-process API p50 {p(api, 50):.2f} p95 {p(api, 95):.2f} ms; "
            f"raw p50 {p(raw, 50):.2f} p95 {p(raw, 95):.2f} ms"
        )
        trace_api.audit_while = audited
        connection.health_check_enabled = True
        from apps.traces.selectors import trail_get

        direct, raw = [], []
        for cid in cids[100:400]:
            started = time.perf_counter()
            trail_get(correlation_id=cid)
            direct.append((time.perf_counter() - started) * 1000)
            raw.append(traces._raw_trail(es, cid, made[cid][0]))
        print(
            f"trail_get alone p50 {p(direct, 50):.2f} p95 {p(direct, 95):.2f} ms; "
            f"raw p50 {p(raw, 50):.2f} p95 {p(raw, 95):.2f} ms"
        )
        profiler = cProfile.Profile()
        profiler.enable()
        for cid in cids[400:]:
            call(cid)
        profiler.disable()
        stats = pstats.Stats(profiler).sort_stats("cumulative")
        stats.print_stats(120)
        stats.sort_stats("tottime").print_stats(30)
    finally:
        es.close()
        common.delete_indices(template=False)


if __name__ == "__main__":
    main()
