"""Raw events partitioned by day of client time on PostgreSQL: the migration keeps every row, inserts land
in their day, re-sends are stored once (skew-corrected onto another day, days later, without a time,
concurrent), retention drops whole days and leaves the others as they were."""

import threading
import uuid
from datetime import UTC, date, datetime, timedelta

import pytest
from django.db import connection, connections, transaction
from django.utils import timezone

from apps.ingest import partitions
from apps.ingest.models import CLIENT_TIME_COLUMN, EVENT_COLUMNS, IndexBacklog, RawEvent
from apps.ingest.services import events_ingest, raw_events_store
from apps.lifecycle.services import partitions_maintain, retention_apply
from apps.metrics.selectors import SeriesQuery, series_for
from apps.pipeline.services import aggregate_chunk
from apps.traces.search import get_trace_backend
from tests.conftest import ingest_migrations_latest, migrate_to, wait_for

pytestmark = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="partitions are PostgreSQL's; SQLite keeps one table"
)

BEFORE = [("ingest", "0006_rawevent_event_ts_user")]


def partition_of(pk: int) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT tableoid::regclass::text FROM ingest_rawevent WHERE id = %s", [pk])
        return cursor.fetchone()[0]


def send(api_key, items, *, received_at, sent_at=None):
    return events_ingest(items=items, api_key=api_key, received_at=received_at, sent_at=sent_at)


@pytest.fixture
def key(make_key):
    api_key, _ = make_key(service="gateway")
    return api_key


@pytest.mark.django_db(transaction=True)
def test_the_migration_keeps_every_row_with_its_id_and_backwards_too(make_key):
    api_key, _ = make_key(service="gateway")
    days = [datetime(2001, 2, 3, 4, 5, tzinfo=UTC), datetime(2026, 11, 30, 23, 59, 59, 999999, tzinfo=UTC)]
    days.append(timezone.now())
    migrate_to(BEFORE)
    try:
        assert not partitions.is_partitioned()
        with connection.cursor() as cursor:
            for moment in days:
                for n in range(3):
                    cursor.execute(
                        "INSERT INTO ingest_rawevent (event_id, service, stage, type, event, timestamp, "
                        "received_at, user_id, correlation_id, level, message, properties, notes, "
                        "ingest_node, api_key_id) VALUES (%s, 'gateway', 'prod', 'metric', %s, %s, %s, 'u1', "
                        "'c1', '', '', '{\"n\": 1}', '[]', '', %s)",
                        [uuid.uuid4(), f"e{n}", moment, moment, api_key.pk],
                    )
            cursor.execute("SELECT id, event_id, timestamp, event FROM ingest_rawevent ORDER BY id")
            before = cursor.fetchall()
        assert len(before) == 9

        # Through the partitioning and every later one, which the code below expects.
        migrate_to(ingest_migrations_latest())

        assert partitions.is_partitioned()
        after = list(RawEvent.objects.order_by("id").values_list("id", "event_id", "timestamp", "event"))
        assert after == before
        assert {partition_of(row[0]) for row in before[:3]} == {"ingest_rawevent_p20010203"}
        assert {partition_of(row[0]) for row in before[3:6]} == {"ingest_rawevent_p20261130"}
        assert RawEvent.objects.get(pk=before[0][0]).properties == {"n": 1}
        # The sequence goes on after the copied ids, and a copied event is still recognised when re-sent.
        [new_id] = send(api_key, [{"event": "next"}], received_at=timezone.now()).stored_ids
        assert new_id > before[-1][0]
        again = send(
            api_key,
            [{"event": "e0", "event_id": str(before[0][1]), "timestamp": before[0][2].isoformat()}],
            received_at=timezone.now(),
        )
        assert (again.accepted, again.duplicates) == (0, 1)
        assert RawEvent.objects.filter(event_id=before[0][1]).count() == 1
        # The time as sent is not known for rows stored before: their timestamp stands in for it.
        assert all(
            ev.client_timestamp == ev.timestamp for ev in RawEvent.objects.filter(pk__lte=before[-1][0])
        )

        migrate_to(BEFORE)

        assert not partitions.is_partitioned()
        back = list(RawEvent.objects.order_by("id").values_list("id", "event_id", "timestamp", "event"))
        assert back[:9] == before and back[9][0] == new_id
        with connection.cursor() as cursor:  # the plain table's identity goes on after the copied ids too
            cursor.execute(
                "INSERT INTO ingest_rawevent (event_id, service, stage, type, event, timestamp, received_at, "
                "user_id, correlation_id, level, message, properties, notes, ingest_node) "
                "VALUES (%s, 'gateway', 'prod', 'metric', 'x', now(), now(), '', '', '', '', '{}', '[]', '') "
                "RETURNING id",
                [uuid.uuid4()],
            )
            assert cursor.fetchone()[0] > new_id
    finally:
        migrate_to(ingest_migrations_latest())
    assert partitions.is_partitioned()


