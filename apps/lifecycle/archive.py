"""Archive raw events as Parquet before retention drops them (the lessons' "keep raw events forever in
cheap storage"), a UTC day at a time, and say which days retention may delete.

A day's files hold every event of the day the database or an earlier archive run held: rows are streamed
from the database in chunks and merged, in file order, with what the day's files already hold, so running
it again after retention (or after a replay) rewrites the same bytes and never loses an archived event.
Each day keeps a marker (`_archive.json`) saying up to which row id, and as of when, it holds the database
(and when an archive run first read the day): a day is archived when none of its rows came, or were counted
in the rollups, after that.
"""

import heapq
import itertools
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from operator import itemgetter

import pyarrow as pa
from django.conf import settings
from django.db.models import Count, Exists, Max, Q, QuerySet
from django.db.models.functions import TruncDay
from django.utils import timezone

from apps.common.advisory import exclusive
from apps.ingest.models import AggregationMark, RawEvent

from .archive_layout import (
    DATABASE_FIELDS,
    FORMAT_VERSION,
    Archive,
    ArchiveRow,
    archive_row,
    batch_rows,
    day_range,
    record_batch,
    sort_key,
)

logger = logging.getLogger(__name__)

# Rows per row group: the unit a replay task takes. Rows are read from the database in smaller chunks.
ROW_GROUP_ROWS = 50_000
READ_CHUNK = 5_000
# A pipeline task (time limit 5 minutes) or an ingest request stamps its time before it commits: what was
# stamped longer ago than this before an archive run started is in what that run read.
SETTLE = timedelta(minutes=10)
# Beat archives the days that pass RETENTION_RAW_DAYS within this many days (one run can fail unharmed).
LEAD_DAYS = 2


# With a day's ordinal, the advisory lock (two 32-bit keys) a run holds while it archives that day.
ARCHIVE_DAY_LOCK = 0x53574152  # "SWAR"


class ArchiveError(Exception):
    """A day could not be archived (its files are left as they were); the message names the file."""


@dataclass
class DayArchived:
    """What archiving one day wrote."""

    day: date
    files: int = 0
    rows: int = 0  # rows in the day's files now
    from_database: int = 0
    kept_from_archive: int = 0  # archived rows no longer in the database (retention, a purge)
    max_id: int = 0  # the highest row id read from the database


@dataclass(frozen=True)
class DayInDatabase:
    """What the database holds of a day that retention may delete (aggregated or dead-lettered rows)."""

    day: date
    rows: int
    max_id: int
    last_received: datetime
    last_aggregated: datetime | None


def day_archive(*, archive: Archive, day: date, now: datetime | None = None) -> DayArchived:
    """Write one UTC day's raw events to the archive, one file per service, merged with the day's files.

    Database rows win over archived rows of the same event (their pipeline state is newer); archived rows
    the database no longer has are kept. Services the database no longer has keep their files untouched.
    Then the day's marker records the highest row id read and when the run started. A day the filesystem
    refuses (a name, space, permissions) raises ArchiveError: that day fails, not the whole run. So does a
    day another run is archiving (beat's task and an operator's command at once): two runs interleaving
    their files could leave a marker that does not describe the files, and retention trusts the marker.
    """
    refused = ArchiveError(f"{archive.day_dir(day)}: another run is archiving this day; try again later")
    try:
        with exclusive(ARCHIVE_DAY_LOCK, day.toordinal(), refused=refused):
            return _day_write(archive=archive, day=day, started=now or timezone.now())
    except OSError as exc:
        raise ArchiveError(
            f"{archive.day_dir(day)}: cannot write the day ({type(exc).__name__}: {exc})"
        ) from exc


def _day_write(*, archive: Archive, day: date, started: datetime) -> DayArchived:
    previous = archive.read_marker(day) or {}
    result = DayArchived(day=day)
    files = _day_files_write(archive=archive, day=day, result=result)
    result.files, result.rows = len(files), sum(files.values())
    started_text = started.astimezone(UTC).isoformat()
    marker = {
        "version": FORMAT_VERSION,
        "date": day.isoformat(),
        "archived_at": started_text,
        # Replay's reference for rows archived as not counted: a run keeps earlier runs' rows as they were.
        "first_archived_at": previous.get("first_archived_at") or previous.get("archived_at") or started_text,
        "max_id": max(int(previous.get("max_id", 0)), result.max_id),
        "rows": result.rows,
        "files": dict(sorted(files.items())),
    }
    archive.write_marker(day, marker)
    logger.info(
        "archived %s: %d files, %d rows (%d from the database)",
        day,
        result.files,
        result.rows,
        result.from_database,
    )
    return result


