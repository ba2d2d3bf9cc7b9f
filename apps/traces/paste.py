"""The one paste box: a pasted value recognised as a correlation ID, a trace ID, a user ID or text.

Support pastes whatever a ticket holds without saying what it is. The checks run in that order and the
first that finds an event wins, so a value that is both a correlation ID and a user ID opens the trail.
Each check is one existence look-up on the search backend; what no check finds is searched as text.
"""

import re
from dataclasses import dataclass

from django.db import models

from apps.ingest.conform import MAX_NAME_LENGTH
from observatory.correlation import parse_traceparent

from . import selectors


class LookedUpAs(models.TextChoices):
    """What a pasted value was taken for; the label is what the pages say."""

    CORRELATION_ID = "correlation_id", "correlation ID"
    TRACE_ID = "trace_id", "trace ID"
    USER_ID = "user_id", "user ID"
    TEXT = "text", "text"


_TRACE_ID = re.compile(r"[0-9a-f]{32}")
# A traceparent is often copied with its header name, as it appears in a log line or a browser's devtools.
_HEADER_NAME = re.compile(r"\s*traceparent\s*:\s*", re.IGNORECASE)
# What conform refuses in an ID, so a value holding one cannot be a stored ID.
_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")


def trace_id_in(value: str) -> str:
    """Return the trace ID a pasted value names, in the lowercase form ingestion stores as the correlation
    ID: 32 hex digits in either case, or a W3C traceparent (with or without its header name); else ""."""
    candidate = _HEADER_NAME.sub("", value, count=1) if _HEADER_NAME.match(value) else value
    candidate = candidate.strip()
    lowered = candidate.lower()
    if _TRACE_ID.fullmatch(lowered):
        # All zeros is the invalid trace ID of W3C and OTLP: nothing stores it as a trace.
        return "" if lowered == "0" * 32 else lowered
    return parse_traceparent(candidate) or ""


def could_be_id(value: str) -> bool:
    """Return whether ingestion could have stored `value` as a correlation or user ID (at most 200
    characters, none of them a control character such as a line break)."""
    return 0 < len(value) <= MAX_NAME_LENGTH and not _CONTROL_CHARS.search(value)


@dataclass(frozen=True)
class Attempt:
    """One look-up made for a pasted value: as what, and with which value (a traceparent's trace ID)."""

    kind: LookedUpAs
    value: str


@dataclass(frozen=True)
class Recognition:
    """What a pasted value turned out to be.

    `found` is the kind of ID some event has and `value` that ID (a trace ID in its stored form); `found`
    is None when no ID matched and the value is to be searched as text. `tried` lists the look-ups in order,
    the text search last when it is due.
    """

    found: LookedUpAs | None
    value: str
    tried: tuple[Attempt, ...]

    @property
    def ids_tried(self) -> tuple[Attempt, ...]:
        return tuple(a for a in self.tried if a.kind != LookedUpAs.TEXT)


def paste_recognise(*, value: str) -> Recognition:
    """Return what a pasted (already trimmed) value is: the first of correlation ID, trace ID and user ID
    that an event has, else text."""
    tried: list[Attempt] = []

    def found(kind: LookedUpAs, as_id: str) -> Recognition:
        return Recognition(found=kind, value=as_id, tried=tuple(tried))

    if could_be_id(value):
        tried.append(Attempt(LookedUpAs.CORRELATION_ID, value))
        if selectors.correlation_exists(correlation_id=value):
            return found(LookedUpAs.CORRELATION_ID, value)
        trace_id = trace_id_in(value)
        if trace_id:
            tried.append(Attempt(LookedUpAs.TRACE_ID, trace_id))
            # A trace ID already in stored form was looked up one step earlier: no second query.
            if trace_id != value and selectors.correlation_exists(correlation_id=trace_id):
                return found(LookedUpAs.TRACE_ID, trace_id)
        tried.append(Attempt(LookedUpAs.USER_ID, value))
        if selectors.user_exists(user_id=value):
            return found(LookedUpAs.USER_ID, value)
    tried.append(Attempt(LookedUpAs.TEXT, value))
    return Recognition(found=None, value=value, tried=tuple(tried))
