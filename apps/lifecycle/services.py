"""Data leaves when it must: retention by age, and purging one user everywhere.

Rollups outlive raw events (they hold no user data but unique-user rows, which a purge removes). With
ARCHIVE_DIR set, raw events leave only once the archive holds them (apps/lifecycle/archive.py).
"""

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import OperationalError, connection, transaction
from django.db.models import Exists, F, OuterRef, Q, QuerySet
from django.utils import timezone

from apps.accounts.actors import Actor, audit
from apps.accounts.models import AuditEntry
from apps.common.advisory import exclusive
from apps.common.errors import BackendUnavailable
from apps.common.jsonfields import PropertyText
from apps.ingest import partitions
from apps.ingest.conform import ALIASES
from apps.ingest.models import (
    CLIENT_TIME_COLUMN,
    AggregationBacklog,
    AggregationMark,
    IndexBacklog,
    RawEvent,
    client_time_bounds,
    within_client_times,
)
from apps.metrics.models import RollupCount, RollupNumeric, RollupUser
from apps.metrics.services import RollupDeltas, deltas_for, event_names_prune, sketches_rebuild
from apps.pipeline.services import index_backlog_forget, indexing_wait
from apps.traces.search import get_trace_backend
from apps.wire.otlp_items import USER_KEYS as OTLP_USER_KEYS

from .archive import RetentionScope, configured_archive, retention_scope

logger = logging.getLogger(__name__)
DELETE_BATCH = 5000


@dataclass
class RetentionReport:
    raw_cutoff: datetime
    index_cutoff: datetime
    raw_events_deleted: int = 0
    raw_events_kept_unprocessed: int = 0
    indices_dropped: list[str] = field(default_factory=list)
    # Days kept because ARCHIVE_DIR is set and the archive does not hold them as they are (YYYY-MM-DD).
    raw_days_not_archived: list[str] = field(default_factory=list)
    raw_events_kept_unarchived: int = 0
    # Days whose partition was dropped whole (PostgreSQL), YYYY-MM-DD.
    raw_partitions_dropped: list[str] = field(default_factory=list)
    # Why the search indices could not be dropped this time (the search cluster unreachable), or "".
    indices_error: str = ""


# A PostgreSQL advisory lock a retention run holds from start to end: a second run at once (beat's task
# and an operator's command) is refused rather than detaching, dropping and counting the same days.
RETENTION_LOCK = 0x5357_5245_544E  # "SWRETN"


class RetentionRunning(Exception):
    """Another retention run is in progress; this one did nothing."""


def retention_apply(*, now: datetime | None = None) -> RetentionReport:
    """Delete raw events older than RETENTION_RAW_DAYS and search indices older than RETENTION_INDEX_DAYS.

    Events not yet aggregated are kept (deleting them would lose them from the rollups) and counted. With
    ARCHIVE_DIR set, so is every UTC day the archive does not hold as it is (beat archives days before
    they are due; a day refused here is archived by its next run and deleted by the next retention).
    One run at a time: RetentionRunning while another is in progress.
    """
    refused = RetentionRunning("another retention run is in progress; nothing was deleted by this one")
    with exclusive(RETENTION_LOCK, refused=refused):
        return _retention_apply(now=now or timezone.now())


def retention_preview(*, now: datetime | None = None) -> RetentionReport:
    """Return what retention_apply would delete and keep now, deleting nothing (a dry run).

    `raw_events_deleted` counts the raw events that would go; the search indices are not listed (the
    trace backend only drops them), `index_cutoff` says from which day they would.
    """
    report, old, done, archived = _retention_scope(now=now or timezone.now())
    report.raw_events_deleted = done.count()
    report.raw_events_kept_unprocessed = old.awaiting_aggregation().count()
    if archived is not None:
        report.raw_events_kept_unarchived = old.done_with_aggregation().count() - report.raw_events_deleted
    return report


def _retention_scope(*, now: datetime) -> tuple[RetentionReport, QuerySet, QuerySet, RetentionScope | None]:
    """Return the report to fill, the raw events past the cut-off, those of them retention deletes, and
    what the archive holds (None without ARCHIVE_DIR). An archive that cannot be opened raises ArchiveError
    here, before anything is deleted."""
    archive = configured_archive()
    report = RetentionReport(
        raw_cutoff=now - timedelta(days=settings.RETENTION_RAW_DAYS),
        index_cutoff=now - timedelta(days=settings.RETENTION_INDEX_DAYS),
    )
    old = RawEvent.objects.filter(timestamp__lt=report.raw_cutoff)
    done = old.done_with_aggregation()
    archived = retention_scope(before=report.raw_cutoff, archive=archive)
    if archived is not None:
        done = done.filter(archived.held)
        report.raw_days_not_archived = [day.isoformat() for day in archived.not_archived]
    return report, old, done, archived


