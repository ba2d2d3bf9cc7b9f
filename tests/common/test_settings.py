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


@pytest.mark.parametrize("value", ["maybe", "2"])
def test_a_malformed_flag_is_refused_with_its_name(value):
    done = settings_in_child({"DEBUG": value})

    assert done.returncode != 0
    assert f"DEBUG={value!r} is not a boolean" in done.stderr
