"""Spans (OTLP traces) on raw events: span_id, parent_span_id and duration_ms, and the type "span".

The new columns have a constant database default (or are NULL), which PostgreSQL records without rewriting
the table: no long lock on a big raw-event table. Older code that inserts without them keeps working.
"""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("ingest", "0004_rawevent_user_ts_partial"),
    ]

    operations = [
        migrations.AddField(
            model_name="rawevent",
            name="duration_ms",
            field=models.FloatField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="rawevent",
            name="parent_span_id",
            field=models.CharField(blank=True, db_default="", default="", max_length=32),
        ),
        migrations.AddField(
            model_name="rawevent",
            name="span_id",
            field=models.CharField(blank=True, db_default="", default="", max_length=32),
        ),
        migrations.AlterField(
            model_name="rawevent",
            name="type",
            field=models.CharField(
                choices=[("metric", "metric"), ("log", "log"), ("span", "span")],
                default="metric",
                max_length=6,
            ),
        ),
    ]
