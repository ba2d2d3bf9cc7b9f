"""Replay an archive: archived events go back through conform and into storage, stored once whatever is
already there, in units (one row group of one file) that any number of workers take.

Identity is (service, event_id), as at ingestion: an event already stored is left untouched. A new row
keeps what the archive says of it (received time, conform notes, ingest node) and whether it was counted
in the rollups: counted events come back marked aggregated, since the rollups outlived them; the others
wait for the pipeline like any new event, unless their day was counted after the archive read it (they
may have been counted then: stored as counted, and said so). Every new row is announced (`events_stored`),
so the pipeline indexes it and counts what was never counted: nothing is counted twice.

A user purged after an archived event was received stays purged: the event is not stored (the audit log
holds each purge and its time). A row the database cannot store is refused alone, like one conform refuses.
"""

import json
import logging
import unicodedata
from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import pyarrow as pa
from django.db import transaction
from django.db.models import Max

from apps.accounts.models import AuditEntry
from apps.ingest.conform import NUL, SendContext, conform_event
from apps.ingest.models import AggregationMark, RawEvent
from apps.ingest.services import raw_events_store
from apps.ingest.signals import events_stored
from apps.pipeline.services import index_backlog_add

from .archive import counted_after_read
from .archive_layout import (
    ADDED_COLUMNS,
    COLUMNS,
    COPIED_COLUMNS,
    DATABASE_FIELDS,
    SCHEMA,
    Archive,
    ArchiveRow,
    batch_rows,
)
from .services import USER_ID_PROPERTIES

logger = logging.getLogger(__name__)

# Rows per INSERT: a batch's worth, as at ingestion.
INSERT_BATCH = 1000
# Distinct refusal reasons kept per unit (reasons quote values: a bad file could make one per row).
MAX_REASONS = 100
OTHER_REASONS = "(other reasons)"
# The archive's columns with nulls allowed: files written by other tools are read, and their nulls refused
# row by row rather than the whole file.
_READABLE = pa.schema([f.with_nullable(True) for f in SCHEMA])
# What a replayed row stores: the archived event's columns (as archive_layout reads them) but its id and
# whether it was counted (which says whether it goes in the aggregation backlog).
_COUNTED = DATABASE_FIELDS.index("aggregated") - 1
_INSERT_FIELDS = tuple(name for name in DATABASE_FIELDS[1:] if name != "aggregated")
_USER_ID = DATABASE_FIELDS.index("user_id") - 1
_PROPERTIES = DATABASE_FIELDS.index("properties") - 1
_TIMESTAMP = DATABASE_FIELDS.index("timestamp") - 1
_RECEIVED_AT = DATABASE_FIELDS.index("received_at") - 1
INGEST_NODE_LENGTH = RawEvent._meta.get_field("ingest_node").max_length


@dataclass(frozen=True)
class ReplayUnit:
    """One task's work: a row group of an archived file."""

    path: str
    row_group: int
    rows: int


@dataclass
class ReplayPlan:
    files: list[str] = field(default_factory=list)
    units: list[ReplayUnit] = field(default_factory=list)
    unreadable: dict[str, str] = field(default_factory=dict)  # file -> why it is skipped
    days: list[date] = field(default_factory=list)  # the archive's days in the range
    services_held: set[str] = field(default_factory=set)  # the services of those days, any asked for or not

    @property
    def rows(self) -> int:
        return sum(unit.rows for unit in self.units)


