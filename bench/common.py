"""Plumbing shared by the benchmarks: sizes from the environment, isolation checks, child processes, results.

The benchmarks run against the real services while the test suite and a developer's portal may use them
too, so everything here works on its own database (`skywatch_bench`), Redis DB 13 and index prefix
`bench-obs-events`, and refuses to start when the environment points anywhere else. Two runs at once give
each its own names through BENCH_DATABASE, BENCH_REDIS_DB and BENCH_INDEX_PREFIX (scripts/bench.sh).
Every process started here runs in its own process group and is stopped (TERM, then KILL) even when a
benchmark fails.
"""

import math
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

REPO = Path(__file__).resolve().parent.parent
RESULTS_DIR = REPO / "bench" / "results"
LOG_DIR = RESULTS_DIR / "logs"

BENCH_DATABASE = os.environ.get("BENCH_DATABASE") or "skywatch_bench"
BENCH_REDIS_DB = int(os.environ.get("BENCH_REDIS_DB") or 13)
BENCH_INDEX_PREFIX = os.environ.get("BENCH_INDEX_PREFIX") or "bench-obs-events"


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    return int(raw) if raw else default


@dataclass(frozen=True)
class Config:
    """Sizes and process counts of a run (each from a BENCH_* environment variable)."""

    events: int = field(default_factory=lambda: env_int("BENCH_EVENTS", 100_000))
    batch_size: int = field(default_factory=lambda: env_int("BENCH_BATCH_SIZE", 100))
    gzip_events: int = field(default_factory=lambda: env_int("BENCH_GZIP_EVENTS", 50_000))
    otlp_events: int = field(default_factory=lambda: env_int("BENCH_OTLP_EVENTS", 100_000))
    single_events: int = field(default_factory=lambda: env_int("BENCH_SINGLE_EVENTS", 3_000))
    rounds: int = field(default_factory=lambda: env_int("BENCH_ROUNDS", 2))
    clients: int = field(default_factory=lambda: env_int("BENCH_CLIENTS", 4))
    gunicorn_workers: int = field(default_factory=lambda: env_int("BENCH_GUNICORN_WORKERS", 3))
    pipeline_events: int = field(default_factory=lambda: env_int("BENCH_PIPELINE_EVENTS", 50_000))
    pipeline_per_event: int = field(default_factory=lambda: env_int("BENCH_PIPELINE_PER_EVENT", 1_000))
    phase_timeout: int = field(default_factory=lambda: env_int("BENCH_PHASE_TIMEOUT", 300))
    client_calls: int = field(default_factory=lambda: env_int("BENCH_CLIENT_CALLS", 100_000))
    client_events: int = field(default_factory=lambda: env_int("BENCH_CLIENT_EVENTS", 50_000))
    trace_events: int = field(default_factory=lambda: env_int("BENCH_TRACE_EVENTS", 1_000_000))
    trace_samples: int = field(default_factory=lambda: env_int("BENCH_TRACE_SAMPLES", 500))
    trace_users: int = field(default_factory=lambda: env_int("BENCH_TRACE_USERS", 200))
    metrics_events: int = field(default_factory=lambda: env_int("BENCH_METRICS_EVENTS", 10_000_000))
    metrics_requests: int = field(default_factory=lambda: env_int("BENCH_METRICS_REQUESTS", 100))
    metrics_raw_runs: int = field(default_factory=lambda: env_int("BENCH_METRICS_RAW_RUNS", 5))
    archive_events: int = field(default_factory=lambda: env_int("BENCH_ARCHIVE_EVENTS", 500_000))
    replay_workers: int = field(default_factory=lambda: env_int("BENCH_REPLAY_WORKERS", 2))
    # Set by bench.run when both run: the metrics benchmark leaves its raw events to the analytics one
    # (the same generator, sizes and days), which then need not generate 10M rows again.
    share_raw_events: bool = False

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


GOAL_SIDES = ("ratio", "value")
GOAL_OPS = (">=", "<=")


