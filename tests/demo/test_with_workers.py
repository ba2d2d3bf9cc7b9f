"""`seed_demo` with a broker: the events are queued as any ingest queues them, and a real Celery worker rolls
them up and indexes them in Elasticsearch."""

import pytest
from django.db.models import Sum

from apps.ingest.models import RawEvent
from apps.metrics.models import RollupCount
from tests.conftest import wait_for
from tests.demo.conftest import seed

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def test_a_worker_processes_the_seeded_traffic(clean_search_index, celery_worker_process):
    from apps.traces.search.elasticsearch import alias_name, es_client

    output = seed(days=3, users=60)
    stored = RawEvent.objects.count()

    def all_processed() -> bool:
        return not RawEvent.objects.awaiting_aggregation().exists() and not (
            RawEvent.objects.awaiting_index().exists()
        )

    wait_for(all_processed, timeout=180, interval=0.5, message="the worker to process the demo")
    assert "queued for the Celery workers" in output and stored > 300
    counted = RollupCount.objects.filter(granularity="day").aggregate(total=Sum("count"))["total"]
    assert counted == stored
    client = es_client()
    client.indices.refresh(index=alias_name())
    assert client.count(index=alias_name())["count"] == stored
