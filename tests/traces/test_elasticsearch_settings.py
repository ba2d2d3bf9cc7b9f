"""ELASTICSEARCH_SHARDS, ELASTICSEARCH_REPLICAS and a comma-separated ELASTICSEARCH_URL, on the real node."""

import os
import subprocess
import sys
from datetime import UTC, datetime

import pytest

from tests.conftest import REPO, TRACE_BACKENDS, free_port

PRINT_INDEX_SETTINGS = """
import django
from django.conf import settings
django.setup()
print(settings.ELASTICSEARCH_SHARDS, settings.ELASTICSEARCH_REPLICAS)
"""


def settings_in_child(**env_overrides: str) -> subprocess.CompletedProcess:
    """Import the settings in a fresh interpreter with the shard and replica variables as given."""
    env = {k: v for k, v in os.environ.items() if k not in {"ELASTICSEARCH_SHARDS", "ELASTICSEARCH_REPLICAS"}}
    env["DJANGO_SETTINGS_MODULE"] = "skywatch_portal.settings"
    env.update(env_overrides)
    return subprocess.run(
        [sys.executable, "-c", PRINT_INDEX_SETTINGS],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_one_shard_and_no_replica_by_default():
    done = settings_in_child()

    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["1", "0"]


def test_shards_and_replicas_come_from_the_environment():
    done = settings_in_child(ELASTICSEARCH_SHARDS=" 3 ", ELASTICSEARCH_REPLICAS="2")

    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["3", "2"]


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("ELASTICSEARCH_SHARDS", "two", "ELASTICSEARCH_SHARDS='two' is not an integer"),
        ("ELASTICSEARCH_SHARDS", "0", "ELASTICSEARCH_SHARDS=0 must be between 1 and 1024"),
        ("ELASTICSEARCH_SHARDS", "1025", "ELASTICSEARCH_SHARDS=1025 must be between 1 and 1024"),
        ("ELASTICSEARCH_REPLICAS", "-1", "ELASTICSEARCH_REPLICAS=-1 must be 0 or more"),
        ("ELASTICSEARCH_REPLICAS", "1.5", "ELASTICSEARCH_REPLICAS='1.5' is not an integer"),
    ],
)
def test_a_bad_value_stops_the_portal_at_start_naming_the_variable(name, value, message):
    done = settings_in_child(**{name: value})

    assert done.returncode != 0
    assert "ImproperlyConfigured" in done.stderr
    assert message in done.stderr


EVENT = {
    "service": "gateway",
    "event": "request_received",
    "correlation_id": "req-shards",
    "timestamp": datetime(2026, 11, 25, 10, 0, tzinfo=UTC).isoformat(),
}


@pytest.fixture
def on_elasticsearch(settings):
    from apps.traces.search import _backend_for

    settings.TRACE_BACKEND = TRACE_BACKENDS["elasticsearch"]
    _backend_for.cache_clear()
    yield
    _backend_for.cache_clear()


def daily_index_settings() -> dict:
    from apps.traces.search.elasticsearch import alias_name, es_client

    name = f"{alias_name()}-2026.11.25"
    return es_client().indices.get_settings(index=name)[name]["settings"]["index"]


@pytest.mark.django_db
def test_the_daily_indices_get_the_configured_shards_and_replicas(settings, on_elasticsearch, store_events):
    settings.ELASTICSEARCH_SHARDS = 3
    settings.ELASTICSEARCH_REPLICAS = 0

    store_events([EVENT])

    index = daily_index_settings()
    assert (index["number_of_shards"], index["number_of_replicas"]) == ("3", "0")


@pytest.mark.django_db
def test_a_new_replica_count_reaches_the_daily_indices_that_exist(settings, on_elasticsearch, store_events):
    from apps.traces.search import _backend_for

    store_events([EVENT])
    assert daily_index_settings()["number_of_replicas"] == "0"

    # A portal restarted with another replica count (a fresh backend), then indexing again.
    settings.ELASTICSEARCH_REPLICAS = 1
    _backend_for.cache_clear()
    store_events([{**EVENT, "correlation_id": "req-later"}])

    index = daily_index_settings()
    assert (index["number_of_shards"], index["number_of_replicas"]) == ("1", "1")


@pytest.mark.django_db
def test_a_node_that_refuses_connections_is_passed_over_for_the_next_url(
    settings, on_elasticsearch, store_events, client, make_person, elasticsearch_url
):
    store_events([EVENT])
    # The first of two URLs refuses every connection; the second is the real node.
    settings.ELASTICSEARCH_URL = f"http://127.0.0.1:{free_port()},{elasticsearch_url}"
    client.force_login(make_person("admin"))

    ready = client.get("/readyz")
    trail = client.get("/api/v1/traces/req-shards")

    assert ready.status_code == 200, ready.json()
    assert ready.json()["checks"]["elasticsearch"]["detail"].startswith("elasticsearch: ")
    assert trail.status_code == 200, trail.content
    assert [event["correlation_id"] for event in trail.json()["events"]] == ["req-shards"]
