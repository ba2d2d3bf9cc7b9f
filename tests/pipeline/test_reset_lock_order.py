"""A rollup reset takes its table locks in the order a claim's statement takes them, so a reset that waits for
one claim and a claim that begins meanwhile do not deadlock (PostgreSQL)."""

import threading
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection, connections, transaction
from django.db.models import Sum
from django.utils import timezone

from apps.accounts.actors import Actor
from apps.ingest.models import AggregationBacklog, RawEvent
from apps.ingest.services import events_ingest
from apps.lifecycle import services as lifecycle
from apps.metrics import catalogue
from apps.metrics.models import RollupCount
from apps.pipeline import backfill, services
from tests.conftest import in_thread, wait_for

pytestmark = pytest.mark.django_db(transaction=True)

DAY = datetime(2026, 11, 10, tzinfo=UTC)


def sessions_waiting_on_locks() -> int:
    with connections["default"].cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND wait_event_type = 'Lock' AND cardinality(pg_blocking_pids(pid)) > 0"
        )
        return cursor.fetchone()[0]


def store(api_key, event: str, n: int, at: datetime) -> list[int]:
    items = [{"event": event, "user_id": f"u{i}", "timestamp": at.isoformat()} for i in range(n)]
    return events_ingest(items=items, api_key=api_key, received_at=timezone.now()).stored_ids


def collecting(errors: list[Exception], work):
    """Return `work` for a thread: what it raises goes into `errors`, which the test asserts on."""

    def run():
        try:
            work()
        except Exception as exc:  # collected and asserted by the test
            errors.append(exc)

    return run


def test_a_claim_that_begins_while_a_reset_waits_for_another_is_not_deadlocked_with_it(make_key):
    if connection.vendor != "postgresql":
        pytest.skip("table locks: PostgreSQL (the embedded mode has one writer)")
    api_key, _ = make_key()
    services.aggregate_chunk(event_ids=store(api_key, "a", 2, DAY.replace(hour=12)))
    first = store(api_key, "b", 1, DAY.replace(hour=13))
    second = store(api_key, "c", 1, DAY.replace(hour=14))
    claimed, commit = threading.Event(), threading.Event()
    errors: list[Exception] = []

    def hold_a_claim():  # a worker's claim in progress when the reset begins
        with transaction.atomic():
            services.aggregate_chunk(event_ids=first)
            claimed.set()
            assert commit.wait(timeout=30)

    worker = in_thread(collecting(errors, hold_a_claim))
    assert claimed.wait(timeout=30)
    reset = in_thread(
        collecting(errors, lambda: backfill.rollups_reset(start=DAY, end=DAY + timedelta(days=1)))
    )
    wait_for(lambda: sessions_waiting_on_locks() >= 1, timeout=30, message="the reset to wait for the claim")
    other = in_thread(collecting(errors, lambda: services.aggregate_chunk(event_ids=second)))
    wait_for(lambda: sessions_waiting_on_locks() >= 2, timeout=30, message="a second claim to wait")
    commit.set()
    for thread in (worker, reset, other):
        thread.join(timeout=60)

    assert errors == []
    services.aggregate_chunk(event_ids=list(AggregationBacklog.objects.values_list("raw_id", flat=True)))
    day_total = RollupCount.objects.filter(granularity="day").aggregate(s=Sum("count"))["s"]
    assert day_total == 4
    assert catalogue.event_names() == ["a", "b", "c"]
    assert set(RawEvent.objects.values_list("aggregate_attempts", flat=True)) == {0}


def test_a_reset_while_a_purge_holds_its_counts_is_not_deadlocked_with_it(store_events, monkeypatch):
    # The purge writes the counts first and the days' sketches last: the reset must not hold the one while
    # it waits for the other.
    if connection.vendor != "postgresql":
        pytest.skip("table locks: PostgreSQL (the embedded mode has one writer)")
    day = (
        (timezone.now() - timedelta(days=3))
        .astimezone(UTC)
        .replace(hour=0, minute=0, second=0, microsecond=0)
    )
    at = (day + timedelta(hours=10)).isoformat()
    ids = store_events(
        [
            {"event": "a", "user_id": "alice", "timestamp": at},
            {"event": "a", "user_id": "bob", "timestamp": at},
        ]
    )
    services.aggregate_chunk(event_ids=ids)
    subtracted, go_on = threading.Event(), threading.Event()
    errors: list[Exception] = []
    real = lifecycle._recompute_extremes

    def paused(deltas, remaining):  # the purge holds its updated counts here
        subtracted.set()
        assert go_on.wait(timeout=30)
        real(deltas, remaining)

    monkeypatch.setattr(lifecycle, "_recompute_extremes", paused)

    purge = in_thread(
        collecting(errors, lambda: lifecycle.user_purge(user_id="alice", actor=Actor.command("test")))
    )
    assert subtracted.wait(timeout=30)
    reset = in_thread(
        collecting(errors, lambda: backfill.rollups_reset(start=day, end=day + timedelta(days=1)))
    )
    wait_for(lambda: sessions_waiting_on_locks() >= 1, timeout=30, message="the reset to wait for the purge")
    go_on.set()
    for thread in (purge, reset):
        thread.join(timeout=60)

    assert errors == []
    services.aggregate_chunk(event_ids=list(AggregationBacklog.objects.values_list("raw_id", flat=True)))
    assert RollupCount.objects.get(granularity="day", event="a").count == 1
    assert catalogue.daily_active_users(start=day, end=day + timedelta(days=1)).points == [(day, 1)]


def test_a_claim_of_a_bucket_a_purge_holds_waits_for_it_instead_of_deadlocking(store_events, monkeypatch):
    # A purge updates a bucket's count, then its sums, then rebuilds its sketches; a claim of a new event in
    # the same bucket must take those rows in that order too, or each ends up waiting for the other.
    if connection.vendor != "postgresql":
        pytest.skip("row locks of one statement: PostgreSQL (the embedded mode has one writer)")
    day = (
        (timezone.now() - timedelta(days=3))
        .astimezone(UTC)
        .replace(hour=0, minute=0, second=0, microsecond=0)
    )
    at = (day + timedelta(hours=10)).isoformat()
    event = {"event": "a", "timestamp": at, "properties": {"duration_ms": 5}}
    ids = store_events([{**event, "user_id": "alice"}, {**event, "user_id": "bob"}])
    services.aggregate_chunk(event_ids=ids)
    [late] = store_events([{**event, "user_id": "carol"}])
    subtracted, go_on = threading.Event(), threading.Event()
    errors: list[Exception] = []
    real = lifecycle._recompute_extremes

    def paused(deltas, remaining):  # the purge holds the bucket's updated count and sums here
        subtracted.set()
        assert go_on.wait(timeout=30)
        real(deltas, remaining)

    monkeypatch.setattr(lifecycle, "_recompute_extremes", paused)

    purge = in_thread(
        collecting(errors, lambda: lifecycle.user_purge(user_id="alice", actor=Actor.command("test")))
    )
    assert subtracted.wait(timeout=30)
    claim = in_thread(collecting(errors, lambda: services.aggregate_chunk(event_ids=[late])))
    wait_for(lambda: sessions_waiting_on_locks() >= 1, timeout=30, message="the claim to wait for the purge")
    go_on.set()
    for thread in (purge, claim):
        thread.join(timeout=60)

    assert errors == []
    assert RollupCount.objects.get(granularity="day", event="a").count == 2
    assert catalogue.daily_active_users(start=day, end=day + timedelta(days=1)).points == [(day, 2)]