@pytest.mark.django_db
def test_an_event_lands_in_its_day_partition(key):
    now = timezone.now()
    [pk] = send(key, [{"event": "e", "timestamp": now.isoformat()}], received_at=now).stored_ids
    partitions.partition_create(now.astimezone(UTC).date())  # there already when the migration ran today
    assert partition_of(pk) == partitions.partition_name(now.astimezone(UTC).date())


@pytest.mark.django_db
def test_a_day_without_a_partition_goes_to_default_is_stored_once_and_moves_to_its_partition(key):
    now = timezone.now()
    day = (now - timedelta(days=20)).astimezone(UTC).date()  # within retention; the migration made none
    moment = datetime(day.year, day.month, day.day, 12, tzinfo=UTC)
    item = {"event": "late", "event_id": str(uuid.uuid4()), "timestamp": moment.isoformat()}
    first = send(key, [item], received_at=now)
    assert first.accepted == 1 and partition_of(first.stored_ids[0]) == partitions.DEFAULT_PARTITION
    assert send(key, [item], received_at=now).duplicates == 1

    made = partitions_maintain(now=now)["made"]

    assert day.isoformat() in made
    assert partition_of(first.stored_ids[0]) == partitions.partition_name(day)
    assert (send(key, [item], received_at=now).duplicates, RawEvent.objects.filter(event="late").count()) == (
        1,
        1,
    )


@pytest.mark.django_db
def test_ensure_partitions_makes_the_days_ahead_once_not_for_far_off_clocks(key, settings):
    settings.PARTITION_DAYS_AHEAD = 3
    later = timezone.now() + timedelta(days=400)
    today = later.astimezone(UTC).date()
    # Clocks years off: their events stay in the default partition, no partition is made for them.
    far = [{"event": "far", "timestamp": f"{year}-01-01T00:00:00Z"} for year in (2001, 2090)]
    assert send(key, far, received_at=timezone.now()).accepted == 2

    first = partitions_maintain(now=later)
    second = partitions_maintain(now=later)

    assert first["made"] == [(today + timedelta(days=n)).isoformat() for n in range(-1, 4)]
    assert second["made"] == []
    assert set(partitions.day_partitions()) >= {today + timedelta(days=n) for n in range(-1, 4)}


@pytest.mark.django_db
def test_a_resend_skew_corrected_onto_the_next_day_is_stored_once(key):
    """Each send re-stamps sent_at: the correction moves with the latency, here across midnight. The client
    time is the same on both sends: so are the partition and the key."""
    for day in (date(2026, 11, 30), date(2026, 12, 1)):
        partitions.partition_create(day)
    item = {"event": "checkout", "event_id": str(uuid.uuid4()), "timestamp": "2026-11-30T23:55:00Z"}
    received = datetime(2026, 12, 1, 0, 5, tzinfo=UTC)
    first = send(key, [item], received_at=received, sent_at=received - timedelta(minutes=4))
    later = received + timedelta(seconds=30)
    second = send(key, [item], received_at=later, sent_at=later - timedelta(minutes=6))  # -> 00:01 on Dec 1

    [stored] = RawEvent.objects.filter(event_id=item["event_id"])
    assert stored.timestamp == datetime(2026, 11, 30, 23, 59, tzinfo=UTC)
    assert stored.client_timestamp == datetime(2026, 11, 30, 23, 55, tzinfo=UTC)
    assert partition_of(stored.pk) == "ingest_rawevent_p20261130"
    assert (first.accepted, second.accepted, second.duplicates) == (1, 0, 1)