@dataclass
class Result:
    """One figure, the baseline measured beside it in the same run, and its goal.

    By default the ratio is value ÷ baseline and the goal is `ratio >= goal`. `speedup=True` turns the
    ratio into baseline ÷ value (how many times a lower-is-better value beats its baseline); `goal_op`
    "<=" bounds from above; `goal_on="value"` puts an absolute bound on the value itself (in its unit).
    """

    name: str
    value: float
    unit: str
    baseline: float
    baseline_name: str
    goal: float | None = None  # None: reported only
    goal_op: str = ">="
    goal_on: str = "ratio"
    speedup: bool = False

    def __post_init__(self) -> None:
        if self.goal_op not in GOAL_OPS or self.goal_on not in GOAL_SIDES:
            raise ValueError(f"{self.name}: goal {self.goal_on} {self.goal_op} is not understood")
        # A figure that is no measurement (a phase that never ran: BENCH_ROUNDS=0, a size of 0) stops the
        # run before anything is written, instead of a NaN ratio (invalid JSON) or a 0 beside its goal.
        # The ratio divides by the baseline, or by the value for a speed-up: that one must be above 0.
        divisor, dividend = (self.value, self.baseline) if self.speedup else (self.baseline, self.value)
        if not (math.isfinite(divisor) and divisor > 0 and math.isfinite(dividend) and dividend >= 0):
            raise ValueError(
                f"{self.name}: {self.value!r} {self.unit} beside {self.baseline!r} ({self.baseline_name}) "
                "is no measurement"
            )

    @property
    def ratio(self) -> float:
        top, bottom = (self.baseline, self.value) if self.speedup else (self.value, self.baseline)
        return top / bottom if bottom else float("nan")

    @property
    def met(self) -> bool | None:
        if self.goal is None:
            return None
        measured = self.ratio if self.goal_on == "ratio" else self.value
        return measured >= self.goal if self.goal_op == ">=" else measured <= self.goal

    def goal_text(self) -> str | None:
        if self.goal is None:
            return None
        if self.goal_on == "value":
            return f"value {self.goal_op} {self.goal:g} {self.unit}"
        text = f"ratio {self.goal_op} {self.goal:g}"
        return f"{text} (baseline ÷ value)" if self.speedup else text

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "value": _rounded(self.value),
            "unit": self.unit,
            "baseline": _rounded(self.baseline),
            "baseline_name": self.baseline_name,
            "ratio": round(self.ratio, 3),
            "goal": self.goal_text(),
            "met": self.met,
        }


def _rounded(number: float) -> float:
    return round(number, 2) if abs(number) < 10 else round(number, 1)


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- isolation ----------------------------------------------------------------------------------------


def database_url() -> str:
    """The bench database as the bench's own connections reach it (loads, checks, the baselines' queries):
    without JIT compilation, as the portal's sessions run (settings.py), so that a baseline query is timed
    as PostgreSQL runs it here at its best, not with compile time the portal never pays."""
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    url = os.environ["DATABASE_URL"]
    # After the URL's own options, as settings.py adds it (a second `options=` would replace them).
    options = f"{conninfo_to_dict(url).get('options', '')} -c jit=off".strip()
    return make_conninfo(url, options=options)


def admin_database_url() -> str:
    """The portal's own database URL: used only to drop and create the bench database."""
    return os.environ["BENCH_ADMIN_DATABASE_URL"]


