"""The tile examples: what their users see when a request carries a user the portal cannot
store, and what the worker writes on its console. Real processes, a real broker and, where the trail is the
point, the real portal (gunicorn, its worker, Elasticsearch)."""

from __future__ import annotations

import json
import sys
import uuid

import pytest
import redis
import requests
from django.db import connection

import tests.examples.test_three_process_trail as three
from tests.conftest import _database_url_for, free_port, wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

HEADER = "X-Correlation-ID"
start_example = three.start_example  # the fixture: example processes, stopped afterwards
healthy = three.healthy


def test_a_user_the_portal_cannot_store_is_refused_at_each_entry_and_the_refusal_is_in_the_trail(
    make_key, make_person, start_portal, start_worker, start_example, clean_search_index
):
    keys = {name: make_key(service=name)[1] for name in ("gateway", "download")}
    make_person("support", username="support-rev3")
    broker_url = three.example_broker_url()
    redis.Redis.from_url(broker_url).flushdb()
    portal = start_portal(DATABASE_URL=_database_url_for(connection.settings_dict))
    gateway_url, download_url = (f"http://127.0.0.1:{free_port()}" for _ in range(2))
    download = start_example(
        "download",
        [sys.executable, "examples/download.py", "--port", download_url.rsplit(":", 1)[1]],
        SERVICE_NAME="download",
        OBSERVATORY_API_KEY=keys["download"],
        OBSERVATORY_URL=portal.url,
        EXAMPLE_BROKER_URL=broker_url,
    )
    gateway = start_example(
        "gateway",
        [sys.executable, "examples/gateway.py", "--port", gateway_url.rsplit(":", 1)[1]]
        + ["--download-url", download_url],
        SERVICE_NAME="gateway",
        OBSERVATORY_API_KEY=keys["gateway"],
        OBSERVATORY_URL=portal.url,
    )
    start_worker()
    processes = [gateway, download]
    wait_for(
        lambda: healthy(gateway_url, processes) and healthy(download_url, processes),
        timeout=30,
        message="the example services",
    )

    too_long, control = str(uuid.uuid4()), str(uuid.uuid4())
    answers = [
        requests.get(f"{gateway_url}/tiles/{tile}", params={"user": user}, headers={HEADER: cid}, timeout=20)
        for tile, user, cid in (("t-1", "u" * 201, too_long), ("t-2", "u\x00-7", control))
    ]
    direct = requests.get(f"{download_url}/download/t-3", params={"user": "u" * 201}, timeout=10)

    assert [(a.status_code, a.headers[HEADER]) for a in answers] == [(400, too_long), (400, control)]
    assert all("user" in a.json()["detail"] for a in answers)
    assert direct.status_code == 400, direct.text
    redis_queue = redis.Redis.from_url(broker_url)
    assert not any(redis_queue.llen(name) for name in redis_queue.keys())  # no task was published

    support = three.sign_in(portal.url, "support-rev3")
    trails: dict[str, list[dict]] = {}

    def refusal_in_trail(cid: str) -> bool:
        response = support.get(f"{portal.url}/api/v1/traces/{cid}", timeout=10)
        if response.status_code == 404:
            return False
        trails[cid] = response.json()["events"]
        return any(e["service"] == "gateway" and e["level"] == "warning" for e in trails[cid])

    try:
        wait_for(
            lambda: refusal_in_trail(too_long) and refusal_in_trail(control),
            timeout=60,
            interval=0.5,
            message="the gateway's refusals in the portal",
        )
    except pytest.fail.Exception:
        logs = "\n".join(f"--- {p.name} ---\n{p.log_text()[-2000:]}" for p in processes)
        pytest.fail(f"trails so far: {trails}\n{logs}", pytrace=False)
    for cid in (too_long, control):
        assert {e["correlation_id"] for e in trails[cid]} == {cid}
        assert "tile" in next(e["message"] for e in trails[cid] if e["level"] == "warning")


def test_the_workers_task_log_lines_on_its_console_carry_the_correlation_id_service_and_stage(start_example):
    broker_url = three.example_broker_url()
    redis.Redis.from_url(broker_url).flushdb()
    download_url = f"http://127.0.0.1:{free_port()}"
    # No portal here: the console is the point (the trackers drop their events, warning once).
    worker = start_example(
        "example-worker",
        [sys.executable, "-m", "celery", "-A", "examples.download_tasks", "worker", "--loglevel=INFO"]
        + ["--pool=prefork", "--concurrency=1", "--without-gossip", "--without-mingle"],
        SERVICE_NAME="download-worker",
        STAGE="rev3-stage",
        EXAMPLE_BROKER_URL=broker_url,
    )
    download = start_example(
        "download",
        [sys.executable, "examples/download.py", "--port", download_url.rsplit(":", 1)[1]],
        SERVICE_NAME="download",
        EXAMPLE_BROKER_URL=broker_url,
    )
    wait_for(lambda: healthy(download_url, [download, worker]), timeout=30, message="the download service")
    wait_for(lambda: "ready." in worker.log_text() or worker.check_alive(), timeout=30, message="the worker")
    cid = str(uuid.uuid4())

    answer = requests.get(f"{download_url}/download/t-5", headers={"X-Correlation-ID": cid}, timeout=10)
    assert answer.status_code == 200, answer.text

    def task_line() -> dict | None:
        worker.check_alive()
        for line in worker.log_text().splitlines():
            if "tile t-5 rendered" in line:
                try:
                    return json.loads(line[line.index("{") :])
                except ValueError:
                    return {"unparsed": line}
        return None

    wait_for(lambda: task_line() is not None, timeout=30, message="the task's log line")
    line = task_line()
    assert (line.get("correlation_id"), line.get("service"), line.get("stage")) == (
        cid,
        "download-worker",
        "rev3-stage",
    ), line
    assert worker.log_text().count("tile t-5 rendered") == 1  # written once, not also in Celery's format
