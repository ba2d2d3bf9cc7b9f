"""Room on every rollup page (PostgreSQL) for the new version of a row the pipeline's upsert changes.

A bucket's row is updated by every chunk that has events in it, and only its counters change (no indexed
column), so with free space on its page PostgreSQL keeps the new version there without touching the
indexes (a HOT update). With full pages (the default fillfactor of 100), each update writes an entry into
both indexes too. Pages written from now on keep 30 % free; existing ones gain room as vacuum frees it.
"""

from django.db import migrations

# The tables the pipeline upserts into on PostgreSQL (RollupUser is SQLite's: sketches replace it there).
TABLES = ("metrics_rollupcount", "metrics_rollupnumeric", "metrics_rollupsketch")
FILLFACTOR = 70


def set_fillfactor(registry, schema_editor) -> None:
    if schema_editor.connection.vendor == "postgresql":
        for table in TABLES:
            schema_editor.execute(f"ALTER TABLE {table} SET (fillfactor = {FILLFACTOR})")


def reset_fillfactor(registry, schema_editor) -> None:
    if schema_editor.connection.vendor == "postgresql":
        for table in TABLES:
            schema_editor.execute(f"ALTER TABLE {table} RESET (fillfactor)")


class Migration(migrations.Migration):
    dependencies = [
        ("metrics", "0003_rollupsketch"),
    ]

    operations = [
        migrations.RunPython(set_fillfactor, reset_fillfactor, elidable=False),
    ]
