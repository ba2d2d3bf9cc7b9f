"""Archive, retention, replay on the real PostgreSQL: the trail comes back once, the charts as they were."""

import io
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from apps.accounts.actors import Actor
from apps.accounts.models import AuditEntry
from apps.ingest.models import RawEvent
from apps.lifecycle.archive_layout import Archive, record_batch
from apps.lifecycle.services import retention_apply, user_purge
from apps.metrics.models import RollupCount
from apps.metrics.selectors import SeriesQuery, series_for
from apps.pipeline.services import process_chunk
from apps.traces.selectors import trail_get
from tests.conftest import wait_for

from .conftest import at

pytestmark = pytest.mark.django_db


def run(command: str, *args) -> str:
    out = io.StringIO()
    call_command(command, *args, stdout=out, stderr=out)
    return out.getvalue()


def archive_all(archive_dir) -> str:
    return run("archive_events", "--before", f"{timezone.now():%Y-%m-%d}", "--to", str(archive_dir))


def charts(days) -> list[dict]:
    """What the charts of those days draw: counts by hour, users, sums, breakdowns (rollups and raw rows)."""
    start, end = at(days[0], 0), at(days[1], 0) + timedelta(days=1)
    queries = [
        SeriesQuery(events=("search_made",), measure="count", interval="hour", start=start, end=end),
        SeriesQuery(events=("search_made",), measure="unique_users", interval="day", start=start, end=end),
        SeriesQuery(events=("search_made",), measure="sum:ms", interval="day", start=start, end=end),
        SeriesQuery(events=("search_made", "log"), interval="day", breakdown="service", start=start, end=end),
        # Property breakdowns read the aggregated raw events themselves.
        SeriesQuery(events=("search_made",), interval="day", breakdown="prop:region", start=start, end=end),
    ]
    return [[series.as_json() for series in series_for(query)] for query in queries]


def process_replayed() -> int:
    """Run the pipeline on the replayed rows, as the events_stored receiver would have queued it."""
    ids = list(RawEvent.objects.awaiting_index().values_list("pk", flat=True))
    process_chunk(event_ids=ids)
    return len(ids)


def test_round_trip_gives_back_the_trail_once_and_the_charts_as_they_were(old_events, archive_dir, inline):
    trail = trail_get(correlation_id="trail-1")
    assert len(trail) == 3 and any(event.notes for event in trail)
    before = charts(old_events)

    assert "archived 2 days, 5 rows" in archive_all(archive_dir)
    report = retention_apply()
    assert (report.raw_events_deleted, report.raw_days_not_archived) == (5, [])
    assert trail_get(correlation_id="trail-1") == []
    assert charts(old_events) != before  # the property breakdown reads raw rows: gone

    text = run("replay_archive", str(archive_dir))
    assert "replaying 4 files" in text
    assert "5 rows read, 5 stored, 0 already there, 0 refused" in text
    assert process_replayed() == 5

    assert trail_get(correlation_id="trail-1") == trail  # every field: received time, notes, stage, ...
    assert charts(old_events) == before  # counted once: rollups kept, replayed rows marked counted

    again = run("replay_archive", str(archive_dir))
    assert "5 rows read, 0 stored, 5 already there, 0 refused" in again
    assert process_replayed() == 0
    assert trail_get(correlation_id="trail-1") == trail
    assert charts(old_events) == before
    assert RawEvent.objects.count() == 5


def test_replay_selects_days_and_services(old_events, archive_dir, inline):
    first, second = old_events
    archive_all(archive_dir)
    retention_apply()

    text = run("replay_archive", str(archive_dir), "--from", f"{second}", "--service", "gateway")
    assert "replaying 1 files" in text and "2 rows read, 2 stored" in text
    text = run("replay_archive", str(archive_dir), "--to", f"{second}", "--service", "odd service/β")
    assert "1 rows read, 1 stored" in text
    services = sorted(RawEvent.objects.values_list("service", flat=True))
    assert services == ["gateway", "gateway", "odd service/β"]


