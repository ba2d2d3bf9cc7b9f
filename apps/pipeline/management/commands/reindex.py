"""`manage.py reindex --from --to`: send a range's events to the search index again, in parallel chunks."""

from django.conf import settings
from django.core.management.base import CommandError, CommandParser
from django.utils import timezone

from apps.common.commands import require_task_broker
from apps.pipeline import backfill
from apps.pipeline.tasks import index_events

from ._range import RangeCommand, add_range_arguments, parse_range


class Command(RangeCommand):
    help = (
        "Re-index the events of a range (documents are overwritten by id, so nothing is duplicated, and "
        "running it again is harmless)."
    )
    examples = (
        "manage.py reindex --from 2026-11-01 --to 2026-11-02",
        "manage.py reindex --from 2026-11-01T10:00:00Z --to 2026-11-01T12:00:00Z --timeout 600",
    )
    left_changed = (
        "the range's events not indexed yet wait in the index backlog, which the pipeline's sweeper also "
        "works off (documents already there stay searchable)"
    )

    def add_arguments(self, parser: CommandParser) -> None:
        add_range_arguments(parser)

    def handle(self, *args, start: str, end: str, no_wait: bool, timeout: float, **options) -> None:
        begin, finish = parse_range(start, end)
        # Events received from now on are live traffic: indexed by the pipeline, not waited for here.
        as_of = timezone.now()
        require_task_broker()
        self.given, self.changed = (begin.isoformat(), finish.isoformat()), True
        backfill.index_reset(start=begin, end=finish)
        total = backfill.pending_in_range(start=begin, end=finish, received_by=as_of, work="index")
        chunks = backfill.enqueue_range(
            start=begin, end=finish, received_by=as_of, work="index", task=index_events
        )
        self.queued_to_workers = not settings.CELERY_TASK_ALWAYS_EAGER
        self.stdout.write(
            f"re-indexing {begin.isoformat()} to {finish.isoformat()}: {total} events in {chunks} chunks"
        )
        if no_wait:
            return
        finished = self.watch(
            total=total,
            timeout=timeout,
            remaining=lambda: backfill.pending_in_range(
                start=begin, end=finish, received_by=as_of, work="index"
            ),
            doing="indexed",
        )
        if not finished:
            raise CommandError("timed out; the queued chunks keep running on the workers")
        self.stdout.write(self.style.SUCCESS("re-indexed"))
