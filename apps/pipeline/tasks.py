"""Celery tasks of the pipeline: thin wrappers that take ids and call services.

Every task is idempotent: a chunk processed twice, or by two workers, changes nothing the second time.
"""

import logging
from datetime import datetime

from celery import shared_task
from django.conf import settings
from kombu.exceptions import OperationalError as KombuOperationalError
from redis.exceptions import RedisError

from apps.common.errors import BackendUnavailable
from apps.ingest.models import ClientTimeBounds

from . import pending, services

logger = logging.getLogger(__name__)


def announce_events(event_ids: list[int], *, client_times: ClientTimeBounds | None = None) -> None:
    """Hand newly stored events to the pipeline: onto the pending list, queueing a drain only when none is
    queued (pending.py says why); in-process (embedded) or without Redis, as chunks of their own."""
    if not pending.pending_used():
        enqueue_events(event_ids, client_times=client_times)
        return
    if pending.pending_append(event_ids, client_times):
        _queue_drain()


def _queue_drain(**options: object) -> None:
    try:
        drain_pending.apply_async(**options)
    except Exception:
        pending.drain_started()  # none is queued after all: let the next batch try (best effort)
        raise


def enqueue_events(event_ids: list[int], *, client_times: ClientTimeBounds | None = None) -> None:
    """Queue newly stored events for processing (rollups and indexing at once), in chunks. `client_times`
    (their least and greatest client time, when the sender knows them) go along as ISO text."""
    kwargs = {}
    if client_times is not None:
        kwargs["client_times"] = [None if moment is None else moment.isoformat() for moment in client_times]
    for chunk in services.chunks(event_ids, settings.PIPELINE_CHUNK_SIZE):
        # A short argsrepr: Celery would otherwise write every id as text into the message's headers (about
        # half the cost of enqueueing a 100-event batch, for a field only logs and monitors read).
        process_events.apply_async((chunk,), kwargs, argsrepr=f"[{len(chunk)} event ids]", kwargsrepr="{}")


@shared_task(name="pipeline.process_events", acks_late=True, time_limit=300, soft_time_limit=240)
def process_events(event_ids: list[int], client_times: list[str | None] | None = None) -> dict:
    """Add a chunk of events to the rollups and make it searchable; if the search backend is down, queue
    the chunk's indexing on its own (with its retries) while the rollups go ahead. `client_times`, when
    given, bound the events' client times (the first read then looks in those days' partitions only)."""
    bounds = None
    if client_times is not None:
        earliest, latest = (None if text is None else datetime.fromisoformat(text) for text in client_times)
        bounds = (earliest, latest)
    return _process(event_ids, bounds)


@shared_task(name="pipeline.drain_pending", acks_late=True, time_limit=300, soft_time_limit=240)
def drain_pending() -> dict:
    """Process the next chunk of the pending list; while records remain, make sure a drain is queued for
    the next free worker first, so every worker can take a chunk at once."""
    pending.drain_started()
    taken = pending.chunk_take(settings.PIPELINE_CHUNK_SIZE)
    if taken is None:
        return {"aggregated": {}, "indexed": {}}
    event_ids, bounds = taken
    _queue_next_drain()
    try:
        return _process(event_ids, bounds)
    except BaseException:
        _put_back(event_ids, bounds)
        raise


def _queue_next_drain() -> None:
    """Queue a drain for the records left, best effort: Redis or the broker gone for a moment must not cost
    the chunk in hand its processing (the next batch queues a drain, the sweeper has what waits)."""
    try:
        if pending.drain_wanted():
            _queue_drain()
    except (RedisError, KombuOperationalError):  # the list's Redis, or the broker, out of reach
        logger.warning("could not queue the next drain; processing the chunk in hand", exc_info=True)


def _put_back(event_ids: list[int], bounds: ClientTimeBounds | None) -> None:
    """Return a chunk that failed to the front of the list, for a drain a few seconds later; the events are
    stored and unprocessed either way, so if even this fails the sweeper has them."""
    try:
        pending.chunk_return(event_ids, bounds)
        if pending.drain_wanted():
            _queue_drain(countdown=5)
    except Exception:
        logger.warning(
            "could not put %d events back on the pending list; the sweeper will pick them up",
            len(event_ids),
            exc_info=True,
        )


def _process(event_ids: list[int], bounds: ClientTimeBounds | None) -> dict:
    outcome = services.process_chunk(event_ids=event_ids, client_times=bounds)
    if outcome.index_unavailable:
        _index_later(event_ids, outcome.index_unavailable)
    return {"aggregated": outcome.aggregated.__dict__, "indexed": outcome.indexed.__dict__}


@shared_task(name="pipeline.aggregate_events", acks_late=True, time_limit=300, soft_time_limit=240)
def aggregate_events(event_ids: list[int]) -> dict:
    """Process a chunk (the name rebuilds and messages queued before process_events still use)."""
    return process_events(event_ids)


def _index_later(event_ids: list[int], reason: str) -> None:
    if settings.CELERY_TASK_ALWAYS_EAGER:
        logger.warning(
            "search backend unavailable, %d events left for the sweeper: %s", len(event_ids), reason
        )
        return
    index_events.apply_async((event_ids,), countdown=5)


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
        process_events.delay(chunk)
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
