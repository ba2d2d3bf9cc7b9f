"""The metrics migrations fill what they add from the rollups already there, and go back."""

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.db.migrations.loader import MigrationLoader

from apps.metrics import catalogue
from apps.metrics.models import HLL_PARAMS, DaySketch, EventName, RollupCount
from tests.conftest import migrate_to

BEFORE_CATALOGUE = [("metrics", "0004_rollups_fillfactor")]
DAY = datetime(2026, 11, 20, tzinfo=UTC)


def metrics_latest() -> list[tuple[str, str]]:
    return [node for node in MigrationLoader(connection).graph.leaf_nodes() if node[0] == "metrics"]


def day_count(event: str, day: datetime, count: int, service: str = "gateway") -> RollupCount:
    return RollupCount(
        granularity="day", event=event, bucket_start=day, service=service, stage="prod", count=count
    )


@pytest.mark.django_db(transaction=True)
def test_exact_the_migration_fills_the_name_catalogue_and_day_sketches_from_the_rollups_and_back():
    migrate_to(BEFORE_CATALOGUE)
    try:
        RollupCount.objects.bulk_create(
            [
                day_count("login", DAY, 2),
                day_count("login", DAY, 1, service="tiles"),
                day_count("search", DAY + timedelta(days=1), 1),
                day_count("purged", DAY, 0),  # a purge took its only events out: nothing counts it
            ]
        )
        postgresql = connection.vendor == "postgresql"
        if postgresql:
            with connection.cursor() as cursor:
                cursor.execute(
                    "INSERT INTO metrics_rollupsketch"
                    " (granularity, event, bucket_start, service, stage, users)"
                    f" SELECT 'day', e, d, s, 'prod', hll_add_agg(hll_hash_text(u), {HLL_PARAMS})"
                    " FROM (VALUES ('login', %(day)s, 'gateway', 'u1'), ('login', %(day)s, 'gateway', 'u2'),"
                    " ('login', %(day)s, 'tiles', 'u2'), ('login', %(day)s, 'tiles', 'u3'),"
                    " ('search', %(next)s, 'gateway', 'u1')) AS v (e, d, s, u)"
                    " GROUP BY e, d, s",
                    {"day": DAY, "next": DAY + timedelta(days=1)},
                )

        migrate_to(metrics_latest())

        assert sorted(EventName.objects.values_list("name", flat=True)) == ["login", "search"]
        if postgresql:
            assert DaySketch.objects.count() == 2
            active = catalogue.daily_active_users(start=DAY, end=DAY + timedelta(days=2))
            assert active.points == [(DAY, 3), (DAY + timedelta(days=1), 1)]

        migrate_to(BEFORE_CATALOGUE)

        tables = connection.introspection.table_names()
        assert "metrics_eventname" not in tables and "metrics_daysketch" not in tables
        assert RollupCount.objects.count() == 4
    finally:
        migrate_to(metrics_latest())