def _retention_apply(*, now: datetime) -> RetentionReport:
    report, old, done, archived = _retention_scope(now=now)
    if partitions.is_partitioned():
        _drop_whole_days(report, held=archived.held if archived is not None else None)
    # What no dropped partition held: the cut-off's own day, the default partition, days kept in part.
    while True:  # in batches: one huge DELETE would hold locks and bloat the transaction
        batch = list(done.values_list("pk", CLIENT_TIME_COLUMN)[:DELETE_BATCH])
        if not batch:
            break
        with transaction.atomic():
            report.raw_events_deleted += _by_id(batch).delete()[0]
            index_backlog_forget([pk for pk, _ in batch])
    _marks_compact()
    report.raw_events_kept_unprocessed = old.awaiting_aggregation().count()
    if archived is not None:
        report.raw_events_kept_unarchived = old.done_with_aggregation().count()
    if report.raw_days_not_archived:
        logger.warning(
            "retention kept %d raw events of %d days the archive does not hold: %s",
            report.raw_events_kept_unarchived,
            len(report.raw_days_not_archived),
            ", ".join(report.raw_days_not_archived),
        )
    # After the raw events: a search cluster that is down must not keep the database growing past its
    # retention; its old indices are dropped by the next run that reaches it.
    try:
        report.indices_dropped = get_trace_backend().drop_before(report.index_cutoff)
    except BackendUnavailable as error:
        report.indices_error = str(error)
        logger.error("retention could not drop the old search indices: %s", error)
    logger.info("retention: %s", report)
    return report


def _marks_compact() -> None:
    """Keep only the last aggregation mark of each day: the only one the archive's check reads."""
    later = AggregationMark.objects.filter(day=OuterRef("day"), marked_at__gt=OuterRef("marked_at"))
    AggregationMark.objects.filter(Exists(later)).delete()


def _by_id(rows: list[tuple[int, datetime | None]]) -> QuerySet[RawEvent]:
    """Return the raw events of these (id, client time) pairs. The client times let the partitioned table
    look in the partitions of those days only, not probe every day's index for each id."""
    bounds = client_time_bounds(moment for _, moment in rows)
    return RawEvent.objects.filter(within_client_times(bounds), pk__in=[pk for pk, _ in rows])


def _drop_whole_days(report: RetentionReport, *, held: Q | None) -> None:
    """Detach, then drop, each day partition that ends before the cut-off and whose every row retention would
    delete (none awaits aggregation or has a timestamp past the cut-off, which skew correction allows; with
    an archive, `held` covers them all); add its rows to the report. A day with other rows, or whose lock
    is not had within the lock timeout, is left to the batched DELETE (or the next run)."""
    quote = connection.ops.quote_name
    for day, name in sorted(partitions.day_partitions().items()):
        start, end = partitions.day_bounds(day)
        if end > report.raw_cutoff:
            break
        on_day = RawEvent.objects.filter(client_timestamp__gte=start, client_timestamp__lt=end)
        # The backlog rows of the day's client times are those of its partition's events: read from the
        # backlog, not with an EXISTS per row of the day.
        awaiting = AggregationBacklog.objects.filter(client_timestamp__gte=start, client_timestamp__lt=end)
        later = Q(timestamp__gte=report.raw_cutoff)
        kept = on_day.filter(later if held is None else later | ~held)
        try:
            with transaction.atomic():
                with connection.cursor() as cursor:
                    cursor.execute(f"SET LOCAL lock_timeout = '{partitions.LOCK_TIMEOUT}'")
                    # Held from the check to the drop, so no row arrives in between; DETACH needs it anyway.
                    cursor.execute(f"LOCK TABLE {quote(partitions.PARENT)} IN ACCESS EXCLUSIVE MODE")
                if awaiting.exists() or kept.exists():
                    continue
                partitions.partition_detach(name)
                # The day's events awaiting their index go with it (a client time of the day: in it).
                IndexBacklog.objects.filter(client_timestamp__gte=start, client_timestamp__lt=end).delete()
        except OperationalError as error:  # the lock timeout: long reads held the table
            logger.warning("retention could not detach the partition of %s now: %s", day, error)
            continue
        # Counted once detached, after the commit: nothing writes to it any more, and the count of a big day
        # (a quarter of a second per million rows) no longer holds the lock that ingestion waits on.
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT count(*) FROM {quote(name)}")
            report.raw_events_deleted += cursor.fetchone()[0]
        report.raw_partitions_dropped.append(day.isoformat())
    partitions.detached_drop()  # and any a crash left detached