def _day_files_write(*, archive: Archive, day: date, result: DayArchived) -> dict[str, int]:
    """Write the day's files, service by service; return the rows of each of the day's files (by name)."""
    start, end = day_range(day)
    files: dict[str, int] = {}
    rows = (
        RawEvent.objects.since(start)
        .filter(timestamp__lt=end)
        .with_aggregated()
        .order_by("service", "timestamp", "event_id")
        .values_list(*DATABASE_FIELDS)
        .iterator(chunk_size=READ_CHUNK)
    )
    for service, group in itertools.groupby(rows, key=itemgetter(2)):
        path = archive.part_path(day, service)
        fresh = _DatabaseRows(group)
        if archive.fs.exists(path):
            merged = _Merged(fresh, _archived_rows(archive, path))
            files[_relative(archive, path)] = archive.write_parquet(path, _batches(merged))
            result.kept_from_archive += merged.kept_from_archive
        else:
            files[_relative(archive, path)] = archive.write_parquet(path, _batches(fresh))
        result.from_database += fresh.count
        result.max_id = max(result.max_id, fresh.max_id)

    for paths in archive.service_files(day).values():
        for path in paths:
            name = _relative(archive, path)
            if name not in files:  # a service the database no longer holds: its file stays as it is
                files[name] = _row_count(archive, path)
    return files


class _DatabaseRows:
    """A service's database rows as archive rows, counted, with the highest row id read."""

    def __init__(self, rows: Iterable[tuple]) -> None:
        self.rows, self.count, self.max_id = rows, 0, 0

    def __iter__(self) -> Iterator[ArchiveRow]:
        for values in self.rows:
            self.count += 1
            self.max_id = max(self.max_id, values[0])
            yield archive_row(values)


def _archived_rows(archive: Archive, path: str) -> Iterator[ArchiveRow]:
    try:
        parquet = archive.parquet_file(path)
        for batch in parquet.iter_batches(batch_size=READ_CHUNK):
            yield from batch_rows(batch)
    except Exception as exc:  # a file that cannot be read is never overwritten: a person looks at it
        raise ArchiveError(
            f"{path}: the archived file cannot be read ({type(exc).__name__}: {exc}); "
            "the day was not re-archived: move the file away to archive the day anew"
        ) from exc


class _Merged:
    """Two row streams merged in file order; of an event in both, the database's row is kept."""

    def __init__(self, fresh: Iterable[ArchiveRow], archived: Iterable[ArchiveRow]) -> None:
        self.fresh, self.archived, self.kept_from_archive = fresh, archived, 0

    def __iter__(self) -> Iterator[ArchiveRow]:
        previous = None
        fresh = ((sort_key(row), 0, row) for row in self.fresh)
        archived = ((sort_key(row), 1, row) for row in self.archived)
        tagged = heapq.merge(fresh, archived)
        for key, source, row in tagged:
            if key == previous:
                continue
            previous = key
            self.kept_from_archive += source
            yield row


def _batches(rows: Iterable[ArchiveRow]) -> Iterator:
    """Yield record batches of ROW_GROUP_ROWS rows (the last one shorter): boundaries follow the rows."""
    iterator = iter(rows)
    while chunk := list(itertools.islice(iterator, ROW_GROUP_ROWS)):
        yield record_batch(chunk)


def _relative(archive: Archive, path: str) -> str:
    return path[len(archive.root) :].lstrip("/").split("/", 1)[1]


def _row_count(archive: Archive, path: str) -> int:
    try:
        return archive.parquet_file(path).metadata.num_rows
    except (OSError, pa.ArrowException):  # unreadable or not Parquet: replay reports the file by name
        logger.warning("archive file %s cannot be read", path, exc_info=True)
        return 0


# --- which days: the archive's side of retention ------------------------------------------------------


def days_in_database(*, end: datetime, start: datetime | None = None) -> list[DayInDatabase]:
    """Return, per UTC day before `end`, what the database holds that retention may delete (one query)."""
    rows: QuerySet = RawEvent.objects.done_with_aggregation().filter(timestamp__lt=end)
    if start is not None:
        rows = rows.filter(timestamp__gte=start)
    stats = (
        rows.annotate(day=TruncDay("timestamp", tzinfo=UTC))
        .values("day")
        .annotate(
            rows=Count("id"),
            max_id=Max("id"),
            last_received=Max("received_at"),
        )
        .order_by("day")
    )
    marks = AggregationMark.objects.filter(day__lt=end.astimezone(UTC).date() + timedelta(days=1))
    if start is not None:
        marks = marks.filter(day__gte=start.astimezone(UTC).date())
    last_marked = dict(marks.values("day").annotate(last=Max("marked_at")).values_list("day", "last"))
    return [
        DayInDatabase(
            day=row["day"].date(),
            rows=row["rows"],
            max_id=row["max_id"],
            last_received=row["last_received"],
            last_aggregated=last_marked.get(row["day"].date()),
        )
        for row in stats
    ]


