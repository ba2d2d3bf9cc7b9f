"""`manage.py archive_events --before <date> --to <directory>`: raw events as Parquet, a file per UTC day and
service, in the Hive layout (`date=YYYY-MM-DD/service=<name>/part-0.parquet`)."""

import time
from datetime import UTC, timedelta

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from apps.lifecycle.archive import ArchiveError, day_archive, days_with_events

from ._archive_args import open_archive, parse_day


class Command(BaseCommand):
    help = (
        "Write the raw events of every UTC day before --before to Parquet under --to (a directory, or an "
        "fsspec URL such as s3://bucket/prefix when its package is installed). Running it again rewrites "
        "the same files; events the archive holds and the database no longer has are kept."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--before", required=True, help="first day not archived, YYYY-MM-DD (UTC)")
        parser.add_argument("--to", dest="target", required=True, help="archive directory or URL")
        parser.add_argument(
            "--from", dest="since", help="first day archived, YYYY-MM-DD (default: the oldest)"
        )

    def handle(self, *args, before: str, target: str, since: str | None, **options) -> None:
        end = parse_day(before, "--before")
        start = parse_day(since, "--from") if since else None
        # No event is stamped later than when it was received (conform clamps the future): a later day
        # holds nothing, and the last day there is has no next day to end it.
        latest = timezone.now().astimezone(UTC).date() + timedelta(days=1)
        if end > latest:
            raise CommandError(f"--before must be at most {latest} (tomorrow, UTC): got {end}")
        archive = open_archive(target)
        began = time.monotonic()
        days = rows = 0
        failed: list[str] = []
        for day in days_with_events(before=end, since=start):
            day_began = time.monotonic()
            try:
                result = day_archive(archive=archive, day=day)
            except ArchiveError as exc:
                failed.append(str(exc))
                self.stderr.write(f"{day}: not archived: {exc}")
                continue
            days, rows = days + 1, rows + result.from_database
            self.stdout.write(
                f"{day}: {result.files} files, {result.rows:,} rows ({result.from_database:,} from the "
                f"database, {result.kept_from_archive:,} kept from the archive) "
                f"in {time.monotonic() - day_began:.1f} s"
            )
        seconds = time.monotonic() - began
        self.stdout.write(
            f"archived {days} days, {rows:,} rows from the database to {archive.url} in {seconds:.1f} s"
            + (f" ({rows / seconds:,.0f} rows/s)" if seconds > 0 and rows else "")
        )
        if failed:
            raise CommandError(f"days not archived: {len(failed)} (named above); their files are untouched")
