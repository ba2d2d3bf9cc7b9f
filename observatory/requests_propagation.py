"""Propagate the current correlation ID on outgoing ``requests`` calls as an ``X-Correlation-ID`` header.

Opt in process-wide with :func:`install`, or per session with :func:`session_with_correlation`."""

from __future__ import annotations

import functools
import threading
from typing import Any

import requests

from . import correlation

__all__ = ["CorrelationSession", "install", "is_installed", "session_with_correlation", "uninstall"]

_lock = threading.Lock()
_MARK = "_observatory_original"


def _stamp(request: requests.PreparedRequest) -> None:
    cid = correlation.get()
    # PreparedRequest headers are case-insensitive, so any spelling set by the caller counts.
    if cid is not None and correlation.HEADER not in request.headers:
        request.headers[correlation.HEADER] = cid


class CorrelationSession(requests.Session):
    """A ``requests.Session`` that adds ``X-Correlation-ID`` to each request it sends (see module doc)."""

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        """Add the header if missing, then send as usual."""
        _stamp(request)
        return super().send(request, **kwargs)


def session_with_correlation() -> CorrelationSession:
    """Return a new Session whose requests carry the current correlation ID."""
    return CorrelationSession()


def install() -> None:
    """Make every ``requests`` call in this process carry the current correlation ID (idempotent).

    Mechanism: ``requests.Session.send`` is wrapped once, process-wide. Module functions
    (``requests.get``), every Session and each redirect go through it, so each request gets
    ``X-Correlation-ID`` when a correlation ID is set and the request has no such header of its own
    (any spelling). :func:`uninstall` restores the original method.
    """
    with _lock:
        current = requests.Session.send
        if hasattr(current, _MARK):
            return
        original = current

        @functools.wraps(original)
        def send(
            self: requests.Session, request: requests.PreparedRequest, **kwargs: Any
        ) -> requests.Response:
            _stamp(request)
            return original(self, request, **kwargs)

        setattr(send, _MARK, original)
        requests.Session.send = send  # type: ignore[method-assign]


def uninstall() -> None:
    """Undo :func:`install` (no-op if it is not in effect)."""
    with _lock:
        original = getattr(requests.Session.send, _MARK, None)
        if original is not None:
            requests.Session.send = original  # type: ignore[method-assign]


def is_installed() -> bool:
    """Return whether :func:`install` is in effect."""
    return hasattr(requests.Session.send, _MARK)
