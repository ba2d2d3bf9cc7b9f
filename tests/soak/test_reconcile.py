"""The soak's reconciliation sees what it must: lost, duplicated and double-counted events (real stores)."""

import uuid
from datetime import UTC, datetime

import pytest
from django.db.models import F

from apps.ingest.models import RawEvent
from apps.metrics.models import RollupCount
from apps.pipeline.services import aggregate_chunk
from apps.traces.search import _backend_for
from apps.traces.search.elasticsearch import alias_name, document_id, es_client
from soak.reconcile import reconcile
from soak.traffic import LedgerSnapshot
from tests.conftest import TRACE_BACKENDS

pytestmark = pytest.mark.django_db(transaction=True)

T0 = datetime(2026, 11, 20, 9, 15, 30, tzinfo=UTC)


@pytest.fixture
def search_on_elasticsearch(settings, clean_search_index):
    """The soak reconciles against Elasticsearch: index there whatever the session's default is."""
    settings.TRACE_BACKEND = TRACE_BACKENDS["elasticsearch"]
    _backend_for.cache_clear()
    yield
    _backend_for.cache_clear()


@pytest.fixture
def stored(search_on_elasticsearch, store_events):
    events = [
        {
            "event_id": str(uuid.uuid4()),
            "service": "svc-a",
            "event": "search_made",
            "timestamp": T0.isoformat(),
            "properties": {"duration_ms": i},
        }
        for i in range(10)
    ]
    ids = store_events(events)
    aggregate_chunk(event_ids=ids)
    return frozenset(("svc-a", e["event_id"]) for e in events)


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
    RawEvent.objects.filter(event_id=unaggregated[1]).update(aggregated_at=None)

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