def test_an_event_never_counted_is_counted_once_after_replay(send_old, days, archive_dir, inline):
    first, _ = days
    [pending] = send_old(
        [{"service": "gateway", "event": "search_made", "timestamp": at(first, 12).isoformat()}],
        received_at=at(first, 12, 1),
        pending=True,
    )
    archive_all(archive_dir)  # archived while it waited for the pipeline: not counted
    RawEvent.objects.filter(pk=pending).delete()  # lost from the database (say, restored from a backup)

    assert "1 stored" in run("replay_archive", str(archive_dir))
    process_replayed()
    run("replay_archive", str(archive_dir))
    process_replayed()

    [series] = series_for(
        SeriesQuery(events=("search_made",), start=at(first, 0), end=at(first, 0) + timedelta(days=1))
    )
    assert sum(v for _, v in series.points) == 1


def test_a_corrupt_file_is_named_and_the_rest_replays(old_events, archive_dir, inline):
    first, second = old_events
    archive_all(archive_dir)
    retention_apply()
    archive = Archive.at(str(archive_dir))
    broken = archive.part_path(first, "forecast")
    with open(broken, "r+b") as handle:  # the footer, and so the whole file, unreadable
        handle.seek(-12, 2)
        handle.write(b"\x00" * 12)
    damaged = archive.part_path(second, "gateway")
    data = bytearray(open(damaged, "rb").read())
    data[200:260] = b"\xff" * 60  # a data page damaged: its checksum no longer matches
    open(damaged, "wb").write(bytes(data))

    with pytest.raises(CommandError, match="2 files or row groups could not be read"):
        call_command("replay_archive", str(archive_dir), stdout=(out := io.StringIO()), stderr=out)

    text = out.getvalue()
    assert f"skipped, cannot be read: {broken}:" in text
    assert f"skipped, cannot be read: {damaged} (row group 0):" in text
    assert "2 rows read, 2 stored" in text
    assert sorted(RawEvent.objects.values_list("service", flat=True)) == ["gateway", "odd service/β"]


def test_rows_conform_refuses_are_counted_by_reason(archive_dir, inline, db):
    archive = Archive.at(str(archive_dir))
    good = (
        "0b6f0a4e-3c59-4a4e-9d52-6e0e8f1f9a01",
        "gateway",
        "prod",
        "metric",
        "search_made",
        at(timezone.now().date(), 1),
        at(timezone.now().date(), 1, 1),
        "",
        "",
        "",
        "",
        "{}",
        "[]",
        "node-a",
        "",
        "",
        None,
        True,
        at(timezone.now().date(), 1),
    )
    too_early = (good[0].replace("01", "02"), *good[1:5], good[5].replace(year=1999), *good[6:])
    no_id = ("", *good[1:])
    bad_level = (good[0].replace("01", "03"), *good[1:9], "loud", *good[10:])
    rows = [good, too_early, no_id, bad_level]
    archive.write_parquet(archive.part_path(timezone.now().date(), "gateway"), [record_batch(rows)])

    text = run("replay_archive", str(archive_dir))

    assert "4 rows read, 1 stored, 0 already there, 3 refused" in text
    assert "event_id: missing in the archive" in text
    assert "timestamp: '1999-" in text and "is before 2000-01-01" in text
    assert "level: 'loud' is not one of debug, info, warning, error, critical" in text
    stored = RawEvent.objects.with_aggregated().get()
    assert (stored.notes, stored.ingest_node, stored.received_at, stored.aggregated) == (
        [],
        "node-a",
        good[6],
        True,
    )


def test_a_unit_stores_its_rows_in_one_statement_per_batch(
    old_events, archive_dir, django_assert_num_queries
):
    from apps.lifecycle.replay import replay_plan, row_group_replay

    archive_all(archive_dir)
    retention_apply()
    archive = Archive.at(str(archive_dir))
    [unit] = [u for u in replay_plan(archive=archive).units if u.rows == 2]

    # One look-up of the purges (per unit), one INSERT for the two rows and one for their index backlog rows
    # (they were counted before), in one transaction (a savepoint here, and its release); none per row.
    with django_assert_num_queries(5):
        outcome = row_group_replay(archive=archive, path=unit.path, row_group=unit.row_group)

    assert (outcome.rows_read, outcome.stored) == (2, 2)


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_workers_take_the_row_groups_and_the_pipeline_the_stored_rows(old_events, archive_dir, start_worker):
    trail = trail_get(correlation_id="trail-1")
    before = charts(old_events)
    archive_all(archive_dir)
    retention_apply()
    start_worker(ELASTICSEARCH_URL="")  # trace search on the database, as in this process

    text = run("replay_archive", str(archive_dir), "--timeout", "60")

    assert "4 row groups" in text and "5 rows read, 5 stored, 0 already there, 0 refused" in text
    wait_for(
        lambda: not RawEvent.objects.awaiting_index().exists(), timeout=30, message="the pipeline to index"
    )
    assert trail_get(correlation_id="trail-1") == trail
    assert charts(old_events) == before
    assert "5 rows read, 0 stored, 5 already there" in run("replay_archive", str(archive_dir))


