"""What the metrics know: recent property names, overview totals, daily active users, the default event, the
catalogue of event names (on both databases) and daily active users from one sketch a day (PostgreSQL)."""

import random
from collections import defaultdict
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from apps.dashboards import selectors
from apps.metrics import catalogue
from apps.metrics.models import DaySketch, EventName, RollupCount
from tests.metrics.sqlite_run import run_on_sqlite

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


# --- the catalogue of event names ---------------------------------------------------------------------------


def names_of_day_counts() -> list[str]:
    """The names the day counts hold (what the name search scanned before it had a catalogue)."""
    return sorted(
        set(RollupCount.objects.filter(granularity="day", count__gt=0).values_list("event", flat=True))
    )


def test_exact_every_counted_event_name_is_in_the_catalogue_once(aggregate_events):
    when = midnight(1) + timedelta(hours=3)
    aggregate_events(
        [{"event": name, "timestamp": when.isoformat()} for name in ("Search_Made", "search_made", "login")]
    )
    aggregate_events(
        [{"event": name, "timestamp": (when - timedelta(days=3)).isoformat()} for name in ("login", "café")]
    )

    assert sorted(EventName.objects.values_list("name", flat=True)) == [
        "Search_Made",
        "café",
        "login",
        "search_made",
    ]
    assert catalogue.event_names() == names_of_day_counts()


def test_exact_the_name_search_finds_names_in_any_case_sorted_and_bounded(aggregate_events):
    when = (midnight(1) + timedelta(hours=3)).isoformat()
    aggregate_events(
        [{"event": name, "timestamp": when} for name in ("tile_DOWNLOADED", "download", "login", "Down")]
    )

    found = catalogue.event_names_matching(text="down", limit=2)
    everything = catalogue.event_names_matching(text="o", limit=10)

    assert found == catalogue.NamesPage(names=["Down", "download"], total=3)
    assert everything == catalogue.NamesPage(names=["Down", "download", "login", "tile_DOWNLOADED"], total=4)
    assert catalogue.event_names_matching(text="a\x00b", limit=10).names == []


def test_exact_the_name_search_reads_the_catalogue_not_the_rollups(aggregate_events):
    aggregate_events([{"event": "login", "timestamp": (midnight(1) + timedelta(hours=3)).isoformat()}])

    with CaptureQueriesContext(connection) as queries:
        assert catalogue.event_names_matching(text="log", limit=10).names == ["login"]
        assert catalogue.event_names() == ["login"]

    assert len(queries) == 2
    assert not [q["sql"] for q in queries.captured_queries if "metrics_rollup" in q["sql"]]


def test_the_catalogue_answers_hold_on_sqlite_too(tmp_path):
    """Run this module's and the migration's `test_exact_*` again on SQLite, the embedded mode (the
    pipeline's Python path)."""
    if connection.vendor != "postgresql":
        pytest.skip("already on SQLite")
    done = run_on_sqlite(tmp_path, "exact", __file__, "tests/metrics/test_migrations.py")
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert " passed" in done.stdout and "skipped" not in done.stdout.split("\n")[-2], done.stdout[-2000:]


# --- daily active users from one sketch a day ---------------------------------------------------------------


def union_of_the_days_sketches(start, end) -> dict:
    """Daily active users as the overview read them before the day sketches: per day, the union of every
    (event, service, stage) sketch of the day."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT bucket_start, round(hll_cardinality(hll_union_agg(users)))::bigint"
            " FROM metrics_rollupsketch WHERE granularity = 'day'"
            " AND bucket_start >= %s AND bucket_start < %s GROUP BY 1",
            [start, end],
        )
        return dict(cursor.fetchall())


@pytest.mark.skipif(connection.vendor != "postgresql", reason="sketches are PostgreSQL's")
def test_daily_active_users_read_one_sketch_a_day_equal_to_the_union_of_the_days_sketches(make_key):
    from apps.ingest.services import events_ingest
    from apps.pipeline.services import aggregate_chunk

    rng = random.Random(5)
    start = midnight(6)
    api_key, _ = make_key(service="log-shipper", forwarder=True)
    items = [
        {
            "event": f"event_{rng.randrange(40)}",
            "service": rng.choice(["gateway", "tiles", "download"]),
            "user_id": f"user-{int(6000 * rng.random() ** 2)}" if rng.random() < 0.9 else "",
            "timestamp": (start + timedelta(seconds=rng.randrange(5 * 86400))).isoformat(),
        }
        for _ in range(24_000)
    ]
    for part in range(0, len(items), 4000):  # several chunks: each adds to the days' sketches
        stored = events_ingest(items=items[part : part + 4000], api_key=api_key, received_at=timezone.now())
        assert aggregate_chunk(event_ids=stored.stored_ids).done == len(stored.stored_ids)
    end = start + timedelta(days=6)
    exact = defaultdict(set)
    for item in items:
        if item["user_id"]:
            exact[datetime.fromisoformat(item["timestamp"]).replace(hour=0, minute=0, second=0)].add(
                item["user_id"]
            )

    with CaptureQueriesContext(connection) as queries:
        active = catalogue.daily_active_users(start=start, end=end)

    assert not [q["sql"] for q in queries.captured_queries if "metrics_rollupsketch" in q["sql"]]
    assert DaySketch.objects.count() == 5
    before = union_of_the_days_sketches(start, end)
    assert dict(active.points) == {day: before.get(day, 0) for day, _ in active.points}
    assert active.points[-1] == (start + timedelta(days=5), 0) and active.estimate is True
    assert min(len(users) for users in exact.values()) > 1_500  # past a sketch's exact representation
    for day, users in active.points[:-1]:
        assert users == pytest.approx(len(exact[day]), rel=0.02), day
