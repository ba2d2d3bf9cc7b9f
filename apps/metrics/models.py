"""Rollups: per-bucket aggregates derived from raw events, rebuilt from them at any time.

A bucket is (bucket start, granularity, event, service, stage). Unique users:
- on PostgreSQL, a HyperLogLog sketch per bucket (`RollupSketch`, the postgresql-hll extension): sketches
  of any buckets union without counting anyone twice, so a week, a breakdown's rest or a whole range is
  one union; the estimate is exact up to ~1,280 users and within about 1 % beyond;
- on SQLite (the embedded mode), exact: one row per user and bucket in `RollupUser`.

Two small tables answer what a scan of the rollups would, for the pages that ask often: `EventName` (every
event name the day counts hold, for the name pickers) and `DaySketch` (a day's users of every event as one
sketch, for the overview's daily active users; PostgreSQL only).
"""

from django.db import models

GRANULARITIES = ("minute", "hour", "day")
# Numbers and users are rolled up by hour and day only: a minute bucket holds few events (often one), so
# minute rows would cost nearly a row per event and table; minute charts of them read the raw events.
DETAIL_GRANULARITIES = ("hour", "day")

# HyperLogLog parameters, the same for every sketch (sketches with others cannot be unioned):
# 2^14 registers of 5 bits (standard error 1.04/sqrt(16384) = 0.8 %), the explicit (exact) representation
# while it is smaller than the full one, the sparse one in between.
HLL_LOG2M, HLL_REGWIDTH, HLL_EXPTHRESH, HLL_SPARSEON = 14, 5, -1, 1
HLL_PARAMS = f"{HLL_LOG2M}, {HLL_REGWIDTH}, {HLL_EXPTHRESH}, {HLL_SPARSEON}"


class HllField(models.Field):
    """A postgresql-hll sketch (`hll` type); a placeholder blob on other databases, never written there."""

    description = "HyperLogLog sketch"

    def db_type(self, connection) -> str:
        return f"hll({HLL_PARAMS})" if connection.vendor == "postgresql" else "blob"


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
    """One user seen in a bucket (SQLite: exact unique users; PostgreSQL keeps sketches instead)."""

    user_id = models.CharField(max_length=200)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["granularity", "event", "bucket_start", "service", "stage", "user_id"],
                name="rollupuser_bucket",
            )
        ]


class RollupSketch(_BucketFields):
    """The users of a bucket as a HyperLogLog sketch (PostgreSQL only)."""

    users = HllField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["granularity", "event", "bucket_start", "service", "stage"],
                name="rollupsketch_bucket",
            )
        ]


class DaySketch(models.Model):
    """The users of every event of a UTC day as one HyperLogLog sketch (PostgreSQL only): the union of the
    day's `RollupSketch` rows, kept so that daily active users read one row a day instead of unioning
    every (event, service, stage) sketch of the day. SQLite counts `RollupUser` rows instead."""

    bucket_start = models.DateTimeField(unique=True)  # midnight UTC
    users = HllField()

    def __str__(self) -> str:
        return f"users of {self.bucket_start:%Y-%m-%d}"


class EventName(models.Model):
    """An event name that a day `RollupCount` row with a count above zero holds (one row per name), so
    that the name pickers search a few thousand names rather than every day row of the rollups.

    The pipeline adds a chunk's names with its rollups; a rollup reset or a purge that leaves a name
    nothing counted takes it out (`event_names_prune`)."""

    name = models.CharField(max_length=200, primary_key=True)

    def __str__(self) -> str:
        return self.name