@pytest.mark.django_db
def test_a_resend_days_later_is_stored_once(key):
    """A client that was offline for days re-sends its batch; a replay may too."""
    now = timezone.now()
    item = {
        "event": "old",
        "event_id": str(uuid.uuid4()),
        "timestamp": (now - timedelta(hours=30)).isoformat(),
    }
    assert send(key, [item], received_at=now - timedelta(hours=29)).accepted == 1

    again = send(key, [item], received_at=now + timedelta(days=3), sent_at=now + timedelta(days=3, hours=2))

    assert (again.accepted, again.duplicates) == (0, 1)
    assert RawEvent.objects.filter(event="old").count() == 1


@pytest.mark.django_db
def test_an_event_without_a_time_resent_on_another_day_is_stored_once(key):
    """Its timestamp is each send's received time; it has no client time, and all such events share the
    default partition's key."""
    item = {"event": "untimed", "event_id": str(uuid.uuid4())}
    first = send(key, [item], received_at=datetime(2026, 11, 30, 23, 59, tzinfo=UTC))
    second = send(key, [item], received_at=datetime(2026, 12, 1, 0, 1, tzinfo=UTC))

    [stored] = RawEvent.objects.filter(event="untimed")
    assert (first.accepted, second.duplicates) == (1, 1)
    assert stored.client_timestamp is None and partition_of(stored.pk) == partitions.DEFAULT_PARTITION
    assert stored.timestamp == datetime(2026, 11, 30, 23, 59, tzinfo=UTC)


@pytest.mark.django_db(transaction=True)
def test_concurrent_sends_of_one_event_corrected_onto_two_days_store_it_once(make_key):
    """The first send's transaction is open when the second arrives, its timestamp corrected onto the next
    day: the second waits for the first and skips the event."""
    api_key, _ = make_key(service="gateway")
    event_id = uuid.uuid4()
    columns = (*EVENT_COLUMNS, CLIENT_TIME_COLUMN)
    sent = datetime(2026, 11, 30, 23, 59, 58, tzinfo=UTC)

    def row(moment: datetime) -> tuple:
        return (event_id, "gateway", "prod", "metric", "e", moment, moment, "", "", "", "", {}, [], "", sent)

    results: dict[str, list[int]] = {}
    second_sent = threading.Event()

    def second() -> None:
        try:
            second_sent.set()
            results["second"] = raw_events_store(
                rows=[row(datetime(2026, 12, 1, 0, 0, 1, tzinfo=UTC))], columns=columns
            )
        finally:
            connections["default"].close()

    thread = threading.Thread(target=second)
    with transaction.atomic():
        first_row = row(datetime(2026, 11, 30, 23, 59, 59, tzinfo=UTC))
        results["first"] = raw_events_store(rows=[first_row], columns=columns)
        thread.start()
        second_sent.wait(5)
        wait_for(another_session_waits, timeout=10, message="the second send to wait for the first")
    thread.join(10)
    assert len(results["first"]) == 1 and results["second"] == []
    assert RawEvent.objects.filter(event_id=event_id).count() == 1


