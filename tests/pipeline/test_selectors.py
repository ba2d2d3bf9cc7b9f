"""How the pipeline keeps up: ingest rate, backlogs and their age, dead letters."""

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.ingest.models import AggregationBacklog, RawEvent
from apps.pipeline import selectors as pipeline_selectors
from apps.pipeline.services import aggregate_chunk

pytestmark = pytest.mark.django_db


def received(raw_id: int, at) -> None:
    """Say an event was received at `at` (its raw row and its aggregation backlog row, which copies it)."""
    RawEvent.objects.filter(pk=raw_id).update(received_at=at)
    AggregationBacklog.objects.filter(raw_id=raw_id).update(received_at=at)


def test_pipeline_health_reports_rate_backlogs_and_dead_letters(store_events, aggregate_events):
    now = timezone.now()
    aggregate_events([{"event": "done"}] * 2)
    waiting = store_events([{"event": "waiting"}] * 4)  # stored, not yet in the rollups (nor, so, indexed)
    received(waiting[0], now - timedelta(minutes=12))
    received(waiting[1], now - timedelta(minutes=3))
    received(waiting[2], now - timedelta(hours=2))
    RawEvent.objects.filter(pk=waiting[2]).update(dead_lettered_at=now)
    AggregationBacklog.objects.filter(raw_id=waiting[2]).delete()  # as dead-lettering leaves it
    # Refused by the index while its aggregation failed: waits for aggregation only.
    received(waiting[3], now - timedelta(minutes=40))
    RawEvent.objects.filter(pk=waiting[3]).update(index_rejected_at=now)
    counted = store_events([{"event": "counted"}])
    received(counted[0], now - timedelta(minutes=20))
    aggregate_chunk(event_ids=counted)  # counted without a search bulk: in the index backlog

    health = pipeline_selectors.pipeline_health(now=now)

    assert len(health.received_per_minute) == 60
    assert health.received_per_minute[-1][0] == now.replace(second=0, microsecond=0)
    assert health.received_last_hour == 6  # the dead-lettered one arrived two hours ago
    assert health.waiting_aggregation == 3  # dead letters wait no more
    assert timedelta(minutes=40) <= health.processing_lag < timedelta(minutes=41)
    assert health.waiting_index == 3  # two awaiting aggregation (indexed with it; not the refused one) and
    # the backlog's
    assert timedelta(minutes=20) <= health.indexing_lag < timedelta(minutes=21)
    assert health.dead_lettered == 1


def test_a_quiet_pipeline_has_no_lag():
    health = pipeline_selectors.pipeline_health(now=timezone.now())

    assert health.processing_lag is None and health.indexing_lag is None
    assert health.received_last_hour == 0 and health.dead_lettered == 0
