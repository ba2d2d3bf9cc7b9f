"""One run at a time across processes and machines: a PostgreSQL advisory lock held for a block, taken
without waiting. The embedded mode (SQLite) runs in one process, where the block simply runs."""

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from django.db import DatabaseError, connection

logger = logging.getLogger(__name__)


@contextmanager
def exclusive(*key: int, refused: Exception) -> Iterator[None]:
    """Hold the session-level advisory lock `key` (one 64-bit number, or two 32-bit ones) for the block, or
    raise `refused` at once, the block not run, when another session holds it."""
    if connection.vendor != "postgresql":
        yield
        return
    placeholders = ", ".join(["%s"] * len(key))
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT pg_try_advisory_lock({placeholders})", list(key))
        if not cursor.fetchone()[0]:
            raise refused
    try:
        yield
    finally:
        try:
            with connection.cursor() as cursor:
                cursor.execute(f"SELECT pg_advisory_unlock({placeholders})", list(key))
        except DatabaseError:
            # Lost, or left in a failed transaction (the block inside an outer atomic, a task's time limit
            # cutting a query): closed, so that the lock ends with the session instead of outliving it in
            # a worker that keeps its connection.
            logger.warning("advisory lock %s not released; closing the connection", key, exc_info=True)
            connection.close()
