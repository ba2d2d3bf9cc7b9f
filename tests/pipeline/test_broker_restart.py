"""A worker survives a Redis restart while it holds unacknowledged (ETA) tasks, and consumes again.

celery/kombu 5.7.0 stopped such a worker with "Unrecoverable error: AttributeError(... 'hostname')"
(skywatch_portal/broker.py); the soak found it after an Elasticsearch outage left indexing retries queued.
Runs its own redis-server on a free port: the session's Redis is never restarted.
"""

import os
import subprocess
import sys

import pytest

from tests.conftest import REPO, free_port, portal_env, wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


class PrivateRedis:
    def __init__(self, tmp_path) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.dir = tmp_path
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port), "--dir", str(self.dir)]
            + ["--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
        )
        wait_for(self.answers, timeout=10, message="the private redis-server")

    def answers(self) -> bool:
        import redis

        try:
            return redis.Redis(port=self.port, socket_timeout=1).ping()
        except redis.RedisError:
            return False

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)


@pytest.fixture
def private_redis(tmp_path):
    server = PrivateRedis(tmp_path)
    server.start()
    yield server
    server.stop()


def send(broker_url: str, task: str, **options) -> None:
    code = (
        "from skywatch_portal.celery import app\n"
        f"app.send_task({task!r}, args=[[]] if {task!r} == 'pipeline.index_events' else [], **{options!r})\n"
    )
    env = portal_env(CELERY_BROKER_URL=broker_url)
    subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, check=True, timeout=60)


def test_a_worker_holding_eta_tasks_survives_a_redis_restart(private_redis, start_worker):
    worker = start_worker(CELERY_BROKER_URL=private_redis.url)
    for _ in range(5):
        send(private_redis.url, "pipeline.index_events", countdown=600)
    wait_for(lambda: worker.log_text().count("received") >= 5, timeout=30, message="5 ETA tasks held")

    private_redis.stop()
    private_redis.start()
    wait_for(lambda: worker.log_text().count("Connected to") >= 2, timeout=60, message="the reconnect")
    send(private_redis.url, "pipeline.sweep")

    wait_for(
        lambda: (
            "pipeline.sweep" in worker.log_text()
            and "succeeded" in worker.log_text().split("pipeline.sweep", 1)[1]
        ),
        timeout=60,
        message="a task consumed after the restart",
    )
    assert worker.process.poll() is None
    assert "Unrecoverable error" not in worker.log_text()
    assert os.environ.get("CELERY_BROKER_URL") != private_redis.url  # the session's broker was left alone
