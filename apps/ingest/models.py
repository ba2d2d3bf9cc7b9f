"""Services, their API keys, and the raw events they send (the source of truth for every figure)."""

import uuid
from collections.abc import Iterable
from datetime import datetime

from django.db import connection, models

from .conform import LEVELS, MAX_SKEW_CORRECTION, MAX_SPAN_ID_LENGTH, TYPES


class Service(models.Model):
    """A company service that sends events (crop-forecast, ship-tracker, ...)."""

    name = models.SlugField(max_length=100, unique=True)
    description = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class ApiKeyQuerySet(models.QuerySet):
    def usable(self, now: datetime) -> "ApiKeyQuerySet":
        """Keys that authenticate at `now`: not revoked, and not past the end of a rotation's grace."""
        return self.filter(revoked_at__isnull=True).filter(
            models.Q(expires_at__isnull=True) | models.Q(expires_at__gt=now)
        )


class ApiKey(models.Model):
    """A secret a service sends as `Authorization: Bearer <key>`. Only its SHA-256 is stored."""

    service = models.ForeignKey(Service, on_delete=models.PROTECT, related_name="api_keys")
    stage = models.CharField(max_length=50)
    # Shown on screens and in logs to tell keys apart; the secret is never stored.
    prefix = models.CharField(max_length=16, unique=True)
    key_hash = models.CharField(max_length=64, unique=True)
    can_forward = models.BooleanField(
        default=False, help_text="May send records on behalf of other services (a log shipper)."
    )
    label = models.CharField(max_length=100, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    # Set when the key is rotated: it keeps working until then, so senders can switch without a gap.
    expires_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    objects = ApiKeyQuerySet.as_manager()

    class Meta:
        ordering = ["service__name", "stage", "-created_at"]
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.service.name}/{self.stage})"

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None

    def is_expired(self, now: datetime) -> bool:
        return self.expires_at is not None and now >= self.expires_at

    def is_usable(self, now: datetime) -> bool:
        """The rule of ApiKeyQuerySet.usable, for a key already loaded."""
        return not self.is_revoked and not self.is_expired(now)


# What conform and enrichment store of an event, in one order: the insert, the archive and replay use it.
EVENT_COLUMNS = (
    "event_id",
    "service",
    "stage",
    "type",
    "event",
    "timestamp",
    "received_at",
    "user_id",
    "correlation_id",
    "level",
    "message",
    "properties",
    "notes",
    "ingest_node",
)
SPAN_COLUMNS = ("span_id", "parent_span_id", "duration_ms")
# The time as the sender stamped it, stored and archived with them (the partition key on PostgreSQL).
CLIENT_TIME_COLUMN = "client_timestamp"
# Statements that touch raw events by id also bound their client times, so that PostgreSQL reads only the
# partitions of those days (and the default partition, which holds the events sent without a time):
# `%(earliest)s` and `%(latest)s` are the least and greatest client time of the events (NULL when none has
# one), see `client_time_bounds`.
WITHIN_CLIENT_TIMES_SQL = (
    '("client_timestamp" BETWEEN %(earliest)s AND %(latest)s OR "client_timestamp" IS NULL)'
)

# The least and greatest client time of some events (None, None when none has one).
ClientTimeBounds = tuple[datetime | None, datetime | None]


def client_time_bounds(moments: Iterable[datetime | None]) -> ClientTimeBounds:
    known = [moment for moment in moments if moment is not None]
    return (min(known), max(known)) if known else (None, None)


# An event's `timestamp` is at most MAX_SKEW_CORRECTION after its client time: conform shifts the client
# time by the sender's skew (never more than that) and clamping only ever moves it earlier. So the events
# at or after `start` were stamped at or after `start - MAX_SKEW_CORRECTION`, or sent with no time: a
# bound on the partition key that lets PostgreSQL skip the partitions of older days.
CLIENT_TIME_SLACK = MAX_SKEW_CORRECTION
STAMPED_FROM_SQL = '("client_timestamp" >= %s OR "client_timestamp" IS NULL)'


def stamped_from(start: datetime) -> datetime:
    """Return the earliest client time of an event whose `timestamp` is at or after `start` (see above)."""
    if start - datetime.min.replace(tzinfo=start.tzinfo) < CLIENT_TIME_SLACK:  # a range from year 1
        return datetime.min.replace(tzinfo=start.tzinfo)
    return start - CLIENT_TIME_SLACK