@dataclass
class ReplayOutcome:
    """What a replay did; units' outcomes add up (plain JSON both ways, for task results)."""

    rows_read: int = 0
    stored: int = 0
    already_there: int = 0
    refused: dict[str, int] = field(default_factory=dict)  # reason -> rows
    unreadable: dict[str, str] = field(default_factory=dict)  # file (row group) -> why it was skipped
    # Rows of users purged after the rows were received: not stored.
    purged: int = 0
    # Stored rows archived as not counted but stored as counted: their day was counted after the archive
    # read it, so they may have been (never counted twice; a day's counts may miss them instead).
    assumed_counted: int = 0

    @property
    def refused_rows(self) -> int:
        return sum(self.refused.values())

    def add(self, other: "ReplayOutcome") -> None:
        self.rows_read += other.rows_read
        self.stored += other.stored
        self.already_there += other.already_there
        self.refused = dict(Counter(self.refused) + Counter(other.refused))
        self.unreadable.update(other.unreadable)
        self.purged += other.purged
        self.assumed_counted += other.assumed_counted

    def as_json(self) -> dict[str, Any]:
        return {
            "rows_read": self.rows_read,
            "stored": self.stored,
            "already_there": self.already_there,
            "refused": dict(self.refused),
            "unreadable": dict(self.unreadable),
            "purged": self.purged,
            "assumed_counted": self.assumed_counted,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "ReplayOutcome":
        return cls(**data)


def replay_plan(
    *,
    archive: Archive,
    start: date | None = None,
    end: date | None = None,
    services: Collection[str] = (),
) -> ReplayPlan:
    """Return the units of the archive's files for days in [start, end) and the given services (all when
    none are given). A file whose footer cannot be read, or that lacks the archive's columns, is listed as
    unreadable by name and skipped."""
    plan = ReplayPlan()
    for day in archive.days():
        if (start is not None and day < start) or (end is not None and day >= end):
            continue
        plan.days.append(day)
        for service, paths in archive.service_files(day).items():
            plan.services_held.add(service)
            if services and service not in services:
                continue
            for path in paths:
                plan.files.append(path)
                try:
                    parquet = archive.parquet_file(path)
                    _check_columns(parquet.schema_arrow)
                    metadata = parquet.metadata
                except Exception as exc:  # corrupt or foreign: named in the summary, the rest replays
                    plan.unreadable[path] = _reason(exc)
                    continue
                plan.units.extend(
                    ReplayUnit(path=path, row_group=index, rows=metadata.row_group(index).num_rows)
                    for index in range(metadata.num_row_groups)
                )
    return plan


def row_group_replay(*, archive: Archive, path: str, row_group: int) -> ReplayOutcome:
    """Replay one row group of an archived file; a row group that cannot be read is reported, not raised."""
    outcome = ReplayOutcome()
    try:
        table = archive.parquet_file(path).read_row_group(row_group)
        _check_columns(table.schema)
        table = _with_added_columns(table).select(list(COLUMNS)).cast(_READABLE)
    except Exception as exc:
        outcome.unreadable[f"{path} (row group {row_group})"] = _reason(exc)
        return outcome
    purges = _last_purges()
    for batch in table.to_batches(max_chunksize=INSERT_BATCH):
        _replay_rows(list(batch_rows(batch)), outcome, archive=archive, purges=purges)
    logger.info(
        "replayed %s row group %d: %d read, %d stored (%d as counted, unsure), %d already there, "
        "%d refused, %d of purged users",
        path,
        row_group,
        outcome.rows_read,
        outcome.stored,
        outcome.assumed_counted,
        outcome.already_there,
        outcome.refused_rows,
        outcome.purged,
    )
    return outcome


def _replay_rows(
    rows: Sequence[ArchiveRow], outcome: ReplayOutcome, *, archive: Archive, purges: dict[str, datetime]
) -> None:
    """Conform a batch of archived rows and store the new ones in one INSERT; announce them."""
    refused: Counter[str] = Counter(outcome.refused)
    conformed: list[tuple[Any, ...]] = []
    for row in rows:
        outcome.rows_read += 1
        stored_row, reason = _conformed(row)
        if stored_row is None:
            refused[reason if reason in refused or len(refused) < MAX_REASONS else OTHER_REASONS] += 1
            continue
        conformed.append(stored_row)
    outcome.refused = dict(refused)
    to_store: list[tuple[Any, ...]] = []
    seen: set[tuple[str, Any]] = set()
    for stored_row in conformed:
        if purges and _purged_since_received(stored_row, purges):
            outcome.purged += 1
            continue
        identity = (stored_row[1], stored_row[0])
        if identity in seen:  # one event twice in the archive: stored once
            outcome.already_there += 1
            continue
        seen.add(identity)
        to_store.append(stored_row)
    if not to_store:
        return
    uncounted = [row for row in to_store if not row[_COUNTED]]
    unsure = _days_counted_after_read(archive, {_day(row) for row in uncounted}) if uncounted else set()
    groups = (  # (rows, stored as counted, whether that is unsure)
        ([row for row in to_store if row[_COUNTED]], True, False),
        ([row for row in uncounted if _day(row) in unsure], True, True),
        ([row for row in uncounted if _day(row) not in unsure], False, False),
    )
    with transaction.atomic():
        stored_ids: list[int] = []
        for rows_of, counted, assumed in groups:
            if not rows_of:
                continue
            stored = raw_events_store(
                rows=[row[:_COUNTED] + row[_COUNTED + 1 :] for row in rows_of],
                columns=_INSERT_FIELDS,
                pending=not counted,
            )
            if counted:  # so not indexed with an aggregation: the index backlog has them
                index_backlog_add(RawEvent.objects.filter(pk__in=stored), bounds=None)
            if assumed:
                outcome.assumed_counted += len(stored)
            stored_ids.extend(stored)
    outcome.stored += len(stored_ids)
    outcome.already_there += len(to_store) - len(stored_ids)
    if stored_ids:
        transaction.on_commit(lambda: _announce(stored_ids))


def _day(row: tuple[Any, ...]) -> date:
    """Return the UTC day of a row's event time: its archive day, and its AggregationMark's day."""
    return row[_TIMESTAMP].astimezone(UTC).date()


def _days_counted_after_read(archive: Archive, days: set[date]) -> set[date]:
    """Return those of `days` whose events may have been counted after the archive read them (one query,
    and a marker read per day): their rows archived as not counted may have been counted since."""
    last_marked = dict(
        AggregationMark.objects.filter(day__in=days)
        .values("day")
        .annotate(last=Max("marked_at"))
        .values_list("day", "last")
    )
    return {day for day in days if counted_after_read(archive.read_marker(day), last_marked.get(day))}


def _user_ids(row: tuple[Any, ...]) -> set[str]:
    """Return the user IDs a stored row holds where purge looks for them: the field and user-ID properties."""
    found = {row[_USER_ID]} if row[_USER_ID] else set()
    properties = row[_PROPERTIES] or {}
    for name in USER_ID_PROPERTIES:
        value = properties.get(name)
        if isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool)):
            found.add(str(value))  # a number matches as its JSON text, as purge reads it
    return {_spelling(user_id) for user_id in found}


