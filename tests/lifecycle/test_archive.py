"""The archive's files (Hive layout, same bytes on every run) and beat's order: archive, then retention."""

import hashlib
import io
import json
import threading
from datetime import timedelta

import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.utils import timezone

from apps.common.advisory import exclusive
from apps.ingest.models import RawEvent
from apps.lifecycle import archive, tasks
from apps.lifecycle.archive_layout import SCHEMA, Archive
from apps.lifecycle.services import retention_apply
from apps.pipeline.services import process_chunk
from tests.conftest import in_thread

from .conftest import at

pytestmark = pytest.mark.django_db


def archive_all(archive_dir) -> str:
    out = io.StringIO()
    call_command(
        "archive_events", "--before", f"{timezone.now():%Y-%m-%d}", "--to", str(archive_dir), stdout=out
    )
    return out.getvalue()


def checksums(archive_dir) -> dict[str, str]:
    return {
        str(path.relative_to(archive_dir)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(archive_dir.rglob("*.parquet"))
    }


def rows_of(path) -> list[dict]:
    return pq.read_table(path).to_pylist()


def test_rearchiving_writes_the_same_bytes_even_after_retention_and_replay(
    old_events, archive_dir, inline, monkeypatch
):
    monkeypatch.setattr(archive, "ROW_GROUP_ROWS", 1)  # several row groups per file, boundaries included
    archive_all(archive_dir)
    written = checksums(archive_dir)
    assert len(written) == 4
    second_day = archive_dir / f"date={old_events[1]}" / "service=gateway" / "part-0.parquet"
    assert pq.ParquetFile(second_day).metadata.num_row_groups == 2

    archive_all(archive_dir)
    assert checksums(archive_dir) == written

    retention_apply()
    assert not RawEvent.objects.exists()
    archive_all(archive_dir)  # nothing left in the database: the archive is left as it is
    assert checksums(archive_dir) == written

    call_command("replay_archive", str(archive_dir), stdout=io.StringIO())
    process_chunk(event_ids=list(RawEvent.objects.values_list("pk", flat=True)))
    archive_all(archive_dir)  # the replayed rows are the archived ones, field for field
    assert checksums(archive_dir) == written


def test_the_archive_is_a_hive_dataset_any_engine_reads(old_events, archive_dir):
    first, second = old_events
    archive_all(archive_dir)

    dataset = ds.dataset(str(archive_dir), format="parquet", partitioning="hive")
    table = dataset.to_table()

    assert table.num_rows == 5
    assert {(str(row["date"]), row["service"]) for row in table.to_pylist()} == {
        (first.isoformat(), "gateway"),
        (first.isoformat(), "forecast"),
        (first.isoformat(), "odd service/β"),
        (second.isoformat(), "gateway"),
    }
    assert (archive_dir / f"date={first}" / "service=odd%20service%2F%CE%B2" / "part-0.parquet").exists()
    odd = dataset.to_table(
        filter=(ds.field("date") == first.isoformat()) & (ds.field("service") == "odd service/β")
    )
    [log] = odd.to_pylist()
    assert (log["type"], log["level"], log["message"]) == ("log", "warning", "slow answer: 900 ms")
    assert json.loads(log["notes"]) == ["event_id assigned by the server", "level 'WARN' read as warning"]

    path = archive_dir / f"date={first}" / "service=gateway" / "part-0.parquet"
    schema = pq.read_schema(path)
    assert [(f.name, f.type, f.nullable) for f in schema] == [(f.name, f.type, f.nullable) for f in SCHEMA]
    assert str(schema.field("timestamp").type) == "timestamp[us, tz=UTC]"
    [row] = rows_of(path)
    assert json.loads(row["properties"]) == {"ms": 120, "region": "eu", "nested": {"a": [1.5, "x"], "b": 1}}
    assert (row["aggregated"], row["ingest_node"], row["received_at"]) == (True, "node-a", at(first, 10, 5))
    later = rows_of(archive_dir / f"date={second}" / "service=gateway" / "part-0.parquet")
    assert [r["timestamp"] for r in later] == sorted(r["timestamp"] for r in later)


def archive_failing_one_day(archive_dir) -> str:
    """Run archive_events up to today, which must fail for one day; return what it wrote to stderr."""
    err = io.StringIO()
    with pytest.raises(CommandError, match="days not archived: 1"):
        call_command(
            "archive_events",
            "--before",
            f"{timezone.now():%Y-%m-%d}",
            "--to",
            str(archive_dir),
            stdout=io.StringIO(),
            stderr=err,
        )
    return err.getvalue()


def test_an_unreadable_archived_file_is_never_overwritten(old_events, archive_dir):
    first, _ = old_events
    archive_all(archive_dir)
    broken = archive_dir / f"date={first}" / "service=forecast" / "part-0.parquet"
    broken.write_bytes(b"not parquet")
    marker = (archive_dir / f"date={first}" / "_archive.json").read_text()

    err = archive_failing_one_day(archive_dir)

    assert str(broken) in err
    assert broken.read_bytes() == b"not parquet"
    assert (archive_dir / f"date={first}" / "_archive.json").read_text() == marker


def run_beat_archive(monkeypatch) -> list[str]:
    """Run beat's archive task, with the per-day tasks it queues run here."""
    monkeypatch.setattr(tasks.archive_day, "delay", lambda day: tasks.archive_day(day))
    return tasks.archive_due()["queued"]


def test_retention_keeps_days_beat_has_not_archived_then_deletes_them(old_events, archive_dir, monkeypatch):
    first, second = old_events

    report = retention_apply()

    assert (report.raw_events_deleted, report.raw_events_kept_unarchived) == (0, 5)
    assert report.raw_days_not_archived == [first.isoformat(), second.isoformat()]
    out = io.StringIO()
    call_command("apply_retention", stdout=out)
    assert f"kept 5 raw events of days the archive at {archive_dir} does not hold yet" in out.getvalue()

    assert run_beat_archive(monkeypatch) == [first.isoformat(), second.isoformat()]
    assert run_beat_archive(monkeypatch) == []  # held as they are: nothing to do

    report = retention_apply()
    assert (report.raw_events_deleted, report.raw_days_not_archived) == (5, [])
    assert ds.dataset(str(archive_dir), format="parquet", partitioning="hive").count_rows() == 5


def archived_with_a_waiting_event(send_old, day, *, counted_at_hours, monkeypatch) -> int:
    """Store events "a" of `day` (counted) and one "b" still waiting, archive the day as beat does; return
    the waiting event's id."""
    send_old(
        [{"service": "gateway", "event": "a", "timestamp": at(day, h).isoformat()} for h in counted_at_hours],
        received_at=at(day, 3),
    )
    [waiting] = send_old(
        [{"service": "gateway", "event": "b", "timestamp": at(day, 4).isoformat()}],
        received_at=at(day, 5),
        pending=True,
    )
    assert run_beat_archive(monkeypatch) == [day.isoformat()]
    return waiting


def test_a_day_that_changed_after_its_archive_is_kept_until_archived_again(
    send_old, days, archive_dir, monkeypatch
):
    first, _ = days
    pending = archived_with_a_waiting_event(send_old, first, counted_at_hours=(1, 2), monkeypatch=monkeypatch)
    RawEvent.objects.filter(event="a", timestamp=at(first, 1)).delete()  # say a purge took it
    process_chunk(event_ids=[pending])  # counted after the archive read it as waiting
    send_old(  # and a late arrival for that day
        [{"service": "gateway", "event": "c", "timestamp": at(first, 6).isoformat()}],
        received_at=timezone.now() - timedelta(minutes=2),
    )

    report = retention_apply()

    assert (report.raw_events_deleted, report.raw_days_not_archived) == (0, [first.isoformat()])

    monkeypatch.setattr(archive, "SETTLE", timedelta(0))  # the next run, with everything settled
    assert run_beat_archive(monkeypatch) == [first.isoformat()]
    report = retention_apply()
    assert (report.raw_events_deleted, report.raw_days_not_archived) == (3, [])
    rows = rows_of(archive_dir / f"date={first}" / "service=gateway" / "part-0.parquet")
    # The row deleted from the database is kept from the archive; the others as they are now.
    assert [(r["event"], r["aggregated"]) for r in rows] == [
        ("a", True),
        ("a", True),
        ("b", True),
        ("c", True),
    ]


def test_an_event_counted_after_its_days_archive_keeps_the_day_until_archived_again(
    send_old, days, archive_dir, monkeypatch
):
    """The archive held the event as waiting; counted since (its day's mark says when), a replay would
    count it again, so the day is not deleted until an archive holds it as counted."""
    first, _ = days
    waiting = archived_with_a_waiting_event(send_old, first, counted_at_hours=(1,), monkeypatch=monkeypatch)
    assert process_chunk(event_ids=[waiting]).aggregated.done == 1  # nothing else changed in the day

    report = retention_apply()

    assert (report.raw_events_deleted, report.raw_days_not_archived) == (0, [first.isoformat()])
    monkeypatch.setattr(archive, "SETTLE", timedelta(0))
    assert run_beat_archive(monkeypatch) == [first.isoformat()]
    assert retention_apply().raw_events_deleted == 2
    rows = rows_of(archive_dir / f"date={first}" / "service=gateway" / "part-0.parquet")
    assert [(r["event"], r["aggregated"]) for r in rows] == [("a", True), ("b", True)]


def test_without_an_archive_directory_nothing_is_archived_and_retention_is_as_before(old_events, settings):
    settings.ARCHIVE_DIR = ""
    assert tasks.archive_due() == {"queued": []}
    assert tasks.archive_day(f"{old_events[0]}") == {"archive": "off"}
    assert retention_apply().raw_events_deleted == 5


def test_archive_paths_take_any_service_name(tmp_path):
    target = Archive.at(str(tmp_path))
    day = timezone.now().date()
    for name in ("gateway", "a/b", "..", "x=y%z", "naïve", "with space"):
        path = target.part_path(day, name)
        assert path.count("/") == str(tmp_path).count("/") + 3
        target.fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
        target.fs.touch(path)
    assert set(target.service_files(day)) == {"gateway", "a/b", "..", "x=y%z", "naïve", "with space"}


# 50 characters (conform takes 100), 300 bytes once percent-encoded: more than a file name holds.
LONG_NAME = "сервис-отслеживания-судов-продакшн-европа-запад-01"


def test_a_service_name_too_long_for_a_path_is_cut_and_replays_under_its_own_name(
    send_old, days, archive_dir, inline
):
    first, second = days
    send_old(
        [{"service": LONG_NAME, "event": "e", "timestamp": at(first, 10).isoformat()}],
        received_at=at(first, 11),
    )
    send_old(
        [{"service": "gateway", "event": "e", "timestamp": at(second, 10).isoformat()}],
        received_at=at(second, 11),
    )

    assert "archived 2 days, 2 rows" in archive_all(archive_dir)

    [directory] = (archive_dir / f"date={first}").glob("service=*")
    assert len(directory.name) <= 255 and directory.name.startswith("service=%D1%81%D0%B5")
    assert rows_of(directory / "part-0.parquet")[0]["service"] == LONG_NAME
    # The same name always makes the same path: a rerun rewrites that file, not a second one.
    assert Archive.at(str(archive_dir)).part_path(first, LONG_NAME) == str(directory / "part-0.parquet")
    assert set(Archive.at(str(archive_dir)).service_files(first)) == {LONG_NAME}
    RawEvent.objects.all().delete()
    out = io.StringIO()
    call_command("replay_archive", str(archive_dir), "--service", LONG_NAME, stdout=out)
    assert "1 rows read, 1 stored" in out.getvalue()
    assert RawEvent.objects.get().service == LONG_NAME


def test_a_day_the_filesystem_refuses_is_named_and_the_other_days_archive(old_events, archive_dir):
    first, second = old_events
    archive_dir.mkdir()
    (archive_dir / f"date={first}").write_text("a file where the day's directory goes")

    err = archive_failing_one_day(archive_dir)

    assert f"{first}: not archived: " in err and "cannot write the day" in err
    assert (archive_dir / f"date={second}" / "service=gateway" / "part-0.parquet").exists()


@pytest.fixture
def memory_archive(settings):
    """An archive behind an fsspec URL (the in-memory filesystem: the code path s3:// takes, without S3)."""
    import fsspec

    url = "memory://skywatch-tests/archive"
    settings.ARCHIVE_DIR = url
    yield url
    fs, root = fsspec.core.url_to_fs(url)
    if fs.exists(root):
        fs.rm(root, recursive=True)


def test_an_fsspec_url_archives_and_replays_through_the_same_code(old_events, memory_archive, inline):
    from apps.traces.selectors import trail_get

    trail = trail_get(correlation_id="trail-1")
    out = io.StringIO()
    call_command(
        "archive_events", "--before", f"{timezone.now():%Y-%m-%d}", "--to", memory_archive, stdout=out
    )
    assert "archived 2 days, 5 rows" in out.getvalue()
    assert retention_apply().raw_events_deleted == 5  # retention read the markers there

    target = Archive.at(memory_archive)
    dataset = ds.dataset(target.root, filesystem=target.fs, format="parquet", partitioning="hive")
    assert dataset.count_rows() == 5
    assert not [p for p in target.fs.find(target.root) if p.rsplit("/", 1)[-1].startswith(".")]

    call_command("replay_archive", memory_archive, stdout=(out := io.StringIO()))
    assert "5 rows read, 5 stored" in out.getvalue()
    process_chunk(event_ids=list(RawEvent.objects.values_list("pk", flat=True)))
    assert trail_get(correlation_id="trail-1") == trail


def test_commands_say_what_is_wrong_with_the_place(tmp_path):
    with pytest.raises(CommandError, match="Install s3fs"):
        call_command("archive_events", "--before", "2026-01-01", "--to", "s3://bucket/archive")
    with pytest.raises(CommandError, match="no such archive directory"):
        call_command("replay_archive", str(tmp_path / "missing"))
    with pytest.raises(CommandError, match="--before must be a date"):
        call_command("archive_events", "--before", "yesterday", "--to", str(tmp_path))
    with pytest.raises(CommandError, match="--before must be at most"):
        call_command("archive_events", "--before", "9999-12-31", "--to", str(tmp_path))
    (a_file := tmp_path / "not-a-directory").write_text("x")
    with pytest.raises(CommandError, match="not a directory"):
        call_command("archive_events", "--before", "2026-01-01", "--to", str(a_file))


def test_retention_with_an_archive_it_cannot_open_deletes_nothing(old_events, settings, monkeypatch):
    from apps.traces.search.database import DatabaseTraceBackend

    dropped = []
    monkeypatch.setattr(DatabaseTraceBackend, "drop_before", lambda self, cutoff: dropped.append(cutoff))
    settings.ARCHIVE_DIR = "s3://bucket/archive"  # s3fs is not installed here

    with pytest.raises(CommandError, match="Install s3fs.*nothing was deleted"):
        call_command("apply_retention", stdout=io.StringIO())

    assert dropped == [] and RawEvent.objects.count() == 5


@pytest.mark.skipif(connection.vendor != "postgresql", reason="one process in the embedded mode")
def test_a_day_another_run_is_archiving_is_left_to_it_and_said(old_events, archive_dir, days):
    first, second = days
    holding, release = threading.Event(), threading.Event()

    def other_run() -> None:  # beat's archive task for the first day, in a session of its own
        refused = AssertionError("the test's run took the lock first")
        with exclusive(archive.ARCHIVE_DAY_LOCK, first.toordinal(), refused=refused):
            holding.set()
            release.wait(10)

    thread = in_thread(other_run)
    try:
        assert holding.wait(10)
        err = archive_failing_one_day(archive_dir)
    finally:
        release.set()
        thread.join(10)

    assert f"{first}: not archived" in err and "another run is archiving this day" in err
    assert not (archive_dir / f"date={first}").exists()  # nothing written beside the other run
    assert list((archive_dir / f"date={second}").rglob("*.parquet"))  # the other day is archived
    assert f"{first}: " in archive_all(archive_dir)  # once the other run is done, the day is archived
