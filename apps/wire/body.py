"""Read a foreign SDK's request body whole: by Content-Length or chunked, gzip however announced, bounded.

JSON bodies are decoded here too (`json_body`); OTLP's protobuf and JSON bodies are decoded by `otlp`.

The wire views read their body here rather than through a DRF parser: Django gives a request without a
Content-Length an empty body and DRF then never calls its parser, while analytics exporters do send
`Transfer-Encoding: chunked` with no length. Under a server that de-chunks and ends `wsgi.input` (gunicorn
sets `wsgi.input_terminated`), that stream is read directly, within the same limits.
"""

import base64
import binascii
from typing import Any
from urllib.parse import parse_qsl

from django.conf import settings
from rest_framework import exceptions, status
from rest_framework.request import Request

from apps.common.jsonlimits import declared_length, decode_content, loads_strict, read_limited
from apps.ingest.conform import read_json_float, read_json_int

GZIP_MAGIC = b"\x1f\x8b"
# posthog-js sends beacons as text/plain; no Content-Type at all is read as JSON too.
JSON_MEDIA_TYPES = ("application/json", "text/plain", "")
# posthog-js's `compression=base64` (and older SDKs' plain JSON) comes as a form: `data=<the body>`.
FORM_MEDIA_TYPE = "application/x-www-form-urlencoded"
_CACHE = "wire_json_body"


class LengthRequired(exceptions.APIException):
    status_code = status.HTTP_411_LENGTH_REQUIRED
    default_detail = "Send a Content-Length, or a chunked body to a server that marks its end."
    default_code = "length_required"


def json_body(request: Request, *, posthog_encodings: bool = False) -> Any:
    """Return the request's JSON body, read and decoded on the first call (later calls return it again).

    413 past WIRE_MAX_BODY_BYTES (or WIRE_MAX_DECOMPRESSED_BYTES once inflated), 415 for a content type
    or encoding that is not JSON or gzip, 400 for anything malformed. Gzip is recognised by its
    Content-Encoding or by its magic bytes (posthog-js marks it in the query string instead; JSON never
    starts with 0x1f).

    `posthog_encodings`: also read what PostHog's endpoints read and posthog-js sends, a form whose `data`
    field holds the body, and base64 (`compression=base64`, in the query string or the form).
    """
    cached = request.__dict__.get(_CACHE)
    if cached is not None:
        return cached[0]
    media_type = media_type_of(request)
    readable = (*JSON_MEDIA_TYPES, FORM_MEDIA_TYPE) if posthog_encodings else JSON_MEDIA_TYPES
    if media_type not in readable:
        raise exceptions.UnsupportedMediaType(
            media_type, detail=f"Content-Type {media_type!r} is not supported; send application/json."
        )
    data = raw_body(request)
    if posthog_encodings:
        data = _posthog_payload(request, data, form=media_type == FORM_MEDIA_TYPE)
    # A number out of range refuses only its event (conform), not the whole body.
    value = loads_strict(data, parse_float=read_json_float, parse_int=read_json_int)
    request.__dict__[_CACHE] = (value,)
    return value


def _posthog_payload(request: Request, data: bytes, *, form: bool) -> bytes:
    """Return the JSON text of a PostHog body: a form's `data` field, base64-decoded when it is base64."""
    compression = request.query_params.get("compression", "")
    if form:
        try:
            fields = dict(parse_qsl(data.decode("ascii"), keep_blank_values=True))
        except (UnicodeDecodeError, ValueError):
            raise exceptions.ParseError("A form body must be URL-encoded ASCII text.") from None
        if "data" not in fields:
            # A form without the body in `data` is not something a PostHog SDK sends.
            raise exceptions.UnsupportedMediaType(
                FORM_MEDIA_TYPE, detail="A form body must carry the events in its data field."
            )
        compression = compression or fields.get("compression", "")
        text = fields["data"]
        # Older senders base64 the form without saying so; JSON never starts like base64 does.
        if compression.strip().lower() == "base64" or not text.lstrip().startswith(("{", "[")):
            return _base64_decoded(text)
        return text.encode()
    if compression.strip().lower() == "base64":
        return _base64_decoded(data.decode("ascii", errors="replace"))
    return data


def _base64_decoded(text: str) -> bytes:
    # A `+` a sender left unescaped reads as a space in a form; padding is often dropped (as PostHog allows).
    cleaned = "".join(text.replace(" ", "+").split())
    try:
        return base64.b64decode(cleaned + "=" * (-len(cleaned) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise exceptions.ParseError("The body is not valid base64 (compression=base64).") from None


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