def is_archived(held: DayInDatabase, marker: dict | None) -> bool:
    """Return whether the archive holds the day's deletable rows as they are now: no row came in, or was
    counted in the rollups, after the archive run that wrote the marker read the database."""
    if marker is None:
        return False
    settled = datetime.fromisoformat(marker["archived_at"]) - SETTLE
    return (
        held.max_id <= int(marker["max_id"])
        and held.last_received < settled
        and (held.last_aggregated is None or held.last_aggregated < settled)
    )


def counted_after_read(marker: dict | None, last_aggregated: datetime | None) -> bool:
    """Return whether events of a day may have been counted in the rollups after an archive run first read
    the day (`last_aggregated`: the day's last AggregationMark), so that a row archived as not counted may
    be counted now. Unknown (no marker says when the day was read, but the day was counted) is a yes."""
    if last_aggregated is None:
        return False
    if marker is None:
        return True
    first_read = marker.get("first_archived_at") or marker["archived_at"]
    return last_aggregated >= datetime.fromisoformat(first_read) - SETTLE


def configured_archive() -> Archive | None:
    """Return the archive at ARCHIVE_DIR, or None when no archive is configured; raise ArchiveError when
    its filesystem is not installed (s3:// without s3fs)."""
    if not settings.ARCHIVE_DIR:
        return None
    try:
        return Archive.at(settings.ARCHIVE_DIR)
    except (ImportError, ValueError) as exc:  # fsspec names the package to install
        raise ArchiveError(f"ARCHIVE_DIR={settings.ARCHIVE_DIR}: {exc}") from exc


def days_not_archived(*, before: datetime) -> list[date]:
    """Return the days before `before` whose deletable rows the configured archive does not hold (none when
    ARCHIVE_DIR is unset). Retention keeps these days; an unreachable archive raises, so nothing goes."""
    archive = configured_archive()
    if archive is None:
        return []
    held = days_in_database(end=before)
    return [day.day for day in held if not is_archived(day, archive.read_marker(day.day))]


@dataclass
class RetentionScope:
    """What retention may delete with an archive configured: rows of archived days that the archive holds
    (no row that came, or was counted, after the archive read the day), and the days it keeps whole."""

    held: Q
    not_archived: list[date]


def retention_scope(*, before: datetime, archive: Archive | None) -> RetentionScope | None:
    """Return what retention may delete before `before` (None without an archive: anything). The rows are
    chosen by the same marker the check read, so a row arriving meanwhile is not deleted."""
    if archive is None:
        return None
    scope = RetentionScope(held=Q(pk__in=[]), not_archived=[])
    for held in days_in_database(end=before):
        marker = archive.read_marker(held.day)
        if not is_archived(held, marker):
            scope.not_archived.append(held.day)
            continue
        start, end = day_range(held.day)
        settled = datetime.fromisoformat(marker["archived_at"]) - SETTLE
        # Checked again by the DELETE itself: a claim or dead-lettering committed since the check marks
        # the day, and keeps it whole (one still running leaves its events in the backlog: kept).
        marked_since = AggregationMark.objects.filter(day=held.day, marked_at__gte=settled)
        scope.held |= Q(
            timestamp__gte=start, timestamp__lt=end, pk__lte=int(marker["max_id"]), received_at__lt=settled
        ) & ~Q(Exists(marked_since))
    return scope


def days_due(*, now: datetime) -> list[date]:
    """Return the days beat archives now: those passing RETENTION_RAW_DAYS within LEAD_DAYS that the
    archive does not hold as they are (none when ARCHIVE_DIR is unset)."""
    return days_not_archived(before=now - timedelta(days=settings.RETENTION_RAW_DAYS - LEAD_DAYS))


def days_with_events(*, before: date, since: date | None = None) -> Iterator[date]:
    """Yield the UTC days before `before` (from `since`) that hold raw events, oldest first: one indexed
    look-up per day, never a scan of the table."""
    end, _ = day_range(before)
    rows = RawEvent.objects.filter(timestamp__lt=end)
    if since is not None:
        rows = rows.filter(timestamp__gte=day_range(since)[0])
    first = rows.order_by("timestamp").values_list("timestamp", flat=True).first()
    if first is None:
        return
    day = first.astimezone(UTC).date()
    while day < before:
        start, stop = day_range(day)
        if RawEvent.objects.since(start).filter(timestamp__lt=stop).exists():
            yield day
        day += timedelta(days=1)
