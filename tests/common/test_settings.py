"""Settings come from the environment; with none set, the portal runs embedded."""

import json
import subprocess
import sys

import pytest

from tests.conftest import REPO

PRINT_SETTINGS = """
import json, django
from django.conf import settings
django.setup()
db = settings.DATABASES["default"]
print(json.dumps({
    "db_engine": db["ENGINE"], "db_name": str(db["NAME"]), "db_host": db.get("HOST", ""),
    "db_port": db.get("PORT", ""), "db_user": db.get("USER", ""),
    "db_options": db.get("OPTIONS", {}).get("options", ""),
    "broker": settings.CELERY_BROKER_URL, "eager": settings.CELERY_TASK_ALWAYS_EAGER,
    "es_url": settings.ELASTICSEARCH_URL, "es_api_key": settings.ELASTICSEARCH_API_KEY,
    "es_ca": settings.ELASTICSEARCH_CA_CERTS, "trace_backend": settings.TRACE_BACKEND,
    "secret": settings.SECRET_KEY, "debug": settings.DEBUG, "hosts": settings.ALLOWED_HOSTS,
    "service": settings.SERVICE_NAME, "stage": settings.STAGE,
}))
"""

ENV_NAMES = (
    "DATABASE_URL",
    "CELERY_BROKER_URL",
    "ELASTICSEARCH_URL",
    "ELASTICSEARCH_API_KEY",
    "ELASTICSEARCH_CA_CERTS",
    "SECRET_KEY",
    "DEBUG",
    "ALLOWED_HOSTS",
    "SERVICE_NAME",
    "STAGE",
)


def settings_in_child(env_overrides: dict[str, str]) -> subprocess.CompletedProcess:
    """Import the settings in a fresh interpreter whose environment holds only `env_overrides`."""
    import os

    env = {k: v for k, v in os.environ.items() if k not in ENV_NAMES}
    env["DJANGO_SETTINGS_MODULE"] = "skywatch_portal.settings"
    env.update(env_overrides)
    return subprocess.run(
        [sys.executable, "-c", PRINT_SETTINGS], cwd=REPO, env=env, capture_output=True, text=True, timeout=60
    )


def load(env_overrides: dict[str, str]) -> dict:
    done = settings_in_child(env_overrides)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_defaults_give_the_embedded_mode():
    resolved = load({})

    assert resolved["db_engine"] == "django.db.backends.sqlite3"
    assert resolved["db_name"].endswith("db.sqlite3")
    assert resolved["broker"] == ""
    assert resolved["eager"] is True
    assert resolved["es_url"] == ""
    assert resolved["trace_backend"].endswith("DatabaseTraceBackend")
    assert resolved["debug"] is False
    assert resolved["service"] == "skywatch-portal"
    assert resolved["stage"] == "dev"


def test_each_variable_is_read():
    resolved = load(
        {
            "DATABASE_URL": "postgres://u:p@db.internal:6543/portal",
            "CELERY_BROKER_URL": "redis://cache.internal:6380/2",
            "ELASTICSEARCH_URL": "https://es.internal:9243",
            "ELASTICSEARCH_API_KEY": "key-123",
            "ELASTICSEARCH_CA_CERTS": "/etc/ssl/es-ca.pem",
            "SECRET_KEY": "s3cret-from-env",
            "DEBUG": "true",
            "ALLOWED_HOSTS": "portal.internal, portal",
            "SERVICE_NAME": "portal-eu",
            "STAGE": "prod",
        }
    )

    assert resolved["db_engine"] == "apps.common.postgresql"
    assert (resolved["db_host"], resolved["db_port"], resolved["db_user"], resolved["db_name"]) == (
        "db.internal",
        6543,
        "u",
        "portal",
    )
    assert resolved["broker"] == "redis://cache.internal:6380/2"
    assert resolved["eager"] is False
    assert resolved["es_url"] == "https://es.internal:9243"
    assert resolved["es_api_key"] == "key-123"
    assert resolved["es_ca"] == "/etc/ssl/es-ca.pem"
    assert resolved["trace_backend"].endswith("ElasticsearchTraceBackend")
    assert resolved["secret"] == "s3cret-from-env"
    assert resolved["debug"] is True
    assert resolved["hosts"] == ["portal.internal", "portal"]
    assert resolved["service"] == "portal-eu"
    assert resolved["stage"] == "prod"


