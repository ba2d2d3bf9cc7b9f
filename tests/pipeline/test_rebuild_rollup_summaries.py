"""A rollup reset resets what summarises the rollups too (the catalogue of event names, the days' sketches of
every event), and counting the events again brings them back as they were."""

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.utils import timezone

from apps.ingest.models import AggregationBacklog
from apps.ingest.services import events_ingest
from apps.metrics import catalogue
from apps.metrics.models import DaySketch
from apps.pipeline import backfill, services

pytestmark = pytest.mark.django_db

DAY = datetime(2026, 11, 10, tzinfo=UTC)


def test_a_reset_day_leaves_the_names_and_users_of_the_other_days_and_counting_again_restores_it(make_key):
    api_key, _ = make_key(service="log-shipper", forwarder=True)
    items = [
        {"event": "only_that_day", "user_id": "u1", "timestamp": DAY.replace(hour=3).isoformat()},
        {"event": "every_day", "user_id": "u2", "timestamp": DAY.replace(hour=4).isoformat()},
        {"event": "every_day", "user_id": "u3", "timestamp": (DAY + timedelta(days=1, hours=4)).isoformat()},
    ]
    stored = events_ingest(items=items, api_key=api_key, received_at=timezone.now()).stored_ids
    services.aggregate_chunk(event_ids=stored)
    two_days = {"start": DAY, "end": DAY + timedelta(days=2)}
    assert catalogue.daily_active_users(**two_days).points == [(DAY, 2), (DAY + timedelta(days=1), 1)]

    backfill.rollups_reset(start=DAY, end=DAY + timedelta(days=1))

    assert catalogue.event_names() == ["every_day"]
    assert catalogue.daily_active_users(**two_days).points == [(DAY, 0), (DAY + timedelta(days=1), 1)]
    if connection.vendor == "postgresql":
        assert list(DaySketch.objects.values_list("bucket_start", flat=True)) == [DAY + timedelta(days=1)]

    services.aggregate_chunk(event_ids=list(AggregationBacklog.objects.values_list("raw_id", flat=True)))

    assert catalogue.event_names() == ["every_day", "only_that_day"]
    assert catalogue.daily_active_users(**two_days).points == [(DAY, 2), (DAY + timedelta(days=1), 1)]
