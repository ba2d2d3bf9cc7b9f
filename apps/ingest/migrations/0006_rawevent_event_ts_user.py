"""rawevent_event_ts_user: funnels and retention read each step's rows from this index alone.

Built without blocking ingestion (CREATE INDEX CONCURRENTLY) on PostgreSQL; SQLite builds it whole (its
planner does not prove the partial condition, as for rawevent_user_ts).
"""

from django.db import migrations, models

import apps.ingest.models

INDEX = apps.ingest.models.PostgresPartialIndex(
    fields=["event", "timestamp", "user_id"], name="rawevent_event_ts_user", condition=~models.Q(user_id="")
)


def _create(apps, schema_editor):
    model = apps.get_model("ingest", "RawEvent")
    if schema_editor.connection.vendor != "postgresql":
        schema_editor.add_index(model, INDEX)
        return
    # A build that failed half way leaves an invalid index behind: drop it and start again.
    schema_editor.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {schema_editor.quote_name(INDEX.name)}")
    schema_editor.add_index(model, INDEX, concurrently=True)


def _drop(apps, schema_editor):
    model = apps.get_model("ingest", "RawEvent")
    if schema_editor.connection.vendor != "postgresql":
        schema_editor.remove_index(model, INDEX)
        return
    schema_editor.remove_index(model, INDEX, concurrently=True)


class Migration(migrations.Migration):
    atomic = False  # CREATE / DROP INDEX CONCURRENTLY cannot run in a transaction

    dependencies = [
        ("ingest", "0005_rawevent_spans"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.AddIndex(model_name="rawevent", index=INDEX)],
            database_operations=[migrations.RunPython(_create, _drop)],
        ),
    ]
