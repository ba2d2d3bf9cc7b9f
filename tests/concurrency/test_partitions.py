"""Partitions made ahead by two runs at once (beat's `ensure_partitions` and a deploy's, say): each day made
once, neither run fails."""

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection, transaction

from apps.ingest import partitions
from apps.lifecycle.services import partitions_maintain

from .conftest import run_in_thread, wait_until_blocked

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="partitions are PostgreSQL's"),
]

NOW = datetime(2031, 6, 1, 12, tzinfo=UTC)


@pytest.fixture
def days_ahead(settings):
    settings.PARTITION_DAYS_AHEAD = 1
    days = [(NOW + timedelta(days=offset)).date() for offset in (-1, 0, 1)]
    yield days
    for day in days:
        if day in partitions.day_partitions():
            with transaction.atomic():
                partitions.partition_detach(partitions.partition_name(day))
    partitions.detached_drop()


def test_two_runs_making_partitions_ahead_at_once(days_ahead):
    assert not set(days_ahead) & set(partitions.day_partitions())
    with transaction.atomic():
        with connection.cursor() as cursor:  # an insert into the default partition, not yet committed
            cursor.execute(f"LOCK TABLE {partitions.DEFAULT_PARTITION} IN ROW EXCLUSIVE MODE")
        runs = [run_in_thread(lambda: partitions_maintain(now=NOW)) for _ in range(2)]
        wait_until_blocked(2)
    for thread, _ in runs:
        thread.join(10)

    assert [outcome.error for _, outcome in runs] == [None, None]
    made = sorted(day for _, outcome in runs for day in outcome.value["made"])
    assert made == [day.isoformat() for day in days_ahead]
    assert set(days_ahead) <= set(partitions.day_partitions())
