"""`seed_demo` in the embedded mode (SQLite, tasks in-process, search on the database), as `make run` runs it:
the pipeline has rolled up and indexed everything by the time the command returns, the same seed stores the
same events as on PostgreSQL, and a second start leaves the database alone."""

import hashlib
import json
import subprocess
import sys

from tests.conftest import REPO, portal_env
from tests.demo.conftest import SMALL, seed, stored_fingerprint

SCRIPT = r"""
import hashlib, json, sys, django
django.setup()
from io import StringIO
from django.core.management import call_command
from django.test import Client
from apps.accounts.services import user_create
from apps.ingest.models import RawEvent
call_command("migrate", verbosity=0)
options = json.loads(sys.argv[1])
first, second = StringIO(), StringIO()
call_command("seed_demo", *[f"--{k}={v}" for k, v in options.items()], "--if-empty", stdout=first)
call_command("seed_demo", *[f"--{k}={v}" for k, v in options.items()], "--if-empty", stdout=second)
pairs = RawEvent.objects.values_list("service", "event_id")
ids = sorted(f"{service}:{event_id}" for service, event_id in pairs)
client = Client(HTTP_HOST="127.0.0.1")
client.force_login(user_create(username="pat", role="product", password="correct-horse-battery"))
series = client.get("/api/v1/metrics/series", {"event": "download_completed", "measure": "count",
                    "interval": "day", "from": "2026-11-23T00:00:00Z", "to": "2026-12-01T00:00:00Z"}).json()
client.force_login(user_create(username="sam", role="support", password="correct-horse-battery"))
line = RawEvent.objects.filter(service="download-worker", message="Downloaded img").first()
trail = client.get(f"/api/v1/traces/{line.correlation_id}").json()
print(json.dumps({
    "first": first.getvalue(), "second": second.getvalue(), "stored": len(ids),
    "digest": hashlib.sha256("\n".join(ids).encode()).hexdigest(),
    "unprocessed": RawEvent.objects.awaiting_aggregation().count()
                   + RawEvent.objects.awaiting_index().count(),
    "completed": RawEvent.objects.filter(event="download_completed").count(),
    "series": [(s["kind"], sum(p["v"] for p in s["points"])) for s in series["series"]],
    "trail_services": sorted({e["service"] for e in trail["events"]}),
}))
"""


def test_make_runs_seed_is_processed_in_process_and_matches_postgresql(tmp_path, db):
    env = portal_env(DATABASE_URL=f"sqlite:///{tmp_path / 'demo.sqlite3'}")
    for name in ("CELERY_BROKER_URL", "ELASTICSEARCH_URL", "CACHE_URL", "OBSERVATORY_URL"):
        env.pop(name, None)

    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, json.dumps(SMALL)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )

    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert f"{result['stored']:,} stored, 0 already there" in result["first"]
    assert "queued for the Celery workers" not in result["first"]
    assert "nothing seeded (--if-empty)" in result["second"]
    assert result["unprocessed"] == 0  # rolled up and indexed before the command returned
    assert result["series"] == [["total", result["completed"]]] and result["completed"] > 10
    assert result["trail_services"] == ["download-server", "download-worker", "gateway", "search-api"]
    # The same seed on PostgreSQL stores the very same events.
    seed()
    on_postgresql = sorted(f"{row[0]}:{row[1]}" for row in stored_fingerprint())
    assert result["digest"] == hashlib.sha256("\n".join(on_postgresql).encode()).hexdigest()
