"""Celery tasks of the pipeline: thin wrappers that take ids and call services.

Every task is idempotent: a chunk processed twice, or by two workers, changes nothing the second time.
"""

import logging

from celery import shared_task
from django.conf import settings

from apps.common.errors import BackendUnavailable

from . import services

logger = logging.getLogger(__name__)


def enqueue_events(event_ids: list[int]) -> None:
    """Queue newly stored events for aggregation (which then queues their indexing), in chunks."""
    for chunk in services.chunks(event_ids, settings.PIPELINE_CHUNK_SIZE):
        aggregate_events.delay(chunk)


@shared_task(name="pipeline.aggregate_events", acks_late=True, time_limit=300, soft_time_limit=240)
def aggregate_events(event_ids: list[int]) -> dict:
    """Add a chunk of events to the rollups, then queue the chunk for indexing."""
    outcome = services.aggregate_chunk(event_ids=event_ids)
    index_events.delay(event_ids)
    return outcome.__dict__


@shared_task(
    name="pipeline.index_events",
    bind=True,
    acks_late=True,
    time_limit=300,
    soft_time_limit=240,
    max_retries=3,
)
def index_events(self, event_ids: list[int]) -> dict:
    """Make a chunk of events searchable; when the backend is down, retry a few times, then leave it to the
    sweeper (the events stay marked unindexed, so nothing is lost)."""
    try:
        outcome = services.index_chunk(event_ids=event_ids)
    except BackendUnavailable as exc:
        if settings.CELERY_TASK_ALWAYS_EAGER:
            logger.warning(
                "search backend unavailable, %d events left for the sweeper: %s", len(event_ids), exc
            )
            return {"unavailable": str(exc)}
        raise self.retry(exc=exc, countdown=min(60, 5 * 2**self.request.retries)) from exc
    return outcome.__dict__


@shared_task(name="pipeline.sweep", time_limit=120)
def sweep() -> dict:
    """Re-queue events left unaggregated or unindexed past the grace period (lost messages, dead workers)."""
    stale = services.stale_event_ids(
        grace_seconds=settings.PIPELINE_SWEEP_GRACE_SECONDS, limit=settings.PIPELINE_SWEEP_LIMIT
    )
    for chunk in services.chunks(stale.aggregate_ids, settings.PIPELINE_CHUNK_SIZE):
        aggregate_events.delay(chunk)
    # Events waiting for aggregation get indexed after it; only re-queue indexing for the others.
    waiting = set(stale.aggregate_ids)
    index_only = [pk for pk in stale.index_ids if pk not in waiting]
    for chunk in services.chunks(index_only, settings.PIPELINE_CHUNK_SIZE):
        index_events.delay(chunk)
    if stale.aggregate_ids or index_only:
        logger.info(
            "sweeper re-queued %d for aggregation, %d for indexing", len(stale.aggregate_ids), len(index_only)
        )
    return {"aggregate": len(stale.aggregate_ids), "index": len(index_only)}