def test_postgresql_runs_without_jit_and_keeps_the_urls_own_options():
    plain = load({"DATABASE_URL": "postgres://u:p@db.internal:6543/portal"})
    with_options = load(
        {"DATABASE_URL": "postgres://u:p@db.internal:6543/portal?options=-c%20statement_timeout%3D5000"}
    )

    assert plain["db_options"] == "-c jit=off"
    assert with_options["db_options"] == "-c statement_timeout=5000 -c jit=off"


def test_a_statement_timeout_in_seconds_reaches_postgresql_in_milliseconds():
    url = "postgres://u:p@db.internal:6543/portal"
    web = load({"DATABASE_URL": url, "DATABASE_STATEMENT_TIMEOUT": "115"})
    worker = load({"DATABASE_URL": url, "DATABASE_STATEMENT_TIMEOUT": "0"})

    assert web["db_options"] == "-c jit=off -c statement_timeout=115000"
    assert worker["db_options"] == "-c jit=off"


@pytest.mark.parametrize("value", ["maybe", "2"])
def test_a_malformed_flag_is_refused_with_its_name(value):
    done = settings_in_child({"DEBUG": value})

    assert done.returncode != 0
    assert f"DEBUG={value!r} is not a boolean" in done.stderr


def settings_value(expression: str, env_overrides: dict[str, str]) -> subprocess.CompletedProcess:
    """Print repr(<expression>) over the settings `s`, in a fresh interpreter with these variables."""
    script = (
        f"import django; django.setup(); from django.conf import settings as s; print(repr({expression}))"
    )
    import os

    env = {k: v for k, v in os.environ.items() if k not in ENV_NAMES and k not in env_overrides}
    env.update(DJANGO_SETTINGS_MODULE="skywatch_portal.settings", **env_overrides)
    return subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, env=env, capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("DATABASE_URL", "localhost:5432/skywatch", "is not a database URL like postgres://"),
        ("DATABASE_URL", "postgres://u:hunter2@db:port/portal", "'postgres://…@db:port/portal' is not"),
        ("ELASTICSEARCH_URL", "localhost:9200", "'localhost:9200' is not a URL like http://host:port"),
        ("ELASTICSEARCH_URL", "http://es:9200,http://u:hunter2@es2:abc", "'http://…@es2:abc' is not a URL"),
        ("CACHE_URL", "localhost:6379", "'localhost:6379' is not a URL like redis://host:port"),
        ("INGEST_RATE_LIMIT", "3000/minutes", "'3000/minutes' is not like 3000/min"),
        ("API_READ_RATE_LIMIT", "120 a minute", "'120 a minute' is not like 120/min"),
        ("API_READ_RATE_LIMIT", "0/min", "API_READ_RATE_LIMIT='0/min' must allow 1 request or more"),
        ("LOG_LEVEL", "verbose", "'VERBOSE' is not one of DEBUG, INFO, WARNING, ERROR, CRITICAL"),
        ("PORTAL_SHIP_LOG_LEVEL", "warn", "'WARN' is not one of DEBUG"),
        ("RETENTION_RAW_DAYS", "0", "RETENTION_RAW_DAYS=0 must be 1 or more"),
        ("RETENTION_RAW_DAYS", "-90", "RETENTION_RAW_DAYS=-90 must be 1 or more"),
        ("RETENTION_INDEX_DAYS", "0", "RETENTION_INDEX_DAYS=0 must be 1 or more"),
        ("PIPELINE_CHUNK_SIZE", "0", "PIPELINE_CHUNK_SIZE=0 must be 1 or more"),
        ("PIPELINE_SWEEP_INTERVAL_SECONDS", "0", "PIPELINE_SWEEP_INTERVAL_SECONDS=0 must be 1 or more"),
        ("ELASTICSEARCH_TIMEOUT", "0", "ELASTICSEARCH_TIMEOUT=0 must be 1 or more"),
    ],
)
def test_a_value_the_portal_cannot_use_stops_it_at_start_naming_the_variable(name, value, message):
    """Rather than a 500 on every ingestion (a rate typo), a readiness probe that crashes (a URL without its
    scheme) or a retention run that deletes every event (0 or fewer days)."""
    done = settings_value("s.DEBUG", {name: value})

    assert done.returncode != 0
    last_line = done.stderr.strip().splitlines()[-1]
    assert last_line.startswith(f"django.core.exceptions.ImproperlyConfigured: {name}"), done.stderr[-800:]
    assert message in last_line
    assert "hunter2" not in done.stderr  # credentials in a URL stay out of the message


