"""The pipeline's work: claim raw events, add them to the rollups exactly once, make them searchable.

Rollups and indexing are tracked apart (`aggregated_at`, `indexed_at`), so a down search cluster never
blocks the rollups and re-indexing never touches a count.
"""

import logging
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import InterfaceError, OperationalError, transaction
from django.db.models import F
from django.utils import timezone

from apps.ingest.models import RawEvent
from apps.metrics.services import deltas_for, rollups_apply
from apps.traces.search import get_trace_backend

logger = logging.getLogger(__name__)

_AGGREGATE_FIELDS = ("id", "timestamp", "event", "service", "stage", "user_id", "properties")


@dataclass
class ChunkOutcome:
    done: int = 0
    skipped: int = 0
    failed: int = 0
    dead_lettered: int = 0


def aggregate_chunk(*, event_ids: list[int]) -> ChunkOutcome:
    """Add a chunk's events to the rollups and mark them aggregated, in one transaction.

    Rows another worker holds are skipped (SKIP LOCKED), rows already aggregated are ignored, so running a
    chunk twice, or two workers on one chunk, counts every event once. If the chunk fails for a reason
    other than the database being down, each event is retried alone so one poison event cannot hold back
    the rest; an event that fails PIPELINE_MAX_ATTEMPTS times is dead-lettered with the reason.
    """
    try:
        return _aggregate(event_ids)
    except (OperationalError, InterfaceError):
        raise  # the database is down or the transaction was cut off: retry later, count nothing
    except Exception as exc:
        logger.exception("chunk of %d events failed (%s); retrying them one by one", len(event_ids), exc)
    outcome = ChunkOutcome()
    for event_id in event_ids:
        try:
            part = _aggregate([event_id])
            outcome.done += part.done
            outcome.skipped += part.skipped
        except (OperationalError, InterfaceError):
            raise
        except Exception as exc:
            logger.exception("event %s failed aggregation", event_id)
            outcome.failed += 1
            outcome.dead_lettered += _record_failure(event_id, f"{type(exc).__name__}: {exc}")
    return outcome


def _aggregate(event_ids: list[int]) -> ChunkOutcome:
    with transaction.atomic():
        events = list(
            RawEvent.objects.select_for_update(skip_locked=True)
            .filter(pk__in=event_ids, aggregated_at__isnull=True, dead_lettered_at__isnull=True)
            .only(*_AGGREGATE_FIELDS)
            .order_by("pk")
        )
        if events:
            rollups_apply(deltas=deltas_for(events))
            RawEvent.objects.filter(pk__in=[ev.pk for ev in events]).update(aggregated_at=timezone.now())
    return ChunkOutcome(done=len(events), skipped=len(event_ids) - len(events))


def _record_failure(event_id: int, reason: str) -> int:
    """Count a failed attempt; dead-letter the event at the limit. Return 1 when it was dead-lettered."""
    RawEvent.objects.filter(pk=event_id).update(
        aggregate_attempts=F("aggregate_attempts") + 1, last_error=reason[:2000]
    )
    return RawEvent.objects.filter(
        pk=event_id, aggregate_attempts__gte=settings.PIPELINE_MAX_ATTEMPTS, dead_lettered_at__isnull=True
    ).update(
        dead_lettered_at=timezone.now(), last_error=f"dead-lettered after repeated failures: {reason}"[:2000]
    )


def index_chunk(*, event_ids: list[int]) -> ChunkOutcome:
    """Send a chunk's not-yet-indexed events to the search backend and record what became of each.

    Raises BackendUnavailable when the backend cannot be reached; the events stay unindexed for a retry.
    """
    events = list(
        RawEvent.objects.filter(
            pk__in=event_ids, indexed_at__isnull=True, index_rejected_at__isnull=True
        ).order_by("pk")
    )
    result = get_trace_backend().index_events(events)
    now = timezone.now()
    with transaction.atomic():
        if result.indexed:
            RawEvent.objects.filter(pk__in=result.indexed).update(indexed_at=now)
        for pk, reason in result.rejected.items():
            RawEvent.objects.filter(pk=pk).update(
                index_rejected_at=now,
                index_attempts=F("index_attempts") + 1,
                last_error=f"search index refused the document: {reason}"[:2000],
            )
        for pk, reason in result.retry_later.items():
            RawEvent.objects.filter(pk=pk).update(
                index_attempts=F("index_attempts") + 1,
                last_error=f"indexing failed, will retry: {reason}"[:2000],
            )
    return ChunkOutcome(
        done=len(result.indexed),
        skipped=len(event_ids) - len(events),
        failed=len(result.retry_later),
        dead_lettered=len(result.rejected),
    )


@dataclass
class SweepOutcome:
    aggregate_ids: list[int]
    index_ids: list[int]


def stale_event_ids(*, grace_seconds: int, limit: int) -> SweepOutcome:
    """Return ids of events left unaggregated or unindexed longer than the grace period (oldest first)."""
    cutoff = timezone.now() - timedelta(seconds=grace_seconds)
    unaggregated = list(
        RawEvent.objects.filter(
            aggregated_at__isnull=True, dead_lettered_at__isnull=True, received_at__lt=cutoff
        )
        .order_by("received_at")
        .values_list("pk", flat=True)[:limit]
    )
    unindexed = list(
        RawEvent.objects.filter(
            indexed_at__isnull=True, index_rejected_at__isnull=True, received_at__lt=cutoff
        )
        .order_by("received_at")
        .values_list("pk", flat=True)[:limit]
    )
    return SweepOutcome(unaggregated, unindexed)


def chunks(ids: list[int], size: int) -> list[list[int]]:
    return [ids[i : i + size] for i in range(0, len(ids), size)]