def check_isolation() -> None:
    """Refuse to run unless the environment points at the bench database, Redis DB and index prefix."""
    problems = []
    # The bench drops its database, flushes its Redis DB and deletes its indices: never anyone else's.
    if not re.fullmatch(r"skywatch_bench\w*", BENCH_DATABASE):
        problems.append(f"BENCH_DATABASE must be skywatch_bench or start with it (got {BENCH_DATABASE!r})")
    if not 1 <= BENCH_REDIS_DB <= 15:
        problems.append(f"BENCH_REDIS_DB must be 1-15, never the default DB 0 (got {BENCH_REDIS_DB})")
    if not re.fullmatch(r"bench-[a-z0-9-]*[a-z0-9]", BENCH_INDEX_PREFIX):
        problems.append(f"BENCH_INDEX_PREFIX must start with bench- (got {BENCH_INDEX_PREFIX!r})")
    db_name = urlsplit(os.environ.get("DATABASE_URL", "")).path.lstrip("/")
    if db_name != BENCH_DATABASE:
        problems.append(f"DATABASE_URL must name the database {BENCH_DATABASE} (got {db_name!r})")
    if not os.environ.get("BENCH_ADMIN_DATABASE_URL"):
        problems.append("BENCH_ADMIN_DATABASE_URL (the skywatch database, for CREATE DATABASE) is not set")
    broker = urlsplit(os.environ.get("CELERY_BROKER_URL", ""))
    if broker.scheme != "redis" or broker.path != f"/{BENCH_REDIS_DB}":
        problems.append(f"CELERY_BROKER_URL must be redis://…/{BENCH_REDIS_DB}")
    if os.environ.get("CELERY_RESULT_BACKEND"):
        problems.append("CELERY_RESULT_BACKEND must be unset (it defaults to the bench broker)")
    if os.environ.get("ELASTICSEARCH_INDEX_PREFIX") != BENCH_INDEX_PREFIX:
        problems.append(f"ELASTICSEARCH_INDEX_PREFIX must be {BENCH_INDEX_PREFIX}")
    if not os.environ.get("ELASTICSEARCH_URL"):
        problems.append("ELASTICSEARCH_URL is not set")
    if os.environ.get("CACHE_URL"):
        problems.append("CACHE_URL must be unset (throttle counters would land in a shared Redis DB)")
    if problems:
        raise SystemExit("bench: refusing to run: " + "; ".join(problems) + " (run scripts/bench.sh)")


def recreate_database() -> None:
    """Drop and create the bench database (connected to the portal's database; never touching its tables)."""
    import psycopg

    with psycopg.connect(admin_database_url(), autocommit=True, connect_timeout=5) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {BENCH_DATABASE} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {BENCH_DATABASE}")


def settle() -> bool:
    """Write PostgreSQL's dirty buffers and the system's dirty pages out, so that a timed phase does not pay
    for the writes of what ran before it (a checkpoint spread over the next minutes, on the same 2 cores);
    return whether PostgreSQL let this role CHECKPOINT (a superuser or a member of pg_checkpoint)."""
    import psycopg

    try:
        with psycopg.connect(database_url(), autocommit=True) as conn:
            conn.execute("CHECKPOINT")
        checkpointed = True
    except psycopg.errors.InsufficientPrivilege:
        checkpointed = False
    os.sync()
    return checkpointed


def flush_broker() -> None:
    """Empty the bench Redis DB (queued tasks the benchmarks left behind)."""
    import redis

    client = redis.Redis.from_url(os.environ["CELERY_BROKER_URL"], socket_timeout=5)
    try:
        client.flushdb()
    finally:
        client.close()


def delete_indices(*, template: bool) -> None:
    """Delete the bench indices (`<BENCH_INDEX_PREFIX>-*`), and the bench index template when asked."""
    from elasticsearch import Elasticsearch

    client = Elasticsearch(os.environ["ELASTICSEARCH_URL"], request_timeout=30)
    try:
        names = list(
            client.options(ignore_status=404).indices.get(
                index=f"{BENCH_INDEX_PREFIX}-*", expand_wildcards="all"
            )
        )
        for name in names:
            if name.startswith(f"{BENCH_INDEX_PREFIX}-"):
                client.options(ignore_status=404).indices.delete(index=name)
        if template:
            client.options(ignore_status=404).indices.delete_index_template(name=BENCH_INDEX_PREFIX)
    finally:
        client.close()


# --- child processes ----------------------------------------------------------------------------------

_running: list["Child"] = []