def test_spans_come_back_with_their_ids_and_duration(send_old, days, archive_dir, inline):
    span = {
        "type": "span",
        "event": "GET /tiles",
        "service": "tiles",
        "correlation_id": "4bf92f3577b34da6a3ce929d0e0e4736",
        "span_id": "00f067aa0ba902b7",
        "parent_span_id": "a3ce929d0e0e4736",
        "duration_ms": 12.5,
        "timestamp": at(days[0], 9).isoformat(),
    }
    send_old([span], received_at=at(days[0], 9, 1))
    archive_all(archive_dir)
    RawEvent.objects.all().delete()

    run("replay_archive", str(archive_dir))

    stored = RawEvent.objects.get()
    assert (stored.type, stored.span_id, stored.parent_span_id, stored.duration_ms) == (
        "span",
        "00f067aa0ba902b7",
        "a3ce929d0e0e4736",
        12.5,
    )


def test_a_file_of_the_first_archive_format_replays_without_span_fields(archive_dir, inline, db):
    import pyarrow as pa
    import pyarrow.parquet as pq

    archive = Archive.at(str(archive_dir))
    row = (
        "0b6f0a4e-3c59-4a4e-9d52-6e0e8f1f9a09",
        "gateway",
        "prod",
        "metric",
        "search_made",
        at(timezone.now().date(), 1),
        at(timezone.now().date(), 1, 1),
        "u-1",
        "",
        "",
        "",
        "{}",
        "[]",
        "node-a",
        "",
        "",
        None,
        False,
        at(timezone.now().date(), 1),
    )
    table = pa.Table.from_batches([record_batch([row])])
    version_one = table.drop_columns(["span_id", "parent_span_id", "duration_ms", "client_timestamp"])
    path = archive_dir / f"date={timezone.now().date():%Y-%m-%d}" / "service=gateway" / "part-0.parquet"
    path.parent.mkdir(parents=True)
    pq.write_table(version_one, path)
    assert archive.parquet_file(str(path)) is not None

    text = run("replay_archive", str(archive_dir))

    assert "1 rows read, 1 stored" in text
    stored = RawEvent.objects.get()
    assert stored.span_id == "" and stored.client_timestamp == stored.timestamp  # what the migration gave


def test_an_event_corrected_onto_the_next_day_replays_as_already_there(send_old, days, archive_dir, inline):
    """The archive keeps the time as sent: a replay finds the stored copy by it (on PostgreSQL, in the
    partition of that day), not by the corrected time, which here falls on the next day."""
    item = {
        "event": "search_made",
        "service": "gateway",
        "event_id": "0b6f0a4e-3c59-4a4e-9d52-6e0e8f1f9a31",
        "timestamp": (at(days[0], 23) + timedelta(minutes=58)).isoformat(),
    }
    received = at(days[1], 0) + timedelta(minutes=5)
    send_old([item], received_at=received, sent_at=received - timedelta(minutes=10))
    stored = RawEvent.objects.get()
    assert (stored.client_timestamp.date(), stored.timestamp.date()) == (days[0], days[1])
    archive_all(archive_dir)

    text = run("replay_archive", str(archive_dir))

    assert "1 rows read, 0 stored, 1 already there" in text
    assert RawEvent.objects.get().pk == stored.pk