def within_client_times(bounds: ClientTimeBounds) -> models.Q:
    """The ORM's WITHIN_CLIENT_TIMES_SQL."""
    if bounds[0] is None:
        return models.Q(client_timestamp__isnull=True)
    return models.Q(client_timestamp__range=bounds) | models.Q(client_timestamp__isnull=True)


class RawEventBacklog(models.Model):
    """A narrow row per raw event waiting for some work of the pipeline: its id and the two times its reads
    need, copied from the raw row when the row is written here."""

    # The raw event's id (no foreign key: the partitioned table has no primary key to point at).
    raw_id = models.BigIntegerField(primary_key=True)
    # The raw event's: reads of its row look in that day's partition only; the sweeper takes the oldest.
    client_timestamp = models.DateTimeField(null=True, blank=True)
    received_at = models.DateTimeField()

    class Meta:
        abstract = True
        indexes = [models.Index(fields=["received_at"], name="%(class)s_received")]

    @classmethod
    def insert_head(cls) -> str:
        """Return the head of an INSERT of backlog rows, to be followed by a SELECT of (id, client time,
        received time) of raw events."""
        return f"INSERT INTO {cls._meta.db_table} (raw_id, {CLIENT_TIME_COLUMN}, received_at)"


class IndexBacklog(RawEventBacklog):
    """A raw event that left aggregation (counted, or dead-lettered) before its search document was known to
    be stored: the pipeline's index state, kept apart from the raw rows.

    The pipeline indexes what it aggregates, at once, so an event still awaiting aggregation awaits its
    index too and has no row here. A row is written when aggregation marks an event whose search bulk has
    not yet come back (or that a later re-index asks for again) and deleted when a bulk stores it, the index
    refuses it for good, or the event is deleted. So a raw row is not updated again when its search bulk
    comes back: a second new version of a wide row, with an entry in each of its indexes, per event.
    """

    def __str__(self) -> str:
        return f"raw event {self.raw_id} awaiting its index"


class AggregationBacklog(RawEventBacklog):
    """A raw event still to be added to the rollups: the pipeline's aggregation state, kept apart from the raw
    rows as IndexBacklog keeps the index state.

    Ingestion writes a row here with each new raw event (in the INSERT's statement); the pipeline claims a
    chunk by deleting its rows (`FOR UPDATE SKIP LOCKED`) in the statement that adds the chunk to the
    rollups, and dead-lettering deletes one. So a claim never writes a new version of a wide raw row (an
    entry in each of its indexes per event): a raw row with no row here is counted, or dead-lettered.
    A row whose raw event is gone (purged, or dropped with its day) is deleted by the next claim of it.
    """

    def __str__(self) -> str:
        return f"raw event {self.raw_id} awaiting aggregation"


class AggregationMark(models.Model):
    """When some events of a UTC day (of event time) left aggregation: counted, or dead-lettered.

    The archive's check that it holds a day as it is reads the day's last mark (a raw row no longer says
    when it was counted). Each claim adds one mark per day of its chunk, so workers never wait on each
    other's marks; retention keeps only the last mark of each day.
    """

    day = models.DateField()
    marked_at = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["day", "marked_at"], name="aggregationmark_day")]

    def __str__(self) -> str:
        return f"events of {self.day} left aggregation at {self.marked_at}"


# Pipeline state, spelled out once: each query below and the pipeline's SQL use these.
AWAITING_AGGREGATION = models.Q(
    models.Exists(AggregationBacklog.objects.filter(raw_id=models.OuterRef("pk")))
)
# Counted in the rollups: left aggregation, and not by being given up on.
AGGREGATED = ~AWAITING_AGGREGATION & models.Q(dead_lettered_at__isnull=True)
IN_INDEX_BACKLOG = models.Q(models.Exists(IndexBacklog.objects.filter(raw_id=models.OuterRef("pk"))))
# Searchable soon: awaiting aggregation (indexed with it) unless refused by the index, or in the backlog.
AWAITING_INDEX = (AWAITING_AGGREGATION & models.Q(index_rejected_at__isnull=True)) | IN_INDEX_BACKLOG


