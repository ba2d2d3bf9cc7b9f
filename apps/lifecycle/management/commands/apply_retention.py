"""`manage.py apply_retention [--dry-run]`: delete raw events and search indices past their retention age."""

from django.conf import settings
from django.core.management.base import CommandError, CommandParser

from apps.common.commands import OperatorCommand
from apps.lifecycle.archive import ArchiveError
from apps.lifecycle.services import RetentionRunning, retention_apply, retention_preview


class Command(OperatorCommand):
    help = (
        "Delete raw events and daily search indices older than the retention settings (RETENTION_RAW_DAYS, "
        "RETENTION_INDEX_DAYS; rollups stay). Events not yet processed, and with ARCHIVE_DIR set days the "
        "archive does not hold, are kept. Beat runs it daily; one run at a time."
    )
    examples = (
        "manage.py apply_retention --dry-run   # what would be deleted now; nothing is",
        "manage.py apply_retention",
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--dry-run", action="store_true", help="count what would be deleted and kept; delete nothing"
        )

    def handle(self, *args, dry_run: bool, **options) -> None:
        try:
            report = retention_preview() if dry_run else retention_apply()
        except ArchiveError as exc:  # raised before anything is deleted
            raise CommandError(f"{exc}; nothing was deleted") from None
        except RetentionRunning as exc:
            raise CommandError(str(exc)) from None
        deleted = "would be deleted" if dry_run else "deleted"
        self.stdout.write(
            ("dry run, nothing deleted: " if dry_run else "")
            + f"raw events older than {report.raw_cutoff:%Y-%m-%d %H:%M} UTC "
            f"({settings.RETENTION_RAW_DAYS} days): {report.raw_events_deleted} {deleted}, "
            f"{report.raw_events_kept_unprocessed} kept because not yet processed"
        )
        if report.raw_partitions_dropped:
            self.stdout.write(f"days dropped whole (partitions): {', '.join(report.raw_partitions_dropped)}")
        if report.raw_days_not_archived:
            self.stdout.write(
                f"kept {report.raw_events_kept_unarchived} raw events of days the archive at "
                f"{settings.ARCHIVE_DIR} does not hold yet: {', '.join(report.raw_days_not_archived)}"
            )
        days = settings.RETENTION_INDEX_DAYS
        indices = f"search indices before {report.index_cutoff:%Y-%m-%d} ({days} days)"
        if dry_run:
            self.stdout.write(f"{indices}: would be dropped (not listed in a dry run)")
            return
        if report.indices_error:  # the raw events' part above was done all the same
            raise CommandError(f"{indices} could not be dropped: {report.indices_error}")
        self.stdout.write(f"{indices}: {', '.join(report.indices_dropped) or 'none'}")
