"""Reads for the demo seed."""

from apps.ingest.models import RawEvent


def raw_events_exist() -> bool:
    """Return whether any event is stored (then `seed_demo --if-empty` leaves the database alone)."""
    return RawEvent.objects.exists()


def raw_events_count() -> int:
    """Return how many events are stored (what an interrupted seed compares against)."""
    return RawEvent.objects.count()
