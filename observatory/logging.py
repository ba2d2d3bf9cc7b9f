"""Logging helpers: stamp correlation/service/stage on records, write JSON lines, ship them to the portal."""

from __future__ import annotations

import json
import logging  # absolute import: the standard library module, not this file
import os
import threading
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from . import _guard, correlation

if TYPE_CHECKING:
    from .tracker import Tracker

__all__ = ["IGNORED_LOGGERS", "CorrelationFilter", "JsonFormatter", "TrackerHandler"]

# Records from these loggers are never shipped by TrackerHandler: they are produced while shipping.
IGNORED_LOGGERS = ("observatory", "urllib3", "requests", "charset_normalizer")

# Attributes every LogRecord has; anything else on a record came from ``extra=``.
_RECORD_ATTRS = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {
    "message",
    "asctime",
    "taskName",
    "correlation_id",
    "service",
    "stage",
}


def _env(name: str) -> str | None:
    return os.environ.get(name) or None


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    """Return the record's ``extra`` fields that survive a JSON round trip as they are."""
    result: dict[str, Any] = {}
    for key, value in record.__dict__.items():
        if key in _RECORD_ATTRS or key.startswith("_"):
            continue
        try:
            json.dumps(value)
        except (TypeError, ValueError):
            continue
        result[key] = value
    return result


class CorrelationFilter(logging.Filter):
    """Stamp ``correlation_id``, ``service`` and ``stage`` attributes on every record (never filters out).

    ``service``/``stage`` default to the ``SERVICE_NAME``/``STAGE`` environment variables. Values a record
    already carries (e.g. passed via ``extra=``) are kept.
    """

    def __init__(self, service: str | None = None, stage: str | None = None, name: str = "") -> None:
        super().__init__(name)
        self.service = service if service is not None else _env("SERVICE_NAME")
        self.stage = stage if stage is not None else _env("STAGE")

    def filter(self, record: logging.LogRecord) -> bool:
        """Add the attributes and keep the record."""
        if getattr(record, "correlation_id", None) is None:
            # Django logs 4xx/5xx responses after the middleware has left the request's context: fall back
            # to the ID the middleware put on the request.
            record.correlation_id = correlation.get() or getattr(
                getattr(record, "request", None), "correlation_id", None
            )
        if getattr(record, "service", None) is None:
            record.service = self.service
        if getattr(record, "stage", None) is None:
            record.stage = self.stage
        return True


class JsonFormatter(logging.Formatter):
    """Format each record as one JSON object per line.

    Keys: ``timestamp`` (ISO-8601 UTC), ``level``, ``logger``, ``message``, ``service``, ``stage``,
    ``correlation_id``, ``exc_info`` (traceback text, when present), ``stack_info`` (when present), then
    any JSON-serialisable ``extra`` fields that do not clash with those keys.
    """

    def __init__(self, service: str | None = None, stage: str | None = None) -> None:
        super().__init__()
        self.service = service if service is not None else _env("SERVICE_NAME")
        self.stage = stage if stage is not None else _env("STAGE")

    def format(self, record: logging.LogRecord) -> str:
        """Return the record as a single-line JSON document."""
        cid = getattr(record, "correlation_id", None)
        payload: dict[str, Any] = {
            "timestamp": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="microseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "service": getattr(record, "service", None) or self.service,
            "stage": getattr(record, "stage", None) or self.stage,
            "correlation_id": cid if cid is not None else correlation.get(),
        }
        if record.exc_info:
            if not record.exc_text:  # cache like logging.Formatter does
                record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            payload["exc_info"] = record.exc_text
        if record.stack_info:
            payload["stack_info"] = self.formatStack(record.stack_info)
        for key, value in _extras(record).items():
            payload.setdefault(key, value)
        return json.dumps(payload, ensure_ascii=False, default=str).translate(_LINE_BREAKS)


# Characters outside ASCII's controls (which JSON escapes) that str.splitlines() and some log tools also end a
# line at: escaped, so a value holding one cannot split a record and forge the next line. JSON allows the
# escape anywhere a string is, and only strings can hold them.
_LINE_BREAKS = str.maketrans({"\u2028": "\\u2028", "\u2029": "\\u2029", "\u0085": "\\u0085"})


def _ignored(name: str) -> bool:
    return any(name == prefix or name.startswith(prefix + ".") for prefix in IGNORED_LOGGERS)


class TrackerHandler(logging.Handler):
    """Ship log records to the portal as ``type: "log"`` events through a Tracker (default: the global one).

    The event's message is ``record.getMessage()`` (or ``self.format(record)`` when a formatter is set);
    properties hold the logger name, module, function, line, exception text and JSON-serialisable extras.
    Records from the library's own loggers, from urllib3/requests, and anything logged while the library
    is sending are ignored, so the handler can never feed itself.
    """

    def __init__(self, tracker: Tracker | None = None, level: int | str = logging.NOTSET) -> None:
        super().__init__(level)
        self.tracker = tracker
        self._local = threading.local()

    def emit(self, record: logging.LogRecord) -> None:
        """Queue the record on the tracker (never blocks in async mode)."""
        if _ignored(record.name) or _guard.active() or getattr(self._local, "busy", False):
            return
        self._local.busy = True  # anything logged while we build the event is not ours to ship
        try:
            tracker: Tracker | None = self.tracker
            if tracker is None:
                from .tracker import get_tracker  # deferred: keeps this module light to import

                tracker = get_tracker()
            message = self.format(record) if self.formatter is not None else record.getMessage()
            properties: dict[str, Any] = _extras(record)
            properties.update(
                logger=record.name,
                module=record.module,
                function=record.funcName,
                line=record.lineno,
            )
            if record.exc_info:
                properties["exception"] = record.exc_text or logging.Formatter().formatException(
                    record.exc_info
                )
            elif record.exc_text:
                properties["exception"] = record.exc_text
            if record.stack_info:
                properties["stack"] = record.stack_info
            tracker.log(
                record.levelno,
                message,
                properties,
                timestamp=record.created,
                correlation_id=getattr(record, "correlation_id", None),
            )
        except RecursionError:
            raise
        except Exception:  # the logging module's contract: report through handleError, never raise
            self.handleError(record)
        finally:
            self._local.busy = False
