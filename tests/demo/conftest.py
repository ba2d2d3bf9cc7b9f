"""A small seeded demo (seed, days and users fixed, ending at a fixed time), for the demo's tests."""

from datetime import UTC, datetime

import pytest
from django.core.management import call_command

END = datetime(2026, 11, 30, 15, 30, tzinfo=UTC)
SMALL = {"seed": 7, "days": 7, "users": 200, "end": END.isoformat()}


def seed(**options) -> str:
    """Run `seed_demo` with the small demo's options (overridable); return what it printed."""
    from io import StringIO

    out = StringIO()
    args = {**SMALL, **options}
    argv = [f"--{name.replace('_', '-')}={value}" for name, value in args.items() if value is not True]
    argv += [f"--{name.replace('_', '-')}" for name, value in args.items() if value is True]
    call_command("seed_demo", *argv, stdout=out)
    return out.getvalue()


def stored_fingerprint() -> list[tuple]:
    """Every stored event as a tuple of what the sender decided (not the received time or the row id)."""
    from apps.ingest.models import RawEvent

    return sorted(
        RawEvent.objects.values_list(
            "service",
            "event_id",
            "stage",
            "type",
            "event",
            "timestamp",
            "user_id",
            "correlation_id",
            "level",
            "message",
            "properties",
            "span_id",
            "parent_span_id",
            "duration_ms",
        ),
        key=lambda row: (row[0], str(row[1])),
    )


@pytest.fixture
def seeded(db) -> str:
    """The small demo, stored (its pipeline work not done yet: the tests' database runs no worker)."""
    return seed()


@pytest.fixture
def processed(seeded, settings):
    """The small demo, rolled up and indexed (by the configured trace backend) as a worker would."""
    from apps.ingest.models import RawEvent
    from apps.pipeline.services import chunks, process_chunk

    ids = list(RawEvent.objects.order_by("id").values_list("id", flat=True))
    for chunk in chunks(ids, settings.PIPELINE_CHUNK_SIZE):
        outcome = process_chunk(event_ids=chunk)
        assert outcome.aggregated.done == len(chunk), outcome
    return seeded
