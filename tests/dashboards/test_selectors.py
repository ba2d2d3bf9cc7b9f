"""Dashboards reads: picker options, overview totals, daily active users, the pipeline's health."""

from datetime import UTC, timedelta

import pytest
from django.utils import timezone

from apps.dashboards import selectors
from apps.ingest.models import RawEvent

pytestmark = pytest.mark.django_db


def midnight(days_ago: int):
    day = (timezone.now() - timedelta(days=days_ago)).astimezone(UTC)
    return day.replace(hour=0, minute=0, second=0, microsecond=0)


def test_picker_options_come_from_the_data(aggregate_events):
    aggregate_events(
        [
            {"event": "search_made", "properties": {"plan": "pro", "n_results": 3, "nested": {"x": 1}}},
            {"event": "download_started", "properties": {"size_mb": 2.5, "ok": True}},
        ]
    )

    options = selectors.explorer_options()

    assert options.events == ["download_started", "search_made"]
    assert options.numeric_props == ["n_results", "size_mb"]  # booleans are not numbers
    assert options.properties == ["n_results", "nested", "ok", "plan", "size_mb"]


def test_recent_property_names_read_only_a_recent_sample(aggregate_events):
    aggregate_events([{"event": "old", "properties": {"old_key": 1}}])
    aggregate_events([{"event": "new", "properties": {"new_key": 1}}])

    assert selectors.recent_property_names(sample=1) == ["new_key"]


def test_top_events_volume_by_service_and_daily_active_users(aggregate_events):
    start = midnight(2)
    aggregate_events(
        [
            {
                "service": "a",
                "event": "e1",
                "user_id": "u1",
                "timestamp": (start + timedelta(hours=1)).isoformat(),
            },
            {
                "service": "a",
                "event": "e1",
                "user_id": "u2",
                "timestamp": (start + timedelta(hours=2)).isoformat(),
            },
            {
                "service": "b",
                "event": "e2",
                "user_id": "u1",
                "timestamp": (start + timedelta(hours=3)).isoformat(),
            },
            {
                "service": "b",
                "event": "e2",
                "user_id": "u1",
                "timestamp": (start + timedelta(days=2)).isoformat(),
            },
            {"service": "b", "event": "e3", "timestamp": (start - timedelta(days=5)).isoformat()},
        ]
    )

    assert selectors.top_events(start=start) == [selectors.Total("e1", 2), selectors.Total("e2", 2)]
    assert selectors.volume_by_service(start=start) == [selectors.Total("a", 2), selectors.Total("b", 2)]
    active = selectors.daily_active_users(start=start, end=start + timedelta(days=3))
    assert active.points == [(start, 2), (start + timedelta(days=1), 0), (start + timedelta(days=2), 1)]
    assert selectors.default_event() in ("e1", "e2")


def test_pipeline_health_reports_rate_backlogs_and_dead_letters(store_events, aggregate_events):
    now = timezone.now()
    aggregate_events([{"event": "done"}] * 2)
    waiting = store_events([{"event": "waiting"}] * 3)  # stored and indexed, not yet in the rollups
    RawEvent.objects.filter(pk=waiting[0]).update(received_at=now - timedelta(minutes=12))
    RawEvent.objects.filter(pk=waiting[1]).update(indexed_at=None, received_at=now - timedelta(minutes=3))
    RawEvent.objects.filter(pk=waiting[2]).update(dead_lettered_at=now, received_at=now - timedelta(hours=2))

    health = selectors.pipeline_health(now=now)

    assert len(health.received_per_minute) == 60
    assert health.received_per_minute[-1][0] == now.replace(second=0, microsecond=0)
    assert health.received_last_hour == 4  # the dead-lettered one arrived two hours ago
    assert health.waiting_aggregation == 2  # dead letters wait no more
    assert timedelta(minutes=12) <= health.processing_lag < timedelta(minutes=13)
    assert health.waiting_index == 1
    assert timedelta(minutes=3) <= health.indexing_lag < timedelta(minutes=4)
    assert health.dead_lettered == 1


def test_a_quiet_pipeline_has_no_lag():
    health = selectors.pipeline_health(now=timezone.now())

    assert health.processing_lag is None and health.indexing_lag is None
    assert health.received_last_hour == 0 and health.dead_lettered == 0
