"""Raw events partitioned by UTC day of `timestamp` on PostgreSQL (retention drops a day whole), and the
recent idempotency keys that keep "stored once" exact across partitions. SQLite keeps one table.

The conversion copies every row, with its id, into a new partitioned table of the same columns (a partition
per day present, yesterday to a week ahead, and a default partition), then swaps the names. The primary key
becomes (id, timestamp) and the idempotency key (service, event_id, timestamp): a partitioned table's unique
keys must hold the partition column. Django's state keeps `id` as the primary key (ids stay unique: one
sequence makes them). The copy holds the table for its length: run it in a quiet hour on a big table.
Reversible: backwards makes one plain table again, every row kept.
"""

from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import migrations, models

TABLE = "ingest_rawevent"
SEQUENCE = "ingest_rawevent_id_seq"
DAYS_AHEAD = 7


def _indexes_and_foreign_keys(cursor, table: str) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """Return the table's plain indexes (name, CREATE statement) and foreign keys (name, definition)."""
    cursor.execute(
        "SELECT c.relname, pg_get_indexdef(i.indexrelid) FROM pg_index i "
        "JOIN pg_class c ON c.oid = i.indexrelid "
        "WHERE i.indrelid = to_regclass(%s) "
        "AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid)",
        [table],
    )
    indexes = cursor.fetchall()
    cursor.execute(
        "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = to_regclass(%s) "
        "AND contype = 'f'",
        [table],
    )
    return indexes, cursor.fetchall()


def _set_aside(cursor, table: str, aside: str, indexes: list[tuple[str, str]]) -> None:
    """Rename the table, its key constraints and indexes, freeing their names for the new table."""
    cursor.execute(f'ALTER TABLE "{table}" RENAME TO "{aside}"')
    cursor.execute(
        "SELECT conname FROM pg_constraint WHERE conrelid = to_regclass(%s) AND contype IN ('p', 'u')",
        [aside],
    )
    for (name,) in cursor.fetchall():
        cursor.execute(f'ALTER TABLE "{aside}" RENAME CONSTRAINT "{name}" TO "{name}_old"')
    for name, _ in indexes:
        cursor.execute(f'ALTER INDEX "{name}" RENAME TO "{name}_old"')


def _rebuild_rest(cursor, indexes, foreign_keys) -> None:
    for _, statement in indexes:
        cursor.execute(statement)
    for name, definition in foreign_keys:
        cursor.execute(f'ALTER TABLE "{TABLE}" ADD CONSTRAINT "{name}" {definition}')


def _partition(cursor, day) -> None:
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    cursor.execute(
        f'CREATE TABLE "{TABLE}_p{day:%Y%m%d}" PARTITION OF "{TABLE}" FOR VALUES FROM (%s) TO (%s)',
        [start, start + timedelta(days=1)],
    )