def test_an_event_counted_after_a_manual_archive_is_not_counted_again(
    send_old, days, tmp_path, inline, settings
):
    settings.ARCHIVE_DIR = ""  # the README's manual flow: archive_events, then apply_retention drops the days
    first, _ = days
    [late] = send_old(  # a late arrival for an old day, waiting for the pipeline when the archive runs
        [{"service": "gateway", "event": "late_one", "timestamp": at(first, 10).isoformat()}],
        received_at=timezone.now() - timedelta(seconds=5),
        pending=True,
    )
    target = tmp_path / "archive"
    archive_all(target)
    assert process_chunk(event_ids=[late]).aggregated.done == 1  # the worker counts it a moment later
    assert retention_apply().raw_events_deleted == 1

    text = run("replay_archive", str(target))
    process_replayed()

    assert "1 stored as counted though archived as not counted" in text
    assert RollupCount.objects.get(event="late_one", granularity="day").count == 1
    assert RawEvent.objects.with_aggregated().get().aggregated


def archived_row(event_id: str, *, day, ingest_node: str = "node-a", notes: str = "[]", user_id: str = ""):
    """An archive row of a counted event received at 01:00:01 of `day`."""
    return (
        event_id, "gateway", "prod", "metric", "search_made", at(day, 1), at(day, 1, 1), user_id, "", "", "",
        "{}", notes, ingest_node, "", "", None, True, at(day, 1),
    )  # fmt: skip


def test_rows_the_database_cannot_store_are_refused_and_the_rest_replays(archive_dir, inline, db):
    archive = Archive.at(str(archive_dir))
    today = timezone.now().date()
    yesterday = today - timedelta(days=1)
    archive.write_parquet(
        archive.part_path(yesterday, "gateway"),
        [record_batch([archived_row("0b6f0a4e-3c59-4a4e-9d52-6e0e8f1f9a01", day=yesterday)])],
    )
    rows = [
        archived_row("0b6f0a4e-3c59-4a4e-9d52-6e0e8f1f9a02", day=today),
        # jsonb refuses \u0000, and so does text: neither goes through conform, which would replace it
        archived_row("0b6f0a4e-3c59-4a4e-9d52-6e0e8f1f9a03", day=today, notes='["a NUL \\u0000 here"]'),
        archived_row("0b6f0a4e-3c59-4a4e-9d52-6e0e8f1f9a04", day=today, ingest_node="node\x00a"),
    ]
    archive.write_parquet(archive.part_path(today, "gateway"), [record_batch(rows)])

    text = run("replay_archive", str(archive_dir))

    assert "4 rows read, 2 stored, 0 already there, 2 refused" in text
    assert "notes: a NUL character" in text and "ingest_node: a NUL character" in text
    assert sorted(str(e) for e in RawEvent.objects.values_list("event_id", flat=True)) == [
        "0b6f0a4e-3c59-4a4e-9d52-6e0e8f1f9a01",
        "0b6f0a4e-3c59-4a4e-9d52-6e0e8f1f9a02",
    ]


def test_a_purged_user_stays_purged_after_a_replay(old_events, archive_dir, inline):
    archive_all(archive_dir)
    user_purge(user_id="u1", actor=Actor.command())
    retention_apply()

    text = run("replay_archive", str(archive_dir))
    process_replayed()

    assert "3 stored" in text and "2 not stored: their user was purged after they were received" in text
    assert not RawEvent.objects.filter(user_id="u1").exists()
    assert sorted(RawEvent.objects.values_list("user_id", flat=True)) == ["", "u2", "u2"]
    assert [event.user_id for event in trail_get(correlation_id="trail-1")] == ["u2", ""]


def test_events_received_after_a_purge_replay(archive_dir, inline, db):
    archive = Archive.at(str(archive_dir))
    day = timezone.now().date() - timedelta(days=1)
    user_purge(user_id="u1", actor=Actor.command())  # now: after the row below was received
    AuditEntry.objects.update(at=at(day, 0))  # say the purge was an hour before the row came

    archive.write_parquet(
        archive.part_path(day, "gateway"),
        [record_batch([archived_row("0b6f0a4e-3c59-4a4e-9d52-6e0e8f1f9a05", day=day, user_id="u1")])],
    )

    assert "1 rows read, 1 stored" in run("replay_archive", str(archive_dir))
    assert RawEvent.objects.get().user_id == "u1"
