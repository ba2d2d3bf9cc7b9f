"""The aggregation state moves from `aggregated_at` on each raw row to AggregationBacklog (the events still
to add to the rollups): the pipeline's claim deletes narrow rows there instead of writing a new version of
each wide raw row. When a day's events were last counted, which the archive's check reads, moves to
AggregationMark (one mark per day: the last time one of its events was counted or dead-lettered).

Backwards, the events neither awaiting aggregation nor dead-lettered get their day's last mark as
`aggregated_at` (the backlog keeps whether, and the marks when, per day).
"""

from datetime import UTC

from django.db import migrations, models
from django.db.models import Max, OuterRef, Subquery
from django.db.models.functions import Coalesce, Greatest, TruncDate

TO_BACKLOG = """
INSERT INTO ingest_aggregationbacklog (raw_id, client_timestamp, received_at)
SELECT id, client_timestamp, received_at FROM ingest_rawevent
WHERE aggregated_at IS NULL AND dead_lettered_at IS NULL
"""


def marks_from_rows(apps, schema_editor) -> None:
    RawEvent = apps.get_model("ingest", "RawEvent")
    AggregationMark = apps.get_model("ingest", "AggregationMark")
    days = (
        RawEvent.objects.exclude(aggregated_at__isnull=True, dead_lettered_at__isnull=True)
        .annotate(day=TruncDate("timestamp", tzinfo=UTC))
        .values("day")
        .annotate(last_counted=Max("aggregated_at"), last_dead=Max("dead_lettered_at"))
    )
    AggregationMark.objects.bulk_create(
        [
            AggregationMark(
                day=row["day"],
                marked_at=max(t for t in (row["last_counted"], row["last_dead"]) if t is not None),
            )
            for row in days
        ],
        batch_size=500,
    )


def _outer(name: str) -> models.ExpressionWrapper:
    # TruncDate needs its argument's type, which an OuterRef has only once wrapped.
    return models.ExpressionWrapper(OuterRef(name), output_field=models.DateTimeField())


def rows_from_marks(apps, schema_editor) -> None:
    RawEvent = apps.get_model("ingest", "RawEvent")
    AggregationBacklog = apps.get_model("ingest", "AggregationBacklog")
    AggregationMark = apps.get_model("ingest", "AggregationMark")
    # One UPDATE, one pass over the table: each counted row looks up its day's last mark (an index probe),
    # instead of a scan of the whole table per day the marks name. A row of a day without a mark, or
    # received after it, gets its receive time.
    day_marked = (
        AggregationMark.objects.filter(day=TruncDate(_outer("timestamp"), tzinfo=UTC))
        .order_by("-marked_at")
        .values("marked_at")[:1]
    )
    RawEvent.objects.filter(dead_lettered_at__isnull=True).exclude(
        pk__in=AggregationBacklog.objects.values("raw_id")
    ).update(
        aggregated_at=Greatest(
            "received_at",
            Coalesce(Subquery(day_marked, output_field=models.DateTimeField()), "received_at"),
        )
    )


class Migration(migrations.Migration):
    dependencies = [
        ("ingest", "0009_index_backlog"),
    ]

    operations = [
        migrations.CreateModel(
            name="AggregationBacklog",
            fields=[
                ("raw_id", models.BigIntegerField(primary_key=True, serialize=False)),
                ("client_timestamp", models.DateTimeField(blank=True, null=True)),
                ("received_at", models.DateTimeField()),
            ],
        ),
        migrations.AddIndex(
            model_name="aggregationbacklog",
            index=models.Index(fields=["received_at"], name="aggregationbacklog_received"),
        ),
        migrations.CreateModel(
            name="AggregationMark",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("day", models.DateField()),
                ("marked_at", models.DateTimeField()),
            ],
        ),
        migrations.AddIndex(
            model_name="aggregationmark",
            index=models.Index(fields=["day", "marked_at"], name="aggregationmark_day"),
        ),
        migrations.RunSQL(TO_BACKLOG, "DELETE FROM ingest_aggregationbacklog"),
        migrations.RunPython(marks_from_rows, rows_from_marks),
        migrations.RemoveIndex(
            model_name="rawevent",
            name="rawevent_unaggregated",
        ),
        migrations.AddIndex(
            model_name="rawevent",
            index=models.Index(
                condition=models.Q(("index_rejected_at__isnull", False)),
                fields=["index_rejected_at"],
                name="rawevent_index_rejected",
            ),
        ),
        migrations.RemoveField(
            model_name="rawevent",
            name="aggregated_at",
        ),
    ]
