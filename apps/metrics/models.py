"""Rollups: per-bucket aggregates derived from raw events, rebuilt from them at any time.

A bucket is (bucket start, granularity, event, service, stage). Unique users are exact: one row per user
and bucket in `RollupUser`, so the users of any range are a COUNT(DISTINCT) over small rows instead of a
scan of raw events, and re-adding a user is an idempotent no-op.
"""

from django.db import models

GRANULARITIES = ("minute", "hour", "day")


class _BucketFields(models.Model):
    bucket_start = models.DateTimeField()
    granularity = models.CharField(max_length=6, choices=[(g, g) for g in GRANULARITIES])
    event = models.CharField(max_length=200)
    service = models.CharField(max_length=100)
    stage = models.CharField(max_length=50)

    class Meta:
        abstract = True

    def __str__(self) -> str:
        return f"{self.granularity} {self.bucket_start:%Y-%m-%d %H:%M} {self.service}/{self.event}"


# The unique keys lead with (granularity, event, bucket_start): a chart reads a few events over a range,
# so their buckets sit next to each other in the index.


class RollupCount(_BucketFields):
    count = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["granularity", "event", "bucket_start", "service", "stage"], name="rollupcount_bucket"
            )
        ]


class RollupNumeric(_BucketFields):
    """Sum, min, max and count of one numeric property in a bucket."""

    prop = models.CharField(max_length=200)
    count = models.BigIntegerField(default=0)
    sum = models.FloatField(default=0.0)
    min = models.FloatField()
    max = models.FloatField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["granularity", "event", "bucket_start", "service", "stage", "prop"],
                name="rollupnumeric_bucket",
            )
        ]


class RollupUser(_BucketFields):
    user_id = models.CharField(max_length=200)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["granularity", "event", "bucket_start", "service", "stage", "user_id"],
                name="rollupuser_bucket",
            )
        ]
