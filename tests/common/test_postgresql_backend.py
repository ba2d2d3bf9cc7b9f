"""The PostgreSQL backend: its health check costs no round trip for a connection the server left alone, and a
connection the server closed is found out and replaced before the request's first query; and its sessions
run without JIT compilation (settings.py)."""

import os
import tempfile
import time

import psycopg
import pytest
from django.db import connection

pytestmark = pytest.mark.skipif(
    not os.environ.get("DATABASE_URL", "").startswith("postgres"), reason="PostgreSQL backend only"
)


def _backend_pid() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


def _terminate(pid: int) -> None:
    params = connection.get_connection_params()
    params.pop("cursor_factory", None)
    params.pop("context", None)
    with psycopg.connect(**params, autocommit=True) as other:
        assert other.execute("SELECT pg_terminate_backend(%s)", [pid]).fetchone()[0]


def _between_requests() -> None:
    # What Django does when a request ends and the next begins.
    connection.close_if_unusable_or_obsolete()
    connection.close_if_health_check_failed()


@pytest.mark.django_db(transaction=True)
def test_an_idle_healthy_connection_is_kept_without_asking_the_server():
    connection.close()  # a fresh one, well within CONN_MAX_AGE (an older one may be due to close)
    pid = _backend_pid()
    assert connection.health_check_enabled
    with tempfile.TemporaryFile() as trace:
        connection.connection.pgconn.trace(trace.fileno())
        try:
            _between_requests()
        finally:
            if connection.connection is not None:
                connection.connection.pgconn.untrace()
        trace.seek(0)
        sent_or_received = trace.read()
    assert sent_or_received == b""  # not one message on the wire
    assert _backend_pid() == pid  # the same session answers the next query


@pytest.mark.django_db(transaction=True)
def test_a_connection_the_server_closed_is_replaced_before_the_next_query():
    pid = _backend_pid()
    _terminate(pid)
    deadline = time.monotonic() + 5
    while connection.is_usable() and time.monotonic() < deadline:
        time.sleep(0.01)  # the server's goodbye reaches the socket
    _between_requests()
    new_pid = _backend_pid()  # would raise "terminating connection" without the check
    assert new_pid != pid


@pytest.mark.django_db
def test_statements_run_without_jit_compilation():
    # The pipeline's chunk statement is planned past jit_above_cost: compiling it took longer than running it.
    with connection.cursor() as cursor:
        cursor.execute("SHOW jit")
        assert cursor.fetchone()[0] == "off"
