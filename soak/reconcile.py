"""The reconciliation: the clients' acknowledgments against PostgreSQL, the rollups and Elasticsearch.

Every figure is read from the real stores. An event is "accepted" when its client got a 2xx for it; it is
"lost" if, once the stores have converged, it is missing from PostgreSQL, was never aggregated, or has
no search document `<service>:<event_id>`. An event stored under a key no client sent is an extra copy (the
portal made an id of its own for something sent once): it would be counted and indexed consistently with
its row, so only the clients' ledger shows it. Every rollup bucket (service, stage, event, granularity, bucket
start) must count exactly the stored events that fall in it: more is double counting, fewer is a lost count
(bucket by bucket, so an event counted twice in one bucket and missed in another shows as both); the same
for the count and sum of `duration_ms` and the unique users in every hour and day bucket.

Chunks are claimed with `FOR UPDATE SKIP LOCKED` by two or more workers at once, and a chunk may run twice
(a killed worker's message redelivered, the sweeper re-queueing it). The claim ledger proves that no claim
was ever committed twice for one event: a trigger the soak installs on the raw table records, in the
claiming transaction itself, every row marked aggregated and the worker (`application_name`) that did it. A
claim rolled back (a worker killed mid-chunk, PostgreSQL restarted) rolls its record back with it, so the
ledger holds exactly the committed claims: one per aggregated event, none twice.
"""

from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from django.db import connection, connections
from django.db.models import Count
from django.db.models.fields.json import KT
from elasticsearch import Elasticsearch, helpers

from .traffic import EventKey, LedgerSnapshot

# The one numeric property every soak event carries: its rollup count and sum are checked too.
NUMERIC_PROP = "duration_ms"

CLAIM_LEDGER = "soak_claim"
_CLAIM_TRIGGER = "soak_claim_ledger"


def claim_ledger_install() -> None:
    """Record every committed claim of a raw event (the soak's instrument; never part of the portal).

    The pipeline claims exactly the rows its claim statement locked by deleting them from the aggregation
    backlog, in the claim's transaction, so a row trigger on that delete sees each claim once, and only if
    it commits. Dead-lettering deletes a row too, but never one a claim took (it deletes what is still
    there): an event in the ledger twice was taken out of the backlog twice.
    """
    from apps.ingest.models import AggregationBacklog

    backlog = connection.ops.quote_name(AggregationBacklog._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"CREATE TABLE IF NOT EXISTS {CLAIM_LEDGER} (raw_id bigint NOT NULL, worker text NOT NULL,"
            " claimed_at timestamptz NOT NULL DEFAULT clock_timestamp())"
        )
        cursor.execute(
            f"CREATE OR REPLACE FUNCTION {CLAIM_LEDGER}_record() RETURNS trigger LANGUAGE plpgsql AS $$"
            f" BEGIN INSERT INTO {CLAIM_LEDGER} (raw_id, worker)"
            " VALUES (OLD.raw_id, current_setting('application_name')); RETURN NULL; END $$"
        )
        cursor.execute(f"DROP TRIGGER IF EXISTS {_CLAIM_TRIGGER} ON {backlog}")
        cursor.execute(
            f"CREATE TRIGGER {_CLAIM_TRIGGER} AFTER DELETE ON {backlog} FOR EACH ROW"
            f" EXECUTE FUNCTION {CLAIM_LEDGER}_record()"
        )


