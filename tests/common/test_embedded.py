"""The embedded default end to end: SQLite, tasks in-process, trace search on the database — no servers."""

import json
import subprocess
import sys
import time

from tests.conftest import REPO, portal_env

SCRIPT = r"""
import json, django
django.setup()
from django.core.management import call_command
from django.test import Client
from django.conf import settings
call_command("migrate", verbosity=0)
from apps.accounts.actors import Actor
from apps.ingest.services import service_key_create
from apps.accounts.services import user_create
from apps.ingest.models import RawEvent
from apps.metrics.models import RollupCount
_, key = service_key_create(service_name="gateway", stage="dev", actor=Actor.command("tests"))
client = Client(HTTP_HOST="127.0.0.1")
batch = [{"event": "search_made", "event_id": "0b6f3c52-5f0e-4a8e-9d3f-2f4d1c1e7a01", "user_id": "u1",
          "correlation_id": "c-1", "timestamp": "2026-11-25T10:00:00Z",
          "properties": {"n": 2, "region": "eu"}},
         {"type": "log", "level": "error", "message": "boom", "correlation_id": "c-1",
          "timestamp": "2026-11-25T10:00:01Z"}]
ingest = client.post("/api/v1/batch", json.dumps(batch), content_type="application/json",
                     HTTP_AUTHORIZATION=f"Bearer {key}")
again = client.post("/api/v1/batch", json.dumps(batch[:1]), content_type="application/json",
                    HTTP_AUTHORIZATION=f"Bearer {key}")
client.force_login(user_create(username="sam", role="support", password="correct-horse-battery"))
trail = client.get("/api/v1/traces/c-1").json()
client.force_login(user_create(username="pat", role="product", password="correct-horse-battery"))
series = {
    measure: client.get("/api/v1/metrics/series", {
        "event": "search_made", "measure": measure, "interval": interval, "breakdown": "service",
        "filter": "region=eu", "from": "2026-11-23T00:00:00Z", "to": "2026-11-30T00:00:00Z"}).json()
    for measure, interval in (("count", "day"), ("unique_users", "week"), ("sum:n", "hour"))
}
users = client.get("/api/v1/metrics/series", {
    "event": "search_made", "measure": "unique_users", "interval": "day",
    "from": "2026-11-23T00:00:00Z", "to": "2026-11-30T00:00:00Z"}).json()["series"]
print(json.dumps({
    "engine": settings.DATABASES["default"]["ENGINE"], "eager": settings.CELERY_TASK_ALWAYS_EAGER,
    "backend": settings.TRACE_BACKEND, "ingest": ingest.json(), "again": again.json(),
    "aggregated": RawEvent.objects.aggregated().count(),
    "day_count": sum(RollupCount.objects.filter(granularity="day").values_list("count", flat=True)),
    "trail": [(e["type"], e["level"]) for e in trail["events"]],
    "series": {measure: {s["name"]: sum(p["v"] for p in s["points"]) for s in answer["series"]}
               for measure, answer in series.items()},
    "users": [(s["kind"], s["estimate"], sum(p["v"] for p in s["points"])) for s in users],
}))
"""


def test_ingest_aggregate_and_search_without_any_server(tmp_path):
    env = portal_env(DATABASE_URL=f"sqlite:///{tmp_path / 'embedded.sqlite3'}")
    for name in ("CELERY_BROKER_URL", "ELASTICSEARCH_URL", "CACHE_URL", "OBSERVATORY_URL"):
        env.pop(name, None)

    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )

    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["engine"].endswith("sqlite3") and result["eager"] is True
    assert result["backend"].endswith("DatabaseTraceBackend")
    assert result["ingest"] == {"accepted": 2, "duplicates": 0, "rejected": []}
    assert result["again"] == {"accepted": 0, "duplicates": 1, "rejected": []}
    assert result["aggregated"] == 2 and result["day_count"] == 2
    assert result["trail"] == [["metric", ""], ["log", "error"]]
    # Charts on SQLite too, with a property filter (read from raw events) and each measure.
    assert result["series"] == {
        "count": {"gateway": 1},
        "unique_users": {"gateway": 1},
        "sum:n": {"gateway": 2},
    }
    # From the rollups: exact on SQLite (user rows), not an estimate.
    assert result["users"] == [["total", False, 1]]


