"""Ingestion bodies: read whole within the limits of DESIGN.md (gzip, chunked), then decoded by msgspec.

msgspec reads a batch in one pass and keeps each item's JSON text, so conform can size and scan an item
without encoding it again. It refuses the whole body for what refuses only one item here (a lone surrogate,
a number out of range) and stops at another nesting depth: whatever it does not take, the strict stdlib
parser reads instead, exactly as before (per-item refusals, or a 400 that names where the JSON is wrong).
"""

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import msgspec
from django.conf import settings
from rest_framework import exceptions
from rest_framework.parsers import BaseParser
from rest_framework.request import Request

from apps.common.jsonlimits import (
    PayloadTooLarge,
    declared_length,
    decode_content,
    loads_strict,
    read_limited,
)

from .conform import ConformError, clip, parse_timestamp, read_json_float, read_json_int, renderable

# A body or item with more brackets than this goes to the strict parser, so that both parsers never
# disagree on what is nested too deeply (each stops near the interpreter's recursion limit, not at the
# same depth). Events are at most 16 levels deep anyway.
FAST_MAX_BRACKETS = 500

_ENVELOPE = msgspec.json.Decoder(dict[str, msgspec.Raw] | list[msgspec.Raw])
_ITEMS = msgspec.json.Decoder(list[msgspec.Raw])
_VALUE = msgspec.json.Decoder()


class _NotFast(Exception):
    """The fast path does not take this body: the strict parser reads it and says what is wrong."""


_FAST_ERRORS = (msgspec.DecodeError, RecursionError, ConformError, _NotFast)


@dataclass(frozen=True)
class Batch:
    """The items of a batch, with each item's JSON text when msgspec read it, and the batch's sent_at."""

    items: list[Any]
    # Set when msgspec read the body: no lone surrogates, no NaN, every number in range (see conform).
    raws: list[bytes] | None
    sent_at: datetime | None = None


class IngestJSONParser(BaseParser):
    """JSON, optionally gzip, within the limits. The views read bodies with `read_body`; this parser names
    the media type for content negotiation and the OpenAPI document, and serves `request.data`."""

    media_type = "application/json"

    def parse(self, stream, media_type=None, parser_context=None):
        meta = parser_context["request"].META
        body = read_limited(
            stream, declared_length=declared_length(meta), limit=settings.INGEST_MAX_BODY_BYTES
        )
        return _strict(_decompressed(body, meta))


def read_body(request: Request) -> bytes | None:
    """Return the body, decompressed, within the limits (413 beyond); None when there is none.

    As DRF reads it (no Content-Length: no body; 415 unless the type is JSON), except that a body without
    Content-Length is read when the server ends the input stream itself (`wsgi.input_terminated`, which
    gunicorn sets), as it does for `Transfer-Encoding: chunked`.
    """
    meta = request.META
    length = declared_length(meta)
    if length is None:
        if not meta.get("wsgi.input_terminated"):
            return None
        body = read_limited(meta["wsgi.input"], declared_length=None, limit=settings.INGEST_MAX_BODY_BYTES)
        if not body:
            return None
        _check_media_type(request)
    else:
        _check_media_type(request)
        body = read_limited(request._request, declared_length=length, limit=settings.INGEST_MAX_BODY_BYTES)
    return _decompressed(body, meta)


def batch_from_body(body: bytes | None) -> Batch:
    """Return the batch in `{"batch": [...], "sent_at": ...}` or a bare array (400 or 413 when it is not)."""
    if body is not None and body.strip():
        try:
            return _fast_batch(body)
        except _FAST_ERRORS:
            pass
    return _strict_batch(_strict(body))


