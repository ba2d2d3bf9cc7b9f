"""Correlation IDs tie together the events, log lines and outgoing calls of one request or task.

The ID lives in a :class:`contextvars.ContextVar`, so each thread and asyncio task sees its own."""

from __future__ import annotations

import contextvars
import re
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

__all__ = [
    "DJANGO_GUID_HEADER",
    "HEADER",
    "INCOMING_HEADERS",
    "TRACEPARENT_HEADER",
    "current_get",
    "from_environ",
    "from_headers",
    "get",
    "incoming",
    "incoming_from_environ",
    "is_valid",
    "make",
    "new",
    "parse_traceparent",
    "reset",
    "set",
    "use",
]

HEADER = "X-Correlation-ID"
DJANGO_GUID_HEADER = "Correlation-ID"  # what django-guid reads and sends by default
TRACEPARENT_HEADER = "traceparent"
# Headers that may carry an incoming request's correlation ID, in order of precedence; after them the
# trace id of a W3C traceparent.
INCOMING_HEADERS = (HEADER, DJANGO_GUID_HEADER)

# Conservative charset: safe to echo into HTTP headers and log lines without escaping (no spaces,
# commas, quotes or control characters), long enough for UUIDs and W3C trace ids.
_VALID = re.compile(r"[A-Za-z0-9._:-]{1,200}")
# W3C Trace Context: version-traceid-parentid-flags; later versions may append fields after flags.
_TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?")

_current: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "observatory_correlation_id", default=None
)


# The ContextVar's own get, for callers on a hot path (Tracker.track): one C call, no Python frame.
current_get = _current.get


def get() -> str | None:
    """Return the correlation ID of the current context, or None when none is set."""
    return _current.get()


def set(cid: str | None) -> contextvars.Token[str | None]:  # noqa: A001 - module API mirrors ContextVar
    """Set the correlation ID of the current context and return a token for :func:`reset`.

    Raise ValueError for a malformed ID; pass None to clear it.
    """
    if cid is not None and not is_valid(cid):
        raise ValueError(f"invalid correlation id: {cid!r}")
    return _current.set(cid)


def reset(token: contextvars.Token[str | None]) -> None:
    """Restore the correlation ID that was current before the :func:`set` that returned ``token``."""
    _current.reset(token)


def make() -> str:
    """Return a fresh UUID4 correlation ID without setting it."""
    return str(uuid.uuid4())


def new() -> str:
    """Make a fresh UUID4 correlation ID, set it in the current context and return it."""
    cid = make()
    _current.set(cid)
    return cid


@contextmanager
def use(cid: str | None = None) -> Iterator[str]:
    """Set ``cid`` (a fresh UUID4 when None) for the duration of the block, then restore the previous one."""
    if cid is None:
        cid = make()
    token = set(cid)
    try:
        yield cid
    finally:
        _current.reset(token)


def is_valid(value: object) -> bool:
    """Return whether ``value`` is an acceptable correlation ID: 1-200 chars of ``[A-Za-z0-9._:-]``."""
    return isinstance(value, str) and _VALID.fullmatch(value) is not None


def parse_traceparent(value: object) -> str | None:
    """Return the 32-hex trace id of a valid W3C ``traceparent`` header value, else None."""
    value = _as_text(value)
    if value is None:
        return None
    match = _TRACEPARENT.fullmatch(value.strip().lower())
    if match is None:
        return None
    version, trace_id, parent_id, _flags, rest = match.groups()
    if version == "ff" or (version == "00" and rest):
        return None
    if trace_id == "0" * 32 or parent_id == "0" * 16:
        return None
    return trace_id


def incoming(headers: Mapping[str, Any]) -> str | None:
    """Return the correlation ID an incoming request's headers carry, or None when none carries a valid one.

    The first valid one of ``X-Correlation-ID`` and ``Correlation-ID`` (django-guid's), else the trace id
    of a valid W3C ``traceparent``. Header names match case-insensitively.
    """
    for name in INCOMING_HEADERS:
        value = _as_text(_header(headers, name))
        if value is not None:
            value = value.strip()
            if is_valid(value):
                return value
    return parse_traceparent(_header(headers, TRACEPARENT_HEADER))


def incoming_from_environ(environ: Mapping[str, Any]) -> str | None:
    """Return the correlation ID a WSGI request's headers carry, or None (see :func:`incoming`)."""
    names = (*INCOMING_HEADERS, TRACEPARENT_HEADER)
    return incoming({name: environ.get("HTTP_" + name.upper().replace("-", "_")) for name in names})


def from_headers(headers: Mapping[str, Any]) -> str:
    """Pick the correlation ID for an incoming request from its headers.

    The one they carry (see :func:`incoming`), else a new UUID4 (so malformed or hostile values are never
    propagated).
    """
    return incoming(headers) or make()


def from_environ(environ: Mapping[str, Any]) -> str:
    """Pick the correlation ID for a WSGI request from its environ (see :func:`from_headers`)."""
    return incoming_from_environ(environ) or make()


def _header(headers: Mapping[str, Any], name: str) -> Any:
    # Fast path covers case-insensitive mappings (Django, requests) and exact spellings.
    value = headers.get(name)
    if value is not None:
        return value
    lowered = name.lower()
    for key, candidate in headers.items():
        if isinstance(key, str) and key.lower() == lowered:
            return candidate
    return None


def _as_text(value: object) -> str | None:
    # ASGI servers hand headers over as bytes; HTTP header bytes are latin-1 by definition.
    if isinstance(value, bytes):
        return value.decode("latin-1")
    return value if isinstance(value, str) else None
