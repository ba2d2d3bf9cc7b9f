"""The aggregation state lives in AggregationBacklog, not on the raw rows: ingestion writes a row with each
event, the claim deletes it; what deletes a raw event deletes its row; the migration carries the old state
over (and back)."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.db.models import Sum
from django.utils import timezone

from apps.accounts.actors import Actor
from apps.ingest.models import AggregationBacklog, AggregationMark, RawEvent
from apps.ingest.services import events_ingest
from apps.lifecycle.services import user_purge
from apps.metrics.models import RollupCount
from apps.pipeline.services import aggregate_chunk, process_chunk
from tests.conftest import ingest_migrations_latest, migrate_to

BEFORE = [("ingest", "0009_index_backlog")]


def test_each_stored_event_waits_in_the_backlog_once_and_leaves_it_when_counted(make_key):
    api_key, _ = make_key(service="gateway")
    now = timezone.now()
    items = [{"event": "a", "event_id": str(uuid.uuid4())} for _ in range(3)]
    ids = events_ingest(items=items, api_key=api_key, received_at=now).stored_ids
    again = events_ingest(items=items, api_key=api_key, received_at=now)  # a re-send: stored once

    assert again.accepted == 0
    assert sorted(AggregationBacklog.objects.values_list("raw_id", flat=True)) == sorted(ids)
    assert aggregate_chunk(event_ids=ids).done == 3
    assert not AggregationBacklog.objects.exists()
    assert aggregate_chunk(event_ids=ids).done == 0  # claimed once: a second run counts nothing
    assert RollupCount.objects.filter(granularity="day").aggregate(n=Sum("count"))["n"] == 3
    assert list(AggregationMark.objects.values_list("day", flat=True)) == [now.astimezone(UTC).date()]


def test_a_backlog_row_whose_event_is_gone_is_cleared_by_its_claim_and_counts_nothing(make_key):
    api_key, _ = make_key(service="gateway")
    ids = events_ingest(items=[{"event": "a"}, {"event": "b"}], api_key=api_key, received_at=timezone.now())
    ids = ids.stored_ids
    RawEvent.objects.filter(pk=ids[0]).delete()  # say a crash between a delete and its backlog row

    assert aggregate_chunk(event_ids=ids).done == 1
    assert not AggregationBacklog.objects.exists()
    assert RollupCount.objects.filter(granularity="day").aggregate(n=Sum("count"))["n"] == 1


def test_a_chunk_of_gone_events_clears_their_backlog_rows(make_key, database_traces):
    api_key, _ = make_key(service="gateway")
    ids = events_ingest(items=[{"event": "a"}], api_key=api_key, received_at=timezone.now()).stored_ids
    RawEvent.objects.filter(pk__in=ids).delete()

    outcome = process_chunk(event_ids=ids)  # as the sweeper hands it on: nothing to read

    assert outcome.aggregated.skipped == 1 and not AggregationBacklog.objects.exists()


def test_purging_a_user_takes_their_waiting_events_out_of_the_backlog_and_subtracts_only_counted_ones(
    make_key, database_traces
):
    api_key, _ = make_key(service="gateway")
    now = timezone.now()
    counted = events_ingest(items=[{"event": "a", "user_id": "u1"}], api_key=api_key, received_at=now)
    aggregate_chunk(event_ids=counted.stored_ids)
    waiting = events_ingest(
        items=[{"event": "a", "user_id": "u1"}, {"event": "a", "user_id": "u2"}],
        api_key=api_key,
        received_at=now,
    )

    report = user_purge(user_id="u1", actor=Actor.command("test"))

    assert report.raw_events_deleted == 2
    assert list(AggregationBacklog.objects.values_list("raw_id", flat=True)) == [waiting.stored_ids[1]]
    assert RollupCount.objects.filter(granularity="day").aggregate(n=Sum("count"))["n"] == 0
    assert aggregate_chunk(event_ids=waiting.stored_ids).done == 1
    assert RollupCount.objects.filter(granularity="day").aggregate(n=Sum("count"))["n"] == 1


@pytest.mark.django_db(transaction=True)
def test_the_migration_moves_the_aggregation_state_to_the_backlog_and_marks_and_back():
    t = datetime(2026, 11, 20, 12, tzinfo=UTC)
    counted_at, dead_at = t + timedelta(minutes=5), t + timedelta(minutes=9)
    # (aggregated_at, dead_lettered_at) as the old pipeline left them; all on the day of `t`.
    states = {"waiting": (None, None), "counted": (counted_at, None), "dead-lettered": (None, dead_at)}
    migrate_to(BEFORE)
    try:
        with connection.cursor() as cursor:
            ids = {}
            for name, (aggregated, dead) in states.items():
                cursor.execute(
                    "INSERT INTO ingest_rawevent (event_id, service, stage, type, event, timestamp, "
                    "received_at, user_id, correlation_id, level, message, properties, notes, ingest_node, "
                    "aggregated_at, dead_lettered_at, client_timestamp) "
                    "VALUES (%s, 'gateway', 'prod', 'metric', %s, %s, %s, '', '', '', '', '{}', '[]', '', "
                    "%s, %s, %s) RETURNING id",
                    [uuid.uuid4(), name, t, t - timedelta(seconds=1), aggregated, dead, t],
                )
                ids[name] = cursor.fetchone()[0]

        migrate_to(ingest_migrations_latest())

        assert list(AggregationBacklog.objects.values_list("raw_id", "client_timestamp", "received_at")) == [
            (ids["waiting"], t, t - timedelta(seconds=1))
        ]
        assert list(RawEvent.objects.aggregated().values_list("event", flat=True)) == ["counted"]
        assert list(RawEvent.objects.awaiting_aggregation().values_list("event", flat=True)) == ["waiting"]
        # The day's last change: its dead-lettering, after the count.
        assert list(AggregationMark.objects.values_list("day", "marked_at")) == [(t.date(), dead_at)]

        migrate_to(BEFORE)

        with connection.cursor() as cursor:
            cursor.execute("SELECT event, aggregated_at FROM ingest_rawevent ORDER BY id")
            # The marks kept when per day, not per event: the day's last mark stands in for it.
            assert cursor.fetchall() == [("waiting", None), ("counted", dead_at), ("dead-lettered", None)]
    finally:
        migrate_to(ingest_migrations_latest())
