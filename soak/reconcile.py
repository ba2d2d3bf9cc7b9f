"""The reconciliation: the clients' acknowledgments against PostgreSQL, the rollups and Elasticsearch.

Every figure is read from the real stores. An event is "accepted" when its client got a 2xx for it; it is
"lost" if, once the stores have converged, it is missing from PostgreSQL, was never aggregated, or has
no search document `<service>:<event_id>`. Every rollup bucket (service, stage, event, granularity, bucket
start) must count exactly the stored events that fall in it: more is double counting, fewer is a lost count
(bucket by bucket, so an event counted twice in one bucket and missed in another shows as both).

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
from django.db.models import Count, Sum
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
    from apps.metrics.models import DETAIL_GRANULARITIES, GRANULARITIES, RollupCount, RollupNumeric

    connections.close_all()
    result = Reconciliation(
        sent=len(ledger.sent),
        resent=ledger.resent,
        accepted=len(ledger.acknowledged),
        refused=len(ledger.rejected),
        unacknowledged=len(ledger.failed),
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
        )
    )
    keys = Counter((service, str(event_id)) for service, event_id, *_ in rows)
    stored = set(keys)
    result.stored = len(stored)
    result.stored_unacknowledged = len(stored - ledger.acknowledged)
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
        )
        if keys_
    }

    # Rollups: every granularity must count each stored event of its (service, event) exactly once.
    expected: Counter[tuple[str, str]] = Counter()
    expected_sum: Counter[tuple[str, str]] = Counter()
    expected_n: Counter[tuple[str, str]] = Counter()
    expected_buckets: Counter[tuple[str, str, str, str, datetime]] = Counter()
    for service, _eid, event, *_, duration, _id, stage, timestamp in rows:
        expected[(service, event)] += 1
        for granularity in GRANULARITIES:
            expected_buckets[(service, stage, event, granularity, _bucket_start(timestamp, granularity))] += 1
        if duration is not None:
            expected_n[(service, event)] += 1
            expected_sum[(service, event)] += int(duration)
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
    counted = {
        (r["service"], r["event"], r["granularity"]): r["total"]
        for r in RollupCount.objects.values("service", "event", "granularity").annotate(total=Sum("count"))
    }
    numeric = {
        (r["service"], r["event"], r["granularity"]): (r["n"], r["total"])
        for r in RollupNumeric.objects.filter(prop=NUMERIC_PROP)
        .values("service", "event", "granularity")
        .annotate(n=Sum("count"), total=Sum("sum"))
    }
    granularities = {g for *_, g in counted} | {"minute", "hour", "day"}
    groups = set(expected) | {(s, e) for s, e, _ in counted}
    for service, event in groups:
        for granularity in granularities:
            if granularity not in DETAIL_GRANULARITIES:  # numbers are rolled up by hour and day only
                continue
            n, total = numeric.get((service, event, granularity), (0, 0.0))
            if n != expected_n.get((service, event), 0) or total != expected_sum.get((service, event), 0):
                result.numeric_mismatches += 1

    if CLAIM_LEDGER in connection.introspection.table_names():
        _reconcile_claims(result, {r[8]: (r[0], str(r[1])) for r in rows if r[3] is not None})
    return result


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
