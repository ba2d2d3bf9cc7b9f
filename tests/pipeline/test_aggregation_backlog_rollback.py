"""Rolling migration 0010 back (a deploy undone) gives the raw rows their `aggregated_at` again in one
pass over the table, not one per day the marks name: on a 90-day table a pass per day was hours of
downtime while every unit is stopped."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.ingest.models import AggregationBacklog, AggregationMark, RawEvent
from tests.conftest import ingest_migrations_latest, migrate_to

BEFORE = [("ingest", "0009_index_backlog")]
DAYS = 12


def _stored(*, event: str, at: datetime, waiting: bool = False) -> int:
    row = RawEvent.objects.create(
        event_id=uuid.uuid4(),
        service="gateway",
        stage="prod",
        event=event,
        timestamp=at,
        received_at=at,
        client_timestamp=at,
    )
    if waiting:
        AggregationBacklog.objects.create(raw_id=row.pk, client_timestamp=at, received_at=at)
    return row.pk


@pytest.mark.django_db(transaction=True)
def test_rolling_back_the_aggregation_backlog_updates_the_raw_rows_in_one_statement_whatever_the_days():
    first = datetime(2026, 10, 1, 12, tzinfo=UTC)
    expected = {}
    for n in range(DAYS):
        at = first + timedelta(days=n)
        marked = at + timedelta(minutes=n)
        # Two marks a day (two claims); the later one stands for the day's events.
        AggregationMark.objects.create(day=at.date(), marked_at=marked - timedelta(hours=1))
        AggregationMark.objects.create(day=at.date(), marked_at=marked)
        expected[f"day{n}"] = marked
    late = first + timedelta(days=DAYS)
    # Received after its day's mark (a replayed row stored as counted): never counted before it came.
    AggregationMark.objects.create(day=late.date(), marked_at=late - timedelta(hours=2))
    expected["after-mark"] = late
    unmarked = first + timedelta(days=DAYS + 1)  # a counted day whose marks retention compacted away
    expected["no-mark"] = unmarked
    for n in range(DAYS):
        _stored(event=f"day{n}", at=first + timedelta(days=n))
    _stored(event="after-mark", at=late)
    _stored(event="no-mark", at=unmarked)
    _stored(event="waiting", at=first, waiting=True)
    expected["waiting"] = None
    try:
        with CaptureQueriesContext(connection) as queries:
            migrate_to(BEFORE)

        updates = [q["sql"] for q in queries if q["sql"].lstrip().upper().startswith("UPDATE")]
        raw_updates = [sql for sql in updates if "ingest_rawevent" in sql.split("SET")[0]]
        assert len(raw_updates) == 1, raw_updates
        with connection.cursor() as cursor:
            cursor.execute("SELECT event, aggregated_at FROM ingest_rawevent")
            assert dict(cursor.fetchall()) == expected
    finally:
        migrate_to(ingest_migrations_latest())