def wait_until(condition: Callable[[], bool], *, timeout: float, what: str, interval: float = 0.2) -> None:
    """Poll `condition` until it holds; raise TimeoutError naming `what` when `timeout` seconds pass first."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"no {what} within {timeout}s")
        time.sleep(interval)


class Child:
    """A child process in its own process group, its output in a log file; stop() ends the whole group."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str]) -> None:
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.log_path = LOG_DIR / f"{name}.log"
        self._log = open(self.log_path, "wb")  # closed in stop()
        self.process = subprocess.Popen(
            argv, cwd=REPO, env=env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )
        _running.append(self)

    def alive(self) -> bool:
        return self.process.poll() is None

    def log_tail(self, chars: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]

    def wait_until(self, condition: Callable[[], bool], *, timeout: float, what: str) -> None:
        def met() -> bool:
            if not self.alive():
                raise RuntimeError(f"{self.name} exited while waiting for {what}:\n{self.log_tail()}")
            return condition()

        try:
            wait_until(met, timeout=timeout, what=what)
        except TimeoutError as exc:
            raise RuntimeError(f"{self.name}: {exc}:\n{self.log_tail()}") from None

    def stop(self) -> None:
        if self.alive():
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
            except ProcessLookupError:
                pass
        if not self._log.closed:
            self._log.close()
        if self in _running:
            _running.remove(self)


def stop_all_children() -> None:
    """Stop every child still running (the last line of defence of run.py's finally)."""
    for child in list(_running):
        child.stop()


def portal_env(**overrides: str) -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("DJANGO_SETTINGS_MODULE", "skywatch_portal.settings")
    env.update(overrides)
    return env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Gunicorn(Child):
    """The portal under gunicorn (sync workers) on a free loopback port."""

    def __init__(self, *, workers: int, env: dict[str, str], access_log: Path | None = None) -> None:
        """`access_log`: a file where gunicorn writes each request's path, status and its own time in
        microseconds (%(D)s: from the parsed request to the response written), a line per request."""
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        logging = ["--access-logfile", str(access_log), "--access-logformat", "%(U)s %(s)s %(D)s"]
        argv = [
            sys.executable,
            "-m",
            "gunicorn",
            "skywatch_portal.wsgi:application",
            "--bind",
            f"127.0.0.1:{self.port}",
            "--workers",
            str(workers),
            "--worker-class",
            "sync",
            "--timeout",
            "60",
            *(logging if access_log else []),
        ]
        super().__init__("gunicorn", argv, env)
        import requests

        def answers() -> bool:
            try:
                return requests.get(self.url + "/healthz", timeout=1).status_code == 200
            except requests.RequestException:
                return False

        self.wait_until(answers, timeout=60, what="answer on /healthz")


class CeleryWorker(Child):
    """One Celery worker process (prefork pool, concurrency 1) on the bench broker.

    Several at once need their own `name` (the log file) and `hostname` (Celery's node name): two nodes of
    one name would share their task bookkeeping.
    """

    def __init__(
        self, *, env: dict[str, str], name: str = "celery-worker", hostname: str = "bench@%h"
    ) -> None:
        argv = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "skywatch_portal",
            "worker",
            "--loglevel=INFO",
            "--pool=prefork",
            "--concurrency=1",
            "--queues",
            "default",
            "--hostname",
            hostname,
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
        ]
        super().__init__(name, argv, env)
        self.wait_until(lambda: "ready." in self.log_tail(20_000), timeout=60, what="'ready.' in its log")


def celery_workers(count: int, *, env: dict[str, str]) -> list[CeleryWorker]:
    """Start `count` worker processes (one node each, as production's skywatch-worker@N units run them);
    stop those already started if one fails to come up."""
    workers: list[CeleryWorker] = []
    try:
        for number in range(1, count + 1):
            if count == 1:
                workers.append(CeleryWorker(env=env))
            else:
                workers.append(
                    CeleryWorker(env=env, name=f"celery-worker-{number}", hostname=f"bench{number}@%h")
                )
    except BaseException:
        for worker in workers:
            worker.stop()
        raise
    return workers


def manage(*args: str, timeout: float = 300) -> str:
    """Run `manage.py <args>` with the bench environment; return its stdout (raise on failure)."""
    completed = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=REPO,
        env=portal_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{completed.stdout}\n{completed.stderr}")
    return completed.stdout
