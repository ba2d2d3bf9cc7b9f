"""Logging helpers: correlation filter, JSON formatter, and TrackerHandler shipping without recursion."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from datetime import datetime

import pytest

from observatory import correlation
from observatory.logging import CorrelationFilter, JsonFormatter, TrackerHandler


class _ListHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def app_logger() -> Iterator[logging.Logger]:
    """A private logger that does not propagate, so the suite's own logging setup stays out of the way."""
    logger = logging.getLogger("obs_test_app")
    saved = (logger.level, logger.propagate)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    yield logger
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
    logger.setLevel(saved[0])
    logger.propagate = saved[1]


def test_correlation_filter_stamps_every_record(monkeypatch, app_logger):
    monkeypatch.setenv("SERVICE_NAME", "env-svc")
    monkeypatch.setenv("STAGE", "env-stage")
    handler = _ListHandler()
    handler.addFilter(CorrelationFilter())
    app_logger.addHandler(handler)

    with correlation.use("log-1"):
        app_logger.info("inside")
        app_logger.info("explicit", extra={"correlation_id": "given"})
    app_logger.info("outside")

    inside, explicit, outside = handler.records
    assert (inside.correlation_id, inside.service, inside.stage) == ("log-1", "env-svc", "env-stage")
    assert explicit.correlation_id == "given"  # a value passed via extra= is kept
    assert outside.correlation_id is None
    assert CorrelationFilter(service="svc", stage="prod").filter(outside)  # never drops records
    assert CorrelationFilter(service="a").service == "a" and CorrelationFilter(stage="b").stage == "b"


def test_json_formatter_writes_one_object_per_line(app_logger):
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(CorrelationFilter(service="search", stage="prod"))
    handler.setFormatter(JsonFormatter())
    app_logger.addHandler(handler)

    with correlation.use("fmt-1"):
        app_logger.warning(
            "hello %s",
            "world",
            extra={"order_id": 7, "tags": ["a"], "blob": object(), "level": "not-a-clash"},
        )
        try:
            int("not a number")
        except ValueError:
            app_logger.exception("multi\nline")

    first_line, second_line = stream.getvalue().splitlines()
    first, second = json.loads(first_line), json.loads(second_line)
    assert first["message"] == "hello world"
    assert (first["level"], first["logger"]) == ("warning", "obs_test_app")
    assert (first["service"], first["stage"], first["correlation_id"]) == ("search", "prod", "fmt-1")
    assert datetime.fromisoformat(first["timestamp"]).utcoffset().total_seconds() == 0
    assert (first["order_id"], first["tags"]) == (7, ["a"])
    assert "blob" not in first  # not JSON-serialisable: left out
    assert "exc_info" not in first
    assert second["message"] == "multi\nline" and second["level"] == "error"
    assert "ValueError: invalid literal" in second["exc_info"]


def test_json_formatter_without_filter_reads_context_and_environment(monkeypatch):
    monkeypatch.setenv("SERVICE_NAME", "env-svc")
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "msg", (), None)
    with correlation.use("ctx-1"):
        payload = json.loads(JsonFormatter().format(record))
    assert (payload["correlation_id"], payload["service"], payload["stage"]) == ("ctx-1", "env-svc", None)


def test_tracker_handler_ships_a_log_event(ingest_server, make_tracker, app_logger):
    tracker = make_tracker()
    app_logger.addHandler(TrackerHandler(tracker))

    with correlation.use("h-1"):
        try:
            {}["missing"]
        except KeyError:
            app_logger.error(
                "lookup failed for %s",
                "order",
                exc_info=True,
                extra={"order_id": 5, "user_id": 9, "blob": object()},
            )
    app_logger.debug("second")
    assert tracker.flush(5)

    first, second = ingest_server.events()
    assert (first["type"], first["event"], first["level"]) == ("log", "log", "error")
    assert first["message"] == "lookup failed for order"
    assert (first["correlation_id"], first["user_id"]) == ("h-1", "9")
    props = first["properties"]
    assert (props["logger"], props["module"], props["function"]) == (
        "obs_test_app",
        "test_logging",
        "test_tracker_handler_ships_a_log_event",
    )
    assert isinstance(props["line"], int)
    assert "KeyError" in props["exception"]
    assert props["order_id"] == 5 and "blob" not in props and "user_id" not in props
    assert (second["level"], second["message"]) == ("debug", "second")


@pytest.fixture
def root_capture() -> Iterator[logging.Logger]:
    """Give the test the root logger at DEBUG (as a chatty service would) and restore it afterwards."""
    root = logging.getLogger()
    saved_level, saved_handlers = root.level, list(root.handlers)
    chatty = [logging.getLogger(name) for name in ("urllib3", "observatory", "requests")]
    saved_chatty = [(lg, lg.level) for lg in chatty]
    root.setLevel(logging.DEBUG)
    for lg in chatty:
        lg.setLevel(logging.DEBUG)
    yield root
    for handler in list(root.handlers):
        if handler not in saved_handlers:
            root.removeHandler(handler)
    root.setLevel(saved_level)
    for lg, level in saved_chatty:
        lg.setLevel(level)


@pytest.mark.parametrize("sync", [False, True])
def test_tracker_handler_on_root_never_ships_its_own_traffic(ingest_server, make_tracker, root_capture, sync):
    # A 500 then a 400 make the library log (debug retry, error on give-up) and urllib3 logs every
    # connection; with the handler on the root logger none of that may come back as events.
    ingest_server.answer_next(500, 400)
    tracker = make_tracker(sync=sync)
    root_capture.addHandler(TrackerHandler(tracker))

    logging.getLogger("obs_root_app.first").warning("first")  # its batch: 500, retry, then 400
    assert tracker.flush(5)
    logging.getLogger("obs_root_app.second").warning("second")
    assert tracker.flush(5)

    messages = [e["message"] for e in ingest_server.events()]
    assert messages == ["second"]  # "first" was refused by the scripted 400; nothing else was shipped
    stats = tracker.stats()
    assert stats["tracked"] == 2 and stats["dropped"] == 0
    posted = [e for post in ingest_server.posts() for e in (post.body or {}).get("batch", [])]
    assert {e["properties"]["logger"] for e in posted} == {"obs_root_app.first", "obs_root_app.second"}


def test_tracker_handler_ignores_library_and_http_loggers(make_tracker):
    tracker = make_tracker()
    handler = TrackerHandler(tracker)
    for name in ("observatory", "observatory.tracker", "urllib3.connectionpool", "requests"):
        handler.handle(logging.LogRecord(name, logging.ERROR, __file__, 1, "noise", (), None))
    handler.handle(logging.LogRecord("observatory_fan_club", logging.ERROR, __file__, 1, "kept", (), None))
    assert tracker.stats()["tracked"] == 1


@pytest.mark.parametrize("separator", ["\u2028", "\u2029", "\u0085", "\x1c", "\x1d", "\x1e", "\x0b", "\x0c"])
def test_json_formatter_keeps_a_record_on_one_line_for_any_line_splitter(separator):
    # str.splitlines() (and tools like it) also end a line at these: a user ID or message holding one would
    # split the record in two, the second half forging a line of its own.
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "user %s", (f"u1{separator}forged",), None)

    line = JsonFormatter().format(record)

    assert len(line.splitlines()) == 1
    assert json.loads(line)["message"] == f"user u1{separator}forged"