def claim_ledger_remove() -> None:
    """Drop the claim ledger and its trigger (tests: the test database outlives a test)."""
    from apps.ingest.models import AggregationBacklog

    backlog = connection.ops.quote_name(AggregationBacklog._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TRIGGER IF EXISTS {_CLAIM_TRIGGER} ON {backlog}")
        cursor.execute(f"DROP FUNCTION IF EXISTS {CLAIM_LEDGER}_record()")
        cursor.execute(f"DROP TABLE IF EXISTS {CLAIM_LEDGER}")


@dataclass
class Reconciliation:
    sent: int = 0
    resent: int = 0
    accepted: int = 0
    refused: int = 0
    unacknowledged: int = 0
    stored: int = 0
    stored_unacknowledged: int = 0  # stored although the client never heard back: allowed
    # Stored under a (service, event_id) no client ever sent: an extra copy of an event under an id of the
    # portal's making (its rows, counts and document all agree with each other, so nothing else sees it).
    stored_unsent: int = 0
    aggregated: int = 0
    indexed: int = 0
    lost: int = 0
    lost_from_database: int = 0
    lost_from_rollups: int = 0
    lost_from_index: int = 0
    duplicated: int = 0
    double_counted: int = 0
    undercounted: int = 0
    numeric_mismatches: int = 0
    # Hour and day buckets (and, on PostgreSQL, days of every event) whose unique users differ from the
    # stored events'.
    users_mismatches: int = 0
    names_mismatches: int = 0  # event names the name catalogue misses, or lists without a counted event
    pending_aggregation: int = 0
    pending_index: int = 0
    dead_lettered: int = 0
    index_rejected: int = 0
    orphan_documents: int = 0  # search documents with no stored event
    # The claim ledger (None when it is not installed): committed claims, events claimed more than once,
    # aggregated events it never saw claimed (the ledger would be blind), and claims per worker.
    claims: int | None = None
    claimed_twice: int = 0
    aggregated_unclaimed: int = 0
    claims_by_worker: dict[str, int] = field(default_factory=dict)
    examples: dict[str, list[str]] = field(default_factory=dict)

    @property
    def agree(self) -> bool:
        """Return whether every store holds exactly the stored events, once each, counted once."""
        return not any(
            (
                self.lost,
                self.duplicated,
                self.double_counted,
                self.undercounted,
                self.numeric_mismatches,
                self.users_mismatches,
                self.names_mismatches,
                self.pending_aggregation,
                self.pending_index,
                self.dead_lettered,
                self.index_rejected,
                self.orphan_documents,
                self.claimed_twice,
                self.aggregated_unclaimed,
            )
        )

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def quick_pending(*, es: Elasticsearch, alias: str) -> tuple[int, int, int, int]:
    """Return (stored, pending aggregation, pending index, documents): cheap counts to poll before a full
    reconciliation."""
    from apps.ingest.models import AWAITING_AGGREGATION, AWAITING_INDEX, RawEvent

    connections.close_all()  # PostgreSQL may have restarted since the last query
    counts = RawEvent.objects.aggregate(
        stored=Count("id"),
        unaggregated=Count("id", filter=AWAITING_AGGREGATION),
        unindexed=Count("id", filter=AWAITING_INDEX),
    )
    es.indices.refresh(index=alias)
    documents = es.count(index=alias)["count"]
    return counts["stored"], counts["unaggregated"], counts["unindexed"], documents


def reconcile(*, ledger: LedgerSnapshot, es: Elasticsearch, alias: str) -> Reconciliation:
    """Compare the ledger with every store and return the figures."""
    from apps.ingest.models import RawEvent
    from apps.metrics.models import DETAIL_GRANULARITIES, GRANULARITIES, EventName, RollupCount, RollupNumeric

    connections.close_all()
    result = Reconciliation(
        sent=len(ledger.sent),
        resent=ledger.resent,
        accepted=len(ledger.acknowledged),
        refused=len(ledger.rejected),
        # Given up by a client, or still pending when the clients' flush timed out: either way not accepted.
        unacknowledged=len(ledger.sent - ledger.acknowledged - ledger.rejected),
    )

    rows = list(
        RawEvent.objects.with_awaiting_index()
        .with_aggregated()
        .annotate(duration=KT(f"properties__{NUMERIC_PROP}"))
        .values_list(
            "service",
            "event_id",
            "event",
            "aggregated",
            "awaiting_index",
            "dead_lettered_at",
            "index_rejected_at",
            "duration",
            "id",
            "stage",
            "timestamp",
            "user_id",
        )
    )
    keys = Counter((service, str(event_id)) for service, event_id, *_ in rows)
    stored = set(keys)
    result.stored = len(stored)
    result.stored_unacknowledged = len(stored - ledger.acknowledged)
    unsent = stored - ledger.sent
    result.stored_unsent = len(unsent)
    duplicated = sum(n - 1 for n in keys.values() if n > 1)
    aggregated = {(s, str(e)) for s, e, _, agg, *_ in rows if agg}
    result.aggregated = len(aggregated)
    result.pending_aggregation = sum(1 for r in rows if not r[3] and r[5] is None)
    result.pending_index = sum(1 for r in rows if r[4])
    result.dead_lettered = sum(1 for r in rows if r[5] is not None)
    result.index_rejected = sum(1 for r in rows if r[6] is not None)

    # Search documents: `_id` is `<service>:<event_id>`; one event in two daily indices is a duplicate.
    es.indices.refresh(index=alias)
    doc_ids = Counter(
        hit["_id"]
        for hit in helpers.scan(es, index=alias, query={"query": {"match_all": {}}}, _source=False, size=5000)
    )
    duplicated += sum(n - 1 for n in doc_ids.values() if n > 1)
    indexed = {_key_of(doc_id) for doc_id in doc_ids}
    result.indexed = len(indexed & stored)
    result.orphan_documents = len(indexed - stored)
    result.duplicated = duplicated

    missing_db = ledger.acknowledged - stored
    missing_rollups = (ledger.acknowledged & stored) - aggregated
    missing_index = (ledger.acknowledged & stored) - indexed
    result.lost_from_database = len(missing_db)
    result.lost_from_rollups = len(missing_rollups)
    result.lost_from_index = len(missing_index)
    result.lost = len(missing_db | missing_rollups | missing_index)
    result.examples = {
        name: sorted(f"{s}:{e}" for s, e in keys_)[:5]
        for name, keys_ in (
            ("lost_from_database", missing_db),
            ("lost_from_rollups", missing_rollups),
            ("lost_from_index", missing_index),
            ("stored_unsent", unsent),
        )
        if keys_
    }

    # Rollups: every bucket of every granularity must count each stored event of its (service, stage,
    # event) exactly once, and its duration_ms count and sum too (hour and day buckets: numbers are not
    # rolled up by minute). Bucket by bucket: a count or a number in the wrong bucket leaves totals right.
    expected_buckets: Counter[tuple[str, str, str, str, datetime]] = Counter()
    expected_numbers: dict[tuple[str, str, str, str, datetime], list[float]] = {}
    expected_users: dict[tuple[str, str, str, str, datetime], set[str]] = {}
    for service, _eid, event, *_, duration, _id, stage, timestamp, user_id in rows:
        for granularity in GRANULARITIES:
            key = (service, stage, event, granularity, _bucket_start(timestamp, granularity))
            expected_buckets[key] += 1
            if granularity not in DETAIL_GRANULARITIES:
                continue
            if duration is not None:
                n_sum = expected_numbers.setdefault(key, [0, 0.0])
                n_sum[0] += 1
                n_sum[1] += float(duration)
            if user_id:
                expected_users.setdefault(key, set()).add(user_id)
    buckets = Counter(
        {
            (r["service"], r["stage"], r["event"], r["granularity"], r["bucket_start"]): r["count"]
            for r in RollupCount.objects.values(
                "service", "stage", "event", "granularity", "bucket_start", "count"
            )
        }
    )
    for key in expected_buckets.keys() | buckets.keys():
        want, got = expected_buckets.get(key, 0), buckets.get(key, 0)
        result.double_counted += max(0, got - want)
        result.undercounted += max(0, want - got)
    numbers = {
        (r["service"], r["stage"], r["event"], r["granularity"], r["bucket_start"]): (r["count"], r["sum"])
        for r in RollupNumeric.objects.filter(prop=NUMERIC_PROP).values(
            "service", "stage", "event", "granularity", "bucket_start", "count", "sum"
        )
    }
    for key in expected_numbers.keys() | numbers.keys():
        want_n, want_sum = expected_numbers.get(key, (0, 0.0))
        got_n, got_sum = numbers.get(key, (0, 0.0))
        if got_n != want_n or abs(got_sum - want_sum) > 1e-6 * max(1.0, abs(want_sum)):
            result.numeric_mismatches += 1
    result.users_mismatches = _users_mismatches(expected_users)
    counted_names = {event for _s, _e, event, agg, *_ in rows if agg}
    result.names_mismatches = len(counted_names ^ set(EventName.objects.values_list("name", flat=True)))

    if CLAIM_LEDGER in connection.introspection.table_names():
        _reconcile_claims(result, {r[8]: (r[0], str(r[1])) for r in rows if r[3] is not None})
    return result


def _users_mismatches(expected: dict[tuple[str, str, str, str, datetime], set[str]]) -> int:
    """Return how many hour and day buckets' unique users differ from the stored events' (PostgreSQL: the
    HyperLogLog sketches, exact while a bucket holds up to ~1,280 users, as the soak's do, and the days'
    sketches of every event, keyed ("", "", "", "all-day", day); SQLite: the RollupUser rows)."""
    from apps.metrics.models import DaySketch, RollupSketch, RollupUser

    if connection.vendor == "postgresql":
        table = connection.ops.quote_name(RollupSketch._meta.db_table)
        days = connection.ops.quote_name(DaySketch._meta.db_table)
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT service, stage, event, granularity, bucket_start,"
                f" round(hll_cardinality(users))::bigint FROM {table}"
                " UNION ALL SELECT '', '', '', 'all-day', bucket_start,"
                f" round(hll_cardinality(users))::bigint FROM {days}"
            )
            got = {tuple(row[:5]): row[5] for row in cursor.fetchall()}
        expected = dict(expected)
        for (_service, _stage, _event, granularity, start), users in list(expected.items()):
            if granularity == "day":
                expected.setdefault(("", "", "", "all-day", start), set()).update(users)
    else:
        got = Counter(
            (r["service"], r["stage"], r["event"], r["granularity"], r["bucket_start"])
            for r in RollupUser.objects.values("service", "stage", "event", "granularity", "bucket_start")
        )
    return sum(
        1
        for key in expected.keys() | {k for k, n in got.items() if n}
        if got.get(key, 0) != len(expected.get(key, ()))
    )