class RawEventQuerySet(models.QuerySet):
    """Raw events by where they stand in the pipeline (the one owner of its null-combinations), and by
    time."""

    def since(self, start: datetime) -> "RawEventQuerySet":
        """Events whose `timestamp` is at or after `start`, bounded by client time too so that the
        partitioned table reads only the days that can hold them (see CLIENT_TIME_SLACK)."""
        return self.filter(
            models.Q(client_timestamp__gte=stamped_from(start)) | models.Q(client_timestamp__isnull=True),
            timestamp__gte=start,
        )

    def awaiting_aggregation(self) -> "RawEventQuerySet":
        """Not yet in the rollups, and not given up on (dead-lettered)."""
        return self.filter(AWAITING_AGGREGATION)

    def aggregated(self) -> "RawEventQuerySet":
        """Counted in the rollups: what rollups and raw-event series agree on."""
        return self.filter(AGGREGATED)

    def done_with_aggregation(self) -> "RawEventQuerySet":
        """Aggregated or dead-lettered: nothing more will be added to the rollups from these."""
        return self.filter(~AWAITING_AGGREGATION)

    def with_aggregated(self) -> "RawEventQuerySet":
        """Each event annotated `aggregated`: whether aggregated() holds it (one look-up in
        AggregationBacklog per row)."""
        return self.annotate(
            aggregated=models.ExpressionWrapper(AGGREGATED, output_field=models.BooleanField())
        )

    def dead_lettered(self) -> "RawEventQuerySet":
        return self.filter(dead_lettered_at__isnull=False)

    def awaiting_index(self) -> "RawEventQuerySet":
        """Not yet searchable, and not refused by the search index for good (see IndexBacklog)."""
        return self.filter(AWAITING_INDEX)

    def with_awaiting_index(self) -> "RawEventQuerySet":
        """Each event annotated `awaiting_index`: whether awaiting_index() holds it (one look-up in
        IndexBacklog per row)."""
        return self.annotate(
            awaiting_index=models.ExpressionWrapper(AWAITING_INDEX, output_field=models.BooleanField())
        )

    def index_rejected(self) -> "RawEventQuerySet":
        return self.filter(index_rejected_at__isnull=False)


class PostgresPartialIndex(models.Index):
    """An index with its `condition` on PostgreSQL only, whose planner proves that `user_id = 'u1'` implies
    `user_id <> ''` and so uses the smaller index; SQLite's planner does not, so there it stays whole."""

    def create_sql(self, model, schema_editor, using="", **kwargs):
        index = self
        if schema_editor.connection.vendor != "postgresql":
            index = self.clone()
            index.condition = None
        return super(PostgresPartialIndex, index).create_sql(model, schema_editor, using=using, **kwargs)


