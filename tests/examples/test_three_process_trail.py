"""One request through three example processes makes one trail in the portal, read back through its API.

Why: the observatory client promises that a correlation ID set at the edge follows the request over HTTP
(`requests_propagation`) and through a task queue (`observatory.celery`) into the portal. Only real
processes on loopback sockets, a real broker and the real pipeline (portal worker → Elasticsearch) can
show that: gateway → download service → Celery worker, each sending with its own API key.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import redis
import requests
from celery import Celery
from django.conf import settings
from django.db import connection

from observatory.celery import HEADER as CELERY_HEADER
from tests.conftest import REPO, _database_url_for, free_port, stop_process_group, wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

# The example worker's broker: the portal's Redis server, another database (the portal's is 15 under
# `make test`); flushed at the start so no task left by an earlier run reaches this test's worker.
EXAMPLE_BROKER_DB = 12
# The worker gets a key of its own: its events then say which process did the work, and its key can be
# rotated or revoked without touching the download service's.
WORKER_SERVICE = "download-worker"
PASSWORD = "correct-horse-battery"  # make_person's
TRAIL_TIMEOUT = 60


class ExampleProcess:
    """One example service or worker: a child process in its own session, its output in a log file."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log_path: Path) -> None:
        self.name = name
        self.log_path = log_path
        self._log = open(log_path, "wb")  # closed in stop()
        self.process = subprocess.Popen(
            argv, cwd=REPO, env=env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            pytest.fail(f"{self.name} exited ({self.process.returncode}):\n{self.log_text()[-3000:]}")

    def stop(self) -> None:
        stop_process_group(self.process)
        self._log.close()


@pytest.fixture
def start_example(tmp_path) -> Iterator[Callable[..., ExampleProcess]]:
    """Return `start(name, argv, **env)`; every process started is stopped afterwards, pass or fail."""
    started: list[ExampleProcess] = []

    def start(name: str, argv: list[str], **env_overrides: str) -> ExampleProcess:
        # Nothing of the test's own configuration leaks in: no Django, no portal broker (Celery would
        # prefer CELERY_BROKER_URL to the example's), no observatory settings but the ones given here.
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("OBSERVATORY_", "CELERY_", "DJANGO_"))
            and key not in {"SERVICE_NAME", "STAGE"}
        }
        env.update(PYTHONUNBUFFERED="1", **env_overrides)
        process = ExampleProcess(name, argv, env, tmp_path / f"{name}.log")
        started.append(process)
        return process

    yield start
    for process in reversed(started):
        process.stop()


def example_broker_url() -> str:
    portal_broker = settings.CELERY_BROKER_URL
    url = urlsplit(portal_broker)._replace(path=f"/{EXAMPLE_BROKER_DB}").geturl()
    assert url != portal_broker, f"the portal's broker already uses Redis database {EXAMPLE_BROKER_DB}"
    return url


def sign_in(portal_url: str, username: str) -> requests.Session:
    """Sign in through the portal's login form (CSRF cookie + token), as support staff do."""
    session = requests.Session()
    session.get(f"{portal_url}/login/", timeout=10).raise_for_status()
    response = session.post(
        f"{portal_url}/login/",
        data={
            "username": username,
            "password": PASSWORD,
            "csrfmiddlewaretoken": session.cookies["csrftoken"],
        },
        allow_redirects=False,
        timeout=10,
    )
    assert response.status_code == 302, response.text[:500]
    return session


def healthy(url: str, processes) -> bool:
    """Whether the example at `url` answers its health check (failing at once if one of `processes` died)."""
    for process in processes:
        process.check_alive()
    try:
        return requests.get(f"{url}/healthz", timeout=1).status_code == 200
    except requests.RequestException:
        return False


def expected_trail() -> set[tuple[str, str, str]]:
    return {
        ("gateway", "metric", "tile_requested"),
        ("gateway", "log", "log"),
        ("download", "metric", "download_started"),
        ("download", "log", "log"),
        (WORKER_SERVICE, "metric", "tile_rendered"),
        (WORKER_SERVICE, "log", "log"),
    }


def kind(event: dict) -> tuple[str, str, str]:
    return (event["service"], event["type"], event["event"])


