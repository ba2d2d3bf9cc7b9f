"""rawevent_user_ts leaves out events without a user, on PostgreSQL (SQLite keeps the whole index).

Built without blocking ingestion: the new index is made CONCURRENTLY under a temporary name, the old one
dropped CONCURRENTLY, and the new one renamed; backwards the same with the whole index.
"""

from django.db import migrations, models

import apps.ingest.models

WHOLE = models.Index(fields=["user_id", "timestamp"], name="rawevent_user_ts")
PARTIAL = apps.ingest.models.PostgresPartialIndex(
    fields=["user_id", "timestamp"], name="rawevent_user_ts", condition=~models.Q(user_id="")
)


def _swap(new: models.Index):
    def swap(apps, schema_editor):
        if schema_editor.connection.vendor != "postgresql":
            return  # SQLite: the index is whole before and after
        model = apps.get_model("ingest", "RawEvent")
        building = new.clone()
        building.name = f"{new.name}_new"
        quote = schema_editor.quote_name
        schema_editor.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {quote(building.name)}")  # a failed build
        schema_editor.add_index(model, building, concurrently=True)
        schema_editor.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {quote(new.name)}")
        schema_editor.execute(f"ALTER INDEX {quote(building.name)} RENAME TO {quote(new.name)}")

    return swap


class Migration(migrations.Migration):
    atomic = False  # CREATE / DROP INDEX CONCURRENTLY cannot run in a transaction

    dependencies = [
        ("ingest", "0003_overview_indexes"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.RemoveIndex(model_name="rawevent", name="rawevent_user_ts"),
                migrations.AddIndex(model_name="rawevent", index=PARTIAL),
            ],
            database_operations=[migrations.RunPython(_swap(PARTIAL), _swap(WHOLE))],
        ),
    ]
