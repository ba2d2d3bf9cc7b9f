"""`manage.py retry_dead_letters --from --to`: aggregate again the events given up on in a range."""

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from apps.pipeline import backfill
from apps.pipeline.tasks import aggregate_events

from ._range import add_range_arguments, parse_range


class Command(BaseCommand):
    help = (
        "Put a range's dead-lettered events (given up on after PIPELINE_MAX_ATTEMPTS failed aggregations) "
        "back in the pipeline, once the cause of their failures is fixed."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        add_range_arguments(parser)

    def handle(self, *args, start: str, end: str, no_wait: bool, timeout: float, **options) -> None:
        begin, finish = parse_range(start, end)
        as_of = timezone.now()
        ids = backfill.dead_letters_requeue(start=begin, end=finish)
        backfill.enqueue_range(
            start=begin, end=finish, received_by=as_of, work="aggregation", task=aggregate_events
        )
        self.stdout.write(
            f"retrying {len(ids)} dead-lettered events of {begin.isoformat()} to {finish.isoformat()}"
        )
        if no_wait or not ids:
            return
        finished = backfill.watch(
            total=len(ids),
            timeout=timeout,
            remaining=lambda: backfill.requeued_outcome(ids)[0],
            report=lambda done, all_: self.stdout.write(f"  aggregated or failed again {done}/{all_}"),
        )
        if not finished:
            raise CommandError("timed out; the queued chunks keep running on the workers")
        failed_again = backfill.requeued_outcome(ids)[1]
        if failed_again:
            raise CommandError(
                f"{failed_again} events failed again and are dead-lettered (see their last_error)"
            )
        self.stdout.write(self.style.SUCCESS("dead letters aggregated"))
