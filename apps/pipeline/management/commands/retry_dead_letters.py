"""`manage.py retry_dead_letters --from --to`: aggregate again the events given up on in a range."""

from django.conf import settings
from django.core.management.base import CommandError, CommandParser
from django.utils import timezone

from apps.common.commands import require_task_broker
from apps.pipeline import backfill
from apps.pipeline.tasks import aggregate_events

from ._range import RangeCommand, add_range_arguments, parse_range


class Command(RangeCommand):
    help = (
        "Put a range's dead-lettered events (given up on after PIPELINE_MAX_ATTEMPTS failed aggregations) "
        "back in the pipeline, once the cause of their failures is fixed; say how many failed again "
        "(exit status 1 then)."
    )
    examples = ("manage.py retry_dead_letters --from 2026-11-01 --to 2026-11-08",)
    left_changed = (
        "the range's dead letters are back in the aggregation backlog, which the pipeline's sweeper works "
        "off (those that fail again are dead-lettered again)"
    )

    def add_arguments(self, parser: CommandParser) -> None:
        add_range_arguments(parser)

    def handle(self, *args, start: str, end: str, no_wait: bool, timeout: float, **options) -> None:
        begin, finish = parse_range(start, end)
        as_of = timezone.now()
        require_task_broker()
        self.given, self.changed = (begin.isoformat(), finish.isoformat()), True
        ids = backfill.dead_letters_requeue(start=begin, end=finish)
        backfill.enqueue_range(
            start=begin, end=finish, received_by=as_of, work="aggregation", task=aggregate_events
        )
        self.queued_to_workers = not settings.CELERY_TASK_ALWAYS_EAGER
        self.stdout.write(
            f"retrying {len(ids)} dead-lettered events of {begin.isoformat()} to {finish.isoformat()}"
        )
        if no_wait or not ids:
            return
        finished = self.watch(
            total=len(ids),
            timeout=timeout,
            remaining=lambda: backfill.requeued_outcome(ids)[0],
            doing="aggregated or failed again",
        )
        if not finished:
            raise CommandError("timed out; the queued chunks keep running on the workers")
        failed_again = backfill.requeued_outcome(ids)[1]
        if failed_again:
            raise CommandError(
                f"{failed_again} events failed again and are dead-lettered (see their last_error)"
            )
        self.stdout.write(self.style.SUCCESS("dead letters aggregated"))
