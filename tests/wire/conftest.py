"""Helpers for the wire-format tests: posting bodies the way foreign SDKs do, chunked ones included."""

import base64
import io
import json


def post(client, path, body=None, *, raw=None, headers=None, content_type="application/json"):
    """POST `body` as JSON (or `raw` bytes) with WSGI `headers`; return the response."""
    data = raw if raw is not None else json.dumps(body)
    return client.generic("POST", path, data, content_type=content_type, **(headers or {}))


def post_chunked(client, path, data: bytes, *, terminated=True, headers=None):
    """POST `data` as a server hands on a `Transfer-Encoding: chunked` body: no Content-Length, the
    de-chunked stream as wsgi.input (gunicorn marks its end with wsgi.input_terminated)."""
    environ = {
        "CONTENT_LENGTH": "",
        "CONTENT_TYPE": "application/json",
        "HTTP_TRANSFER_ENCODING": "chunked",
        "wsgi.input": io.BytesIO(data),
        **({"wsgi.input_terminated": True} if terminated else {}),
        **(headers or {}),
    }
    return client.generic("POST", path, b"", **environ)


def basic(key: str, password: str = "") -> dict[str, str]:
    """Return the WSGI header of Basic auth with `key` as the user (Segment's write key)."""
    token = base64.b64encode(f"{key}:{password}".encode()).decode()
    return {"HTTP_AUTHORIZATION": f"Basic {token}"}