def event_from_body(body: bytes | None) -> tuple[dict[str, Any], bytes | None]:
    """Return one event (400 unless it is a JSON object) and its JSON text when msgspec read it."""
    if body is not None and body.strip() and _brackets(body) <= FAST_MAX_BRACKETS:
        try:
            item = _VALUE.decode(body)
        except _FAST_ERRORS:
            item = None
        if isinstance(item, dict):
            return item, body
    data = _strict(body)
    if not isinstance(data, dict):
        raise exceptions.ParseError("Send one event as a JSON object (for many, use /api/v1/batch).")
    return data, None


def _shown_keys(keys: list[str], limit: int = 5) -> str:
    """Name some keys in an error: clipped, and with lone surrogates escaped so that the answer renders."""
    shown = ", ".join(renderable(clip(key)) for key in keys[:limit])
    return shown + (f" and {len(keys) - limit} more" if len(keys) > limit else "")


def _check_media_type(request: Request) -> None:
    if request.negotiator.select_parser(request, request.parsers) is None:
        raise exceptions.UnsupportedMediaType(request.content_type)


def _decompressed(body: bytes, meta: dict) -> bytes:
    return decode_content(
        body, encoding=meta.get("HTTP_CONTENT_ENCODING", ""), limit=settings.INGEST_MAX_DECOMPRESSED_BYTES
    )


def _brackets(raw: bytes) -> int:
    return raw.count(b"{") + raw.count(b"[")


def _fast_batch(body: bytes) -> Batch:
    """Read a well-formed batch with msgspec; raise one of _FAST_ERRORS for anything else (the strict
    path then reads the body again and answers exactly as it always has).

    Two passes: the envelope with each item's text (Raw), then every value at once.
    """
    top = _ENVELOPE.decode(body)
    if isinstance(top, dict) and ("batch" not in top or not top.keys() <= {"batch", "sent_at"}):
        raise _NotFast
    raws = _ITEMS.decode(top["batch"]) if isinstance(top, dict) else top
    if not raws or len(raws) > settings.INGEST_MAX_BATCH_EVENTS:
        raise _NotFast
    texts = [bytes(raw) for raw in raws]
    if _brackets(body) > FAST_MAX_BRACKETS and any(_brackets(text) > FAST_MAX_BRACKETS for text in texts):
        raise _NotFast
    data = _VALUE.decode(body)
    if isinstance(data, list):
        return Batch(data, texts)
    sent_at = data.get("sent_at")
    return Batch(data["batch"], texts, None if sent_at is None else parse_timestamp(sent_at))


def _strict(body: bytes | None) -> Any:
    # A number out of range refuses only its item (conform), not every event of the batch.
    if body is None:
        return {}
    return loads_strict(body, parse_float=read_json_float, parse_int=read_json_int)


def _strict_batch(data: Any) -> Batch:
    """Return the batch of a body the stdlib parser read: items, and sent_at (400 when it is not a time)."""
    sent_at = None
    if isinstance(data, dict):
        unknown = sorted(set(data) - {"batch", "sent_at"})
        if "batch" not in data or unknown:
            hint = f" (unexpected keys: {_shown_keys(unknown)})" if unknown else ""
            raise exceptions.ParseError('Send {"batch": [...], "sent_at": ...} or a JSON array' + hint + ".")
        items = data["batch"]
        if data.get("sent_at") is not None:
            try:
                sent_at = parse_timestamp(data["sent_at"])
            except ConformError as exc:
                raise exceptions.ParseError(f"sent_at: {exc.message}") from None
    elif isinstance(data, list):
        items = data
    else:
        raise exceptions.ParseError('Send {"batch": [...], "sent_at": ...} or a JSON array.')
    if not isinstance(items, list):
        raise exceptions.ParseError("batch must be a JSON array of events.")
    if not items:
        raise exceptions.ParseError("batch is empty.")
    if len(items) > settings.INGEST_MAX_BATCH_EVENTS:
        raise PayloadTooLarge(
            f"batch has {len(items)} events; the limit is {settings.INGEST_MAX_BATCH_EVENTS} per request."
        )
    return Batch(items, None, sent_at)
