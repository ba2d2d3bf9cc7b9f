"""`manage.py rebuild_rollups --from --to`: recompute the rollups of whole days from the raw events."""

from django.conf import settings
from django.core.management.base import CommandError, CommandParser
from django.utils import timezone

from apps.common.commands import require_task_broker
from apps.pipeline import backfill
from apps.pipeline.tasks import aggregate_events

from ._range import RangeCommand, add_range_arguments, parse_range


class Command(RangeCommand):
    help = (
        "Delete and rebuild the rollups of a range (widened to whole UTC days) in parallel chunks. Running "
        "it again rebuilds the same days: nothing is counted twice."
    )
    examples = (
        "manage.py rebuild_rollups --from 2026-11-01 --to 2026-11-08",
        "manage.py rebuild_rollups --from 2026-11-01 --to 2026-11-08 --no-wait   # the workers do it",
    )
    left_changed = (
        "the range's rollups are reset and being rebuilt (short until it ends); the events not counted yet "
        "wait in the aggregation backlog, which the pipeline's sweeper also works off"
    )

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
        require_task_broker()
        self.given, self.changed = (f"{begin:%Y-%m-%d}", f"{finish:%Y-%m-%d}"), True
        backfill.rollups_reset(start=begin, end=finish)
        total = backfill.pending_in_range(start=begin, end=finish, received_by=as_of, work="aggregation")
        chunks = backfill.enqueue_range(
            start=begin, end=finish, received_by=as_of, work="aggregation", task=aggregate_events
        )
        self.queued_to_workers = not settings.CELERY_TASK_ALWAYS_EAGER
        self.stdout.write(
            f"rebuilding {begin:%Y-%m-%d} to {finish:%Y-%m-%d}: {total} events in {chunks} chunks"
        )
        if no_wait:
            return
        finished = self.watch(
            total=total,
            timeout=timeout,
            remaining=lambda: backfill.pending_in_range(
                start=begin, end=finish, received_by=as_of, work="aggregation"
            ),
            doing="aggregated",
        )
        if not finished:
            raise CommandError("timed out; the queued chunks keep running on the workers")
        self.stdout.write(self.style.SUCCESS("rollups rebuilt"))
