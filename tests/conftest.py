"""Shared fixtures. Tests talk to the real PostgreSQL, Redis and Elasticsearch that `make test` starts."""

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings

REPO = Path(__file__).resolve().parent.parent
ARTIFACTS = REPO / "test-artifacts"


def _require(setting_value: str, what: str) -> str:
    if not setting_value:
        pytest.fail(
            f"{what} is not configured: run `make test`, or `eval \"$(scripts/services.sh start)\"` first",
            pytrace=False,
        )
    return setting_value


@pytest.fixture(scope="session")
def broker_url() -> str:
    """Return the real Redis broker URL; fail loudly when it is not configured."""
    return _require(settings.CELERY_BROKER_URL, "CELERY_BROKER_URL (Redis)")


@pytest.fixture(scope="session")
def elasticsearch_url() -> str:
    """Return the real Elasticsearch URL; fail loudly when it is not configured."""
    return _require(settings.ELASTICSEARCH_URL, "ELASTICSEARCH_URL")


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


def wait_for(condition, *, timeout: float, interval: float = 0.1, message: str = "condition") -> None:
    """Poll `condition` until it returns truthy or the deadline passes (then fail with `message`)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout}s waiting for {message}")


def portal_env(**overrides: str) -> dict[str, str]:
    """Return an environment for a child process of the portal (worker, server) with overrides."""
    env = dict(os.environ)
    env.update(overrides)
    env.setdefault("DJANGO_SETTINGS_MODULE", "skywatch_portal.settings")
    return env


class WorkerProcess:
    """A real `celery worker` child process consuming its own queue."""

    def __init__(self, queue: str, env: dict[str, str], log_path: Path) -> None:
        self.queue = queue
        self.log_path = log_path
        self._log = open(log_path, "wb")  # closed in stop()
        self.process = subprocess.Popen(
            [
                sys.executable, "-m", "celery", "-A", "skywatch_portal", "worker",
                "--loglevel=INFO", "--pool=prefork", "--concurrency=1", "--queues", queue,
                "--hostname", f"test-{queue}@%h", "--without-gossip", "--without-mingle",
            ],
            cwd=REPO, env=env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True,
        )

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, sig)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        self._log.close()


@pytest.fixture
def celery_worker_process(broker_url, tmp_path, django_db_setup) -> Iterator[WorkerProcess]:
    """Start a real Celery worker on a queue of its own, against the test database; stop it afterwards."""
    from django.db import connection

    queue = f"test-{uuid.uuid4().hex[:8]}"
    db_url = _database_url_for(connection.settings_dict)
    worker = WorkerProcess(queue, portal_env(DATABASE_URL=db_url), tmp_path / "worker.log")
    deadline = time.monotonic() + 60
    while "ready." not in worker.log_text():
        if worker.process.poll() is not None or time.monotonic() > deadline:
            worker.stop()
            pytest.fail("Celery worker did not start:\n" + worker.log_text()[-4000:])
        time.sleep(0.2)
    yield worker
    worker.stop()


def _database_url_for(settings_dict: dict) -> str:
    """Return a DATABASE_URL for the database the tests are using (the test database, not the real one)."""
    engine = settings_dict["ENGINE"]
    if engine.endswith("sqlite3"):
        return f"sqlite:///{settings_dict['NAME']}"
    user, password = settings_dict.get("USER", ""), settings_dict.get("PASSWORD", "")
    host, port = settings_dict.get("HOST") or "127.0.0.1", settings_dict.get("PORT") or 5432
    return f"postgres://{user}:{password}@{host}:{port}/{settings_dict['NAME']}"
