"""`manage.py reindex --from --to`: send a range's events to the search index again, in parallel chunks."""

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from apps.pipeline import backfill
from apps.pipeline.tasks import index_events

from ._range import add_range_arguments, parse_range


class Command(BaseCommand):
    help = "Re-index the events of a range (documents are overwritten by id, so nothing is duplicated)."

    def add_arguments(self, parser: CommandParser) -> None:
        add_range_arguments(parser)

    def handle(self, *args, start: str, end: str, no_wait: bool, timeout: float, **options) -> None:
        begin, finish = parse_range(start, end)
        # Events received from now on are live traffic: indexed by the pipeline, not waited for here.
        as_of = timezone.now()
        backfill.index_reset(start=begin, end=finish)
        total = backfill.pending_in_range(start=begin, end=finish, received_by=as_of, work="index")
        chunks = backfill.enqueue_range(
            start=begin, end=finish, received_by=as_of, work="index", task=index_events
        )
        self.stdout.write(
            f"re-indexing {begin.isoformat()} to {finish.isoformat()}: {total} events in {chunks} chunks"
        )
        if no_wait:
            return
        finished = backfill.watch(
            total=total,
            timeout=timeout,
            remaining=lambda: backfill.pending_in_range(
                start=begin, end=finish, received_by=as_of, work="index"
            ),
            report=lambda done, all_: self.stdout.write(f"  indexed {done}/{all_}"),
        )
        if not finished:
            raise CommandError("timed out; the queued chunks keep running on the workers")
        self.stdout.write(self.style.SUCCESS("re-indexed"))
