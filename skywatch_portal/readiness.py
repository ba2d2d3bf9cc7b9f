"""Readiness checks for the services the portal depends on: database, broker, search backend.

They live in the project package because they look across apps; `apps.common` stays free of feature apps.
"""

from dataclasses import dataclass

from django.conf import settings
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from kombu import Connection

from apps.common.errors import BackendUnavailable
from apps.common.redact import redact_text
from apps.traces.search import get_trace_backend


@dataclass(frozen=True)
class CheckResult:
    ok: bool
    detail: str
    # Up and serving, with less redundancy than configured (a yellow Elasticsearch cluster): still ready.
    degraded: bool = False


def _failed(exc: Exception) -> CheckResult:
    return CheckResult(False, redact_text(f"{type(exc).__name__}: {exc}".strip()))


def check_database() -> CheckResult:
    """The database answers and its schema is this code's: on a database not migrated (a new one, or after
    a pull), every page that reads a new table would fail."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        unapplied = _unapplied_migrations()
    except Exception as exc:  # any driver error: report it, the probe must not crash
        return _failed(exc)
    if unapplied:
        shown = ", ".join(unapplied[:5]) + (f" and {len(unapplied) - 5} more" if len(unapplied) > 5 else "")
        return CheckResult(False, f"{len(unapplied)} migrations not applied (run manage.py migrate): {shown}")
    return CheckResult(True, connection.vendor)


def _unapplied_migrations() -> list[str]:
    """Return the migrations on disk the database has not applied (~5 ms: the graph is built each time)."""
    executor = MigrationExecutor(connection)
    plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    return [f"{migration.app_label}.{migration.name}" for migration, _ in plan]


def check_broker() -> CheckResult:
    if not settings.CELERY_BROKER_URL:
        return CheckResult(True, "not configured: tasks run in-process")
    try:
        with Connection(settings.CELERY_BROKER_URL, connect_timeout=2) as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
    except Exception as exc:  # kombu raises transport-specific errors
        return _failed(exc)
    return CheckResult(True, redact_text(conn.as_uri()))


def check_search() -> CheckResult:
    backend = get_trace_backend()
    try:
        health = backend.ping()
    except BackendUnavailable as exc:  # unreachable, or a red cluster
        return CheckResult(False, redact_text(str(exc)))
    return CheckResult(True, health.detail, degraded=health.degraded)


def readiness() -> dict[str, CheckResult]:
    """Run every readiness check and return the results by service name."""
    return {"database": check_database(), "broker": check_broker(), "elasticsearch": check_search()}