SETUP = r"""
import django, uuid
django.setup()
from datetime import timedelta
from django.core.management import call_command
from django.utils import timezone
call_command("migrate", verbosity=0)
from apps.ingest.models import RawEvent
from apps.ingest.services import service_key_create
from apps.accounts.actors import Actor
_, key = service_key_create(service_name="skywatch-portal", stage="dev", actor=Actor.command("tests"))
# An event whose in-process aggregation failed an hour ago (SQLite busy, say): stored, never counted.
long_ago = timezone.now() - timedelta(hours=1)
RawEvent.objects.create(
    event_id=uuid.UUID("7d3c54b6-1d4e-4c36-9c51-0c3e5e2a8f10"), service="gateway", stage="dev",
    event="search_made", timestamp=long_ago, received_at=long_ago,
)
print(key)
"""


def test_idle_embedded_portal_does_not_log_itself_in_a_loop_and_sweeps_what_failed(tmp_path, start_portal):
    import sqlite3

    import requests

    from tests.conftest import free_port, wait_for

    database = tmp_path / "embedded.sqlite3"
    env = portal_env(DATABASE_URL=f"sqlite:///{database}")
    for name in ("CELERY_BROKER_URL", "ELASTICSEARCH_URL", "CACHE_URL", "OBSERVATORY_URL"):
        env.pop(name, None)
    setup = subprocess.run(
        [sys.executable, "-c", SETUP], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )
    assert setup.returncode == 0, setup.stderr[-3000:]
    port = free_port()
    server = start_portal(
        port=port,
        **{name: env.get(name, "") for name in ("CELERY_BROKER_URL", "ELASTICSEARCH_URL", "CACHE_URL")},
        DATABASE_URL=f"sqlite:///{database}",
        OBSERVATORY_URL=f"http://127.0.0.1:{port}",
        OBSERVATORY_API_KEY=setup.stdout.strip().splitlines()[-1],
        PIPELINE_SWEEP_INTERVAL_SECONDS="1",
        PIPELINE_SWEEP_GRACE_SECONDS="1",
    )

    def query(sql: str) -> int:
        with sqlite3.connect(database, timeout=20) as db:
            return db.execute(sql).fetchone()[0]

    # A request that logs a warning: shipped to the portal itself, stored, processed in-process.
    assert requests.get(server.url + "/no-such-page/", timeout=10).status_code == 404
    wait_for(
        lambda: query("SELECT COUNT(*) FROM ingest_rawevent WHERE service = 'skywatch-portal'") > 0,
        timeout=20,
        message="the portal's own warning to arrive",
    )
    # The stored batch ran the sweeper, which counted the event that had failed.
    wait_for(
        lambda: (
            query(
                "SELECT COUNT(*) FROM ingest_rawevent"
                " WHERE event = 'search_made' AND dead_lettered_at IS NULL AND NOT EXISTS"
                " (SELECT 1 FROM ingest_aggregationbacklog b WHERE b.raw_id = ingest_rawevent.id)"
            )
            == 1
        ),
        timeout=20,
        message="the sweeper to aggregate the stale event",
    )
    # Idle: the processing of shipped lines is not itself shipped, so nothing more arrives. An absence
    # needs a window: eight flush intervals of the portal's own tracker, after the last line settled.
    own = "SELECT COUNT(*) FROM ingest_rawevent WHERE service = 'skywatch-portal'"
    time.sleep(3)
    settled = query(own)
    time.sleep(8)
    assert query(own) == settled, "the idle portal kept shipping lines about processing its own lines"
