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


def cached(key: str) -> Any:
    """Return the cached value, or None when there is none or the cache is down."""
    try:
        return cache.get(key)
    except RedisError as error:
        logger.warning("cache unavailable, read from the database instead: %s", error)
        return None


def cache_put(key: str, value: Any, *, timeout: int) -> None:
    """Cache a value for `timeout` seconds (nothing when the cache is down)."""
    try:
        cache.set(key, value, timeout=timeout)
    except RedisError as error:
        logger.warning("cache unavailable, value not cached: %s", error)


def cache_forget(keys: Iterable[str]) -> None:
    """Drop cached values now and again when the transaction commits: until then other processes read the
    rows as they were and may cache those old copies again (a revoked secret would keep working)."""
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
