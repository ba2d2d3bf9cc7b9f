"""Strict, bounded JSON reading for request bodies: size caps, gzip with a decompressed cap, no NaN."""

import json
import math
import zlib
from collections.abc import Callable
from typing import Any

from rest_framework import exceptions, status


class PayloadTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "Request body too large."
    default_code = "payload_too_large"


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON (NaN and Infinity are refused)")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text[:40]} is out of range")
    return value


def declared_length(meta: dict) -> int | None:
    """Return the request's Content-Length, or None when absent or malformed."""
    try:
        return int(meta.get("CONTENT_LENGTH") or 0) or None
    except ValueError:
        return None


def read_limited(stream, *, declared_length: int | None, limit: int) -> bytes:
    """Read at most `limit` bytes from a request stream; 413 when the body is longer."""
    if declared_length is not None and declared_length > limit:
        raise PayloadTooLarge(f"Request body is {declared_length} bytes; the limit is {limit} bytes.")
    data = stream.read(limit + 1) if stream is not None else b""
    if len(data) > limit:
        raise PayloadTooLarge(f"Request body is over the limit of {limit} bytes.")
    return data


def decode_content(data: bytes, *, encoding: str, limit: int) -> bytes:
    """Undo a Content-Encoding (gzip or identity), refusing output larger than `limit` (gzip bombs)."""
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return data
    if encoding not in ("gzip", "x-gzip"):
        raise exceptions.UnsupportedMediaType(
            f"Content-Encoding {encoding}",
            detail=f"Content-Encoding {encoding!r} is not supported; use gzip.",
        )
    # A gzip body may hold several members, one after the other (RFC 1952): the body is all of them. Reading
    # only the first would lose the rest without a word (two OTLP protobuf exports concatenated still decode).
    out = bytearray()
    rest = data
    while rest:
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            out += inflater.decompress(rest, limit + 1 - len(out))
        except zlib.error as exc:
            raise exceptions.ParseError(f"Body is not valid gzip: {exc}") from exc
        if len(out) > limit or inflater.unconsumed_tail:
            raise PayloadTooLarge(f"Decompressed body is over the limit of {limit} bytes.")
        if not inflater.eof:
            raise exceptions.ParseError("Body is truncated gzip.")
        rest = inflater.unused_data
    return bytes(out)


def loads_strict(
    data: bytes,
    *,
    parse_float: Callable[[str], Any] = _finite_float,
    parse_int: Callable[[str], Any] | None = None,
) -> Any:
    """Parse JSON refusing NaN/Infinity and overflowing numbers; a clear 400 for anything malformed.

    `parse_float`/`parse_int` may keep out-of-range numbers instead (ingestion refuses only their item).
    """
    if not data.strip():
        raise exceptions.ParseError("Request body is empty; send a JSON document.")
    try:
        return json.loads(data, parse_constant=_refuse_constant, parse_float=parse_float, parse_int=parse_int)
    except RecursionError:
        raise exceptions.ParseError("JSON is nested too deeply.") from None
    except UnicodeDecodeError as exc:
        raise exceptions.ParseError(f"Body is not UTF-8 text: {exc.reason} at byte {exc.start}.") from None
    except json.JSONDecodeError as exc:
        raise exceptions.ParseError(
            f"Malformed JSON: {exc.msg} at line {exc.lineno} column {exc.colno}."
        ) from None
    except ValueError as exc:
        raise exceptions.ParseError(f"Malformed JSON: {exc}.") from None