class RawEvent(models.Model):
    """One accepted event or log line, conformed to the canonical shape, as committed before the 202.

    Rollups and the search index are derived from these rows and can always be rebuilt from them.
    """

    TYPE_CHOICES = [(kind, kind) for kind in TYPES]
    LEVEL_CHOICES = [(level, level) for level in LEVELS]

    event_id = models.UUIDField(default=uuid.uuid4)
    service = models.CharField(max_length=100)
    stage = models.CharField(max_length=50)
    type = models.CharField(max_length=6, choices=TYPE_CHOICES, default="metric")
    event = models.CharField(max_length=200)
    timestamp = models.DateTimeField()
    # The event's time exactly as its sender stamped it (before skew correction and clamping); none when it
    # gave none. Equal on every re-send, so on PostgreSQL it is the partition key and a day partition's
    # unique (service, event_id) recognises a re-send (apps/ingest/partitions.py).
    client_timestamp = models.DateTimeField(null=True, blank=True)
    received_at = models.DateTimeField()
    user_id = models.CharField(max_length=200, blank=True, default="")
    correlation_id = models.CharField(max_length=200, blank=True, default="")
    level = models.CharField(max_length=8, choices=LEVEL_CHOICES, blank=True, default="")
    message = models.TextField(blank=True, default="")
    properties = models.JSONField(default=dict, blank=True)
    # What conform changed, in words, e.g. "userId renamed to user_id"; shown to support staff.
    notes = models.JSONField(default=list, blank=True)
    # The key that sent the event. Keys are revoked, never deleted (the admin cannot, see ApiKeyAdmin), so
    # this needs neither a database constraint nor an index: each would cost every insert of the hottest
    # table (a lookup of the key row per event, an index entry per event and per pipeline update) for a
    # deletion that does not happen.
    api_key = models.ForeignKey(
        ApiKey,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        db_index=False,
        null=True,
        blank=True,
        related_name="+",
    )
    ingest_node = models.CharField(max_length=100, blank=True, default="")
    # Spans only (OTLP traces): hex ids that nest a span under its parent, and how long it took. The
    # database defaults let an INSERT of metrics and logs leave them out.
    span_id = models.CharField(max_length=MAX_SPAN_ID_LENGTH, blank=True, default="", db_default="")
    parent_span_id = models.CharField(max_length=MAX_SPAN_ID_LENGTH, blank=True, default="", db_default="")
    duration_ms = models.FloatField(null=True, blank=True)

    # Pipeline state. Rollups and the search index are tracked apart, so one never blocks the other; the
    # events awaiting aggregation are in AggregationBacklog, those aggregated awaiting their index in
    # IndexBacklog.
    aggregate_attempts = models.PositiveSmallIntegerField(default=0, db_default=0)
    index_attempts = models.PositiveSmallIntegerField(default=0, db_default=0)
    # Why processing failed last; set on dead-lettering too. Shown in the admin.
    last_error = models.TextField(blank=True, default="", db_default="")
    dead_lettered_at = models.DateTimeField(null=True, blank=True)
    # The search index refused the document (a mapping error, say): recorded, never retried forever.
    index_rejected_at = models.DateTimeField(null=True, blank=True)

    objects = RawEventQuerySet.as_manager()

    class Meta:
        constraints = [
            # The idempotency key: a re-sent event is recognised and never stored twice. On PostgreSQL the
            # table is partitioned by day of client_timestamp (migration 0007): there each partition holds
            # this key as its own unique index (apps/ingest/partitions.py).
            models.UniqueConstraint(fields=["service", "event_id"], name="rawevent_unique_service_event_id"),
        ]
        indexes = [
            models.Index(fields=["correlation_id", "timestamp"], name="rawevent_cid_ts"),
            # A user's requests (trace search). Events without a user (often most) stay out of it: every
            # query names a user. Not so for correlation IDs: trace summaries look up to 200 at once, and
            # PostgreSQL proves a partial index's condition for at most 100 values (then it scans).
            PostgresPartialIndex(
                fields=["user_id", "timestamp"], name="rawevent_user_ts", condition=~models.Q(user_id="")
            ),
            # Funnels and retention (apps/metrics/eventrows.py): each step reads one event's rows in a time
            # range, user included, from this index alone (an index-only scan reads ~1/10 of the table).
            PostgresPartialIndex(
                fields=["event", "timestamp", "user_id"],
                name="rawevent_event_ts_user",
                condition=~models.Q(user_id=""),
            ),
            models.Index(fields=["timestamp"], name="rawevent_ts"),
            # The overview's ingest rate and dead-letter count.
            models.Index(fields=["received_at"], name="rawevent_received"),
            models.Index(
                fields=["dead_lettered_at"],
                name="rawevent_dead_lettered",
                condition=models.Q(dead_lettered_at__isnull=False),
            ),
            # The few the search index refused for good: the overview tells those awaiting aggregation
            # from the rest of the aggregation backlog without reading the whole table.
            models.Index(
                fields=["index_rejected_at"],
                name="rawevent_index_rejected",
                condition=models.Q(index_rejected_at__isnull=False),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.service}/{self.event} {self.event_id}"


def condition_sql(condition: models.Q) -> str:
    """Return a raw-event condition (a pipeline state) as SQL on `ingest_rawevent`, from the one definition
    RawEventQuerySet uses, for statements written in SQL (its only parameters are integers, such as an
    EXISTS's `SELECT 1`, written in as literals)."""
    query = RawEvent.objects.filter(condition).query
    sql, params = query.where.as_sql(query.get_compiler(connection=connection), connection)
    if "%%" in sql or not all(isinstance(param, int) and not isinstance(param, bool) for param in params):
        raise ValueError(f"a pipeline state's condition takes no parameters but integers: {sql} {params}")
    return sql % tuple(str(int(param)) for param in params)
