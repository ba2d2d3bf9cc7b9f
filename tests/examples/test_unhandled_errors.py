"""The example web services answer an error their code did not handle with a 500 and log it with its
traceback inside the request's correlation context, so the error line joins the request's trail (it was
printed on the server's stderr only). The error itself is injected: nothing the examples take causes one."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from wsgiref.util import setup_testing_defaults

import pytest
from celery import _state

import observatory
from observatory import correlation
from tests.conftest import REPO

sys.path.insert(0, str(Path(REPO) / "examples"))  # the examples import their plumbing as top-level modules
_portal_app = _state.get_current_app()
import download  # noqa: E402
import gateway  # noqa: E402

_portal_app.set_current()  # download_tasks made the example's Celery app current: the portal's tasks use it


class CorrelationRecorder(logging.Handler):
    """Keep each record with the correlation ID set while it was logged (what TrackerHandler ships)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[tuple[logging.LogRecord, str | None]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append((record, correlation.get()))


@pytest.fixture
def recorder():
    handler = CorrelationRecorder()
    loggers = [logging.getLogger("gateway"), logging.getLogger("download")]
    for logger in loggers:
        logger.addHandler(handler)
    yield handler
    for logger in loggers:
        logger.removeHandler(handler)


@pytest.fixture
def tracker():
    tracker = observatory.Tracker(url="http://127.0.0.1:9", api_key="sk_test", service="example", sync=False)
    yield tracker
    tracker.shutdown(timeout=0)


def call(app, path: str) -> tuple[str, dict[str, str], dict]:
    environ = {"PATH_INFO": path, "QUERY_STRING": "user=alice", "HTTP_X_CORRELATION_ID": "req-crash-1"}
    setup_testing_defaults(environ)
    answer: dict = {}

    def start_response(status, headers, exc_info=None):
        answer["status"], answer["headers"] = status, dict(headers)

    body = b"".join(app(environ, start_response))
    return answer["status"], answer["headers"], json.loads(body)


@pytest.mark.parametrize(
    ("module", "make", "path", "fails"),
    [
        (gateway, lambda t: gateway.make_app(t, "http://127.0.0.1:9"), "/tiles/t1", "requests.get"),
        (download, lambda t: download.make_app(t), "/download/t1", "render_tile.delay"),
    ],
    ids=["gateway", "download"],
)
def test_an_unhandled_error_is_a_500_logged_in_the_requests_trail(
    monkeypatch, recorder, tracker, module, make, path, fails
):
    def broken(*args, **kwargs):
        raise RuntimeError("injected failure")

    owner, attribute = fails.rsplit(".", 1)
    monkeypatch.setattr(getattr(module, owner), attribute, broken)

    status, headers, body = call(make(tracker), path)

    assert status.startswith("500")
    assert body == {"detail": "internal error"}
    assert headers["X-Correlation-ID"] == "req-crash-1"
    (record, correlation_id), *_ = recorder.records
    assert record.levelno == logging.ERROR and record.exc_info[0] is RuntimeError
    assert path in record.getMessage()
    assert correlation_id == "req-crash-1"
