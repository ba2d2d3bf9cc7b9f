"""Event names and a day's users of every event, each in a small table filled from the rollups they summarise.

Before these, the name search scanned every day count row (DISTINCT over ~300,000 rows for 2,000 names)
and daily active users unioned every day sketch of the range. Both tables are filled here from the
rollups, under a lock that waits for the chunks being added to commit, so none is left out; the pipeline
keeps them up to date from then on.
"""

from django.db import migrations, models

import apps.metrics.models

FILLFACTOR = 70  # as 0004: every chunk updates its days' sketch rows, which then stay on their pages (HOT)


def backfill(registry, schema_editor) -> None:
    postgresql = schema_editor.connection.vendor == "postgresql"
    if postgresql:
        # Waits for the claims adding to the rollups to commit and holds new ones until this one does.
        schema_editor.execute("LOCK TABLE metrics_rollupcount, metrics_rollupsketch IN SHARE MODE")
        schema_editor.execute(f"ALTER TABLE metrics_daysketch SET (fillfactor = {FILLFACTOR})")
    schema_editor.execute(
        "INSERT INTO metrics_eventname (name) SELECT DISTINCT event FROM metrics_rollupcount"
        " WHERE granularity = 'day' AND count > 0"
    )
    if postgresql:  # SQLite has no sketches: its daily active users count RollupUser rows
        schema_editor.execute(
            "INSERT INTO metrics_daysketch (bucket_start, users) SELECT bucket_start, hll_union_agg(users)"
            " FROM metrics_rollupsketch WHERE granularity = 'day' GROUP BY bucket_start"
        )


class Migration(migrations.Migration):
    dependencies = [
        ("metrics", "0004_rollups_fillfactor"),
    ]

    operations = [
        migrations.CreateModel(
            name="DaySketch",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("bucket_start", models.DateTimeField(unique=True)),
                ("users", apps.metrics.models.HllField()),
            ],
        ),
        migrations.CreateModel(
            name="EventName",
            fields=[
                ("name", models.CharField(max_length=200, primary_key=True, serialize=False)),
            ],
        ),
        # Reversed, the tables are dropped: nothing to undo before that.
        migrations.RunPython(backfill, migrations.RunPython.noop, elidable=False),
    ]
