"""Events as services sent them about 100 days ago, processed then, and an archive directory."""

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from apps.ingest.models import AggregationMark


@pytest.fixture
def archive_dir(tmp_path, settings):
    """An empty archive directory, configured as ARCHIVE_DIR (beat archives there, retention checks it)."""
    path = tmp_path / "archive"
    settings.ARCHIVE_DIR = str(path)
    return path


@pytest.fixture
def inline(settings):
    """The embedded mode's way: the replay command runs its units here, one after the other."""
    settings.CELERY_TASK_ALWAYS_EAGER = True


@pytest.fixture
def days():
    """Two whole UTC days, 100 and 99 days ago: past RETENTION_RAW_DAYS (90)."""
    first = (timezone.now() - timedelta(days=100)).date()
    return first, first + timedelta(days=1)


def at(day, hour: int, second: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, 0, second, tzinfo=UTC)


@pytest.fixture
def send_old(make_key, database_traces):
    """Return a function that stores a batch as received at `received_at` and, unless `pending`, processes it
    as the pipeline did then (aggregated and indexed a minute after it came)."""
    from apps.ingest.services import events_ingest
    from apps.pipeline.services import process_chunk

    api_key, _ = make_key(service="log-shipper", forwarder=True)

    def send(
        events: list[dict], *, received_at: datetime, pending: bool = False, sent_at: datetime | None = None
    ) -> list[int]:
        result = events_ingest(
            items=events, api_key=api_key, received_at=received_at, sent_at=sent_at, ingest_node="node-a"
        )
        assert not result.rejected, result.rejected
        if not pending:
            before = timezone.now()
            outcome = process_chunk(event_ids=result.stored_ids)
            assert outcome.aggregated.done == len(result.stored_ids)
            # Counted a minute after it came: its days' marks say so.
            then = received_at + timedelta(minutes=1)
            AggregationMark.objects.filter(marked_at__gte=before).update(marked_at=then)
        return result.stored_ids

    return send


@pytest.fixture
def old_events(send_old, days):
    """Five events over two days and three services (one named with characters unsafe in a path), one
    trail across them, conform notes (an alias, a level spelling), numbers and users for the charts."""
    first, second = days
    send_old(
        [
            {
                "service": "gateway",
                "event": "search_made",
                "user_id": "u1",
                "correlation_id": "trail-1",
                "timestamp": at(first, 10).isoformat(),
                "properties": {"ms": 120, "region": "eu", "nested": {"b": 1, "a": [1.5, "x"]}},
            },
            {
                "service": "forecast",
                "event": "search_made",
                "userId": "u2",
                "correlation_id": "trail-1",
                "timestamp": at(first, 10, 1).isoformat(),
                "properties": {"ms": 900, "region": "us"},
            },
            {
                "service": "odd service/β",
                "type": "log",
                "level": "WARN",
                "message": "slow answer: 900 ms",
                "correlation_id": "trail-1",
                "timestamp": at(first, 10, 2).isoformat(),
            },
        ],
        received_at=at(first, 10, 5),
    )
    send_old(
        [
            {
                "service": "gateway",
                "event": "search_made",
                "user_id": "u2",
                "correlation_id": "trail-2",
                "timestamp": at(second, 8).isoformat(),
                "properties": {"ms": 80, "region": "us"},
            },
            {
                "service": "gateway",
                "event": "search_made",
                "user_id": "u1",
                "timestamp": at(second, 9).isoformat(),
                "properties": {"ms": 60, "region": "eu"},
            },
        ],
        received_at=at(second, 9, 3),
    )
    return days
