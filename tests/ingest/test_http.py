"""The ingestion endpoints under gunicorn: bodies sent chunked, without a Content-Length, are read whole."""

import gzip
import json

import pytest
import requests
from django.db import connection

from apps.ingest.models import RawEvent
from tests.conftest import _database_url_for

pytestmark = pytest.mark.django_db(transaction=True)


def chunked(data: bytes, size: int = 1000):
    """A body requests sends with Transfer-Encoding: chunked (a generator has no length)."""
    for start in range(0, len(data), size):
        yield data[start : start + size]


@pytest.fixture
def portal(start_portal, make_key):
    _, key = make_key()
    server = start_portal(DATABASE_URL=_database_url_for(connection.settings_dict))
    return server.url, {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}


def test_chunked_bodies_are_read_whole_plain_and_gzip(portal):
    url, headers = portal
    batch = json.dumps({"batch": [{"event": "chunked", "properties": {"i": i}} for i in range(300)]}).encode()
    one = json.dumps({"event": "single", "message": "x" * 5000}).encode()

    plain = requests.post(url + "/api/v1/batch", data=chunked(batch), headers=headers, timeout=30)
    zipped = requests.post(
        url + "/api/v1/batch",
        data=chunked(gzip.compress(batch)),
        headers={**headers, "Content-Encoding": "gzip"},
        timeout=30,
    )
    single = requests.post(url + "/api/v1/events", data=chunked(one), headers=headers, timeout=30)

    assert plain.request.headers.get("Transfer-Encoding") == "chunked"
    assert "Content-Length" not in plain.request.headers
    assert plain.status_code == 202, plain.text
    assert plain.json() == {"accepted": 300, "duplicates": 0, "rejected": []}
    assert zipped.status_code == 202 and zipped.json()["accepted"] == 300
    assert single.status_code == 202, single.text
    assert RawEvent.objects.filter(event="chunked").count() == 600


def test_chunked_bodies_keep_the_limits(portal):
    url, headers = portal
    too_big = json.dumps([{"event": "e", "message": "x" * 2000} for _ in range(600)]).encode()
    bomb = gzip.compress(b"[" + b" " * (8 * 1024 * 1024) + b"]")

    over = requests.post(url + "/api/v1/batch", data=chunked(too_big, 64 * 1024), headers=headers, timeout=30)
    inflated = requests.post(
        url + "/api/v1/batch", data=chunked(bomb), headers={**headers, "Content-Encoding": "gzip"}, timeout=30
    )
    wrong_type = requests.post(
        url + "/api/v1/batch",
        data=chunked(b'[{"event": "e"}]'),
        headers={**headers, "Content-Type": "text/plain"},
        timeout=30,
    )

    assert over.status_code == 413, over.text
    assert inflated.status_code == 413 and "Decompressed body" in inflated.json()["detail"]
    assert wrong_type.status_code == 415
    assert RawEvent.objects.count() == 0
