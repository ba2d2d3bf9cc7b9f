"""The portal's processes for the soak: gunicorn, Celery workers and beat, each a child in its own session.

Each child gets its own process group, so a SIGKILL takes a worker's pool children with it (a machine
dying), and cleanup never touches anything the soak did not start.
"""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

from .instances import REPO


class ProcessError(RuntimeError):
    """A child process did not start."""


class Child:
    """One child process with its log file."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log_path: Path) -> None:
        self.name = name
        self.log_path = log_path
        self._log = open(log_path, "ab")  # closed in stop()
        self.process = subprocess.Popen(
            argv, cwd=REPO, env=env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for(self, ready, *, timeout: float, what: str) -> None:
        """Poll `ready()` until true; raise with the end of the log if the child exits or time runs out."""
        deadline = time.monotonic() + timeout
        while not ready():
            if not self.alive() or time.monotonic() > deadline:
                self.stop()
                raise ProcessError(f"{self.name} did not {what}:\n{self.log_text()[-3000:]}")
            time.sleep(0.2)

    def kill(self) -> None:
        """SIGKILL the whole process group, as if the machine died."""
        self.stop(signal.SIGKILL)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> None:
        if self.alive():
            try:
                os.killpg(self.process.pid, sig)
            except ProcessLookupError:
                pass
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        # The group's other members (a worker's pool child) may outlive a SIGTERM'd parent.
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        if not self._log.closed:
            self._log.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_portal(env: dict[str, str], log_dir: Path, *, workers: int) -> tuple[Child, str]:
    """Start gunicorn on a free loopback port; return it and its URL once /healthz answers."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    argv = [
        sys.executable,
        "-m",
        "gunicorn",
        "skywatch_portal.wsgi:application",
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        str(workers),
        "--timeout",
        "60",
    ]
    portal = Child("gunicorn", argv, env, log_dir / "gunicorn.log")

    def answers() -> bool:
        try:
            return requests.get(url + "/healthz", timeout=1).status_code == 200
        except requests.RequestException:
            return False

    portal.wait_for(answers, timeout=60, what="answer /healthz")
    return portal, url


def worker_app_name(index: int) -> str:
    """The PostgreSQL application_name of worker `index`: how the soak finds a worker's backend."""
    return f"soak-worker-{index}"


class WorkerPool:
    """Celery workers numbered from 1; a killed one is replaced by a new number."""

    def __init__(self, env: dict[str, str], log_dir: Path, database_url_for) -> None:
        self._env = env
        self._log_dir = log_dir
        self._database_url_for = database_url_for  # application_name -> DATABASE_URL
        self.workers: dict[int, Child] = {}
        self._next = 1

    def start(self) -> int:
        """Start one worker (one pool process, queue `default`); return its number once it is ready."""
        index, self._next = self._next, self._next + 1
        env = dict(self._env, DATABASE_URL=self._database_url_for(worker_app_name(index)))
        argv = celery_argv(
            "worker",
            "--pool=prefork",
            "--concurrency=1",
            "--queues=default",
            f"--hostname=soak-{index}@%h",
            "--without-gossip",
            "--without-mingle",
        )
        worker = Child(f"worker {index}", argv, env, self._log_dir / f"worker-{index}.log")
        worker.wait_for(lambda: "ready." in worker.log_text(), timeout=60, what="become ready")
        self.workers[index] = worker
        return index

    def kill(self, index: int) -> None:
        self.workers.pop(index).kill()

    def stop_all(self) -> None:
        for worker in self.workers.values():
            worker.stop()
        self.workers.clear()


def celery_argv(command: str, *options: str) -> list[str]:
    """Return the command line of a Celery `worker` or `beat` of the portal's app, logging at INFO."""
    return [sys.executable, "-m", "celery", "-A", "skywatch_portal", command, "--loglevel=INFO", *options]


def start_beat(env: dict[str, str], log_dir: Path) -> Child:
    """Start celery beat: the sweeper on PIPELINE_SWEEP_INTERVAL_SECONDS, the way production runs it."""
    argv = celery_argv("beat", "--schedule", str(log_dir / "celerybeat-schedule"))
    beat = Child("beat", argv, env, log_dir / "beat.log")
    beat.wait_for(lambda: "beat: Starting" in beat.log_text(), timeout=60, what="start")
    return beat
