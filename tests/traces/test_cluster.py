"""Trace search on a 3-node Elasticsearch cluster: with the elected master stopped, search keeps answering and
nothing is lost, new events are still indexed, /readyz says yellow; restarted, the node rejoins and the
cluster turns green again.

The cluster comes from `scripts/services.sh cluster-start` (nodes on 127.0.0.1:9221-9223; `make test` starts
it in the background early on, and this module stops it). The single node on 9200 that every other test
uses is never touched.
"""

import subprocess
import uuid
from collections import defaultdict
from datetime import UTC, datetime, timedelta

import pytest

from tests.conftest import REPO, TRACE_BACKENDS, wait_for

pytestmark = [pytest.mark.django_db, pytest.mark.slow]

SERVICES_SH = REPO / "scripts" / "services.sh"
PREFIX = "cluster-test-obs-events"  # its own indices, even on a cluster a developer keeps running
DAY1 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
DAY2 = DAY1 + timedelta(days=1)
DAY3 = DAY1 + timedelta(days=2)


def services(*args: str) -> str:
    """Run `scripts/services.sh <args>` and return its stdout; fail with the end of its log when it fails."""
    done = subprocess.run(
        [str(SERVICES_SH), *args], cwd=REPO, capture_output=True, text=True, timeout=1500, check=False
    )
    if done.returncode != 0:
        pytest.fail(
            f"scripts/services.sh {' '.join(args)} exited {done.returncode}:\n{done.stderr[-6000:]}",
            pytrace=False,
        )
    return done.stdout


@pytest.fixture(scope="module")
def cluster_url() -> str:
    """Return the cluster's node URLs, comma-separated, starting the cluster if it is not up and green.

    Afterwards, whatever happened, a cluster this module started is stopped; one that was up before is left
    up with all its nodes again.
    """
    was_up = subprocess.run([str(SERVICES_SH), "cluster-status"], capture_output=True, check=False)
    try:
        exports = services("cluster-start")
        yield exports.strip().splitlines()[-1].removeprefix("export ELASTICSEARCH_URL=")
    finally:
        services("cluster-start" if was_up.returncode == 0 else "cluster-stop")


@pytest.fixture
def on_cluster(cluster_url, settings):
    """Point the portal at the cluster: all three node URLs, 2 primary shards, 1 replica each."""
    from apps.traces.search import _backend_for
    from apps.traces.search.elasticsearch import es_client

    settings.ELASTICSEARCH_URL = cluster_url
    settings.ELASTICSEARCH_INDEX_PREFIX = PREFIX
    settings.ELASTICSEARCH_SHARDS = 2
    settings.ELASTICSEARCH_REPLICAS = 1
    settings.TRACE_BACKEND = TRACE_BACKENDS["elasticsearch"]
    _backend_for.cache_clear()
    client = es_client().options(ignore_status=404)
    client.indices.delete(index=f"{PREFIX}-*", expand_wildcards="all")
    client.indices.delete_index_template(name=PREFIX)
    yield
    _backend_for.cache_clear()


def make_events(n: int, *, days: list[datetime], tag: str) -> list[dict]:
    """Return n log lines spread over the given days, in 10 requests of 4 users."""
    return [
        {
            "event_id": str(uuid.uuid4()),
            "type": "log",
            "level": "info",
            "message": f"tile {tag}-{i} served",
            "user_id": f"user-{i % 4}",
            "correlation_id": f"{tag}-{i % 10}",
            "timestamp": (days[i % len(days)] + timedelta(seconds=i)).isoformat(),
        }
        for i in range(n)
    ]


def ingest(api_client, key: str, events: list[dict]) -> None:
    """Send events through the batch API, then run the pipeline's task on them as a worker would."""
    from apps.ingest.models import RawEvent
    from apps.pipeline.tasks import process_events
    from apps.traces.search.elasticsearch import es_client

    response = api_client.post(
        "/api/v1/batch", {"batch": events}, format="json", HTTP_AUTHORIZATION=f"Bearer {key}"
    )
    assert response.status_code == 202, response.content
    assert response.json()["accepted"] == len(events)
    ids = list(RawEvent.objects.awaiting_index().values_list("pk", flat=True))
    outcome = process_events.apply(args=(ids,)).get()
    assert outcome["indexed"]["done"] == len(events), outcome
    assert not RawEvent.objects.awaiting_index().exists()
    es_client().indices.refresh(index=PREFIX)


