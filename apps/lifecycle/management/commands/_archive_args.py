"""Shared argument handling for the archive commands (archive_events, replay_archive)."""

from datetime import date

from django.core.management.base import CommandError


def parse_day(value: str, option: str) -> date:
    """Return a UTC day from YYYY-MM-DD (the archive's unit is a whole day)."""
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise CommandError(f"{option} must be a date, YYYY-MM-DD (a UTC day): got {value!r}") from None
