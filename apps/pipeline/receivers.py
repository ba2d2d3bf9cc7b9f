"""The pipeline takes new events from ingestion through the `events_stored` signal."""

import logging
import time

from django.conf import settings

from . import tasks

logger = logging.getLogger(__name__)
_last_sweep = 0.0


def on_events_stored(sender, *, event_ids: list[int], client_times=None, **kwargs) -> None:
    """Hand new events to the pipeline; in-process (embedded) mode also sweeps now and then."""
    try:
        tasks.announce_events(event_ids, client_times=client_times)
    finally:
        if settings.CELERY_TASK_ALWAYS_EAGER:
            sweep_if_due()


def sweep_if_due() -> None:
    """Run the sweeper when its interval has passed: the embedded mode has no beat to schedule it, and an
    event whose in-process aggregation failed (SQLite busy, say) must still be picked up again."""
    global _last_sweep
    now = time.monotonic()
    if now - _last_sweep < settings.PIPELINE_SWEEP_INTERVAL_SECONDS:
        return
    _last_sweep = now
    try:
        tasks.sweep()
    except Exception:  # the events stay where they are; the next sweep tries again
        logger.warning(
            "in-process sweep failed; it runs again in %ss",
            settings.PIPELINE_SWEEP_INTERVAL_SECONDS,
            exc_info=True,
        )