def assert_every_trail_found(client, sent: list[dict]) -> None:
    """Every request's trail holds exactly its events, and the index holds exactly the events sent."""
    from apps.traces.search.elasticsearch import es_client

    expected = defaultdict(set)
    for event in sent:
        expected[event["correlation_id"]].add(event["event_id"])
    for cid, event_ids in expected.items():
        response = client.get(f"/api/v1/traces/{cid}")
        assert response.status_code == 200, (cid, response.content)
        assert {event["event_id"] for event in response.json()["events"]} == event_ids, cid
    users_requests = client.get("/api/v1/users/user-1/requests?per_page=100")
    assert users_requests.status_code == 200, users_requests.content
    assert users_requests.json()["total"] == len(
        {e["correlation_id"] for e in sent if e["user_id"] == "user-1"}
    )
    assert es_client().count(index=PREFIX)["count"] == len(sent)


def readiness(client) -> tuple[int, str, str]:
    """Return /readyz's status code, status and Elasticsearch detail, as an admin sees them."""
    response = client.get("/readyz")
    body = response.json()
    return response.status_code, body["status"], body["checks"]["elasticsearch"].get("detail", "")


def node_number(name: str) -> int:
    return int(name.rsplit("-", 1)[1])  # skywatch-cluster-node-N


def test_search_answers_and_loses_nothing_with_the_elected_master_stopped(
    on_cluster, api_client, client, make_key, make_person
):
    from apps.traces.search.elasticsearch import es_client

    es = es_client()
    client.force_login(make_person("admin"))  # admins read trails and see /readyz's details
    _, key = make_key(service="tiles")
    sent = make_events(120, days=[DAY1, DAY2], tag="before")
    ingest(api_client, key, sent)
    assert_every_trail_found(client, sent)
    index_settings = es.indices.get_settings(index=f"{PREFIX}-*")
    assert {
        (s["settings"]["index"]["number_of_shards"], s["settings"]["index"]["number_of_replicas"])
        for s in index_settings.values()
    } == {("2", "1")}
    assert len(index_settings) == 2  # one index per day
    wait_for(lambda: readiness(client)[2] == "elasticsearch: green, 3 nodes", timeout=60, message="green")
    # Elasticsearch re-creates a missing node's replicas elsewhere after a minute: wait longer than this test
    # looks, so the cluster stays yellow until the node comes back (test indices only).
    es.indices.put_settings(
        index=f"{PREFIX}-*", settings={"index.unassigned.node_left.delayed_timeout": "10m"}
    )

    # The harder case: the node that is the elected master goes away.
    [master] = es.cat.master(format="json")
    stopped = node_number(master["node"])
    copies_on_it = [
        row for row in es.cat.shards(index=f"{PREFIX}-*", format="json") if row["node"] == master["node"]
    ]
    assert copies_on_it, "the master holds no copy of the test's shards"
    services("cluster-node-stop", str(stopped))

    # Searching needs no master: every trail is found at once, while the others elect a new one.
    assert_every_trail_found(client, sent)
    wait_for(
        lambda: readiness(client)[:2] == (200, "degraded"),
        timeout=90,
        interval=1,
        message="/readyz to report the cluster yellow",
    )
    assert readiness(client) == (
        200,
        "degraded",
        f"elasticsearch: yellow, {len(copies_on_it)} unassigned replica shards, 2 nodes",
    )
    assert node_number(es.cat.master(format="json")[0]["node"]) != stopped

    # Writes go on: into the daily indices that lost copies, and into a new daily index.
    during = make_events(60, days=[DAY1, DAY3], tag="during")
    ingest(api_client, key, during)
    assert_every_trail_found(client, sent + during)
    assert len(es.indices.get_settings(index=f"{PREFIX}-*")) == 3

    services("cluster-node-start", str(stopped))
    wait_for(
        lambda: readiness(client) == (200, "ok", "elasticsearch: green, 3 nodes"),
        timeout=180,
        interval=1,
        message="the cluster to turn green again with the node back",
    )
    assert_every_trail_found(client, sent + during)