def partitions_maintain(*, now: datetime) -> dict:
    """Make the raw-event partitions from yesterday to PARTITION_DAYS_AHEAD ahead (and of days within
    retention found in the default partition). Nothing to do where the table is not partitioned (SQLite)."""
    if not partitions.is_partitioned():
        return {"partitioned": False}
    today = now.astimezone(UTC).date()
    made = partitions.partitions_ensure(
        today=today,
        days_ahead=settings.PARTITION_DAYS_AHEAD,
        since=today - timedelta(days=settings.RETENTION_RAW_DAYS),
    )
    return {"partitioned": True, "made": [day.isoformat() for day in made]}


# Where a user ID is stored as such: the canonical field, and top-level properties under the canonical
# name, one of conform's aliases (kept in properties when user_id was also given) or an OpenTelemetry key
# (kept when a record's enduser.id and user.id differ).
USER_ID_PROPERTIES = (
    "user_id",
    *sorted(alias for alias, name in ALIASES.items() if name == "user_id"),
    *OTLP_USER_KEYS,
)


@dataclass
class PurgeReport:
    """What a purge removed, and what it could not (free text that mentions the user)."""

    user_id: str
    raw_events_deleted: int = 0
    search_documents_deleted: int = 0
    # Buckets whose unique users changed (sketches rebuilt on PostgreSQL, user rows deleted on SQLite).
    unique_user_buckets_corrected: int = 0
    rollup_buckets_corrected: int = 0
    # Not covered: messages are free text; these still contain the user ID, for the admin to decide.
    messages_mentioning: int = 0

    def counts(self) -> str:
        """Return the figures without the user ID (safe for a log line, which the portal ships to itself)."""
        return (
            f"{self.raw_events_deleted} raw events, "
            f"{self.search_documents_deleted} search documents deleted; "
            f"{self.unique_user_buckets_corrected} unique-user buckets corrected, "
            f"{self.rollup_buckets_corrected} count buckets corrected; "
            f"{self.messages_mentioning} messages still mention the user (free text, not covered)"
        )


def user_events(user_id: str) -> QuerySet:
    """Return the raw events that store `user_id` as a user ID: top-level or in a user-ID property."""
    qs = RawEvent.objects.alias(
        **{f"uid_{index}": PropertyText(name) for index, name in enumerate(USER_ID_PROPERTIES)}
    )
    where = Q(user_id=user_id)
    for index in range(len(USER_ID_PROPERTIES)):
        where |= Q(**{f"uid_{index}": user_id})
    return qs.filter(where)


def user_purge(*, user_id: str, actor: Actor) -> PurgeReport:
    """Remove one user from raw events (top-level and user-ID properties), search documents and unique-user
    rollups; take their events out of counts and sums and recompute min and max of the touched numeric
    buckets, so the rollups stay equal to the remaining raw events.

    Not covered, and counted instead: messages (free text) that mention the ID. The audit log keeps who
    looked at the user, by design, and records this purge as `actor`'s.
    """
    report = PurgeReport(user_id=user_id)
    backend = get_trace_backend()
    # First, before the audit log records the purge: a search cluster that is down raises
    # BackendUnavailable here, no raw event deleted and no purge recorded (a recorded purge makes replay
    # leave the user's archived events out).
    report.search_documents_deleted = backend.delete_user(user_id, properties=USER_ID_PROPERTIES)
    audit(actor=actor, action=AuditEntry.USER_PURGED, target=user_id)
    with transaction.atomic():
        events = list(
            user_events(user_id)
            .select_for_update(of=("self",))
            .only(
                "id",
                "timestamp",
                CLIENT_TIME_COLUMN,
                "event",
                "service",
                "stage",
                "user_id",
                "properties",
                "dead_lettered_at",
            )
        )
        ids = [ev.pk for ev in events]
        # Locked too, so no worker claims one of these events meanwhile (its claim skips them); a claim
        # that came first has committed when this returns, and its events are no longer here: counted.
        awaiting = set(
            AggregationBacklog.objects.select_for_update()
            .filter(raw_id__in=ids)
            .values_list("raw_id", flat=True)
        )
        aggregated = [ev for ev in events if ev.pk not in awaiting and ev.dead_lettered_at is None]
        if events:
            report.raw_events_deleted = _by_id([(ev.pk, ev.client_timestamp) for ev in events]).delete()[0]
            index_backlog_forget(ids)
            AggregationBacklog.objects.filter(raw_id__in=list(awaiting)).delete()
        deltas = deltas_for(aggregated)
        report.rollup_buckets_corrected = _subtract(deltas)
        remaining = _remaining(deltas)
        _recompute_extremes(deltas, remaining)
        if connection.vendor == "postgresql":
            report.unique_user_buckets_corrected = _rebuild_sketches(deltas)
        else:
            report.unique_user_buckets_corrected = RollupUser.objects.filter(user_id=user_id).delete()[0]
            report.unique_user_buckets_corrected += _drop_absent_users(deltas, remaining, purged=user_id)
    # A name that only the user's events were counted under is counted nowhere now: the name search no longer
    # offers it. After the commit: the prune waits for the claims in progress, which may be waiting for the
    # count rows this purge updated.
    event_names_prune(names={key[2] for key in deltas.counts})
    # Events of this user accepted while the purge ran are indexed later, and a worker may have read the
    # deleted rows before the purge and still have their bulk out: once those bulks are back, purge again.
    indexing_wait()
    report.search_documents_deleted += backend.delete_user(user_id, properties=USER_ID_PROPERTIES)
    report.messages_mentioning = RawEvent.objects.filter(message__contains=user_id).count()
    logger.info("purged a user: %s", report.counts())
    return report


