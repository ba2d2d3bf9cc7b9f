"""The archive's format: an explicit Arrow schema and the Hive layout every engine reads,
`<root>/date=YYYY-MM-DD/service=<name>/part-0.parquet`, on whatever filesystem fsspec finds behind a path
or URL (local disk here; `s3://…` once s3fs is installed, which this project does not pin or test). A
service name too long for a file name is cut, with a hash; the rows hold it whole (service_segment).

Files are written under a dot-name and renamed into place, so a reader never meets half a file; engines
skip names that begin with `.` or `_` (the day's `_archive.json` marker too).
"""

import hashlib
import json
import logging
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import quote, unquote

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq

from apps.ingest.models import CLIENT_TIME_COLUMN, EVENT_COLUMNS, SPAN_COLUMNS

# 2: span fields (span_id, parent_span_id, duration_ms); version 1 files read with them empty.
# 3: client_timestamp, the time as the sender stamped it; older files read with their timestamp there (what
# the migration that added it gave the rows stored before).
FORMAT_VERSION = 3
PART_NAME = "part-0.parquet"
MARKER_NAME = "_archive.json"
UTC_MICROS = pa.timestamp("us", tz="UTC")

logger = logging.getLogger(__name__)


def _text(name: str) -> pa.Field:
    return pa.field(name, pa.string(), nullable=False)


# One row per raw event: every canonical field as stored, JSON as text, and whether it was in the rollups.
SCHEMA = pa.schema(
    [
        _text("event_id"),
        _text("service"),
        _text("stage"),
        _text("type"),
        _text("event"),
        pa.field("timestamp", UTC_MICROS, nullable=False),
        pa.field("received_at", UTC_MICROS, nullable=False),
        _text("user_id"),
        _text("correlation_id"),
        _text("level"),
        _text("message"),
        _text("properties"),  # a JSON object, keys sorted
        _text("notes"),  # a JSON array of what conform changed, in words
        _text("ingest_node"),
        _text("span_id"),
        _text("parent_span_id"),
        pa.field("duration_ms", pa.float64(), nullable=True),
        # Counted in the rollups when archived: replay keeps it so, and never counts it again.
        pa.field("aggregated", pa.bool_(), nullable=False),
        # None: the sender gave no time (the received time is the event's timestamp).
        pa.field("client_timestamp", UTC_MICROS, nullable=True),
    ],
    metadata={"skywatch.archive.version": str(FORMAT_VERSION)},
)
COLUMNS = tuple(SCHEMA.names)
# Writer options are fixed: the same rows in the same order give the same bytes (pyarrow's version is
# pinned; its name is in each file's `created_by`).
# Page checksums let a reader tell a damaged page from data.
WRITE_OPTIONS = {
    "compression": "zstd",
    "compression_level": 3,
    "version": "2.6",
    "write_statistics": True,
    "write_page_checksum": True,
}

# The database fields an archive row is made of, in this order (`id` first: not archived, but counted).
# `aggregated` is RawEventQuerySet.with_aggregated's annotation.
DATABASE_FIELDS = ("id", *EVENT_COLUMNS, *SPAN_COLUMNS, "aggregated", CLIENT_TIME_COLUMN)
# Columns older archive files lack, and what they mean there: a value, or (COPIED_COLUMNS) another column's.
ADDED_COLUMNS = {"span_id": "", "parent_span_id": "", "duration_ms": None}
COPIED_COLUMNS = {"client_timestamp": "timestamp"}

ArchiveRow = tuple[Any, ...]  # values in COLUMNS order
# Rows of a file are in time order, then by event ID (said in the footer, for engines that use it).
SORTING = [pq.SortingColumn(COLUMNS.index("timestamp")), pq.SortingColumn(COLUMNS.index("event_id"))]


