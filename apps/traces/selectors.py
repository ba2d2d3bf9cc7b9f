"""Reads for the trace viewer, on whichever search backend is configured."""

import contextvars
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import TypeVar

from .search import get_trace_backend
from .search.base import RequestPage, TraceBackend, TraceEvent, TraceQuery

SURROUNDING_LIMIT = 500
# Threads per process that run searches while the request's own thread writes to the database: one per
# request served at once is enough (gunicorn's sync workers serve one).
SEARCH_THREADS = 8

T = TypeVar("T")


def trail_get(*, correlation_id: str, meanwhile: Callable[[], object] | None = None) -> list[TraceEvent]:
    """Return one request's events in time order.

    `meanwhile` (the caller's audit write) runs on this thread and has finished when this returns; the
    search runs beside it when the backend does not need this thread's database connection.
    """
    backend = get_trace_backend()
    return _search_beside(backend, lambda: backend.trail(correlation_id), meanwhile)


def requests_search(
    *,
    query: TraceQuery,
    page: int = 1,
    per_page: int = 50,
    meanwhile: Callable[[], object] | None = None,
) -> RequestPage:
    """Return the requests matching a search, newest first (`meanwhile` as in `trail_get`)."""
    backend = get_trace_backend()
    return _search_beside(
        backend, lambda: backend.search_requests(query, page=page, per_page=per_page), meanwhile
    )


def user_requests(
    *,
    user_id: str,
    start: datetime | None = None,
    end: datetime | None = None,
    page: int = 1,
    per_page: int = 50,
    meanwhile: Callable[[], object] | None = None,
) -> RequestPage:
    """Return one user's requests, newest first (`meanwhile` as in `trail_get`)."""
    return requests_search(
        query=TraceQuery(user_id=user_id, start=start, end=end),
        page=page,
        per_page=per_page,
        meanwhile=meanwhile,
    )


def surrounding_events(*, service: str, at: datetime, seconds: int) -> list[TraceEvent]:
    """Return a service's events within ± seconds of a moment, whatever their correlation ID."""
    window = timedelta(seconds=seconds)
    return get_trace_backend().surrounding(
        service=service, start=at - window, end=at + window, limit=SURROUNDING_LIMIT
    )


def _search_beside(
    backend: TraceBackend, search: Callable[[], T], meanwhile: Callable[[], object] | None
) -> T:
    """Run `meanwhile` on this thread, then return `search()`: at the same time on a search thread when the
    backend leaves the database alone, one after the other otherwise. Either's exception propagates; when
    `meanwhile` fails the search's answer is dropped."""
    if meanwhile is None:
        return search()
    if backend.uses_database:  # Django's connection belongs to this thread
        meanwhile()
        return search()
    # The copied context carries the correlation ID to the search thread's log lines.
    future = _search_threads().submit(contextvars.copy_context().run, search)
    meanwhile()
    return future.result()


_threads_lock = threading.Lock()
_threads: dict[int, ThreadPoolExecutor] = {}


def _search_threads() -> ThreadPoolExecutor:
    """Return this process's search threads (made in the process itself: threads do not survive a fork)."""
    pid = os.getpid()
    with _threads_lock:
        pool = _threads.get(pid)
        if pool is None:
            _threads.clear()
            pool = _threads[pid] = ThreadPoolExecutor(SEARCH_THREADS, thread_name_prefix="trace-search")
        return pool
