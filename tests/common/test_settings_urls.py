"""README, "Environment variables": a value the portal cannot use (a URL without its scheme such as
`localhost:9200`) stops it at start with an ImproperlyConfigured naming the variable, rather than failing
requests later."""

import pytest

from tests.common.test_settings import settings_value


@pytest.mark.parametrize(
    ("name", "value"),
    [
        # kombu reads this as an AMQP host called "localhost": every task publish fails, nothing at start.
        ("CELERY_BROKER_URL", "localhost:6379"),
        ("CELERY_BROKER_URL", "redis//127.0.0.1:6379/0"),
        ("CELERY_RESULT_BACKEND", "127.0.0.1:6379/1"),
        # The portal ships its log lines to "localhost:8000/api/v1/batch": no request can be made to it.
        ("OBSERVATORY_URL", "localhost:8000"),
        # Nodes are comma-separated: the client cannot parse a semicolon list and fails every search.
        ("ELASTICSEARCH_URL", "http://127.0.0.1:9200;http://127.0.0.1:9201"),
    ],
)
def test_an_unusable_url_stops_the_portal_at_start_naming_the_variable(name, value):
    env = {name: value}
    if name == "CELERY_RESULT_BACKEND":
        env["CELERY_BROKER_URL"] = "redis://127.0.0.1:6379/9"
    if name == "OBSERVATORY_URL":
        env["OBSERVATORY_API_KEY"] = "swk_not-a-real-key"

    done = settings_value("s.DEBUG", env)

    assert done.returncode != 0, done.stdout
    last_line = done.stderr.strip().splitlines()[-1]
    assert last_line.startswith(f"django.core.exceptions.ImproperlyConfigured: {name}"), done.stderr[-800:]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("CELERY_BROKER_URL", "redis://:secret@127.0.0.1:6379/9"),
        ("CELERY_BROKER_URL", "amqp://guest:guest@rabbit.internal:5672//"),
        ("CELERY_BROKER_URL", "redis+socket:///run/redis/redis.sock"),
        ("CELERY_RESULT_BACKEND", "rpc://"),
        ("CELERY_RESULT_BACKEND", "db+postgresql://u:p@db/results"),
        ("OBSERVATORY_URL", "https://portal.example.com"),
        ("ELASTICSEARCH_URL", "http://127.0.0.1:9200,http://127.0.0.1:9201"),
    ],
)
def test_the_urls_that_work_are_still_taken(name, value):
    env = {name: value}
    if name == "CELERY_RESULT_BACKEND":
        env["CELERY_BROKER_URL"] = "redis://127.0.0.1:6379/9"

    done = settings_value(f"s.{name}", env)

    assert done.returncode == 0, done.stderr[-800:]
    assert done.stdout.strip().splitlines()[-1] == repr(value)


def test_a_rate_of_zero_requests_stops_the_portal_at_start():
    """`0/min` would answer every ingestion request 429 (clients retry for ever): no rate that works."""
    done = settings_value("s.INGEST_RATE_LIMIT", {"INGEST_RATE_LIMIT": "0/min"})

    assert done.returncode != 0, done.stdout
    last_line = done.stderr.strip().splitlines()[-1]
    assert last_line.startswith("django.core.exceptions.ImproperlyConfigured: INGEST_RATE_LIMIT"), done.stderr
