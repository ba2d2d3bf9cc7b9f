"""The two ways rollups are written give the same rollups: set-based SQL (PostgreSQL, the pipeline's path)
and Python deltas (the embedded SQLite path); unique users from HyperLogLog sketches stay within 2 %."""

import random
from collections import defaultdict
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection

from apps.ingest.models import AggregationBacklog, RawEvent
from apps.metrics.models import RollupCount, RollupNumeric, RollupSketch, RollupUser
from apps.metrics.selectors import SeriesQuery, series_for
from apps.metrics.services import deltas_for, rollups_add_sql, rollups_apply
from tests.factories import RawEventFactory

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 11, 16, 22, 30, tzinfo=UTC)


def raw_events(n: int, *, users: int, seed: int = 3, days: int = 3) -> list[int]:
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        props = {"n": rng.randint(-50, 50), "ms": round(rng.uniform(0, 9), 3), "flag": True, "text": "7"}
        if rng.random() < 0.1:
            props["huge"] = 1e300  # not summable: left out of both paths
        if rng.random() < 0.1:
            props["x" * 201] = 1  # a name longer than a rollup's prop column: left out of both paths
        rows.append(
            RawEventFactory.build(
                api_key=None,
                event=rng.choice(["search_made", "download"]),
                service=rng.choice(["gateway", "tiles"]),
                stage="prod",
                timestamp=T0 + timedelta(seconds=rng.randint(0, days * 86400)),
                received_at=T0,
                user_id=f"user-{rng.randrange(users)}" if rng.random() < 0.9 else "",
                properties=props,
            )
        )
    return [ev.pk for ev in RawEvent.objects.bulk_create(rows, batch_size=5000)]


def counts() -> dict:
    return {
        (r.granularity, r.event, r.bucket_start, r.service, r.stage): r.count
        for r in RollupCount.objects.all()
    }


def numerics() -> dict:
    return {
        (r.granularity, r.event, r.bucket_start, r.service, r.stage, r.prop): (r.count, r.sum, r.min, r.max)
        for r in RollupNumeric.objects.all()
    }


def clear() -> None:
    for model in (RollupCount, RollupNumeric, RollupUser, RollupSketch):
        model.objects.all().delete()


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the SQL path is PostgreSQL's")
def test_the_sql_path_and_the_python_path_write_the_same_rollups():
    ids = raw_events(3000, users=60)
    events = RawEvent.objects.filter(pk__in=ids)

    rollups_apply(deltas=deltas_for(events))
    python_counts, python_numerics = counts(), numerics()
    python_users = defaultdict(set)
    for r in RollupUser.objects.all():
        python_users[(r.granularity, r.event, r.bucket_start, r.service, r.stage)].add(r.user_id)
    clear()
    for chunk in (ids[:1000], ids[1000:2200], ids[2200:]):  # in chunks, as the pipeline adds them
        rollups_add_sql(event_ids=chunk)

    assert counts() == python_counts
    sql_numerics = numerics()
    assert sql_numerics.keys() == python_numerics.keys()
    for key, (n, total, low, high) in python_numerics.items():
        assert sql_numerics[key][0] == n and sql_numerics[key][2:] == (low, high), key
        assert sql_numerics[key][1] == pytest.approx(total), key
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT granularity, event, bucket_start, service, stage, round(hll_cardinality(users))::int"
            " FROM metrics_rollupsketch"
        )
        sketched = {tuple(row[:5]): row[5] for row in cursor.fetchall()}
    # Few users per bucket: a sketch holds them exactly (explicit representation).
    assert sketched == {key: len(users) for key, users in python_users.items()}


@pytest.mark.skipif(connection.vendor != "postgresql", reason="sketches are PostgreSQL's")
def test_unique_users_from_sketches_stay_within_two_percent_of_the_exact_count():
    ids = raw_events(30_000, users=20_000, seed=11, days=7)
    for start in range(0, len(ids), 5000):
        rollups_add_sql(event_ids=ids[start : start + 5000])
    AggregationBacklog.objects.filter(raw_id__in=ids).delete()
    start, end = T0.replace(hour=0, minute=0), T0 + timedelta(days=8)
    searches = RawEvent.objects.filter(event="search_made").exclude(user_id="")
    exact_by_day = defaultdict(set)
    for timestamp, user in searches.values_list("timestamp", "user_id"):
        exact_by_day[timestamp.date()].add(user)
    exact_week = set(
        searches.filter(
            timestamp__gte=datetime(2026, 11, 16, tzinfo=UTC),
            timestamp__lt=datetime(2026, 11, 23, tzinfo=UTC),
        ).values_list("user_id", flat=True)
    )

    [by_day] = series_for(SeriesQuery(events=("search_made",), measure="unique_users", start=start, end=end))
    [by_week] = series_for(
        SeriesQuery(events=("search_made",), measure="unique_users", interval="week", start=start, end=end)
    )

    assert by_day.estimate is True
    for moment, value in by_day.points:
        want = len(exact_by_day[moment.date()])
        assert value == pytest.approx(want, rel=0.02), (moment, value, want)
    # A week is the union of its day sketches: nobody who came back on two days is counted twice.
    assert by_week.points[0][0] == datetime(2026, 11, 16, tzinfo=UTC)
    assert len(exact_week) > 5_000  # far past the exact (explicit) representation
    assert by_week.points[0][1] == pytest.approx(len(exact_week), rel=0.02)


def _updates(table: str) -> tuple[int, int]:
    """Return (rows updated, of which HOT) in `table` by this test's transaction so far."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_xact_user_tables WHERE relname = %s", [table]
        )
        return cursor.fetchone()


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the SQL path is PostgreSQL's")
def test_a_later_chunk_updates_its_buckets_rows_without_touching_their_indexes():
    ids = raw_events(600, users=40, days=1)
    rollups_add_sql(event_ids=ids)  # the buckets' rows, on several pages of each table
    before = {table: _updates(table) for table in ("metrics_rollupcount", "metrics_rollupnumeric")}

    rollups_add_sql(event_ids=ids[::40])  # a later chunk with events in some of those buckets

    for table, (updated_before, hot_before) in before.items():
        updated, hot = _updates(table)
        assert updated - updated_before >= 15, table
        # Every new row version stayed on its page (HOT): no index entry written (fillfactor, 0004).
        assert hot - hot_before == updated - updated_before, table
