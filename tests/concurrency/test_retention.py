"""Retention run twice at once (beat's task and an operator's `apply_retention`): each day is dropped once,
counted once, and neither run fails."""

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection, transaction
from django.utils import timezone

from apps.ingest import partitions
from apps.ingest.models import RawEvent
from apps.ingest.services import events_ingest
from apps.lifecycle.services import RETENTION_LOCK, RetentionRunning, retention_apply
from apps.pipeline.services import aggregate_chunk
from apps.traces.search import _backend_for
from tests.conftest import wait_for

from .conftest import blocked_sessions, run_in_thread, wait_until_blocked

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="partitions are PostgreSQL's"),
]


@pytest.fixture
def database_search(settings):
    settings.TRACE_BACKEND = "apps.traces.search.database.DatabaseTraceBackend"
    _backend_for.cache_clear()
    yield
    _backend_for.cache_clear()


def test_two_retention_runs_at_once_drop_and_count_an_old_day_once(make_key, database_search):
    api_key, _ = make_key(service="gateway")
    now = timezone.now()
    old_day = (now - timedelta(days=100)).date()
    partitions.partition_create(old_day)
    items = [
        {
            "event": "seen",
            "timestamp": datetime(old_day.year, old_day.month, old_day.day, h, tzinfo=UTC).isoformat(),
        }
        for h in range(5)
    ]
    ids = events_ingest(items=items, api_key=api_key, received_at=now).stored_ids
    assert aggregate_chunk(event_ids=ids).done == 5

    with transaction.atomic():
        with connection.cursor() as cursor:  # a long read of raw events: the first run queues for the table
            cursor.execute(f"LOCK TABLE {partitions.PARENT} IN ACCESS SHARE MODE")
        first = run_in_thread(lambda: retention_apply(now=now))
        wait_until_blocked(1)
        second = run_in_thread(lambda: retention_apply(now=now))
        # The second run queues behind the same lock, or is refused at once.
        wait_for(lambda: blocked_sessions() >= 2 or not second[0].is_alive(), timeout=4, interval=0.01)
    for thread, _ in (first, second):
        thread.join(10)

    assert first[1].error is None
    assert first[1].value.raw_partitions_dropped == [old_day.isoformat()]
    assert first[1].value.raw_events_deleted == 5
    if second[1].error is not None:  # refused: says so
        assert isinstance(second[1].error, RetentionRunning), second[1].error
        assert "in progress" in str(second[1].error)
    else:  # or ran, and found nothing more to drop or count
        assert second[1].value.raw_partitions_dropped == [] and second[1].value.raw_events_deleted == 0
    assert not RawEvent.objects.exists() and old_day not in partitions.day_partitions()


def test_apply_retention_while_another_run_is_in_progress_says_so(database_search):
    from django.core.management import CommandError, call_command

    with connection.cursor() as cursor:  # a run in progress elsewhere
        cursor.execute("SELECT pg_advisory_lock(%s)", [RETENTION_LOCK])
    try:
        thread, outcome = run_in_thread(lambda: call_command("apply_retention"))
        thread.join(5)
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s)", [RETENTION_LOCK])

    assert isinstance(outcome.error, CommandError)
    assert str(outcome.error) == "another retention run is in progress; nothing was deleted by this one"