def _reconcile_claims(result: Reconciliation, aggregated: dict[int, tuple[str, str]]) -> None:
    """Fill in the claim ledger's figures: every aggregated event claimed once, by which workers."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT raw_id, count(*) FROM {CLAIM_LEDGER} GROUP BY raw_id")
        claims = dict(cursor.fetchall())
        cursor.execute(f"SELECT worker, count(*) FROM {CLAIM_LEDGER} GROUP BY worker ORDER BY worker")
        result.claims_by_worker = dict(cursor.fetchall())
    result.claims = sum(claims.values())
    twice = [pk for pk, n in claims.items() if n > 1]
    unclaimed = [pk for pk in aggregated if pk not in claims]
    result.claimed_twice = len(twice)
    result.aggregated_unclaimed = len(unclaimed)
    for name, ids in (("claimed_twice", twice), ("aggregated_unclaimed", unclaimed)):
        if ids:
            result.examples[name] = sorted(
                ":".join(aggregated[pk]) if pk in aggregated else f"row {pk}" for pk in ids
            )[:5]


def _bucket_start(timestamp: datetime, granularity: str) -> datetime:
    """Return the start of the UTC bucket of `granularity` holding `timestamp` (as the rollups do)."""
    timestamp = timestamp.astimezone(UTC)
    if granularity == "minute":
        return timestamp.replace(second=0, microsecond=0)
    if granularity == "hour":
        return timestamp.replace(minute=0, second=0, microsecond=0)
    return timestamp.replace(hour=0, minute=0, second=0, microsecond=0)


def _key_of(doc_id: str) -> EventKey:
    service, _, event_id = doc_id.partition(":")
    return service, event_id
