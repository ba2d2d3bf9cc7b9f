"""Shared argument handling for the range commands (rebuild_rollups, reindex)."""

from datetime import UTC, datetime

from django.core.management.base import CommandError, CommandParser


def add_range_arguments(parser: CommandParser) -> None:
    parser.add_argument("--from", dest="start", required=True, help="start, ISO-8601 (UTC if no zone)")
    parser.add_argument("--to", dest="end", required=True, help="end (exclusive), ISO-8601")
    parser.add_argument("--no-wait", action="store_true", help="queue the chunks and return")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds to watch progress")


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
