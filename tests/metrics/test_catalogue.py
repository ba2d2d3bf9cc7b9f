"""What the metrics know: recent property names, overview totals, daily active users, the default event."""

from datetime import UTC, timedelta

import pytest
from django.utils import timezone

from apps.dashboards import selectors
from apps.metrics import catalogue

pytestmark = pytest.mark.django_db


def midnight(days_ago: int):
    day = (timezone.now() - timedelta(days=days_ago)).astimezone(UTC)
    return day.replace(hour=0, minute=0, second=0, microsecond=0)


def test_recent_property_names_read_only_a_recent_sample(aggregate_events):
    aggregate_events([{"event": "old", "properties": {"old_key": 1}}])
    aggregate_events([{"event": "new", "properties": {"new_key": 1}}])

    assert catalogue.recent_property_names(sample=1) == ["new_key"]


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

    assert catalogue.top_events(start=start) == [catalogue.Total("e1", 2), catalogue.Total("e2", 2)]
    assert catalogue.volume_by_service(start=start) == [catalogue.Total("a", 2), catalogue.Total("b", 2)]
    active = catalogue.daily_active_users(start=start, end=start + timedelta(days=3))
    assert active.points == [(start, 2), (start + timedelta(days=1), 0), (start + timedelta(days=2), 1)]
    assert selectors.default_event() in ("e1", "e2")
