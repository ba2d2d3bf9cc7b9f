"""Shared fixtures. Tests talk to the real PostgreSQL, Redis and Elasticsearch that `make test` starts."""

import io
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.db import connections

REPO = Path(__file__).resolve().parent.parent
ARTIFACTS = REPO / "test-artifacts"


def _require(setting_value: str, what: str) -> str:
    if not setting_value:
        pytest.fail(
            f'{what} is not configured: run `make test`, or `eval "$(scripts/services.sh start)"` first',
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


def in_thread(work) -> threading.Thread:
    """Start `work` in a thread of its own, on its own database connection (closed when it ends)."""

    def run():
        try:
            work()
        finally:
            connections.close_all()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def a_session_waits_on_a_lock() -> bool:
    """Return whether a session of the test database waits on a lock another one holds (a row, a table or
    an advisory lock). Ask on the test's autocommit connection: in a transaction pg_stat_activity is a frozen
    snapshot."""
    with connections["default"].cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND wait_event_type = 'Lock' AND cardinality(pg_blocking_pids(pid)) > 0"
        )
        return cursor.fetchone()[0] > 0


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


def stop_process_group(process: subprocess.Popen, sig: int = signal.SIGTERM) -> None:
    """Signal a child started with start_new_session=True and all its children; SIGKILL after 20 s."""
    if process.poll() is None:
        os.killpg(process.pid, sig)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


