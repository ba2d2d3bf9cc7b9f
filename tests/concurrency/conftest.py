"""People and operators doing things at once: a request (or any work) in a thread of its own, on its own
database connection, and the wait for it to queue behind a lock the test holds (PostgreSQL's view)."""

from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client

from tests.conftest import in_thread, wait_for


class Outcome:
    """What a piece of work run in a thread returned or raised."""

    value: Any = None
    error: BaseException | None = None


def run_in_thread(work: Callable[[], Any]) -> tuple[Any, Outcome]:
    outcome = Outcome()

    def run() -> None:
        try:
            outcome.value = work()
        except BaseException as exc:  # reported by the test
            outcome.error = exc

    return in_thread(run), outcome


def blocked_sessions() -> int:
    from django.db import connections

    with connections["default"].cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")  # fresh, even inside the test's transaction
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND wait_event_type = 'Lock' AND cardinality(pg_blocking_pids(pid)) > 0"
        )
        return cursor.fetchone()[0]


def wait_until_blocked(count: int = 1) -> None:
    """Wait until `count` sessions queue behind a lock (the work in threads reached the contended row)."""
    wait_for(lambda: blocked_sessions() >= count, timeout=4, interval=0.01, message=f"{count} lock waiters")


@pytest.fixture
def person_client():
    """Return a function that makes a client signed in as `user` whose 500s come back as answers."""

    def make(user) -> Client:
        client = Client(raise_request_exception=False)
        client.force_login(user)
        return client

    return make
