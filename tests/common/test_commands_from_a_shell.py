"""Commands as a shell or cron runs them, on both backends: standard output holds the result only (no log
line), a bad argument is one line on standard error and status 1, never a traceback."""

import subprocess
import sys
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from tests.conftest import REPO, _database_url_for, portal_env

# The PostgreSQL runs read and write the test database from another process: committed, then flushed.
pytestmark = pytest.mark.django_db(transaction=True)


def manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )


@pytest.fixture(scope="module")
def sqlite_env(tmp_path_factory) -> dict[str, str]:
    env = portal_env(DATABASE_URL=f"sqlite:///{tmp_path_factory.mktemp('embedded') / 'db.sqlite3'}")
    for name in ("CELERY_BROKER_URL", "ELASTICSEARCH_URL", "CACHE_URL", "OBSERVATORY_URL"):
        env.pop(name, None)
    done = manage(env, "migrate", "--noinput", "-v", "0")
    assert done.returncode == 0, done.stderr[-2000:]
    return env


@pytest.fixture
def postgresql_env() -> dict[str, str]:
    return portal_env(DATABASE_URL=_database_url_for(connection.settings_dict))


@pytest.fixture(params=["sqlite", "postgresql"])
def env(request) -> dict[str, str]:
    return request.getfixturevalue(f"{request.param}_env")


def no_log_line(text: str) -> bool:
    return not any(line.startswith('{"timestamp"') for line in text.splitlines())


def test_the_summary_is_on_stdout_and_the_log_lines_are_not(env):
    done = manage(env, "apply_retention")

    assert done.returncode == 0, done.stderr[-2000:]
    assert no_log_line(done.stdout), done.stdout
    assert done.stdout.startswith("raw events older than")
    assert '"message": "retention:' in done.stderr  # the log line is still written, on stderr


def test_a_new_service_key_is_the_whole_of_stdout(env):
    done = manage(env, "create_service_key", "shell-test", "--stage", "prod")

    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith("swk_") and done.stdout.count("\n") == 1
    assert "Created key" in done.stderr


def test_a_purge_dry_run_prints_what_would_go(env):
    done = manage(env, "purge_user", "someone", "--dry-run")

    assert done.returncode == 0, done.stderr[-2000:]
    assert no_log_line(done.stdout)
    assert "dry run" in done.stdout


@pytest.mark.parametrize(
    "args",
    [
        ("archive_events", "--before", "2026-02-30", "--to", "/tmp/x"),
        ("replay_archive", "/nonexistent/archive"),
        ("rebuild_rollups", "--from", "2026-01-02", "--to", "2026-01-01"),
        ("purge_user", ""),
    ],
    ids=["bad-date", "missing-directory", "from-after-to", "empty-user"],
)
def test_a_bad_argument_is_one_line_on_stderr_and_status_1(env, args):
    done = manage(env, *args)

    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.startswith("CommandError: ") and done.stderr.count("\n") == 1, done.stderr


def test_a_database_that_is_down_is_one_line_not_a_traceback():
    env = portal_env(DATABASE_URL="postgres://nobody:x@127.0.0.1:1/none")

    done = manage(env, "purge_user", "someone", "--dry-run")

    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert done.stderr.startswith("CommandError: database error:"), done.stderr


def test_archive_on_the_embedded_default_writes_what_replay_reads(sqlite_env, tmp_path):
    end = f"{timezone.now() - timedelta(days=2):%Y-%m-%dT00:00:00Z}"
    seeded = manage(sqlite_env, "seed_demo", "--days", "1", "--users", "10", "--end", end)
    assert seeded.returncode == 0, seeded.stderr[-2000:]
    before = f"{timezone.now():%Y-%m-%d}"

    archived = manage(sqlite_env, "archive_events", "--before", before, "--to", str(tmp_path / "a"))
    replayed = manage(sqlite_env, "replay_archive", str(tmp_path / "a"))

    assert archived.returncode == 0, archived.stderr[-2000:]
    assert replayed.returncode == 0, replayed.stderr[-2000:]
    assert no_log_line(archived.stdout) and no_log_line(replayed.stdout)
    assert " 0 stored, " in replayed.stdout and " 0 refused" in replayed.stdout
    assert replayed.stderr.count("\n") < 5  # no line per row group
