"""events_ingest stores what the unnest insert it replaced stored, column for column, notes included."""

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection

from apps.common.bulk import bulk_insert, bulk_insert_json
from apps.ingest import services
from apps.ingest.models import EVENT_COLUMNS, RawEvent
from apps.ingest.parsers import batch_from_body

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
# What services send, with everything that makes conform write a note, and values whose JSON text differs
# between encoders (1e16 is "1e+16" to json.dumps and "1e16" to msgspec): they must be stored the same.
BODY = r"""{"sent_at": "2026-11-26T11:00:00Z", "batch": [
  {"event": "search_made", "userId": 42, "time": "1764151200", "correlationId": "req-1",
   "properties": {"n": 10000000000000000000000000000001, "f": 1e16, "g": 4.48e-05, "z": -0.0, "h": 0.1,
                  "nested": {"list": [1, "two", null, true, {"deep": []}]}, "quote": "\"\\/"}},
  {"message": "T\u00e9l\u00e9charg\u00e9 \ud83d\udef0\ufe0f \u2028 line\u0000end", "level": "WARN",
   "shipped": "x", "timestamp": "2026-11-26T12:30:00+02:00"},
  {"event": "moved", "properties": {"region": "eu"}, "region": "us", "ts": 1764151200123},
  {"event": "empty", "properties": null, "timestamp": "2026-11-26T10:00:00"},
  {"event": "\u0000nul-key", "properties": {"k\u0000": "v\u0000"}, "user_id": " padded "}
]}"""
COLUMNS = [name for name in EVENT_COLUMNS if name != "service"]


def _stored(service: str) -> list[tuple]:
    """Return the rows of a service, as the database holds them (jsonb as its text), in insert order."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT "
            + ", ".join(f"{c}::text" if c in ("properties", "notes") else c for c in COLUMNS)
            + " FROM ingest_rawevent WHERE service = %s ORDER BY id",
            [service],
        )
        return cursor.fetchall()


def _ingest(api_key, monkeypatch, insert) -> None:
    monkeypatch.setattr(services, "bulk_insert_json", insert)
    batch = batch_from_body(BODY.encode())
    assert batch.raws is not None  # read by msgspec: conform gets each item's text
    result = services.events_ingest(
        items=batch.items,
        raws=batch.raws,
        api_key=api_key,
        received_at=NOW,
        sent_at=batch.sent_at,
        ingest_node="node-1",
    )
    assert result.accepted == 5 and not result.rejected


def test_the_json_insert_stores_what_the_unnest_insert_stored(make_key, monkeypatch):
    new_key, _ = make_key(service="json-path")
    old_key, _ = make_key(service="unnest-path")

    _ingest(new_key, monkeypatch, bulk_insert_json)
    _ingest(old_key, monkeypatch, bulk_insert)

    new, old = _stored("json-path"), _stored("unnest-path")
    assert len(new) == 5
    # event_ids made by the server differ; everything else is the same, notes included
    assert [row[1:] for row in new] == [row[1:] for row in old]
    assert any("NUL characters" in note for row in new for note in row[COLUMNS.index("notes")].split('", "'))
    assert RawEvent.objects.filter(service="json-path", properties__n=10**31 + 1).exists()


def test_the_json_insert_skips_what_is_stored_and_returns_the_new_ids(make_key):
    api_key, _ = make_key()
    stamp = NOW - timedelta(minutes=1)
    rows = [
        (
            event_id,
            "svc",
            "prod",
            "metric",
            name,
            stamp,
            NOW,
            "",
            "",
            "",
            "",
            {"x": 1},
            [],
            "n",
            stamp,
            api_key.pk,
        )
        for event_id, name in [
            ("6a0c3f0e-9f1e-4b7a-8a53-0f3a1c2d4e5f", "a"),
            ("0b2f5e1c-3d4a-4c6b-9e8f-1a2b3c4d5e6f", "b"),
        ]
    ]
    columns = services._INSERT_FIELDS

    first = services.raw_events_store(rows=rows, columns=columns)
    again = services.raw_events_store(rows=[*rows, (*rows[0][:4], "c", *rows[0][5:])], columns=columns)

    assert sorted(first) == sorted(RawEvent.objects.values_list("pk", flat=True))
    assert again == []  # the third row has the first one's event_id
    assert RawEvent.objects.get(event="a").properties == {"x": 1}
