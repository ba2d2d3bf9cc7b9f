"""A purge corrects what summarises the rollups too: the catalogue of event names and the days' sketches of
every event (daily active users)."""

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.utils import timezone

from apps.accounts.actors import Actor
from apps.lifecycle.services import user_purge
from apps.metrics import catalogue
from apps.metrics.models import DaySketch
from apps.pipeline.services import aggregate_chunk

pytestmark = pytest.mark.django_db


def day_sketch_users() -> dict[datetime, int]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT bucket_start, round(hll_cardinality(users))::bigint FROM metrics_daysketch")
        return dict(cursor.fetchall())


def union_of_day_rows() -> dict[datetime, int]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT bucket_start, round(hll_cardinality(hll_union_agg(users)))::bigint"
            " FROM metrics_rollupsketch WHERE granularity = 'day' GROUP BY 1"
        )
        return dict(cursor.fetchall())


def test_a_purge_takes_a_name_only_the_user_sent_out_of_the_search_and_the_user_out_of_the_days(
    store_events,
):
    day = (timezone.now() - timedelta(days=3)).astimezone(UTC)
    day = day.replace(hour=0, minute=0, second=0, microsecond=0)
    at = (day + timedelta(hours=10)).isoformat()
    ids = store_events(
        [
            {"event": "alice_exported", "user_id": "alice", "timestamp": at},
            {"event": "search_made", "user_id": "alice", "timestamp": at},
            {"event": "search_made", "user_id": "bob", "timestamp": at, "service": "tiles"},
            {"event": "search_made", "user_id": "carol", "timestamp": (day + timedelta(days=1)).isoformat()},
        ]
    )
    aggregate_chunk(event_ids=ids)
    assert catalogue.event_names() == ["alice_exported", "search_made"]
    assert catalogue.daily_active_users(start=day, end=day + timedelta(days=1)).points == [(day, 2)]

    user_purge(user_id="alice", actor=Actor.command("test"))

    assert catalogue.event_names() == ["search_made"]
    assert catalogue.event_names_matching(text="alice", limit=10).names == []
    active = catalogue.daily_active_users(start=day, end=day + timedelta(days=2))
    assert active.points == [(day, 1), (day + timedelta(days=1), 1)]
    if connection.vendor == "postgresql":
        # Rebuilt as the union of the day's rebuilt sketches; the day alice never came to is as it was.
        assert day_sketch_users() == union_of_day_rows() == {day: 1, day + timedelta(days=1): 1}
        assert DaySketch.objects.count() == 2
