"""Raw events partitioned by UTC day of `client_timestamp` (PostgreSQL): retention detaches and drops a day
whole instead of DELETEing millions of rows; a default partition takes what no day partition holds (events
sent without a time among them), so no insert fails.

Why `client_timestamp`, the time as the sender stamped it: a re-send carries the event as first sent, so it
falls in the same partition as its original, and each partition's own unique index on (service, event_id)
recognises it, concurrent sends included (the second waits for the first and skips). The stored
`timestamp` would not do: it is corrected for clock skew from each send's `sent_at`, so two sends of one
event may differ, even by day, and a partitioned table's unique keys must hold the partition column.
`timestamp` stays within MAX_SKEW_CORRECTION of the client time, or is earlier (clamped from the future).
SQLite, the embedded mode, keeps one table: nothing here runs there.
"""

import re
from datetime import UTC, date, datetime, timedelta
from typing import Any

from django.db import connection, transaction

PARENT = "ingest_rawevent"
DEFAULT_PARTITION = f"{PARENT}_default"
_DAY_NAME = re.compile(rf"^{PARENT}_p(\d{{8}})$")
# Making and dropping partitions waits at most this long for its lock; beat or the next run tries again.
LOCK_TIMEOUT = "5s"


# The partition column, and the idempotency key every partition holds as its own unique index.
PARTITION_COLUMN = "client_timestamp"
IDEMPOTENCY_KEY = ("service", "event_id")


def partition_name(day: date) -> str:
    return f"{PARENT}_p{day:%Y%m%d}"


def day_bounds(day: date) -> tuple[datetime, datetime]:
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return start, start + timedelta(days=1)


def is_partitioned() -> bool:
    """Return whether the raw-event table is partitioned (PostgreSQL after migration 0007)."""
    if connection.vendor != "postgresql":
        return False
    with connection.cursor() as cursor:
        cursor.execute("SELECT relkind FROM pg_class WHERE oid = to_regclass(%s)", [PARENT])
        row = cursor.fetchone()
    return row is not None and row[0] == "p"


def day_partitions() -> dict[date, str]:
    """Return the day partitions by day (the default partition is not among them)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = to_regclass(%s)",
            [PARENT],
        )
        names = [row[0] for row in cursor.fetchall()]
    days = {}
    for name in names:
        match = _DAY_NAME.match(name)
        if match:
            days[date.fromisoformat(match.group(1))] = name
    return days


def partition_create(day: date) -> bool:
    """Make the partition of `day` unless it exists; return whether it was made.

    Rows of that day already in the default partition move into it first (attaching a partition whose
    range the default partition holds rows of fails), in one transaction that holds the default partition
    so no row of the day lands there meanwhile.
    """
    name = partition_name(day)
    start, end = day_bounds(day)
    quote = connection.ops.quote_name
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
            cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [name])
            if cursor.fetchone()[0]:
                return False
            cursor.execute(f"LOCK TABLE {quote(DEFAULT_PARTITION)} IN SHARE ROW EXCLUSIVE MODE")
            # Asked again under the lock: another run (beat's and a deploy's at once) may have made it while
            # this one waited for the lock.
            cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [name])
            if cursor.fetchone()[0]:
                return False
            cursor.execute(f"CREATE TABLE {quote(name)} (LIKE {quote(PARENT)} INCLUDING DEFAULTS)")
            idempotency_key_create(cursor, name)
            cursor.execute(
                f"WITH moved AS (DELETE FROM {quote(DEFAULT_PARTITION)} "
                f"WHERE {PARTITION_COLUMN} >= %s AND {PARTITION_COLUMN} < %s RETURNING *) "
                f"INSERT INTO {quote(name)} SELECT * FROM moved",
                [start, end],
            )
            cursor.execute(
                f"ALTER TABLE {quote(PARENT)} ATTACH PARTITION {quote(name)} FOR VALUES FROM (%s) TO (%s)",
                [start, end],
            )
    return True


def idempotency_key_create(cursor: Any, table: str) -> None:
    """Give a partition (or a table about to be attached as one) its unique (service, event_id) index: the
    parent cannot hold it (it lacks the partition column), and INSERT … ON CONFLICT DO NOTHING without a
    target uses every unique index of the partition a row goes to."""
    quote = connection.ops.quote_name
    columns = ", ".join(quote(name) for name in IDEMPOTENCY_KEY)
    index = quote(f"{table}_service_event_id")
    cursor.execute(f"CREATE UNIQUE INDEX IF NOT EXISTS {index} ON {quote(table)} ({columns})")


def partitions_ensure(*, today: date, days_ahead: int, since: date | None = None) -> list[date]:
    """Make the partitions of yesterday, today and `days_ahead` days ahead, and of every day from `since` on
    that has rows in the default partition; return the days made. Idempotent. (A client clock far off
    leaves its events in the default partition rather than making partitions of years away.)"""
    last = today + timedelta(days=days_ahead)
    wanted = {today + timedelta(days=offset) for offset in range(-1, days_ahead + 1)}
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT DISTINCT ({PARTITION_COLUMN} AT TIME ZONE 'UTC')::date FROM {quote(DEFAULT_PARTITION)} "
            f"WHERE {PARTITION_COLUMN} IS NOT NULL"
        )
        wanted |= {
            row[0] for row in cursor.fetchall() if (since is None or row[0] >= since) and row[0] <= last
        }
    existing = day_partitions()
    return [day for day in sorted(wanted - set(existing)) if partition_create(day)]


def partition_detach(name: str) -> None:
    """Detach a day partition: its rows leave the table at once. The caller holds the parent's lock (see
    lifecycle retention) and drops the detached table after its commit (`detached_drop`)."""
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        # The api_key foreign key is checked at commit: rows written in this transaction must be checked
        # now, or PostgreSQL refuses to detach a table with checks pending.
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute(f"ALTER TABLE {quote(PARENT)} DETACH PARTITION {quote(name)}")


def detached_drop() -> list[str]:
    """Drop the day tables no longer attached (detached by retention); return their names. Apart from the
    detach, so the file system's work of freeing them never holds the raw-event table's lock."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = current_schema() AND c.relkind = 'r' AND c.relname LIKE %s "
            "AND NOT c.relispartition",
            [f"{PARENT}_p%"],
        )
        names = [row[0] for row in cursor.fetchall() if _DAY_NAME.match(row[0])]
        for name in names:
            cursor.execute(f"DROP TABLE IF EXISTS {connection.ops.quote_name(name)}")
    return names
