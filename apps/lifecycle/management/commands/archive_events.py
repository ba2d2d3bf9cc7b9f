"""`manage.py archive_events --before <date> --to <directory>`: raw events as Parquet, a file per UTC day and
service, in the Hive layout (`date=YYYY-MM-DD/service=<name>/part-0.parquet`)."""

import time
from datetime import UTC, date, timedelta

from django.core.management.base import CommandError, CommandParser
from django.utils import timezone

from apps.common.commands import OperatorCommand, quiet_loggers
from apps.lifecycle.archive import ArchiveError, day_archive, days_with_events

from ._archive_args import parse_day, writable_archive


class Command(OperatorCommand):
    help = (
        "Write the raw events of every UTC day before --before to Parquet under --to (a directory, or an "
        "fsspec URL such as s3://bucket/prefix when its package is installed). Running it again rewrites "
        "the same files; events the archive holds and the database no longer has are kept. A day that "
        "cannot be written is named and the others go on (exit status 1)."
    )
    current: date | None = None  # the day being archived
    days = 0  # days archived so far
    target, before = "", date.min
    examples = (
        "manage.py archive_events --before 2026-09-01 --to /srv/skywatch-archive",
        "manage.py archive_events --from 2026-08-01 --before 2026-08-08 --to s3://bucket/skywatch   # s3fs",
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--before", required=True, help="first day not archived, YYYY-MM-DD (UTC)")
        parser.add_argument("--to", dest="target", required=True, help="archive directory or URL")
        parser.add_argument(
            "--from", dest="since", help="first day archived, YYYY-MM-DD (default: the oldest)"
        )

    def handle(self, *args, before: str, target: str, since: str | None, verbosity: int, **options) -> None:
        end = parse_day(before, "--before")
        start = parse_day(since, "--from") if since else None
        if start is not None and start >= end:
            raise CommandError(f"--from must be before --before: got --from {start} --before {end}")
        # No event is stamped later than when it was received (conform clamps the future): a later day
        # holds nothing, and the last day there is has no next day to end it.
        latest = timezone.now().astimezone(UTC).date() + timedelta(days=1)
        if end > latest:
            raise CommandError(f"--before must be at most {latest} (tomorrow, UTC): got {end}")
        archive = writable_archive(target)
        began = time.monotonic()
        self.target, self.before = target, end
        rows = 0
        failed: list[str] = []
        with quiet_loggers("apps.lifecycle.archive", verbosity=verbosity):  # each day is said below
            for day in days_with_events(before=end, since=start):
                self.current = day
                day_began = time.monotonic()
                try:
                    result = day_archive(archive=archive, day=day)
                except ArchiveError as exc:
                    failed.append(str(exc))
                    self.stderr.write(f"{day}: not archived: {exc}")
                    continue
                self.days, rows = self.days + 1, rows + result.from_database
                self.stdout.write(
                    f"{day}: {result.files} files, {result.rows:,} rows ({result.from_database:,} from the "
                    f"database, {result.kept_from_archive:,} kept from the archive) "
                    f"in {time.monotonic() - day_began:.1f} s"
                )
        self.current = None
        seconds = time.monotonic() - began
        self.stdout.write(
            f"archived {self.days} days, {rows:,} rows from the database to {archive.url} in {seconds:.1f} s"
            + (f" ({rows / seconds:,.0f} rows/s)" if seconds > 0 and rows else "")
        )
        if failed:
            raise CommandError(f"days not archived: {len(failed)} (named above); their files are untouched")

    def interrupted(self) -> str:
        current = self.current
        if current is None:
            return super().interrupted()
        days = f"{self.days} day" + ("" if self.days == 1 else "s")
        return (
            f"interrupted while archiving {current}: {days} archived before it; {current} keeps whole "
            "files (some rewritten) and its old marker, so retention keeps it. Go on with: manage.py "
            f"archive_events --from {current} --before {self.before} --to {self.target} (a rerun rewrites "
            "the same files)"
        )