@pytest.mark.parametrize(
    ("name", "expression", "default"),
    [
        ("LOG_LEVEL", "s.LOG_LEVEL", "'INFO'"),
        ("PORTAL_SHIP_LOG_LEVEL", "s.PORTAL_SHIP_LOG_LEVEL", "'INFO'"),
        ("ALLOWED_HOSTS", "s.ALLOWED_HOSTS", "['127.0.0.1', 'localhost', '[::1]']"),
        ("INGEST_RATE_LIMIT", "s.INGEST_RATE_LIMIT", "'3000/min'"),
        ("API_READ_RATE_LIMIT", "s.API_READ_RATE_LIMIT", "'120/min'"),
        ("ELASTICSEARCH_INDEX_PREFIX", "s.ELASTICSEARCH_INDEX_PREFIX", "'obs-events'"),
        ("SERVICE_NAME", "s.SERVICE_NAME", "'skywatch-portal'"),
        ("STAGE", "s.STAGE", "'dev'"),
        ("DATABASE_URL", "s.DATABASES['default']['ENGINE']", "'django.db.backends.sqlite3'"),
    ],
)
def test_a_variable_set_empty_takes_its_default(name, expression, default):
    """As deploy/templates/skywatch.env promises ("an empty value means the portal's default")."""
    done = settings_value(expression, {name: ""})

    assert done.returncode == 0, done.stderr[-800:]
    assert done.stdout.strip().splitlines()[-1] == default


def test_secure_refuses_the_public_development_key():
    done = settings_value("s.SECRET_KEY", {"SECURE": "1", "SECRET_KEY": ""})

    assert done.returncode != 0
    assert "ImproperlyConfigured: SECRET_KEY must be set with SECURE=1" in done.stderr


def test_the_urls_that_work_are_taken():
    urls = {
        "ELASTICSEARCH_URL": "https://u:p@es1.internal:9243,http://[::1]:9200, https://es.example.com",
        "CACHE_URL": "rediss://cache.internal:6380/1",
    }
    done = settings_value("(s.ELASTICSEARCH_URL, s.CACHES['default']['LOCATION'])", urls)

    assert done.returncode == 0, done.stderr[-800:]
    assert done.stdout.strip().splitlines()[-1] == repr((urls["ELASTICSEARCH_URL"], urls["CACHE_URL"]))


EAGER_TASK = """
import django
django.setup()
from skywatch_portal.celery import app

@app.task(name="tests.noop")
def noop():
    return 1

print(noop.delay().get())
"""


def test_an_in_process_task_makes_kombu_warn_of_nothing():
    """`make run` printed "No hostname was supplied. Reverting to default 'localhost'" (and shipped it to
    itself as a warning): Celery takes a producer for an eager task, from an unnamed AMQP broker."""
    import os

    embedded = {*ENV_NAMES, "CACHE_URL", "OBSERVATORY_URL"}
    env = {k: v for k, v in os.environ.items() if k not in embedded}
    env["DJANGO_SETTINGS_MODULE"] = "skywatch_portal.settings"
    done = subprocess.run(
        [sys.executable, "-c", EAGER_TASK], cwd=REPO, env=env, capture_output=True, text=True, timeout=60
    )

    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "1"
    assert '"level": "warning"' not in done.stdout + done.stderr
