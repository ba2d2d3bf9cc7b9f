"""`rebuild_rollups` and `reindex` redo a range from the raw events, in chunks, without double counting."""

import io
import json
import uuid

import pytest
from django.core.management import CommandError, call_command
from django.db.models import Sum

from apps.ingest.models import RawEvent
from apps.metrics.models import RollupCount
from apps.pipeline import services
from apps.traces.search.elasticsearch import alias_name, es_client

pytestmark = pytest.mark.django_db(transaction=True)


def send(api_client, key, events):
    response = api_client.generic(
        "POST",
        "/api/v1/batch",
        json.dumps(events),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {key}",
    )
    assert response.status_code == 202


def day_total() -> int:
    return RollupCount.objects.filter(granularity="day").aggregate(s=Sum("count"))["s"] or 0


@pytest.fixture
def processed_events(api_client, make_key, clean_search_index, settings):
    settings.PIPELINE_CHUNK_SIZE = 7  # several chunks for a small range
    _, key = make_key()
    send(
        api_client,
        key,
        [
            {
                "event": "search_made",
                "event_id": str(uuid.uuid4()),
                "user_id": f"u{i % 4}",
                "timestamp": f"2026-11-{10 + i % 3}T12:00:00Z",
            }
            for i in range(30)
        ],
    )
    ids = list(RawEvent.objects.values_list("pk", flat=True))
    services.aggregate_chunk(event_ids=ids)
    services.index_chunk(event_ids=ids)
    return ids


def test_rebuild_rollups_recomputes_whole_days_once(processed_events, start_worker):
    start_worker()
    RollupCount.objects.filter(granularity="day").update(count=999)  # rollups gone wrong
    out = io.StringIO()

    call_command(
        "rebuild_rollups", "--from", "2026-11-10", "--to", "2026-11-11T06:00", "--timeout", "60", stdout=out
    )

    text = out.getvalue()
    assert "20 events in 3 chunks" in text  # 10th and 11th, widened to whole days
    assert "rollups rebuilt" in text
    counts = dict(RollupCount.objects.filter(granularity="day").values_list("bucket_start__day", "count"))
    assert counts == {10: 10, 11: 10, 12: 999}


def test_reindex_overwrites_documents_without_duplicates(processed_events, start_worker):
    start_worker()
    out = io.StringIO()

    call_command("reindex", "--from", "2026-11-01", "--to", "2026-12-01", "--timeout", "60", stdout=out)

    assert "re-indexed" in out.getvalue()
    es_client().indices.refresh(index=alias_name())
    assert es_client().count(index=alias_name())["count"] == 30
    assert not RawEvent.objects.awaiting_index().exists()


def test_a_backwards_range_is_refused():
    with pytest.raises(CommandError, match="--to must be after --from"):
        call_command("rebuild_rollups", "--from", "2026-11-12", "--to", "2026-11-10")