def json_text(value: Any) -> str:
    """Return JSON text with sorted keys and no spaces: one spelling for one value."""
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def archive_row(values: Sequence[Any]) -> ArchiveRow:
    """Return the archive row of a raw event read as DATABASE_FIELDS."""
    (_, event_id, service, stage, kind, event, timestamp, received_at, user_id, cid, level, message) = values[
        :12
    ]
    properties, notes, ingest_node, span_id, parent_span_id, duration_ms, aggregated, client_time = values[
        12:
    ]
    return (
        str(event_id),
        service,
        stage,
        kind,
        event,
        timestamp,
        received_at,
        user_id,
        cid,
        level,
        message,
        json_text(properties if properties is not None else {}),
        json_text(notes if notes is not None else []),
        ingest_node,
        span_id or "",
        parent_span_id or "",
        duration_ms,
        bool(aggregated),
        client_time,
    )


def sort_key(row: ArchiveRow) -> tuple[datetime, str]:
    """Return a row's place in its file (SORTING): the same rows always make the same file."""
    return row[5], row[0]


def record_batch(rows: Sequence[ArchiveRow]) -> pa.RecordBatch:
    columns = zip(*rows, strict=True) if rows else [()] * len(COLUMNS)
    arrays = [pa.array(list(values), type=f.type) for values, f in zip(columns, SCHEMA, strict=True)]
    return pa.RecordBatch.from_arrays(arrays, schema=SCHEMA)


def batch_rows(batch: pa.RecordBatch | pa.Table) -> Iterator[ArchiveRow]:
    """Yield a batch's rows as tuples in COLUMNS order."""
    yield from zip(*(batch.column(name).to_pylist() for name in COLUMNS), strict=True)


def day_range(day: date) -> tuple[datetime, datetime]:
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return start, start + timedelta(days=1)


# The longest file name most filesystems take (bytes). A segment is ASCII once percent-encoded.
MAX_SEGMENT = 255
SERVICE_PREFIX = "service="
# A cut segment keeps this many hex digits of the name's SHA-256 after a "~" (quote never encodes "~").
HASH_DIGITS = 16


def service_segment(service: str) -> str:
    """Return `service=<name>` with anything unsafe in a path percent-encoded (engines decode it).

    A name too long once encoded (a 50-letter Cyrillic name is 300 bytes) is cut to a readable prefix and
    a hash of the whole name, to fit in a file name; the file's `service` column holds the name whole.
    Names that fit keep the segment they always had, so existing archives stay valid.
    """
    segment = SERVICE_PREFIX + quote(service, safe="")
    if len(segment) <= MAX_SEGMENT:
        return segment
    digest = hashlib.sha256(service.encode()).hexdigest()[:HASH_DIGITS]
    prefix = segment[: MAX_SEGMENT - HASH_DIGITS - 1]
    # Not in the middle of a %XX escape: the prefix still decodes.
    if "%" in prefix[-2:]:
        prefix = prefix[: prefix.rindex("%")]
    return f"{prefix}~{digest}"


