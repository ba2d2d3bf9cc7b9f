"""HyperLogLog sketches of unique users (PostgreSQL): the hll extension, then the sketch table."""

from django.db import migrations, models

import apps.metrics.models


def create_extension(registry, schema_editor) -> None:
    if schema_editor.connection.vendor == "postgresql":
        # scripts/services.sh installs postgresql-15-hll and creates the extension in template1 (as the
        # superuser), so this finds it in place; on a server without it, this says what is missing.
        schema_editor.execute("CREATE EXTENSION IF NOT EXISTS hll")


class Migration(migrations.Migration):
    dependencies = [
        ("metrics", "0002_rollup_keys_lead_with_event"),
    ]

    operations = [
        migrations.RunPython(create_extension, migrations.RunPython.noop, elidable=False),
        migrations.CreateModel(
            name="RollupSketch",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("bucket_start", models.DateTimeField()),
                (
                    "granularity",
                    models.CharField(
                        choices=[("minute", "minute"), ("hour", "hour"), ("day", "day")], max_length=6
                    ),
                ),
                ("event", models.CharField(max_length=200)),
                ("service", models.CharField(max_length=100)),
                ("stage", models.CharField(max_length=50)),
                ("users", apps.metrics.models.HllField()),
            ],
            options={
                "constraints": [
                    models.UniqueConstraint(
                        fields=("granularity", "event", "bucket_start", "service", "stage"),
                        name="rollupsketch_bucket",
                    )
                ],
            },
        ),
    ]
