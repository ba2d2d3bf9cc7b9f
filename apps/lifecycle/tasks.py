"""Daily retention and, before it, the archive of what retention is about to drop (run by Celery beat); the
units of a replay, taken by any worker."""

from dataclasses import asdict
from datetime import date

from celery import shared_task
from django.utils import timezone

from . import archive
from .archive_layout import Archive
from .replay import row_group_replay
from .services import RetentionRunning, partitions_maintain, retention_apply


@shared_task(name="lifecycle.apply_retention", time_limit=3600)
def apply_retention() -> dict:
    """Delete what is past its retention age (days the archive should hold but does not are kept); nothing
    while another run is in progress."""
    try:
        report = retention_apply()
    except RetentionRunning as exc:
        return {"skipped": str(exc)}
    return {k: str(v) if not isinstance(v, (int, list)) else v for k, v in asdict(report).items()}


@shared_task(name="lifecycle.ensure_partitions", time_limit=600)
def ensure_partitions() -> dict:
    """Make the raw-event partitions of the days ahead (PostgreSQL)."""
    return partitions_maintain(now=timezone.now())


@shared_task(name="lifecycle.archive_due", time_limit=300)
def archive_due() -> dict:
    """Queue one task per day that passes retention soon and is not archived as it is (ARCHIVE_DIR set)."""
    days = archive.days_due(now=timezone.now())
    for day in days:
        archive_day.delay(day.isoformat())
    return {"queued": [day.isoformat() for day in days]}


@shared_task(name="lifecycle.archive_day", acks_late=True, time_limit=3600, soft_time_limit=3540)
def archive_day(day: str) -> dict:
    """Archive one UTC day (YYYY-MM-DD) to ARCHIVE_DIR. Idempotent: a rerun rewrites the same files. Not
    retried: a day that failed stays due, and the next beat run tries it again."""
    target = archive.configured_archive()
    if target is None:
        return {"archive": "off"}
    result = archive.day_archive(archive=target, day=date.fromisoformat(day))
    return {**asdict(result), "day": day}


@shared_task(
    name="lifecycle.replay_row_group",
    acks_late=True,
    ignore_result=False,  # the replay command adds up the units' outcomes
    time_limit=900,
    soft_time_limit=840,
)
def replay_row_group(archive_url: str, path: str, row_group: int) -> dict:
    """Replay one row group of an archived file. Idempotent: events already stored are left as they are."""
    return row_group_replay(archive=Archive.at(archive_url), path=path, row_group=row_group).as_json()