def to_partitioned(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return  # SQLite: one table
    old = f"{TABLE}_unpartitioned"
    with schema_editor.connection.cursor() as cursor:
        indexes, foreign_keys = _indexes_and_foreign_keys(cursor, TABLE)
        _set_aside(cursor, TABLE, old, indexes)
        cursor.execute(
            f'CREATE TABLE "{TABLE}" (LIKE "{old}" INCLUDING DEFAULTS) PARTITION BY RANGE ("timestamp")'
        )
        # Identity columns are not allowed on partitioned tables before PostgreSQL 17: a sequence it owns.
        cursor.execute(f'CREATE SEQUENCE "{SEQUENCE}_new" OWNED BY "{TABLE}".id')
        cursor.execute(f"""ALTER TABLE "{TABLE}" ALTER COLUMN id SET DEFAULT nextval('"{SEQUENCE}_new"')""")
        cursor.execute(f'CREATE TABLE "{TABLE}_default" PARTITION OF "{TABLE}" DEFAULT')
        cursor.execute(f"""SELECT DISTINCT ("timestamp" AT TIME ZONE 'UTC')::date FROM "{old}" """)
        today = datetime.now(UTC).date()
        days = {row[0] for row in cursor.fetchall()}
        days |= {today + timedelta(days=offset) for offset in range(-1, DAYS_AHEAD + 1)}
        for day in sorted(days):
            _partition(cursor, day)
        cursor.execute(f'INSERT INTO "{TABLE}" SELECT * FROM "{old}"')
        cursor.execute(f'ALTER TABLE "{TABLE}" ADD CONSTRAINT "{TABLE}_pkey" PRIMARY KEY (id, "timestamp")')
        cursor.execute(
            f'ALTER TABLE "{TABLE}" ADD CONSTRAINT "rawevent_unique_service_event_id" '
            f'UNIQUE (service, event_id, "timestamp")'
        )
        _rebuild_rest(cursor, indexes, foreign_keys)
        cursor.execute(
            f"""SELECT setval('"{SEQUENCE}_new"', COALESCE((SELECT max(id) FROM "{old}"), 0) + 1, false)"""
        )
        cursor.execute(f'DROP TABLE "{old}"')  # and its identity sequence, freeing the name
        cursor.execute(f'ALTER SEQUENCE "{SEQUENCE}_new" RENAME TO "{SEQUENCE}"')
        # The recent keys of the rows stored lately, as if the partitioned insert had stored them: the insert
        # trusts a young event's key alone (apps/ingest/services.py `_neighbour_check_age`).
        cursor.execute(
            'INSERT INTO ingest_recenteventkey (service, event_id, "timestamp", stored_at) '
            f'SELECT service, event_id, "timestamp", received_at FROM "{TABLE}" WHERE received_at >= %s '
            "ON CONFLICT (service, event_id) DO NOTHING",
            [datetime.now(UTC) - timedelta(hours=settings.INGEST_RECENT_KEY_HOURS, minutes=10)],
        )


def to_plain(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    old = f"{TABLE}_partitioned"
    with schema_editor.connection.cursor() as cursor:
        indexes, foreign_keys = _indexes_and_foreign_keys(cursor, TABLE)
        _set_aside(cursor, TABLE, old, indexes)
        cursor.execute(f'ALTER SEQUENCE "{SEQUENCE}" RENAME TO "{SEQUENCE}_old"')
        cursor.execute(f'CREATE TABLE "{TABLE}" (LIKE "{old}" INCLUDING DEFAULTS)')
        cursor.execute(f'ALTER TABLE "{TABLE}" ALTER COLUMN id DROP DEFAULT')
        cursor.execute(f'ALTER TABLE "{TABLE}" ALTER COLUMN id ADD GENERATED BY DEFAULT AS IDENTITY')
        cursor.execute(f'INSERT INTO "{TABLE}" SELECT * FROM "{old}"')
        cursor.execute(f'ALTER TABLE "{TABLE}" ADD CONSTRAINT "{TABLE}_pkey" PRIMARY KEY (id)')
        cursor.execute(
            f'ALTER TABLE "{TABLE}" ADD CONSTRAINT "rawevent_unique_service_event_id" '
            "UNIQUE (service, event_id)"
        )
        _rebuild_rest(cursor, indexes, foreign_keys)
        cursor.execute(
            f"SELECT setval(pg_get_serial_sequence('\"{TABLE}\"', 'id'), "
            f'COALESCE((SELECT max(id) FROM "{old}"), 0) + 1, false)'
        )
        cursor.execute(f'DROP TABLE "{old}" CASCADE')


class Migration(migrations.Migration):
    dependencies = [
        ("ingest", "0006_rawevent_event_ts_user"),
    ]

    operations = [
        migrations.CreateModel(
            name="RecentEventKey",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("service", models.CharField(max_length=100)),
                ("event_id", models.UUIDField()),
                ("timestamp", models.DateTimeField()),
                ("stored_at", models.DateTimeField()),
            ],
            options={
                "indexes": [
                    models.Index(fields=["stored_at"], name="recentkey_stored_at"),
                    models.Index(fields=["timestamp"], name="recentkey_timestamp"),
                ],
                "constraints": [
                    models.UniqueConstraint(
                        fields=("service", "event_id"), name="recentkey_unique_service_event_id"
                    )
                ],
            },
        ),
        migrations.RunPython(to_partitioned, to_plain),
    ]
