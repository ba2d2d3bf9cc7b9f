"""Celery integration: the correlation ID travels in task headers and is restored (then reset) in workers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

import observatory
from observatory import correlation

pytest.importorskip("celery")

from celery import Celery  # noqa: E402

import observatory.celery as obs_celery  # noqa: E402


@pytest.fixture
def installed() -> Iterator[None]:
    """Connect the signal handlers for one test only (Celery signals are process-wide)."""
    was_installed = obs_celery.is_installed()
    obs_celery.install()
    yield
    if not was_installed:
        obs_celery.uninstall()


def _memory_app() -> tuple[Celery, str]:
    # set_as_current=False keeps the suite's own Celery app the current one.
    app = Celery("obs_mem", broker="memory://", set_as_current=False)
    queue = f"obs-{uuid.uuid4().hex[:8]}"  # the memory broker is process-global: use a fresh queue
    app.conf.task_default_queue = queue
    return app, queue


def _published_headers(app: Celery, queue: str) -> dict:
    with app.connection_for_read() as conn:
        simple = conn.SimpleQueue(queue)
        try:
            message = simple.get(timeout=2)
            message.ack()
            return message.headers
        finally:
            simple.close()


def test_publish_puts_the_current_id_in_the_message_headers(installed):
    app, queue = _memory_app()

    @app.task
    def work() -> None:
        """A task that is only published here, never run."""

    with correlation.use("pub-1"):
        work.apply_async()
    assert _published_headers(app, queue)[obs_celery.HEADER] == "pub-1"

    with correlation.use("pub-2"):
        work.apply_async(headers={obs_celery.HEADER: "given"})  # an explicit header wins
    assert _published_headers(app, queue)[obs_celery.HEADER] == "given"

    work.apply_async()  # no correlation ID in context: no header
    assert obs_celery.HEADER not in _published_headers(app, queue)


def test_eager_tasks_keep_the_callers_id_and_get_a_fresh_one_otherwise(installed):
    app, _ = _memory_app()
    app.conf.task_always_eager = True

    @app.task
    def whoami() -> str | None:
        return correlation.get()

    with correlation.use("eager-1"):
        assert whoami.delay().get() == "eager-1"
        assert correlation.get() == "eager-1"
    fresh = whoami.delay().get()
    assert uuid.UUID(fresh).version == 4
    assert correlation.get() is None  # task_postrun restored the caller's (empty) context


def test_incoming_correlation_id_ignores_celerys_own_correlation_id():
    class Request:  # what a worker request looks like: correlation_id is the task id
        correlation_id = "task-id-not-ours"
        x_correlation_id = "ours"
        headers = None

    assert obs_celery.incoming_correlation_id(Request()) == "ours"
    Request.x_correlation_id = "bad value"
    assert obs_celery.incoming_correlation_id(Request()) is None


WORKER_MODULE = """
    import observatory
    import observatory.celery
    from celery import Celery
    from observatory import correlation

    app = Celery("obs_worker_app", broker="filesystem://", backend="file://{results}")
    app.conf.broker_transport_options = {{
        "data_folder_in": "{queue}", "data_folder_out": "{queue}", "control_folder": "{queue}",
        "polling_interval": 0.05,
    }}
    observatory.celery.install(app)
    tracker = observatory.Tracker(flush_interval=60)  # only a flush at process shutdown sends anything

    @app.task(name="obs.whoami")
    def whoami():
        cid = correlation.get()
        tracker.track("task_ran", {{"seen": cid}})
        return cid
"""


@pytest.mark.slow
def test_real_prefork_worker_restores_resets_and_flushes(tmp_path: Path, ingest_server, installed):
    """A real `celery worker` (prefork, filesystem transport) in a subprocess, as in production."""
    queue_dir, results_dir = tmp_path / "queue", tmp_path / "results"
    queue_dir.mkdir()
    results_dir.mkdir()
    (tmp_path / "obs_worker_app.py").write_text(
        textwrap.dedent(WORKER_MODULE.format(results=results_dir, queue=queue_dir))
    )
    app = Celery("obs_client", broker="filesystem://", backend=f"file://{results_dir}", set_as_current=False)
    app.conf.broker_transport_options = {
        "data_folder_in": str(queue_dir),
        "data_folder_out": str(queue_dir),
        "control_folder": str(queue_dir),
    }

    with correlation.use("celery-1"):
        first = app.send_task("obs.whoami")
    second = app.send_task("obs.whoami")  # no ID: the worker makes a fresh one, not the previous task's

    env = {k: v for k, v in os.environ.items() if not k.startswith(("OBSERVATORY_", "DJANGO_"))}
    package_parent = str(Path(observatory.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(tmp_path), package_parent, env.get("PYTHONPATH")]))
    env["OBSERVATORY_URL"] = ingest_server.url
    log_path = tmp_path / "worker.log"
    with open(log_path, "wb") as log:
        worker = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "obs_worker_app",
                "worker",
                "--pool=prefork",
                "--concurrency=1",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
                "--loglevel=WARNING",
            ],
            cwd=tmp_path,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        assert first.get(timeout=30) == "celery-1", log_path.read_text()
        fresh = second.get(timeout=30)
        assert uuid.UUID(fresh).version == 4
    finally:
        worker.send_signal(signal.SIGTERM)  # warm shutdown: the pool child flushes its tracker on exit
        try:
            worker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait(timeout=10)

    events = ingest_server.wait_for_events(2, timeout=10)
    assert sorted((e["correlation_id"], e["properties"]["seen"]) for e in events) == sorted(
        [("celery-1", "celery-1"), (fresh, fresh)]
    )
