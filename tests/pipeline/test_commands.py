"""`rebuild_rollups` and `reindex` redo a range from the raw events, in chunks, without double counting."""

import io
import json
import threading
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import CommandError, call_command
from django.db import transaction
from django.db.models import Sum
from django.utils import timezone

from apps.ingest.models import AggregationBacklog, IndexBacklog, RawEvent
from apps.ingest.services import events_ingest
from apps.lifecycle.services import retention_apply
from apps.metrics.models import RollupCount
from apps.pipeline import backfill, services
from apps.traces.search.elasticsearch import alias_name, es_client
from tests.conftest import a_session_waits_on_a_lock, in_thread, wait_for

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


def test_a_range_past_the_last_day_is_refused_with_a_message():
    with pytest.raises(CommandError, match="past the last day"):
        call_command("rebuild_rollups", "--from", "9999-12-30", "--to", "9999-12-31T12:00", "--no-wait")


DAY = datetime(2026, 11, 10, tzinfo=UTC)


def store(api_key, n: int, at: datetime) -> list[int]:
    items = [{"event": "a", "timestamp": at.isoformat()} for _ in range(n)]
    return events_ingest(items=items, api_key=api_key, received_at=timezone.now()).stored_ids


def minute_count(start: datetime) -> int:
    return RollupCount.objects.get(granularity="minute", bucket_start=start).count


def aggregate_backlog() -> None:
    """Count what waits, as the workers would."""
    services.aggregate_chunk(event_ids=list(AggregationBacklog.objects.values_list("raw_id", flat=True)))


def test_a_rebuild_while_a_worker_counts_events_of_its_range_counts_them_once(make_key):
    api_key, _ = make_key()
    services.aggregate_chunk(event_ids=store(api_key, 2, DAY.replace(hour=12)))
    late = store(api_key, 1, DAY.replace(hour=12, minute=5))  # a minute bucket of its own
    claimed, commit = threading.Event(), threading.Event()

    def claim():  # a worker's claim, committed once the rebuild has begun
        with transaction.atomic():
            services.aggregate_chunk(event_ids=late)
            claimed.set()
            assert commit.wait(timeout=30)

    worker = in_thread(claim)
    assert claimed.wait(timeout=30)
    rebuild = in_thread(lambda: backfill.rollups_reset(start=DAY, end=DAY + timedelta(days=1)))
    wait_for(a_session_waits_on_a_lock, timeout=30, message="the rebuild to wait for the claim")
    commit.set()
    worker.join(timeout=30)
    rebuild.join(timeout=30)
    aggregate_backlog()

    assert day_total() == 3
    assert minute_count(DAY.replace(hour=12, minute=5)) == 1  # its new bucket row was not left behind


def test_days_whose_raw_events_retention_deleted_keep_their_rollups(make_key, settings):
    api_key, _ = make_key()
    old = (timezone.now() - timedelta(days=settings.RETENTION_RAW_DAYS + 10)).replace(
        hour=12, minute=0, second=0, microsecond=0
    )
    services.aggregate_chunk(event_ids=store(api_key, 3, old))
    retention_apply()
    assert not RawEvent.objects.exists()
    span = ["--from", f"{old:%Y-%m-%d}", "--to", f"{old + timedelta(days=1):%Y-%m-%d}", "--no-wait"]

    with pytest.raises(CommandError, match="deleted by retention"):
        call_command("rebuild_rollups", *span, stdout=io.StringIO())

    assert day_total() == 3
    # Once the archive's events of those days are replayed, the operator says so.
    call_command("rebuild_rollups", *span, "--past-retention", stdout=io.StringIO())
    assert day_total() == 0  # nothing replayed here: nothing to count


class Progress(io.StringIO):
    """A command's output (both streams) whose first progress line runs `at_first`: the workers, then live
    traffic."""

    def __init__(self, word: str, at_first) -> None:
        super().__init__()
        self.word, self.at_first = word, at_first

    def write(self, text: str) -> int:
        written = super().write(text)
        if self.word in text and self.at_first is not None:
            at_first, self.at_first = self.at_first, None
            at_first()
        return written


def test_rebuild_progress_counts_what_it_rebuilds_and_not_live_traffic(make_key):
    api_key, _ = make_key()
    services.aggregate_chunk(event_ids=store(api_key, 10, DAY.replace(hour=12)))
    store(api_key, 1, DAY.replace(hour=13))  # its message lost: waiting for the sweeper

    def workers_then_live_traffic():
        aggregate_backlog()
        store(api_key, 1, DAY.replace(hour=14))  # received after the rebuild began

    out = Progress("aggregated", workers_then_live_traffic)
    call_command(
        "rebuild_rollups",
        "--from",
        "2026-11-10",
        "--to",
        "2026-11-11",
        "--timeout",
        "10",
        stdout=out,
        stderr=out,
    )

    lines = out.getvalue().splitlines()
    assert lines[0] == "rebuilding 2026-11-10 to 2026-11-11: 11 events in 1 chunks"
    assert lines[1] == "  aggregated 0/11"
    assert lines[-2:] == ["  aggregated 11/11", "rollups rebuilt"]
    assert RollupCount.objects.get(granularity="day").count == 11
    assert RawEvent.objects.awaiting_aggregation().count() == 1  # live: the pipeline's, not the rebuild's


def test_reindex_finishes_while_live_traffic_arrives_in_its_range(processed_events, make_key):
    api_key, _ = make_key(service="gateway")

    def workers_then_live_traffic():
        services.index_chunk(event_ids=list(IndexBacklog.objects.values_list("raw_id", flat=True)))
        store(api_key, 1, DAY.replace(hour=14))

    out = Progress("indexed", workers_then_live_traffic)
    call_command(  # progress on stderr, the result on stdout
        "reindex", "--from", "2026-11-10", "--to", "2026-11-11", "--timeout", "10", stdout=out, stderr=out
    )

    lines = out.getvalue().splitlines()
    assert lines[1:] == ["  indexed 0/10", "  indexed 10/10", "re-indexed"]


def test_dead_letters_are_aggregated_again_once_their_cause_is_fixed(
    make_key, start_worker, monkeypatch, settings
):
    # Failure injection: an aggregation bug that two events trigger, in this process only. The worker
    # started below runs the fixed code.
    settings.PIPELINE_MAX_ATTEMPTS = 1
    events = [
        {"event": f"e{i}", "event_id": str(uuid.uuid4()), "timestamp": "2026-11-10T12:00:00Z"}
        for i in range(4)
    ]
    ids = events_ingest(items=events, api_key=make_key()[0], received_at=timezone.now()).stored_ids
    real = services.events_claim_into_rollups
    poison = set(ids[:2])

    def claim_failing_on_two(event_ids, bounds):
        if poison & set(event_ids):
            raise ValueError("a bug")
        return real(event_ids, bounds)

    monkeypatch.setattr("apps.pipeline.services.events_claim_into_rollups", claim_failing_on_two)
    services.aggregate_chunk(event_ids=ids)
    monkeypatch.undo()
    assert (RawEvent.objects.dead_lettered().count(), day_total()) == (2, 2)
    start_worker()
    out = io.StringIO()

    call_command(
        "retry_dead_letters", "--from", "2026-11-10", "--to", "2026-11-11", "--timeout", "60", stdout=out
    )

    assert "retrying 2 dead-lettered events" in out.getvalue()
    assert "dead letters aggregated" in out.getvalue()
    assert (RawEvent.objects.dead_lettered().count(), day_total()) == (0, 4)
    assert set(RawEvent.objects.values_list("aggregate_attempts", flat=True)) == {0}
