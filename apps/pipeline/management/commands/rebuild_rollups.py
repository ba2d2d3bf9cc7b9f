"""`manage.py rebuild_rollups --from --to`: recompute the rollups of whole days from the raw events."""

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.pipeline import backfill
from apps.pipeline.tasks import aggregate_events

from ._range import add_range_arguments, parse_range


class Command(BaseCommand):
    help = "Delete and rebuild the rollups of a range (widened to whole UTC days) in parallel chunks."

    def add_arguments(self, parser: CommandParser) -> None:
        add_range_arguments(parser)

    def handle(self, *args, start: str, end: str, no_wait: bool, timeout: float, **options) -> None:
        begin, finish = backfill.whole_days(*parse_range(start, end))
        total = backfill.rollups_reset(start=begin, end=finish)
        chunks = backfill.enqueue_range(start=begin, end=finish, work="aggregation", task=aggregate_events)
        self.stdout.write(
            f"rebuilding {begin:%Y-%m-%d} to {finish:%Y-%m-%d}: {total} events in {chunks} chunks"
        )
        if no_wait:
            return
        finished = backfill.watch(
            total=total,
            timeout=timeout,
            remaining=lambda: backfill.pending_in_range(start=begin, end=finish, work="aggregation"),
            report=lambda done, all_: self.stdout.write(f"  aggregated {done}/{all_}"),
        )
        if not finished:
            raise CommandError("timed out; the queued chunks keep running on the workers")
        self.stdout.write(self.style.SUCCESS("rollups rebuilt"))