def user_purge_preview(*, user_id: str) -> PurgeReport:
    """Return what user_purge would delete from the raw events, deleting and recording nothing (a dry run).

    Search documents and rollup buckets are not counted (the index and the rollups follow the raw events);
    `messages_mentioning` counts the other events whose message contains the ID, which stay.
    """
    events = user_events(user_id)
    return PurgeReport(
        user_id=user_id,
        raw_events_deleted=events.count(),
        messages_mentioning=RawEvent.objects.filter(message__contains=user_id)
        .exclude(pk__in=events.values("pk"))
        .count(),
    )


def _subtract(deltas: RollupDeltas) -> int:
    """Take purged events out of the count and numeric rollups (counts and sums; min and max are recomputed).

    One UPDATE per touched bucket: a purge touches one user's buckets, a small number.
    """
    for (start, granularity, event, service, stage), n in sorted(deltas.counts.items()):
        RollupCount.objects.filter(
            bucket_start=start, granularity=granularity, event=event, service=service, stage=stage
        ).update(count=F("count") - n)
    for ((start, granularity, event, service, stage), prop), stats in sorted(deltas.numerics.items()):
        RollupNumeric.objects.filter(
            bucket_start=start, granularity=granularity, event=event, service=service, stage=stage, prop=prop
        ).update(count=F("count") - stats[0], sum=F("sum") - stats[1])
    return len(deltas.counts)


def _remaining(deltas: RollupDeltas) -> RollupDeltas:
    """Return the rollup deltas of the aggregated raw events left in the buckets a purge touched."""
    days = {key[0] for key in deltas.counts if key[1] == "day"}
    names = {(key[2], key[3], key[4]) for key in deltas.counts}
    if not days:
        return RollupDeltas()
    left = (
        RawEvent.objects.aggregated()
        .since(min(days))
        .filter(
            timestamp__lt=max(days) + timedelta(days=1),
            event__in={n[0] for n in names},
            service__in={n[1] for n in names},
            stage__in={n[2] for n in names},
        )
        .only("timestamp", "event", "service", "stage", "user_id", "properties")
    )
    return deltas_for(
        ev for ev in left.iterator(chunk_size=2000) if (ev.event, ev.service, ev.stage) in names
    )


def _recompute_extremes(deltas: RollupDeltas, remaining: RollupDeltas) -> None:
    """Set min and max of the touched numeric buckets from what remains; drop buckets left without numbers."""
    for key, prop in sorted(deltas.numerics):
        bucket = RollupNumeric.objects.filter(
            bucket_start=key[0], granularity=key[1], event=key[2], service=key[3], stage=key[4], prop=prop
        )
        stats = remaining.numerics.get((key, prop))
        if stats is None:
            bucket.delete()
        else:
            bucket.update(min=stats[2], max=stats[3])


def _rebuild_sketches(deltas: RollupDeltas) -> int:
    """Rebuild the touched buckets' user sketches from the raw events left (within raw retention: older
    buckets have no raw events to rebuild from, and their sketches keep the user's hash, never the ID)."""
    cutoff = timezone.now() - timedelta(days=settings.RETENTION_RAW_DAYS)
    return sketches_rebuild(keys={key for key, _ in deltas.users if key[0] >= cutoff})


def _drop_absent_users(deltas: RollupDeltas, remaining: RollupDeltas, *, purged: str) -> int:
    """Remove other users from touched buckets when the purged events were their only ones there."""
    others = {(key, user) for key, user in deltas.users if user != purged}
    dropped = 0
    for key, user in sorted(others - remaining.users):
        dropped += RollupUser.objects.filter(
            bucket_start=key[0], granularity=key[1], event=key[2], service=key[3], stage=key[4], user_id=user
        ).delete()[0]
    return dropped
