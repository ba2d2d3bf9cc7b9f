"""Commands that queue work, run from a shell while the task broker (Redis) is down: one line that names
the broker, status 1, and nothing changed, since the broker is checked before a range's rollups are reset or
a demo is stored."""

import socket
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from apps.ingest.models import RawEvent
from apps.metrics.models import RollupCount
from tests.common.test_commands_from_a_shell import manage
from tests.conftest import _database_url_for, portal_env

# The command reads the test database from another process: committed, then flushed.
pytestmark = pytest.mark.django_db(transaction=True)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def broker_down_env() -> dict[str, str]:
    """The test database's environment with a broker (and so a result store) nothing listens on."""
    broker = f"redis://127.0.0.1:{closed_port()}/0"
    env = portal_env(DATABASE_URL=_database_url_for(connection.settings_dict), CELERY_BROKER_URL=broker)
    env.pop("CELERY_RESULT_BACKEND", None)
    return env


def one_line_naming_the_broker(done) -> bool:
    assert done.returncode == 1
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    assert done.stderr.startswith("CommandError: the task broker is unreachable"), done.stderr[-3000:]
    return "nothing was changed" in done.stderr


@pytest.mark.parametrize("command", ["rebuild_rollups", "reindex", "retry_dead_letters"])
def test_a_broker_that_is_down_is_one_line_and_changes_nothing(aggregate_events, command):
    moment = timezone.now() - timedelta(days=2)
    aggregate_events([{"event": "search_made", "user_id": "u1", "timestamp": moment}])
    rollups = sorted(RollupCount.objects.values_list("granularity", "count"))

    day = f"{moment:%Y-%m-%d}"
    done = manage(broker_down_env(), command, "--from", day, "--to", f"{moment + timedelta(days=1):%Y-%m-%d}")

    assert one_line_naming_the_broker(done)
    assert sorted(RollupCount.objects.values_list("granularity", "count")) == rollups


def test_a_demo_seeded_with_the_broker_down_is_refused_before_any_event(db):
    done = manage(broker_down_env(), "seed_demo", "--days", "1", "--users", "5")

    assert one_line_naming_the_broker(done)
    assert not RawEvent.objects.exists()
