"""Newly stored events on their way to the pipeline: a list in the broker's Redis, drained in chunks.

Ingestion used to publish one Celery message per stored batch (kombu builds a message, a new Redis client
and two round trips: ~0.5–1.8 ms of a 100-event request). Now a batch's ids go on this list in one round
trip, together with a flag that says a drain task is queued; only the batch that sets the flag publishes
one (`tasks.announce_events`). A drain task takes records off the front of the list until it holds a chunk
(PIPELINE_CHUNK_SIZE events, whatever the batch sizes were), makes sure another drain is queued while
records remain, and processes the chunk as `process_events` does.

Why nothing is stranded: a drain clears the flag before it takes anything. A batch appended after the drain
last looked at the list finds the flag clear (or set by someone who queued a drain after clearing it) and
queues a drain itself. What the list loses (Redis flushed or restarted, a worker killed between taking a
chunk and committing it) is stored and unprocessed, so the sweeper re-queues it after its grace period,
as it always did for lost Celery messages.
"""

from datetime import datetime
from functools import cache

import msgspec
import redis
from django.conf import settings

from apps.ingest.models import ClientTimeBounds, client_time_bounds

PENDING_KEY = "pipeline:pending"
DRAIN_QUEUED_KEY = "pipeline:drain-queued"
# A drain message lost after its flag was set (a failed publish) holds the flag this long at most; the
# next batch after that queues a drain (and the sweeper has the events anyway).
DRAIN_FLAG_SECONDS = 30
# Records taken off the list in one round trip at most (single-event requests make one record per event).
MAX_RECORDS_PER_POP = 200

# One record per stored batch: its ids and the least and greatest client time among them (ClientTimeBounds:
# nulls when none of them had one), or null when the sender did not say (every partition is read then).
Record = tuple[list[int], tuple[datetime | None, datetime | None] | None]
_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(Record).decode


def pending_used() -> bool:
    """Whether new events go through the list: a Redis broker and tasks run by workers (not in-process)."""
    return not settings.CELERY_TASK_ALWAYS_EAGER and settings.CELERY_BROKER_URL.startswith(
        ("redis://", "rediss://")
    )


@cache
def _client(url: str) -> redis.Redis:
    # One pool per process and URL; redis-py makes a fresh pool in a forked child.
    return redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=2)


def _redis() -> redis.Redis:
    return _client(settings.CELERY_BROKER_URL)


def pending_append(event_ids: list[int], client_times: ClientTimeBounds | None) -> bool:
    """Append stored events to the list; return True when no drain was queued, so the caller queues one
    (the flag is now set for it). One round trip."""
    pipe = _redis().pipeline(transaction=False)
    pipe.rpush(PENDING_KEY, _encode((event_ids, client_times)))
    pipe.set(DRAIN_QUEUED_KEY, 1, nx=True, ex=DRAIN_FLAG_SECONDS)
    _, flag_was_clear = pipe.execute()
    return bool(flag_was_clear)


def drain_started() -> None:
    """Say the queued drain has started: a batch appended from now on queues the next one."""
    _redis().delete(DRAIN_QUEUED_KEY)


def drain_wanted() -> bool:
    """Whether records remain and no drain is queued (the flag is now set for the caller to queue one)."""
    client = _redis()
    return bool(client.llen(PENDING_KEY)) and bool(
        client.set(DRAIN_QUEUED_KEY, 1, nx=True, ex=DRAIN_FLAG_SECONDS)
    )


def chunk_take(size: int) -> tuple[list[int], ClientTimeBounds | None] | None:
    """Take records off the front of the list until they hold `size` events (or the list is empty); return
    their ids and client-time bounds (None when a record did not know its own), or None when the list was
    empty."""
    client = _redis()
    ids: list[int] = []
    known: list[datetime] = []
    unknown = False
    records = 0
    while len(ids) < size:
        # As many records as should fill the chunk at the size of those taken so far (one to start with):
        # a few round trips whether batches held 1 event or 1000. The chunk may end a little over `size`.
        count = 1 if not ids else min(MAX_RECORDS_PER_POP, -(-(size - len(ids)) * records // len(ids)))
        taken = client.lpop(PENDING_KEY, count)
        if not taken:
            break
        for raw in taken:
            record_ids, bounds = _decode(raw)
            ids.extend(record_ids)
            if bounds is None:
                unknown = True
            else:
                known.extend(moment for moment in bounds if moment is not None)
        records += len(taken)
    if not ids:
        return None
    return ids, None if unknown else client_time_bounds(known)


def chunk_return(event_ids: list[int], client_times: ClientTimeBounds | None) -> None:
    """Put a chunk that could not be processed back at the front of the list (best effort: the sweeper
    has it otherwise)."""
    _redis().lpush(PENDING_KEY, _encode((event_ids, client_times)))


def pending_events() -> list[int]:
    """The ids on the list, front first (for checks and benchmarks)."""
    return [pk for raw in _redis().lrange(PENDING_KEY, 0, -1) for pk in _decode(raw)[0]]