def assert_one_trail(events: list[dict], cid: str, tile_id: str, user_id: str | None) -> None:
    """Six events, one per hop and kind, all with `cid`, in time order, hop after hop."""
    assert sorted(map(kind, events)) == sorted(expected_trail())
    assert {e["correlation_id"] for e in events} == {cid}
    assert {e["properties"]["tile_id"] for e in events if e["type"] == "metric"} == {tile_id}
    assert {e["user_id"] for e in events} == {user_id or ""}
    for log_line in (e for e in events if e["type"] == "log"):
        assert log_line["level"] == "info"
        assert f"tile {tile_id} " in log_line["message"]

    # The trail's order is time order at the index's resolution (Elasticsearch `date`: milliseconds) …
    stamps = [datetime.fromisoformat(e["timestamp"]) for e in events]
    millis = [stamp.replace(microsecond=stamp.microsecond // 1000 * 1000) for stamp in stamps]
    assert millis == sorted(millis), [e["timestamp"] for e in events]
    # … and by the senders' microsecond timestamps each hop comes after the one that caused it.
    hops = [e["service"] for _, e in sorted(zip(stamps, events, strict=True), key=lambda pair: pair[0])]
    assert hops == ["gateway"] * 2 + ["download"] * 2 + [WORKER_SERVICE] * 2


def test_one_request_through_gateway_download_and_worker_is_one_trail(
    make_key, make_person, start_portal, start_worker, start_example, clean_search_index
):
    keys = {name: make_key(service=name)[1] for name in ("gateway", "download", WORKER_SERVICE)}
    make_person("support", username="support-examples")
    broker_url = example_broker_url()
    redis.Redis.from_url(broker_url).flushdb()

    portal = start_portal(DATABASE_URL=_database_url_for(connection.settings_dict))
    sender = {"OBSERVATORY_URL": portal.url}
    gateway_port, download_port = free_port(), free_port()
    gateway_url, download_url = f"http://127.0.0.1:{gateway_port}", f"http://127.0.0.1:{download_port}"
    # Started before the portal's worker, so the processes boot meanwhile.
    worker = start_example(
        "example-worker",
        [sys.executable, "-m", "celery", "-A", "examples.download_tasks", "worker", "--loglevel=INFO"]
        + ["--pool=prefork", "--concurrency=1", "--without-gossip", "--without-mingle"],
        SERVICE_NAME=WORKER_SERVICE,
        OBSERVATORY_API_KEY=keys[WORKER_SERVICE],
        EXAMPLE_BROKER_URL=broker_url,
        **sender,
    )
    download = start_example(
        "download",
        [sys.executable, "examples/download.py", "--port", str(download_port)],
        SERVICE_NAME="download",
        OBSERVATORY_API_KEY=keys["download"],
        EXAMPLE_BROKER_URL=broker_url,
        **sender,
    )
    gateway = start_example(
        "gateway",
        [sys.executable, "examples/gateway.py", "--port", str(gateway_port), "--download-url", download_url],
        SERVICE_NAME="gateway",
        OBSERVATORY_API_KEY=keys["gateway"],
        **sender,
    )
    start_worker()  # the portal's own: aggregates and indexes what the examples send
    processes = [gateway, download, worker]
    wait_for(
        lambda: healthy(gateway_url, processes) and healthy(download_url, processes),
        timeout=30,
        message="the example services",
    )
    wait_for(lambda: "ready." in worker.log_text() or worker.check_alive(), timeout=30, message="the worker")

    given_cid = str(uuid.uuid4())
    first = requests.get(
        f"{gateway_url}/tiles/t-42",
        params={"user": "u-7"},
        headers={"X-Correlation-ID": given_cid},
        timeout=20,
    )
    second = requests.get(f"{gateway_url}/tiles/t-43", timeout=20)

    assert first.status_code == 200, first.text
    assert first.headers["X-Correlation-ID"] == given_cid
    # The download service saw the gateway's ID: it came over HTTP in the propagated header.
    assert (first.json()["tile_id"], first.json()["correlation_id"]) == ("t-42", given_cid)
    assert second.status_code == 200, second.text
    fresh_cid = second.headers["X-Correlation-ID"]
    assert str(uuid.UUID(fresh_cid)) == fresh_cid and uuid.UUID(fresh_cid).version == 4
    assert fresh_cid != given_cid
    assert second.json()["correlation_id"] == fresh_cid

    support = sign_in(portal.url, "support-examples")
    trails: dict[str, list[dict]] = {}

    def complete(cid: str) -> bool:
        response = support.get(f"{portal.url}/api/v1/traces/{cid}", timeout=10)
        if response.status_code == 404:  # nothing indexed yet
            return False
        assert response.status_code == 200, response.text[:500]
        assert response.json()["correlation_id"] == cid
        trails[cid] = response.json()["events"]
        return set(map(kind, trails[cid])) >= expected_trail()

    try:
        wait_for(
            lambda: complete(given_cid) and complete(fresh_cid),
            timeout=TRAIL_TIMEOUT,
            interval=0.5,
            message="both trails to hold every hop's events",
        )
    except pytest.fail.Exception:
        logs = "\n".join(f"--- {p.name} ---\n{p.log_text()[-2000:]}" for p in processes)
        pytest.fail(f"trails so far: {trails}\n{logs}", pytrace=False)

    assert_one_trail(trails[given_cid], given_cid, "t-42", "u-7")
    assert_one_trail(trails[fresh_cid], fresh_cid, "t-43", None)
    assert not {e["event_id"] for e in trails[given_cid]} & {e["event_id"] for e in trails[fresh_cid]}

    # A task the worker cannot run (a publisher that sends other arguments than the worker's task takes):
    # Celery's failure line, with its traceback, joins the publisher's trail as the worker's error.
    failed_cid = str(uuid.uuid4())
    publisher = Celery(set_as_current=False)
    publisher.conf.broker_write_url = broker_url  # over CELERY_BROKER_URL (the portal's), as the example does
    publisher.send_task("tiles.render_tile", args=[], queue="tiles", headers={CELERY_HEADER: failed_cid})

    def failure_in_trail() -> bool:
        complete(failed_cid)
        return any(
            e["service"] == WORKER_SERVICE and e["type"] == "log" and e["level"] == "error"
            for e in trails.get(failed_cid, [])
        )

    try:
        wait_for(failure_in_trail, timeout=TRAIL_TIMEOUT, interval=0.5, message="the failure in its trail")
    except pytest.fail.Exception:
        pytest.fail(f"trail: {trails.get(failed_cid)}\n{worker.log_text()[-3000:]}", pytrace=False)
    [failure] = [e for e in trails[failed_cid] if e["level"] == "error"]
    assert "render_tile" in failure["message"] and "TypeError" in failure["properties"]["exception"]
