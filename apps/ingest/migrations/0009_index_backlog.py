"""The index state of aggregated events moves from `indexed_at` on each raw row to IndexBacklog (the events
that left aggregation before their search document was known to be stored): a raw row is no longer
rewritten when its search bulk comes back.

Every event the old state called unindexed and no longer awaiting aggregation (counted, or dead-lettered),
and not refused by the index, goes into the backlog; events still awaiting aggregation are indexed with it.
Backwards, the events neither awaiting their index nor refused get their receive time as `indexed_at`
(the backlog kept whether, not when).
"""

from django.db import migrations, models

TO_BACKLOG = """
INSERT INTO ingest_indexbacklog (raw_id, client_timestamp, received_at)
SELECT id, client_timestamp, received_at FROM ingest_rawevent
WHERE indexed_at IS NULL AND index_rejected_at IS NULL
    AND NOT (aggregated_at IS NULL AND dead_lettered_at IS NULL)
"""

FROM_BACKLOG = """
UPDATE ingest_rawevent SET indexed_at = received_at
WHERE index_rejected_at IS NULL
    AND NOT (aggregated_at IS NULL AND dead_lettered_at IS NULL)
    AND NOT EXISTS (SELECT 1 FROM ingest_indexbacklog b WHERE b.raw_id = ingest_rawevent.id)
"""


class Migration(migrations.Migration):
    dependencies = [
        ("ingest", "0008_rawevent_api_key_plain"),
    ]

    operations = [
        migrations.CreateModel(
            name="IndexBacklog",
            fields=[
                ("raw_id", models.BigIntegerField(primary_key=True, serialize=False)),
                ("client_timestamp", models.DateTimeField(blank=True, null=True)),
                ("received_at", models.DateTimeField()),
            ],
        ),
        migrations.AddIndex(
            model_name="indexbacklog",
            index=models.Index(fields=["received_at"], name="indexbacklog_received"),
        ),
        migrations.RunSQL(TO_BACKLOG, FROM_BACKLOG),
        migrations.RemoveIndex(
            model_name="rawevent",
            name="rawevent_unindexed",
        ),
        migrations.RemoveField(
            model_name="rawevent",
            name="indexed_at",
        ),
    ]