class WorkerProcess:
    """A real `celery worker` child process consuming its own queue."""

    def __init__(self, queue: str, env: dict[str, str], log_path: Path) -> None:
        self.queue = queue
        self.log_path = log_path
        self._log = open(log_path, "wb")  # closed in stop()
        self.process = subprocess.Popen(
            [
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
                f"default,{queue}",
                "--hostname",
                f"test-{queue}@%h",
                "--without-gossip",
                "--without-mingle",
            ],
            cwd=REPO,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        stop_process_group(self.process, sig)
        self._log.close()


@pytest.fixture
def start_worker(broker_url, tmp_path, django_db_setup):
    """Return a function that starts a real Celery worker against the test database (queue `default` and
    one of its own), with environment overrides; every worker is stopped afterwards."""
    import redis
    from django.db import connection

    # Messages left by an earlier test must not reach this test's workers.
    redis.Redis.from_url(broker_url).flushdb()
    workers: list[WorkerProcess] = []

    def start(**env_overrides: str) -> WorkerProcess:
        queue = f"test-{uuid.uuid4().hex[:8]}"
        env = portal_env(DATABASE_URL=_database_url_for(connection.settings_dict), **env_overrides)
        worker = WorkerProcess(queue, env, tmp_path / f"worker-{len(workers)}.log")
        workers.append(worker)
        deadline = time.monotonic() + 60
        while "ready." not in worker.log_text():
            if worker.process.poll() is not None or time.monotonic() > deadline:
                worker.stop()
                pytest.fail("Celery worker did not start:\n" + worker.log_text()[-4000:])
            time.sleep(0.2)
        return worker

    yield start
    for worker in workers:
        worker.stop()


@pytest.fixture
def celery_worker_process(start_worker) -> WorkerProcess:
    """A real Celery worker against the test database."""
    return start_worker()


def _database_url_for(settings_dict: dict) -> str:
    """Return a DATABASE_URL for the database the tests are using (the test database, not the real one)."""
    engine = settings_dict["ENGINE"]
    if engine.endswith("sqlite3"):
        return f"sqlite:///{settings_dict['NAME']}"
    user, password = settings_dict.get("USER", ""), settings_dict.get("PASSWORD", "")
    host, port = settings_dict.get("HOST") or "127.0.0.1", settings_dict.get("PORT") or 5432
    return f"postgres://{user}:{password}@{host}:{port}/{settings_dict['NAME']}"


@pytest.fixture
def make_key(db):
    """Return a function that creates a service API key and returns (ApiKey, raw secret). Test data: the
    key is stored directly, not through the audited service (tests of key actions use the pages)."""
    from tests.factories import make_api_key

    def make(service: str = "search-api", stage: str = "prod", forwarder: bool = False):
        return make_api_key(service=service, stage=stage, can_forward=forwarder)

    return make


@pytest.fixture
def api_client():
    from rest_framework.test import APIClient

    return APIClient()


def free_port() -> int:
    """Return a loopback port that is free right now."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PortalServer:
    """The portal served by a real gunicorn child process on loopback."""

    def __init__(
        self, env: dict[str, str], log_path: Path, workers: int = 1, port: int | None = None
    ) -> None:
        import requests

        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._log = open(log_path, "wb")  # closed in stop()
        self.log_path = log_path
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "skywatch_portal.wsgi:application",
                "--bind",
                f"127.0.0.1:{self.port}",
                "--workers",
                str(workers),
                "--timeout",
                "60",
            ],
            cwd=REPO,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

        def answers() -> bool:
            if self.process.poll() is not None:
                pytest.fail("gunicorn exited:\n" + log_path.read_text(errors="replace")[-3000:])
            try:
                return requests.get(self.url + "/healthz", timeout=1).status_code == 200
            except requests.RequestException:
                return False

        wait_for(answers, timeout=30, message="gunicorn to answer /healthz")

    def stop(self) -> None:
        stop_process_group(self.process)
        self._log.close()


@pytest.fixture
def start_portal(tmp_path):
    """Return a function that starts gunicorn with environment overrides; every server stops afterwards."""
    servers: list[PortalServer] = []

    def start(port: int | None = None, **env_overrides: str) -> PortalServer:
        server = PortalServer(
            portal_env(**env_overrides), tmp_path / f"gunicorn-{len(servers)}.log", port=port
        )
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def clean_search_index(elasticsearch_url):
    """Remove the test indices and template before and after a test that indexes events."""
    from apps.traces.search import _backend_for
    from apps.traces.search.elasticsearch import alias_name, es_client

    def clean() -> None:
        _backend_for.cache_clear()  # a fresh backend re-creates the index template on first use
        client = es_client()
        client.options(ignore_status=404).indices.delete(index=f"{alias_name()}-*", expand_wildcards="all")
        client.options(ignore_status=404).indices.delete_index_template(name=alias_name())

    clean()
    yield
    clean()


TRACE_BACKENDS = {
    "database": "apps.traces.search.database.DatabaseTraceBackend",
    "elasticsearch": "apps.traces.search.elasticsearch.ElasticsearchTraceBackend",
}


@pytest.fixture(params=list(TRACE_BACKENDS))
def trace_backend(request, settings):
    """Run a test once per trace backend; with Elasticsearch the test indices start empty."""
    from apps.traces.search import _backend_for

    if request.param == "elasticsearch":
        request.getfixturevalue("clean_search_index")
    settings.TRACE_BACKEND = TRACE_BACKENDS[request.param]
    _backend_for.cache_clear()
    yield request.param
    _backend_for.cache_clear()


@pytest.fixture
def store_events(request, db, make_key, settings):
    """Return a function that stores events (any service: a forwarder key) and makes them searchable."""
    from django.utils import timezone

    if settings.TRACE_BACKEND == TRACE_BACKENDS["elasticsearch"]:
        request.getfixturevalue("clean_search_index")  # no documents left over from other tests

    from apps.ingest.services import events_ingest
    from apps.pipeline.services import index_chunk
    from apps.traces.search import get_trace_backend

    api_key, _ = make_key(service="log-shipper", forwarder=True)

    def store(events: list[dict]) -> list[int]:
        result = events_ingest(items=events, api_key=api_key, received_at=timezone.now())
        assert not result.rejected, result.rejected
        index_chunk(event_ids=result.stored_ids)
        if get_trace_backend().name == "elasticsearch":
            from apps.traces.search.elasticsearch import alias_name, es_client

            es_client().indices.refresh(index=alias_name())
        return result.stored_ids

    return store


@pytest.fixture
def aggregate_events(store_events):
    """Return a function that stores events and adds them to the rollups, as the pipeline would (which
    indexes them again: the search documents are the same)."""
    from apps.pipeline.services import process_chunk

    def store(events: list[dict]) -> list[int]:
        ids = store_events(events)
        outcome = process_chunk(event_ids=ids)
        assert outcome.aggregated.done == len(ids), outcome
        assert not outcome.index_unavailable, outcome
        return ids

    return store


@pytest.fixture
def make_person(db):
    """Return a function that creates a signed-in-able person in a role and returns the user."""
    from apps.accounts.services import user_create

    def make(role: str, username: str | None = None):
        return user_create(username=username or f"{role}-person", role=role, password="correct-horse-battery")

    return make


CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]


@contextmanager
def chromium_page(**context_options):
    """Yield a page of headless Debian Chromium driven by Playwright (`context_options`: Playwright's
    new_context options beyond the viewport)."""
    from playwright.sync_api import sync_playwright

    executable = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
    if not Path(executable).exists():
        pytest.fail(f"Chromium not found at {executable}: run `make test` (it installs Debian's chromium)")
    # Playwright's sync API keeps an event loop in this thread; Django's ORM is still used synchronously.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1280, "height": 900}, **context_options)
        try:
            yield context.new_page()
        finally:
            context.close()
            browser.close()
            # The test's ORM calls ran inside Playwright's context, which has database connections of its
            # own; left open, they keep the test database from being dropped at the end of the session.
            connections.close_all()
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)


@pytest.fixture
def browser_page(tmp_path):
    """A headless Debian Chromium page driven by Playwright; records dialogs and console errors it sees."""
    with chromium_page() as page:
        page.dialogs = []
        page.console_errors = []
        page.on("dialog", lambda dialog: (page.dialogs.append(dialog.message), dialog.dismiss()))
        page.on("console", lambda msg: msg.type == "error" and page.console_errors.append(msg.text))
        yield page


def sign_in(page, base_url: str, username: str, password: str = "correct-horse-battery") -> None:
    """Sign in through the real login form."""
    page.goto(f"{base_url}/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base_url}/")


@pytest.fixture
def database_traces(settings):
    """Trace reads on the database backend (the raw rows are the index)."""
    from apps.traces.search import _backend_for

    settings.TRACE_BACKEND = "apps.traces.search.database.DatabaseTraceBackend"
    _backend_for.cache_clear()
    yield
    _backend_for.cache_clear()


def ingest_migrations_latest() -> list[tuple[str, str]]:
    """The ingest app's newest migration, where every other test expects the schema to be."""
    from django.db import connection
    from django.db.migrations.loader import MigrationLoader

    return [node for node in MigrationLoader(connection).graph.leaf_nodes() if node[0] == "ingest"]


def migrate_to(targets: list[tuple[str, str]]) -> None:
    """Migrate the test database to `targets` (forwards or backwards), as `manage.py migrate` would."""
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)


@pytest.fixture
def silent_port():
    """A loopback port that accepts connections and never answers (a hung server): its number."""
    server = socket.create_server(("127.0.0.1", 0), backlog=64)
    server.settimeout(0.1)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join()
    for conn in accepted:
        conn.close()
    server.close()


@dataclass
class Ran:
    out: str
    err: str
    status: int
    message: str = ""  # the CommandError's, which manage.py prints on stderr


@pytest.fixture
def run():
    """Return a function that runs a command and returns what an operator sees of it (never raises
    CommandError: its message and status are in the result)."""

    def run_command(name: str, *args: str, **options) -> Ran:
        out, err = io.StringIO(), io.StringIO()
        try:
            call_command(name, *args, stdout=out, stderr=err, **options)
        except CommandError as exc:
            return Ran(out.getvalue(), err.getvalue(), exc.returncode, str(exc))
        return Ran(out.getvalue(), err.getvalue(), 0)

    return run_command


@pytest.fixture
def support_client(client, make_person):
    """The test client signed in as a person with the support role."""
    client.force_login(make_person("support"))
    return client
