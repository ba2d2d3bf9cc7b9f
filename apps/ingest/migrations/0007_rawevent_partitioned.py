"""Raw events get `client_timestamp` (the time their sender stamped, equal on every re-send), and on
PostgreSQL are partitioned by its UTC day (retention drops a day whole). SQLite keeps one table.

The conversion copies every row, with its id, into a new partitioned table of the same columns (a partition
per day present, yesterday to a week ahead, and a default partition that takes events without a client
time and days without a partition), then swaps the names. Rows stored before keep their `timestamp` as
client time (the time as sent is not known for them). A partitioned table's unique keys must hold the
partition column, and it may be NULL: so each partition holds the idempotency key (service, event_id) as
its own unique index (apps/ingest/partitions.py), and `id` has a plain index (ids stay unique: one sequence
makes them; Django's state keeps it as the primary key). The copy holds the table for its length: run it
in a quiet hour on a big table. Reversible: backwards makes one plain table again; of an event stored in
two days' partitions (re-sent with a client time of another day), the first row is kept.
"""

from datetime import UTC, datetime, timedelta

from django.db import migrations, models

TABLE = "ingest_rawevent"
SEQUENCE = "ingest_rawevent_id_seq"
DAYS_AHEAD = 7
ID_INDEX = f"{TABLE}_id"


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


def _partition(cursor, name: str, bounds: str, params: list) -> None:
    """Make a partition with its own idempotency key (the unique index apps/ingest/partitions.py names)."""
    cursor.execute(f'CREATE TABLE "{name}" PARTITION OF "{TABLE}" {bounds}', params)
    cursor.execute(f'CREATE UNIQUE INDEX "{name}_service_event_id" ON "{name}" (service, event_id)')


def _day_partition(cursor, day) -> None:
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    _partition(
        cursor, f"{TABLE}_p{day:%Y%m%d}", "FOR VALUES FROM (%s) TO (%s)", [start, start + timedelta(1)]
    )


def to_partitioned(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return  # SQLite: one table
    old = f"{TABLE}_unpartitioned"
    with schema_editor.connection.cursor() as cursor:
        indexes, foreign_keys = _indexes_and_foreign_keys(cursor, TABLE)
        _set_aside(cursor, TABLE, old, indexes)
        cursor.execute(
            f'CREATE TABLE "{TABLE}" (LIKE "{old}" INCLUDING DEFAULTS) PARTITION BY RANGE (client_timestamp)'
        )
        # Identity columns are not allowed on partitioned tables before PostgreSQL 17: a sequence it owns.
        cursor.execute(f'CREATE SEQUENCE "{SEQUENCE}_new" OWNED BY "{TABLE}".id')
        cursor.execute(f"""ALTER TABLE "{TABLE}" ALTER COLUMN id SET DEFAULT nextval('"{SEQUENCE}_new"')""")
        _partition(cursor, f"{TABLE}_default", "DEFAULT", [])
        cursor.execute(f"""SELECT DISTINCT ("timestamp" AT TIME ZONE 'UTC')::date FROM "{old}" """)
        today = datetime.now(UTC).date()
        days = {row[0] for row in cursor.fetchall()}
        days |= {today + timedelta(days=offset) for offset in range(-1, DAYS_AHEAD + 1)}
        for day in sorted(days):
            _day_partition(cursor, day)
        # Every column as it is, but the client time: the event time stored (the time as sent is not known).
        cursor.execute(f'SELECT * FROM "{old}" LIMIT 0')
        names = [column.name for column in cursor.description]
        columns = ", ".join(f'"{name}"' for name in names)
        values = ", ".join('"timestamp"' if name == "client_timestamp" else f'"{name}"' for name in names)
        cursor.execute(f'INSERT INTO "{TABLE}" ({columns}) SELECT {values} FROM "{old}"')
        cursor.execute(f'CREATE INDEX "{ID_INDEX}" ON "{TABLE}" (id)')
        _rebuild_rest(cursor, indexes, foreign_keys)
        cursor.execute(
            f"""SELECT setval('"{SEQUENCE}_new"', COALESCE((SELECT max(id) FROM "{old}"), 0) + 1, false)"""
        )
        cursor.execute(f'DROP TABLE "{old}"')  # and its identity sequence, freeing the name
        cursor.execute(f'ALTER SEQUENCE "{SEQUENCE}_new" RENAME TO "{SEQUENCE}"')


def to_plain(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    old = f"{TABLE}_partitioned"
    with schema_editor.connection.cursor() as cursor:
        indexes, foreign_keys = _indexes_and_foreign_keys(cursor, TABLE)
        _set_aside(cursor, TABLE, old, indexes)
        indexes = [(name, statement) for name, statement in indexes if name != ID_INDEX]  # the primary key's
        cursor.execute(f'ALTER SEQUENCE "{SEQUENCE}" RENAME TO "{SEQUENCE}_old"')
        cursor.execute(f'CREATE TABLE "{TABLE}" (LIKE "{old}" INCLUDING DEFAULTS)')
        cursor.execute(f'ALTER TABLE "{TABLE}" ALTER COLUMN id DROP DEFAULT')
        cursor.execute(f'ALTER TABLE "{TABLE}" ALTER COLUMN id ADD GENERATED BY DEFAULT AS IDENTITY')
        cursor.execute(f'ALTER TABLE "{TABLE}" ADD CONSTRAINT "{TABLE}_pkey" PRIMARY KEY (id)')
        cursor.execute(
            f'ALTER TABLE "{TABLE}" ADD CONSTRAINT "rawevent_unique_service_event_id" '
            "UNIQUE (service, event_id)"
        )
        cursor.execute(f'INSERT INTO "{TABLE}" SELECT * FROM "{old}" ORDER BY id ON CONFLICT DO NOTHING')
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
        migrations.AddField(
            model_name="rawevent",
            name="client_timestamp",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.RunPython(to_partitioned, to_plain),
    ]
