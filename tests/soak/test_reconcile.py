"""The soak's reconciliation sees what it must: lost, duplicated and double-counted events, counts in the
wrong bucket, and events claimed twice (real stores)."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from django.db import transaction
from django.db.models import F

from apps.ingest.models import AggregationBacklog, RawEvent
from apps.ingest.services import backlog_add
from apps.metrics.models import RollupCount
from apps.pipeline.services import aggregate_chunk, process_chunk
from apps.traces.search.elasticsearch import alias_name, document_id, es_client
from soak.reconcile import claim_ledger_install, claim_ledger_remove, reconcile
from soak.traffic import LedgerSnapshot

pytestmark = pytest.mark.django_db(transaction=True)

T0 = datetime(2026, 11, 20, 9, 15, 30, tzinfo=UTC)


def ten_events() -> list[dict]:
    return [
        {
            "event_id": str(uuid.uuid4()),
            "service": "svc-a",
            "event": "search_made",
            "timestamp": T0.isoformat(),
            "properties": {"duration_ms": i},
        }
        for i in range(10)
    ]


def keys_of(events: list[dict]) -> frozenset:
    return frozenset(("svc-a", e["event_id"]) for e in events)


@pytest.fixture
def stored(search_on_elasticsearch, store_events):
    events = ten_events()
    process_chunk(event_ids=store_events(events))  # counted and indexed, as the pipeline does
    return keys_of(events)


@pytest.fixture
def claim_ledger(db):
    """The soak's claim ledger on the test database, dropped afterwards (flushes keep unmanaged tables)."""
    claim_ledger_install()
    yield
    claim_ledger_remove()


def ledger_of(keys: frozenset) -> LedgerSnapshot:
    return LedgerSnapshot(sent=keys, acknowledged=keys, rejected=frozenset(), failed=frozenset(), resent=0)


def run_reconcile(keys: frozenset):
    es = es_client()
    es.indices.refresh(index=alias_name())
    return reconcile(ledger=ledger_of(keys), es=es, alias=alias_name())


def test_stores_that_agree_reconcile_to_zero(stored):
    figures = run_reconcile(stored)

    assert figures.agree
    assert (figures.accepted, figures.stored, figures.aggregated, figures.indexed) == (10, 10, 10, 10)
    assert (figures.lost, figures.duplicated, figures.double_counted, figures.undercounted) == (0, 0, 0, 0)


def test_a_count_added_twice_is_double_counted(stored):
    RollupCount.objects.filter(granularity="hour").update(count=F("count") + 1)

    figures = run_reconcile(stored)

    assert (figures.double_counted, figures.lost, figures.agree) == (1, 0, False)


def test_events_missing_from_a_store_are_lost(stored):
    gone_from_db, gone_from_index, unaggregated = sorted(stored)[:3]
    RawEvent.objects.filter(event_id=gone_from_db[1]).delete()
    event = RawEvent.objects.get(event_id=gone_from_index[1])
    es_client().delete(index=alias_name() + "-2026.11.20", id=document_id(event), refresh=True)
    backlog_add(AggregationBacklog, RawEvent.objects.filter(event_id=unaggregated[1]))

    figures = run_reconcile(stored)

    assert (figures.lost_from_database, figures.lost_from_index, figures.lost_from_rollups) == (1, 1, 1)
    assert figures.lost == 3
    assert figures.orphan_documents == 1  # the deleted row's document is still searchable
    assert figures.pending_aggregation == 1 and not figures.agree


def test_one_event_twice_in_a_store_is_duplicated(stored):
    es = es_client()
    event = RawEvent.objects.order_by("pk").first()
    original = es.get(index=alias_name() + "-2026.11.20", id=document_id(event))
    es.index(
        index=alias_name() + "-2026.11.21", id=original["_id"], document=original["_source"], refresh=True
    )

    figures = run_reconcile(stored)

    assert (figures.duplicated, figures.lost, figures.agree) == (1, 0, False)


def test_a_count_in_the_wrong_bucket_is_double_and_under_counted(stored):
    # The totals still agree: only a bucket-by-bucket comparison sees one event counted a minute late.
    minute = RollupCount.objects.get(granularity="minute")
    RollupCount.objects.filter(pk=minute.pk).update(count=F("count") - 1)
    RollupCount.objects.create(
        granularity="minute",
        event=minute.event,
        service=minute.service,
        stage=minute.stage,
        bucket_start=minute.bucket_start + timedelta(minutes=1),
        count=1,
    )

    figures = run_reconcile(stored)

    assert (figures.double_counted, figures.undercounted, figures.agree) == (1, 1, False)


def test_the_claim_ledger_records_each_committed_claim_once(
    claim_ledger, search_on_elasticsearch, store_events
):
    events = ten_events()
    ids = store_events(events)
    # A worker killed mid-chunk: its claim rolls back, and its ledger records with it.
    with pytest.raises(RuntimeError), transaction.atomic():
        assert aggregate_chunk(event_ids=ids).done == 10
        raise RuntimeError("the worker died before its commit")
    process_chunk(event_ids=ids)
    process_chunk(event_ids=ids)  # the chunk redelivered: nothing left to claim

    figures = run_reconcile(keys_of(events))

    assert (figures.claims, figures.claimed_twice, figures.aggregated_unclaimed) == (10, 0, 0)
    assert sum(figures.claims_by_worker.values()) == 10
    assert figures.agree


def test_a_chunk_claimed_again_is_claimed_twice(claim_ledger, search_on_elasticsearch, store_events):
    events = ten_events()
    ids = store_events(events)
    aggregate_chunk(event_ids=ids)
    # A claim that ignored the first one's: three events of the chunk are aggregated a second time.
    backlog_add(AggregationBacklog, RawEvent.objects.filter(pk__in=ids[:3]))
    aggregate_chunk(event_ids=ids)

    figures = run_reconcile(keys_of(events))

    assert (figures.claims, figures.claimed_twice) == (13, 3)
    assert figures.double_counted == 3 * 3  # each of the three in its minute, hour and day bucket
    assert len(figures.examples["claimed_twice"]) == 3 and not figures.agree


def test_aggregated_events_the_ledger_never_saw_are_reported(stored, claim_ledger):
    figures = run_reconcile(stored)

    assert (figures.claims, figures.aggregated_unclaimed, figures.agree) == (0, 10, False)
