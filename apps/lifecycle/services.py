"""Data leaves when it must: retention by age, and purging one user everywhere.

Rollups outlive raw events (they hold no user data but unique-user rows, which a purge removes).
"""

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from apps.ingest.models import RawEvent
from apps.metrics.models import RollupCount, RollupNumeric, RollupUser
from apps.metrics.services import deltas_for
from apps.traces.search import get_trace_backend

logger = logging.getLogger(__name__)
DELETE_BATCH = 5000


@dataclass
class RetentionReport:
    raw_cutoff: datetime
    index_cutoff: datetime
    raw_events_deleted: int = 0
    raw_events_kept_unprocessed: int = 0
    indices_dropped: list[str] = field(default_factory=list)


def retention_apply(*, now: datetime | None = None) -> RetentionReport:
    """Delete raw events older than RETENTION_RAW_DAYS and search indices older than RETENTION_INDEX_DAYS.

    Events not yet aggregated are kept (deleting them would lose them from the rollups) and counted.
    """
    now = now or timezone.now()
    report = RetentionReport(
        raw_cutoff=now - timedelta(days=settings.RETENTION_RAW_DAYS),
        index_cutoff=now - timedelta(days=settings.RETENTION_INDEX_DAYS),
    )
    report.indices_dropped = get_trace_backend().drop_before(report.index_cutoff)
    old = RawEvent.objects.filter(timestamp__lt=report.raw_cutoff)
    done = old.exclude(aggregated_at__isnull=True, dead_lettered_at__isnull=True)
    while True:  # in batches: one huge DELETE would hold locks and bloat the transaction
        ids = list(done.values_list("pk", flat=True)[:DELETE_BATCH])
        if not ids:
            break
        report.raw_events_deleted += RawEvent.objects.filter(pk__in=ids).delete()[0]
    report.raw_events_kept_unprocessed = old.count()
    logger.info("retention: %s", report)
    return report


@dataclass
class PurgeReport:
    user_id: str
    raw_events_deleted: int = 0
    search_documents_deleted: int = 0
    unique_user_rows_deleted: int = 0
    rollup_buckets_corrected: int = 0


def user_purge(*, user_id: str) -> PurgeReport:
    """Remove one user's raw events, search documents and unique-user rollup rows; take their events out of
    the counts and sums, so the rollups stay equal to the remaining raw events."""
    report = PurgeReport(user_id=user_id)
    report.search_documents_deleted = get_trace_backend().delete_user(user_id)
    with transaction.atomic():
        events = list(
            RawEvent.objects.select_for_update()
            .filter(user_id=user_id)
            .only("id", "timestamp", "event", "service", "stage", "user_id", "properties", "aggregated_at")
        )
        aggregated = [ev for ev in events if ev.aggregated_at is not None]
        report.rollup_buckets_corrected = _subtract(aggregated)
        report.unique_user_rows_deleted = RollupUser.objects.filter(user_id=user_id).delete()[0]
        report.raw_events_deleted = RawEvent.objects.filter(pk__in=[ev.pk for ev in events]).delete()[0]
    # Events of this user accepted while the purge ran are indexed later: purge once more to be sure.
    report.search_documents_deleted += get_trace_backend().delete_user(user_id)
    logger.info("purged user: %s", report)
    return report


def _subtract(events: list[RawEvent]) -> int:
    """Take aggregated events out of the count and numeric rollups (min and max cannot be undone).

    One UPDATE per touched bucket: a purge touches one user's buckets, a small number.
    """
    deltas = deltas_for(events)
    for (start, granularity, event, service, stage), n in sorted(deltas.counts.items()):
        RollupCount.objects.filter(
            bucket_start=start, granularity=granularity, event=event, service=service, stage=stage
        ).update(count=F("count") - n)
    for ((start, granularity, event, service, stage), prop), stats in sorted(deltas.numerics.items()):
        RollupNumeric.objects.filter(
            bucket_start=start, granularity=granularity, event=event, service=service, stage=stage, prop=prop
        ).update(count=F("count") - stats[0], sum=F("sum") - stats[1])
    return len(deltas.counts)