def _spelling(user_id: str) -> str:
    """Return the one spelling a purge and a row's user ID are compared in (NFC): purge_user removes every
    Unicode spelling of the ID it is given, a property keeps the one its service sent, and the audit log
    the one the admin typed."""
    return user_id if user_id.isascii() else unicodedata.normalize("NFC", user_id)


def _last_purges() -> dict[str, datetime]:
    """Return when each purged user was last purged (the audit log records every purge). Read once per unit,
    whole: purges are rare admin acts, and most units then check no row at all. Keyed by _spelling: one
    user purged as typed in two spellings is one user."""
    purges: dict[str, datetime] = {}
    for target, last in (
        AuditEntry.objects.filter(action=AuditEntry.USER_PURGED)
        .values("target")
        .annotate(last=Max("at"))
        .values_list("target", "last")
    ):
        user = _spelling(target)
        purges[user] = max(last, purges.get(user, last))
    return purges


def _purged_since_received(row: tuple[Any, ...], purges: dict[str, datetime]) -> bool:
    """Return whether a user the row holds was purged after the row was received (a purge is kept)."""
    return any(
        (purged := purges.get(user)) is not None and purged > row[_RECEIVED_AT] for user in _user_ids(row)
    )


def _conformed(row: ArchiveRow) -> tuple[tuple[Any, ...] | None, str]:
    """Return the row to store for an archived row (through conform, as the service would have sent it),
    or None and why it is refused."""
    (
        event_id,
        service,
        stage,
        kind,
        event,
        timestamp,
        received_at,
        user_id,
        correlation_id,
        level,
        message,
        properties,
        notes,
        ingest_node,
        span_id,
        parent_span_id,
        duration_ms,
        aggregated,
        client_timestamp,
    ) = row
    # Without these the event would change on the way in (a new ID each replay, the received time as its
    # time): refused, not guessed.
    for name, value in (("event_id", event_id), ("timestamp", timestamp), ("received_at", received_at)):
        if not value:
            return None, f"{name}: missing in the archive"
    try:
        properties = json.loads(properties) if properties else {}
        notes = json.loads(notes) if notes else []
    except ValueError as exc:
        return None, f"properties or notes: not JSON text ({exc})"
    if not isinstance(notes, list) or not all(isinstance(note, str) for note in notes):
        return None, "notes: not a JSON array of text"
    # What conform does not see, checked for what the database refuses (conform replaces NUL elsewhere).
    if any(NUL in note for note in notes):
        return None, "notes: a NUL character (\\u0000), which the database cannot store"
    if ingest_node and (NUL in ingest_node or len(ingest_node) > INGEST_NODE_LENGTH):
        return None, f"ingest_node: a NUL character (\\u0000) or over {INGEST_NODE_LENGTH} characters"
    item: dict[str, Any] = {
        "event_id": event_id,
        "timestamp": timestamp.isoformat(),
        "properties": properties,
    }
    # Empty values were defaults when stored: left out, conform makes them again (and notes nothing).
    optional = (
        ("type", kind),
        ("event", event),
        ("user_id", user_id),
        ("correlation_id", correlation_id),
        ("level", level),
        ("message", message),
        ("span_id", span_id),
        ("parent_span_id", parent_span_id),
        ("duration_ms", duration_ms),
    )
    item.update((name, value) for name, value in optional if value)
    # The archived service and stage, as if that service's own key sent the event when it was received.
    context = SendContext(
        service=service or "", stage=stage or "", can_forward=False, received_at=received_at
    )
    conformed = conform_event(item, context)
    if not conformed.ok:
        return None, "; ".join(f"{name}: {text}" for name, text in sorted(conformed.errors.items()))
    canonical = conformed.event
    return (
        canonical["event_id"],
        canonical["service"],
        canonical["stage"],
        canonical["type"],
        canonical["event"],
        canonical["timestamp"],
        received_at,
        canonical["user_id"],
        canonical["correlation_id"],
        canonical["level"],
        canonical["message"],
        canonical["properties"],
        # What conform changes now is written down after what it changed then (nothing, for an archived
        # canonical event).
        notes + conformed.notes,
        ingest_node or "",
        canonical.get("span_id", ""),
        canonical.get("parent_span_id", ""),
        canonical.get("duration_ms"),
        # Counted in the rollups before it was archived: counted still (stored out of the aggregation
        # backlog); taken out of the row before it is stored.
        bool(aggregated),
        # As first sent, not as conform reads the archived (corrected) time: the event's partition and
        # idempotency key are those of the copy that may still be stored.
        client_timestamp,
    ), ""


def _check_columns(schema: pa.Schema) -> None:
    optional = ADDED_COLUMNS.keys() | COPIED_COLUMNS.keys()
    missing = [name for name in COLUMNS if name not in schema.names and name not in optional]
    if missing:
        raise ValueError(f"not a SkyWatch archive file: no column {', '.join(missing)}")


def _with_added_columns(table: pa.Table) -> pa.Table:
    """Return the table with the columns an older archive format lacks, as they meant there."""
    for name, source in COPIED_COLUMNS.items():
        if name not in table.schema.names:
            table = table.append_column(name, table.column(source))
    for name, value in ADDED_COLUMNS.items():
        if name not in table.schema.names:
            kind = SCHEMA.field(name).type
            table = table.append_column(name, pa.array([value] * table.num_rows, type=kind))
    return table


def _reason(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}"[:500]


def _announce(stored_ids: list[int]) -> None:
    """Hand replayed events to the pipeline (index them; count those never counted); a failure loses
    nothing: the sweeper picks them up."""
    try:
        events_stored.send(sender=RawEvent, event_ids=stored_ids)
    except Exception:
        logger.warning(
            "could not hand %d replayed events to the pipeline; the sweeper will pick them up",
            len(stored_ids),
            exc_info=True,
        )