def another_session_waits() -> bool:
    """Whether a session of this database waits for a lock (statistics read afresh, in a transaction too)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE wait_event_type = 'Lock' AND datname = current_database() AND pid <> pg_backend_pid()"
        )
        return cursor.fetchone()[0] > 0


@pytest.mark.django_db
def test_retention_drops_old_days_whole_and_leaves_the_other_days_as_they_were(key, settings):
    settings.TRACE_BACKEND = "apps.traces.search.database.DatabaseTraceBackend"
    from apps.traces.search import _backend_for

    _backend_for.cache_clear()
    now = timezone.now()
    old_day, pending_day = (now - timedelta(days=100)).date(), (now - timedelta(days=99)).date()
    for day in (old_day, pending_day):
        partitions.partition_create(day)

    def at(day: date, hour: int) -> str:
        return datetime(day.year, day.month, day.day, hour, tzinfo=UTC).isoformat()

    old = [{"event": "seen", "correlation_id": "old", "timestamp": at(old_day, h)} for h in range(5)]
    old.append({"event": "seen", "timestamp": at(date(2003, 3, 3), 1)})  # the default partition
    done = [{"event": "seen", "timestamp": at(pending_day, 1)}]
    recent = [
        {"event": "seen", "correlation_id": "recent", "timestamp": (now - timedelta(hours=h)).isoformat()}
        for h in range(1, 4)
    ]
    ids = send(key, old + done + recent, received_at=now).stored_ids
    assert aggregate_chunk(event_ids=ids).done == len(ids)
    [pending] = send(key, [{"event": "seen", "timestamp": at(pending_day, 2)}], received_at=now).stored_ids
    query = SeriesQuery(events=("seen",), interval="hour", start=now - timedelta(days=1), end=now)
    series_before = series_for(query)
    trail_before = [e.event_id for e in get_trace_backend().trail("recent")]

    report = retention_apply(now=now)

    assert report.raw_partitions_dropped == [old_day.isoformat()]
    assert old_day not in partitions.day_partitions() and pending_day in partitions.day_partitions()
    with connection.cursor() as cursor:  # detached, then dropped
        cursor.execute("SELECT to_regclass(%s)", [partitions.partition_name(old_day)])
        assert cursor.fetchone()[0] is None
    assert report.raw_events_deleted == 5 + 1 + 1  # the dropped day, the default's row, the done one
    assert report.raw_events_kept_unprocessed == 1
    assert set(RawEvent.objects.values_list("pk", flat=True)) == {pending, *ids[-3:]}
    # Counted without a search bulk, they all waited in the index backlog: the deleted ones left it.
    assert set(IndexBacklog.objects.values_list("raw_id", flat=True)) == set(ids[-3:])
    assert series_for(query) == series_before
    assert [e.event_id for e in get_trace_backend().trail("recent")] == trail_before and len(
        trail_before
    ) == 3
    _backend_for.cache_clear()


@pytest.mark.django_db
def test_reads_from_a_time_find_events_skew_corrected_a_day_past_their_client_time(key):
    received = datetime(2026, 11, 30, 23, 30, tzinfo=UTC)
    for day in (date(2026, 11, 29), date(2026, 11, 30), date(2026, 12, 1)):
        partitions.partition_create(day)
    stamped = datetime(2026, 11, 29, 23, 40, tzinfo=UTC)  # the sender's clock is 23 h 50 min behind
    item = {"event": "late_clock", "timestamp": stamped.isoformat(), "user_id": "u1"}
    [pk] = send(
        key, [item], received_at=received, sent_at=received - timedelta(hours=23, minutes=50)
    ).stored_ids
    event = RawEvent.objects.get(pk=pk)
    assert (event.client_timestamp, event.timestamp) == (stamped, datetime(2026, 11, 30, 23, 30, tzinfo=UTC))

    assert list(
        RawEvent.objects.since(datetime(2026, 11, 30, 23, tzinfo=UTC)).values_list("pk", flat=True)
    ) == [pk]
    assert not RawEvent.objects.since(datetime(2026, 11, 30, 23, 31, tzinfo=UTC)).exists()


@pytest.mark.django_db
def test_reads_from_a_time_skip_the_partitions_of_older_days(key):
    today = timezone.now().astimezone(UTC).date()
    for back in range(10):
        partitions.partition_create(today - timedelta(days=back))
    start = datetime.combine(today - timedelta(days=2), datetime.min.time(), tzinfo=UTC)
    with connection.cursor() as cursor:
        sql, params = RawEvent.objects.since(start).values("pk").query.sql_with_params()
        cursor.execute(f"EXPLAIN {sql}", params)
        plan = "\n".join(row[0] for row in cursor.fetchall())

    read = {partitions.partition_name(today - timedelta(days=back)) for back in range(10) if back <= 3}
    skipped = {partitions.partition_name(today - timedelta(days=back)) for back in range(4, 10)}
    assert all(name in plan for name in read | {partitions.DEFAULT_PARTITION})
    assert not any(name in plan for name in skipped)
