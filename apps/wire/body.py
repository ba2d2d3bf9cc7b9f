"""Read a foreign SDK's request body whole: by Content-Length or chunked, gzip however announced, bounded.

JSON bodies are decoded here too (`json_body`); OTLP's protobuf and JSON bodies are decoded by `otlp`.

The wire views read their body here rather than through a DRF parser: Django gives a request without a
Content-Length an empty body and DRF then never calls its parser, while analytics exporters do send
`Transfer-Encoding: chunked` with no length. Under a server that de-chunks and ends `wsgi.input` (gunicorn
sets `wsgi.input_terminated`), that stream is read directly, within the same limits.
"""

from typing import Any

from django.conf import settings
from rest_framework import exceptions, status
from rest_framework.request import Request

from apps.common.jsonlimits import declared_length, decode_content, loads_strict, read_limited
from apps.ingest.conform import read_json_float, read_json_int

GZIP_MAGIC = b"\x1f\x8b"
# posthog-js sends beacons as text/plain; no Content-Type at all is read as JSON too.
JSON_MEDIA_TYPES = ("application/json", "text/plain", "")
_CACHE = "wire_json_body"


class LengthRequired(exceptions.APIException):
    status_code = status.HTTP_411_LENGTH_REQUIRED
    default_detail = "Send a Content-Length, or a chunked body to a server that marks its end."
    default_code = "length_required"


def json_body(request: Request) -> Any:
    """Return the request's JSON body, read and decoded on the first call (later calls return it again).

    413 past WIRE_MAX_BODY_BYTES (or WIRE_MAX_DECOMPRESSED_BYTES once inflated), 415 for a content type
    or encoding that is not JSON or gzip, 400 for anything malformed. Gzip is recognised by its
    Content-Encoding or by its magic bytes (posthog-js marks it in the query string instead; JSON never
    starts with 0x1f).
    """
    cached = request.__dict__.get(_CACHE)
    if cached is not None:
        return cached[0]
    media_type = media_type_of(request)
    if media_type not in JSON_MEDIA_TYPES:
        raise exceptions.UnsupportedMediaType(
            media_type, detail=f"Content-Type {media_type!r} is not supported; send application/json."
        )
    # A number out of range refuses only its event (conform), not the whole body.
    value = loads_strict(raw_body(request), parse_float=read_json_float, parse_int=read_json_int)
    request.__dict__[_CACHE] = (value,)
    return value


def media_type_of(request: Request) -> str:
    """Return the request's Content-Type without its parameters, in lowercase ("" when none)."""
    return request.META.get("CONTENT_TYPE", "").partition(";")[0].strip().lower()


def raw_body(request: Request) -> bytes:
    """Return the request's body, read whole and decompressed, whatever it holds (see `json_body`)."""
    stream, length = _body_stream(request)
    raw = read_limited(stream, declared_length=length, limit=settings.WIRE_MAX_BODY_BYTES)
    encoding = request.META.get("HTTP_CONTENT_ENCODING", "")
    if not encoding.strip() and raw.startswith(GZIP_MAGIC):
        encoding = "gzip"
    return decode_content(raw, encoding=encoding, limit=settings.WIRE_MAX_DECOMPRESSED_BYTES)


def _body_stream(request: Request) -> tuple[Any, int | None]:
    """Return (stream, declared length): the request itself, or for a chunked body the server's input."""
    meta = request.META
    length = declared_length(meta)
    if length is None and "chunked" in meta.get("HTTP_TRANSFER_ENCODING", "").lower():
        if not meta.get("wsgi.input_terminated"):
            # Reading an unterminated stream to its end would wait for the client to hang up.
            raise LengthRequired()
        return meta["wsgi.input"], None
    return request, length  # DRF's Request reads through Django's, bounded by the Content-Length
