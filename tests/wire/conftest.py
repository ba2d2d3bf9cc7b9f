"""Helpers for the wire-format tests: posting bodies the way foreign SDKs do, chunked ones included; the
portal under gunicorn for the real SDKs, and reading back what they sent."""

import base64
import io
import json
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from apps.ingest.models import AWAITING_INDEX, RawEvent
from tests.conftest import _database_url_for, wait_for


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


@pytest.fixture
def portal(start_portal, settings):
    """The portal under gunicorn, processing in-process: rollups and the trail are there once stored."""
    settings.TRACE_BACKEND = "apps.traces.search.database.DatabaseTraceBackend"
    return start_portal(
        DATABASE_URL=_database_url_for(connection.settings_dict), CELERY_BROKER_URL="", ELASTICSEARCH_URL=""
    )


@pytest.fixture
def reader(client, make_person):
    """The Django test client, signed in as someone who may read series and trails."""
    client.force_login(make_person("admin"))
    return client


def wait_until_processed(event_ids) -> None:
    """Wait until the portal has aggregated and indexed these events (in-process, after the commit)."""
    query = RawEvent.objects.aggregated().filter(event_id__in=list(event_ids)).exclude(AWAITING_INDEX)
    wait_for(lambda: query.count() == len(event_ids), timeout=30, message="the events to be processed")


def series_total(reader, *, event: str, service: str) -> float:
    now = timezone.now()
    response = reader.get(
        "/api/v1/metrics/series",
        {
            "event": event,
            "measure": "count",
            "interval": "hour",
            "from": (now - timedelta(hours=2)).isoformat(),
            "to": (now + timedelta(hours=1)).isoformat(),
            "breakdown": "service",
        },
    )
    assert response.status_code == 200, response.content
    return sum(p["v"] for s in response.json()["series"] if s["name"] == service for p in s["points"])


def trail(reader, cid: str) -> list[tuple]:
    response = reader.get(f"/api/v1/traces/{cid}")
    assert response.status_code == 200, response.content
    return [
        (e["service"], e["stage"], e["user_id"], e["correlation_id"], e["event"])
        for e in response.json()["events"]
    ]
