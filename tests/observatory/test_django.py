"""Django middleware, exercised through Django's test clients in a subprocess with minimal settings.

A subprocess keeps these tests independent of whichever DJANGO_SETTINGS_MODULE the suite runs under.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest

import observatory

pytest.importorskip("django")

SCRIPT = textwrap.dedent(
    """
    import asyncio, json, sys
    import django
    from django.conf import settings

    settings.configure(
        SECRET_KEY="test", ALLOWED_HOSTS=["testserver"], ROOT_URLCONF=__name__, INSTALLED_APPS=[],
        MIDDLEWARE=["observatory.django.CorrelationIdMiddleware"], LOGGING_CONFIG=None,
    )
    django.setup()

    from asgiref.sync import iscoroutinefunction
    from django.http import FileResponse, JsonResponse, StreamingHttpResponse
    from django.test import AsyncClient, Client
    from django.urls import path

    from observatory import correlation
    from observatory.django import CorrelationIdMiddleware

    def view(request):
        response = JsonResponse({"context": correlation.get(), "attr": request.correlation_id})
        response["X-Correlation-ID"] = "view-made"  # must be replaced by the middleware
        return response

    async def async_view(request):
        return JsonResponse({"context": correlation.get(), "attr": request.correlation_id})

    def broken(request):
        raise RuntimeError("boom")

    def stream(request):
        # The body is made while the server iterates it, after the middleware returned.
        return StreamingHttpResponse(str(correlation.get()).encode() + b";" for _ in range(2))

    async def async_stream(request):
        async def parts():
            for _ in range(2):
                yield str(correlation.get()).encode() + b";"

        return StreamingHttpResponse(parts())

    def file(request):
        import io
        return FileResponse(io.BytesIO(b"file body"))

    urlpatterns = [
        path("sync", view), path("async", async_view), path("broken", broken), path("stream", stream),
        path("async-stream", async_stream), path("file", file),
    ]

    async def read_async_stream():
        response = await AsyncClient().get("/async-stream", headers={"X-Correlation-ID": "dj-astream"})
        return b"".join([part async for part in response.streaming_content]).decode()

    PRECEDENCE_HEADERS = json.loads(sys.argv[1])

    def summary(response):
        body = response.json() if response.status_code == 200 else None
        return {"status": response.status_code, "header": response.headers.get("X-Correlation-ID"),
                "body": body}

    client = Client(raise_request_exception=False)
    out = {
        "django": django.get_version(),
        "valid": summary(client.get("/sync", headers={"X-Correlation-ID": "dj-1"})),
        "malformed": summary(client.get("/sync", headers={"X-Correlation-ID": "bad id"})),
        "traceparent": summary(client.get(
            "/sync", headers={"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"})),
        "error": summary(client.get("/broken", headers={"X-Correlation-ID": "dj-err"})),
        "precedence": [summary(client.get("/sync", headers=headers)) for headers in PRECEDENCE_HEADERS],
        "async": summary(asyncio.run(AsyncClient().get("/async", headers={"X-Correlation-ID": "dj-async"}))),
        "stream": b"".join(client.get("/stream", headers={"X-Correlation-ID": "dj-stream"})).decode(),
        "async_stream": asyncio.run(read_async_stream()),
        "file": b"".join(client.get("/file").streaming_content).decode(),
        "after": correlation.get(),
    }

    async def inner(request):
        return None

    out["async_capable"] = iscoroutinefunction(CorrelationIdMiddleware(inner))
    out["sync_stays_sync"] = not iscoroutinefunction(CorrelationIdMiddleware(lambda request: None))
    print(json.dumps(out))
    """
)


@pytest.fixture(scope="module")
def django_run(precedence_cases) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "OBSERVATORY_"))}
    package_parent = str(Path(observatory.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_parent, env.get("PYTHONPATH")]))
    precedence_headers = json.dumps([headers for headers, _ in precedence_cases])
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, precedence_headers],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_incoming_header_is_used_everywhere(django_run):
    assert django_run["valid"] == {
        "status": 200,
        "header": "dj-1",
        "body": {"context": "dj-1", "attr": "dj-1"},
    }


def test_malformed_header_is_replaced_with_a_uuid4(django_run):
    run = django_run["malformed"]
    assert uuid.UUID(run["header"]).version == 4
    assert run["body"] == {"context": run["header"], "attr": run["header"]}


def test_traceparent_trace_id_is_used(django_run):
    assert django_run["traceparent"]["header"] == "4bf92f3577b34da6a3ce929d0e0e4736"


def test_header_precedence(django_run, precedence_cases, precedence_case):
    # X-Correlation-ID, then Correlation-ID (django-guid's), then traceparent's trace id, else a new UUID4.
    expected = precedence_case[1]
    run = django_run["precedence"][precedence_cases.index(precedence_case)]
    assert run["status"] == 200
    assert run["body"] == {"context": run["header"], "attr": run["header"]}
    if expected is None:
        assert uuid.UUID(run["header"]).version == 4
    else:
        assert run["header"] == expected


def test_error_responses_carry_the_header(django_run):
    assert django_run["error"]["status"] == 500
    assert django_run["error"]["header"] == "dj-err"


def test_async_stack(django_run):
    assert django_run["async"] == {
        "status": 200,
        "header": "dj-async",
        "body": {"context": "dj-async", "attr": "dj-async"},
    }
    assert django_run["async_capable"] and django_run["sync_stays_sync"]


def test_context_is_restored_after_requests(django_run):
    assert django_run["after"] is None


def test_streaming_bodies_are_made_with_the_requests_id(django_run):
    # Sync and async iterators alike: the view's generator runs after the middleware returned.
    assert django_run["stream"] == "dj-stream;dj-stream;"
    assert django_run["async_stream"] == "dj-astream;dj-astream;"
    assert django_run["file"] == "file body"  # a FileResponse keeps its file (and the server's sendfile)
