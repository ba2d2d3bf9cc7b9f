"""Times read from PostgreSQL with the compiled loader are exactly what Django's own loader gives."""

from datetime import UTC, datetime, timedelta, timezone

import pytest
from django.db import connection
from django.db.backends.postgresql.psycopg_any import register_tzloader

from apps.ingest.models import RawEvent
from tests.factories import RawEventFactory

pytestmark = pytest.mark.skipif(connection.vendor != "postgresql", reason="the loader is PostgreSQL's")

TIMES_SQL = """
    SELECT t FROM (VALUES
        ('2026-12-02 10:11:12.123456+00'::timestamptz),
        ('2026-03-01 12:00:00.5+05:30'),
        ('1969-12-31 23:59:59.999999+00'),
        ('0044-03-15 12:00:00+00'),
        ('9999-12-31 23:59:59.999999+00'),
        ('2024-02-29 00:00:00-11'),
        (NULL)
    ) AS v(t)"""


def _read(register_django_loader: bool) -> list[datetime | None]:
    with connection.cursor() as cursor:
        if register_django_loader:
            register_tzloader(UTC, cursor.cursor)  # what Django itself would read with
        cursor.execute(TIMES_SQL)
        return [row[0] for row in cursor.fetchall()]


@pytest.mark.django_db
def test_times_read_equal_djangos_own_loader_including_their_time_zone():
    ours, djangos = _read(register_django_loader=False), _read(register_django_loader=True)
    assert ours == djangos
    assert [t.tzinfo for t in ours if t is not None] == [UTC] * 6
    assert ours[1] == datetime(2026, 3, 1, 6, 30, 0, 500000, tzinfo=UTC)
    assert ours[6] is None


@pytest.mark.django_db
def test_a_stored_event_reads_back_its_times_to_the_microsecond_in_utc():
    stamped = datetime(2026, 12, 2, 23, 59, 59, 999999, tzinfo=timezone(timedelta(hours=-3)))
    event = RawEventFactory(timestamp=stamped)
    read = RawEvent.objects.get(pk=event.pk)
    assert read.timestamp == stamped
    assert read.timestamp.tzinfo is UTC
    assert read.timestamp.isoformat() == "2026-12-03T02:59:59.999999+00:00"
