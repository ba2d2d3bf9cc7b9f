"""Celery integration: carry the correlation ID from the code that publishes a task to the worker.

Call :func:`install` once in the module that creates the Celery app (imports Celery only here)."""

from __future__ import annotations

import contextvars
import threading
from typing import Any

try:
    from celery import signals
except ImportError as exc:  # pragma: no cover - only without Celery
    raise ImportError("observatory.celery needs Celery: pip install './observatory[celery]'") from exc

from . import correlation
from .tracker import shutdown_all

__all__ = ["HEADER", "install", "is_installed", "uninstall"]

# Not "correlation_id": Celery (protocol 2) overwrites a header of that name on the worker with the
# AMQP correlation_id property, which is the task id. A distinct key survives into task.request.
HEADER = "x_correlation_id"

_lock = threading.Lock()
_installed = False
_generate_missing = True
# task_id -> token from task_prerun, reset in task_postrun of the same task (same thread/context).
_tokens: dict[str, contextvars.Token[str | None]] = {}


def install(app: Any = None, *, generate_missing: bool = True, flush_on_shutdown: bool = True) -> None:
    """Connect the Celery signal handlers (idempotent; Celery signals are process-wide).

    - ``before_task_publish`` adds the current correlation ID to the message headers (``x_correlation_id``).
    - ``task_prerun`` sets it in the worker for the task's duration; with no ID in the message it keeps
      the caller's (eager mode) or, if ``generate_missing``, makes a fresh one so each task's logs group.
    - ``task_postrun`` restores the previous value.
    - ``worker_process_shutdown`` flushes every Tracker (prefork children exit without ``atexit``) unless
      ``flush_on_shutdown`` is false.

    ``app`` is accepted for symmetry with other integrations; handlers apply to every app in the process.
    """
    global _installed, _generate_missing
    with _lock:
        _generate_missing = generate_missing
        if _installed:
            return
        # weak=False: the handlers are module functions, but keep them alive regardless;
        # dispatch_uid makes a repeated connect a no-op.
        signals.before_task_publish.connect(_before_publish, weak=False, dispatch_uid="observatory.publish")
        signals.task_prerun.connect(_task_prerun, weak=False, dispatch_uid="observatory.prerun")
        signals.task_postrun.connect(_task_postrun, weak=False, dispatch_uid="observatory.postrun")
        if flush_on_shutdown:
            signals.worker_process_shutdown.connect(
                _process_shutdown, weak=False, dispatch_uid="observatory.process_shutdown"
            )
        _installed = True


def uninstall() -> None:
    """Disconnect the signal handlers connected by :func:`install`."""
    global _installed
    with _lock:
        signals.before_task_publish.disconnect(_before_publish, dispatch_uid="observatory.publish")
        signals.task_prerun.disconnect(_task_prerun, dispatch_uid="observatory.prerun")
        signals.task_postrun.disconnect(_task_postrun, dispatch_uid="observatory.postrun")
        signals.worker_process_shutdown.disconnect(
            _process_shutdown, dispatch_uid="observatory.process_shutdown"
        )
        _installed = False


def is_installed() -> bool:
    """Return whether :func:`install` is in effect."""
    return _installed


def incoming_correlation_id(request: Any) -> str | None:
    """Return the valid correlation ID carried by a task request (``task.request``), or None."""
    if request is None:
        return None
    # Protocol 2 copies custom message headers onto the request; some paths keep them in .headers.
    candidates = [getattr(request, HEADER, None)]
    headers = getattr(request, "headers", None)
    if isinstance(headers, dict):
        candidates.append(headers.get(HEADER))
    for value in candidates:
        if correlation.is_valid(value):
            return value
    return None


def _before_publish(sender: Any = None, headers: dict[str, Any] | None = None, **_: Any) -> None:
    cid = correlation.get()
    if cid is not None and headers is not None:
        headers.setdefault(HEADER, cid)  # an explicit apply_async(headers=...) value wins


def _task_prerun(sender: Any = None, task_id: str | None = None, task: Any = None, **_: Any) -> None:
    cid = incoming_correlation_id(getattr(task, "request", None))
    if cid is None:
        if correlation.get() is not None or not _generate_missing:
            return  # eager call inside a request: keep the caller's ID
        cid = correlation.make()
    if task_id is not None:
        _tokens[task_id] = correlation.set(cid)


def _task_postrun(sender: Any = None, task_id: str | None = None, **_: Any) -> None:
    token = _tokens.pop(task_id, None) if task_id is not None else None
    if token is None:
        return
    try:
        correlation.reset(token)
    except ValueError:  # created in another context (unusual pools): just clear
        correlation.set(None)


def _process_shutdown(**_: Any) -> None:
    shutdown_all()