@dataclass(frozen=True)
class Archive:
    """An archive directory: `fs` is its fsspec filesystem, `root` its path there, `url` as given."""

    fs: fsspec.AbstractFileSystem
    root: str
    url: str

    @classmethod
    def at(cls, url: str) -> "Archive":
        """Return the archive at a local directory or an fsspec URL (`s3://bucket/prefix`)."""
        fs, root = fsspec.core.url_to_fs(url)
        root = root.rstrip("/") or "/"
        # A local directory by its absolute path: a worker elsewhere in the tree finds the same one.
        return cls(fs=fs, root=root, url=url if "://" in url else root)

    def day_dir(self, day: date) -> str:
        return f"{self.root}/date={day:%Y-%m-%d}"

    def part_path(self, day: date, service: str) -> str:
        return f"{self.day_dir(day)}/{service_segment(service)}/{PART_NAME}"

    def days(self) -> list[date]:
        """Return the days the archive holds, oldest first (directories named `date=YYYY-MM-DD`)."""
        if not self.fs.exists(self.root):
            return []
        found = []
        for path in self.fs.ls(self.root, detail=False):
            name = path.rstrip("/").rsplit("/", 1)[-1]
            if name.startswith("date="):
                try:
                    found.append(date.fromisoformat(name[5:]))
                except ValueError:
                    continue
        return sorted(found)

    def service_files(self, day: date) -> dict[str, list[str]]:
        """Return a day's Parquet files by service (decoded from `service=<name>`), names sorted."""
        day_dir = self.day_dir(day)
        if not self.fs.exists(day_dir):
            return {}
        files: dict[str, list[str]] = {}
        for path in sorted(self.fs.ls(day_dir, detail=False)):
            name = path.rstrip("/").rsplit("/", 1)[-1]
            if not name.startswith(SERVICE_PREFIX) or not self.fs.isdir(path):
                continue
            parts = sorted(
                p
                for p in self.fs.ls(path, detail=False)
                if p.rsplit("/", 1)[-1].endswith(".parquet") and p.rsplit("/", 1)[-1][0] not in "._"
            )
            if parts:
                files[self._service_named(name, parts[0])] = parts
        return files

    def _service_named(self, segment: str, path: str) -> str:
        """Return the service of a `service=<name>` directory: decoded from the name when that spells it,
        else (a name cut to fit, see service_segment) as the file's rows hold it."""
        decoded = unquote(segment[len(SERVICE_PREFIX) :])
        if service_segment(decoded) == segment:
            return decoded
        try:
            services = self.parquet_file(path).read_row_group(0, columns=["service"]).column("service")
            return services[0].as_py() if len(services) else decoded
        except (OSError, ValueError, KeyError, IndexError, pa.ArrowException):
            # Unreadable, or not ours: replay names the file; the path is the best guess of its service.
            logger.warning("cannot read the service of %s from its rows", path, exc_info=True)
            return decoded

    def write_atomically(self, path: str, write: Callable[[str], None]) -> None:
        """Call `write(temporary_path)`, then rename the result to `path` (no half file, ever)."""
        directory, name = path.rsplit("/", 1)
        self.fs.makedirs(directory, exist_ok=True)
        temporary = f"{directory}/.{name}.{uuid.uuid4().hex}.tmp"
        try:
            write(temporary)
            self.fs.mv(temporary, path)
        finally:
            if self.fs.exists(temporary):
                self.fs.rm_file(temporary)

    def write_parquet(self, path: str, batches: Iterable[pa.RecordBatch]) -> int:
        """Write record batches (one row group each) to `path` atomically; return the rows written."""
        written = 0

        def write(temporary: str) -> None:
            nonlocal written
            with pq.ParquetWriter(
                temporary, SCHEMA, filesystem=self.fs, sorting_columns=SORTING, **WRITE_OPTIONS
            ) as writer:
                for batch in batches:
                    writer.write_batch(batch, row_group_size=max(batch.num_rows, 1))
                    written += batch.num_rows

        self.write_atomically(path, write)
        return written

    def parquet_file(self, path: str) -> pq.ParquetFile:
        """Open a Parquet file of the archive (reads its footer; raises on a file that is not Parquet)."""
        return pq.ParquetFile(path, filesystem=self.fs, page_checksum_verification=True)

    def read_marker(self, day: date) -> dict[str, Any] | None:
        """Return the day's marker (what was archived, up to which row, when), or None when absent."""
        path = f"{self.day_dir(day)}/{MARKER_NAME}"
        if not self.fs.exists(path):
            return None
        with self.fs.open(path, "rb") as handle:
            return json.loads(handle.read())

    def write_marker(self, day: date, marker: dict[str, Any]) -> None:
        text = json.dumps(marker, indent=2, sort_keys=True).encode()

        def write(temporary: str) -> None:
            with self.fs.open(temporary, "wb") as handle:
                handle.write(text)

        self.write_atomically(f"{self.day_dir(day)}/{MARKER_NAME}", write)
