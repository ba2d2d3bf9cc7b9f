"""The cache (Redis when CACHE_URL is set) is a shortcut, never a dependency: with it down, a read misses, a
write is skipped and a counter counts nothing, each with a warning, so that the database, which holds the
truth, still answers (a 500 would lose an ingested batch or lock everyone out)."""

import logging
from collections.abc import Iterable
from typing import Any

from django.core.cache import cache
from django.db import transaction
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)

# What `cache_invalidate` leaves under a key: read as a miss, and not overwritten by `cache_put`.
INVALIDATED = "shortcut-cache:invalidated"


def cached(key: str) -> Any:
    """Return the cached value, or None when there is none, it was invalidated or the cache is down."""
    try:
        value = cache.get(key)
    except RedisError as error:
        logger.warning("cache unavailable, read from the database instead: %s", error)
        return None
    return None if value == INVALIDATED else value


def cache_put(key: str, value: Any, *, timeout: int) -> None:
    """Cache a value read from the database for `timeout` seconds, unless the key holds one already or was
    invalidated lately (nothing when the cache is down): a read that began before a change and ends after
    `cache_invalidate` ran must not put back the copy the change dropped."""
    try:
        cache.add(key, value, timeout=timeout)
    except RedisError as error:
        logger.warning("cache unavailable, value not cached: %s", error)


def cache_invalidate(keys: Iterable[str], *, hold: int) -> None:
    """Drop cached copies of rows a transaction changes, now and again when it commits, and keep them from
    being cached again for `hold` seconds after each (`cache_put` leaves the mark in place): a concurrent
    reader that read the rows as they were, before the commit, caches nothing. A reader slower than `hold`
    between its read and its put could still cache an old copy, for its timeout at most."""
    marks = dict.fromkeys(keys, INVALIDATED)

    def invalidate() -> None:
        try:
            cache.set_many(marks, timeout=hold)
        except RedisError as error:  # down: nothing is read from it either, and entries expire on their own
            logger.warning("cache unavailable, %d entries not invalidated: %s", len(marks), error)

    if marks:
        invalidate()
        transaction.on_commit(invalidate, robust=True)


def cache_forget(keys: Iterable[str]) -> None:
    """Drop cached values now and again when the transaction commits (copies of rows: `cache_invalidate`,
    which also keeps a concurrent reader from putting an old copy back)."""
    keys = list(keys)

    def forget() -> None:
        try:
            cache.delete_many(keys)
        except RedisError as error:  # down: nothing is read from it either, and entries expire on their own
            logger.warning("cache unavailable, %d entries not dropped: %s", len(keys), error)

    forget()
    transaction.on_commit(forget, robust=True)


def cache_count(key: str, *, timeout: int) -> int | None:
    """Add one to a counter that lives `timeout` seconds from its first count; return the new count, or
    None when the cache is down (nothing counted)."""
    try:
        # add() then incr() keeps the count atomic across processes when the cache is shared (Redis).
        cache.add(key, 0, timeout=timeout)
        try:
            return cache.incr(key)
        except ValueError:  # expired between add and incr
            cache.set(key, 1, timeout=timeout)
            return 1
    except RedisError as error:
        logger.warning("cache unavailable, nothing counted: %s", error)
        return None


def cache_uncount(key: str) -> None:
    """Take back one count of `cache_count` (nothing when the counter expired or the cache is down)."""
    try:
        cache.decr(key)
    except ValueError:  # expired meanwhile: nothing left to take back
        pass
    except RedisError as error:
        logger.warning("cache unavailable, nothing taken back: %s", error)
