"""`manage.py rebuild_rollups --from --to`: recompute the rollups of whole days from the raw events."""

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from apps.pipeline import backfill
from apps.pipeline.tasks import aggregate_events

from ._range import add_range_arguments, parse_range


class Command(BaseCommand):
    help = "Delete and rebuild the rollups of a range (widened to whole UTC days) in parallel chunks."

    def add_arguments(self, parser: CommandParser) -> None:
        add_range_arguments(parser)
        parser.add_argument(
            "--past-retention",
            action="store_true",
            help="also rebuild days before raw retention (only once the archive's events are replayed)",
        )

    def handle(
        self, *args, start: str, end: str, no_wait: bool, timeout: float, past_retention: bool, **options
    ) -> None:
        try:
            begin, finish = backfill.whole_days(*parse_range(start, end))
        except OverflowError:
            raise CommandError("--to is past the last day that can be rebuilt") from None
        # Events received from now on are live traffic: counted by the pipeline, not waited for here.
        as_of = timezone.now()
        kept_from = backfill.raw_retention_start(now=as_of)
        if begin < kept_from and not past_retention:
            raise CommandError(
                f"raw events before {kept_from:%Y-%m-%d} are deleted by retention (RETENTION_RAW_DAYS="
                f"{settings.RETENTION_RAW_DAYS}), so the rollups of those days cannot be rebuilt: use --from"
                f" {kept_from:%Y-%m-%d} or later (--past-retention once the archive's days are replayed)"
            )
        backfill.rollups_reset(start=begin, end=finish)
        total = backfill.pending_in_range(start=begin, end=finish, received_by=as_of, work="aggregation")
        chunks = backfill.enqueue_range(
            start=begin, end=finish, received_by=as_of, work="aggregation", task=aggregate_events
        )
        self.stdout.write(
            f"rebuilding {begin:%Y-%m-%d} to {finish:%Y-%m-%d}: {total} events in {chunks} chunks"
        )
        if no_wait:
            return
        finished = backfill.watch(
            total=total,
            timeout=timeout,
            remaining=lambda: backfill.pending_in_range(
                start=begin, end=finish, received_by=as_of, work="aggregation"
            ),
            report=lambda done, all_: self.stdout.write(f"  aggregated {done}/{all_}"),
        )
        if not finished:
            raise CommandError("timed out; the queued chunks keep running on the workers")
        self.stdout.write(self.style.SUCCESS("rollups rebuilt"))
