"""Shared argument handling for the range commands (rebuild_rollups, reindex, retry_dead_letters)."""

from collections.abc import Callable
from datetime import UTC, datetime

from django.core.management.base import CommandError, CommandParser

from apps.common.commands import OperatorCommand, Progress, seconds
from apps.pipeline import backfill


def add_range_arguments(parser: CommandParser) -> None:
    parser.add_argument("--from", dest="start", required=True, help="start, ISO-8601 (UTC if no zone)")
    parser.add_argument("--to", dest="end", required=True, help="end (exclusive), ISO-8601")
    parser.add_argument("--no-wait", action="store_true", help="queue the chunks and return")
    parser.add_argument(
        "--timeout", type=seconds, default=3600, help="seconds to watch progress (default 3600)"
    )


def parse_range(start: str, end: str) -> tuple[datetime, datetime]:
    try:
        begin, finish = datetime.fromisoformat(start), datetime.fromisoformat(end)
    except ValueError as exc:
        raise CommandError(f"--from/--to must be ISO-8601 dates or times: {exc}") from exc
    begin = begin if begin.tzinfo else begin.replace(tzinfo=UTC)
    finish = finish if finish.tzinfo else finish.replace(tzinfo=UTC)
    if finish <= begin:
        raise CommandError("--to must be after --from")
    try:
        return begin.astimezone(UTC), finish.astimezone(UTC)
    except OverflowError:  # a zone that moves year 1 or 9999 out of range
        raise CommandError("--from/--to must fall within the years 1 to 9999 in UTC") from None


class RangeCommand(OperatorCommand):
    """A command that re-processes a range: what Ctrl-C left, and progress on standard error."""

    # Set by handle as the work goes: the range as given, whether the range's state was changed, whether
    # its chunks were queued to workers (not run here).
    given: tuple[str, str] = ("", "")
    changed = False
    queued_to_workers = False
    # What an interrupted run leaves changed, and why it is safe to run again.
    left_changed = ""

    def again(self) -> str:
        start, end = self.given
        return f"manage.py {self.name()} --from {start} --to {end}"

    def name(self) -> str:
        return self.__module__.rsplit(".", 1)[-1]

    def interrupted(self) -> str:
        if not self.changed:
            return "interrupted before anything was changed"
        if self.queued_to_workers:
            return (
                "interrupted while watching: the queued chunks keep running on the workers; run the same "
                f"command again to see it through: {self.again()}"
            )
        return f"interrupted: {self.left_changed}; run the same command again to finish: {self.again()}"

    def left_after_failure(self) -> str:
        if not self.changed:
            return "nothing was changed: run the command again once it is back"
        return f"{self.left_changed}; run the same command again to finish once it is back: {self.again()}"

    def watch(self, *, total: int, remaining: Callable[[], int], timeout: float, doing: str) -> bool:
        """Show progress on standard error until nothing remains or the timeout passes; return whether it
        finished."""
        progress = Progress(self.stderr, total=total)
        finished = backfill.watch(
            total=total,
            timeout=timeout,
            remaining=remaining,
            report=lambda done, all_: progress.update(done, f"{doing} {done}/{all_}"),
        )
        progress.finish()
        return finished
