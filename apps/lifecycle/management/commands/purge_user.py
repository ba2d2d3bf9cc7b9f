"""`manage.py purge_user <user_id> [--dry-run]`: remove one user from the database, the search index and the
rollups."""

from django.core.management.base import CommandError, CommandParser

from apps.accounts.actors import Actor
from apps.common.commands import OperatorCommand
from apps.common.errors import BackendUnavailable
from apps.ingest.conform import user_id_spellings
from apps.lifecycle.services import user_purge, user_purge_preview


class Command(OperatorCommand):
    help = (
        "Delete every raw event and search document that stores the user ID (top-level user_id, or the "
        "properties user_id, userId, userID, user, uid, enduser.id, user.id) and take them out of the "
        "rollups; the audit log records the purge, and a replay of the archive leaves the user's events out. "
        "Not covered: free text in messages (counted in the output) and the audit log."
    )
    examples = (
        "manage.py purge_user 1234 --dry-run   # how many events would go; nothing deleted or recorded",
        "manage.py purge_user 1234",
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("user_id", help="the user ID exactly as the services send it")
        parser.add_argument(
            "--dry-run", action="store_true", help="count what would be deleted; delete and record nothing"
        )

    def handle(self, *args, user_id: str, dry_run: bool, **options) -> None:
        if not user_id.strip():
            raise CommandError("the user ID is empty: nothing purged (an unset shell variable?)")
        # Conform stores user IDs composed (NFC), but rows stored before it did keep the form their service
        # sent: every spelling of the ID is purged, and recorded, so that a replay leaves each out.
        for spelling in user_id_spellings(user_id):
            self.purge(spelling, dry_run=dry_run, alias=spelling != user_id)

    def purge(self, user_id: str, *, dry_run: bool, alias: bool) -> None:
        if dry_run:
            preview = user_purge_preview(user_id=user_id)
            if alias and not preview.raw_events_deleted:
                return
            self.stdout.write(
                f"dry run, user {user_id!r}: {preview.raw_events_deleted} raw events would be deleted, with "
                f"their search documents and rollup counts; {preview.messages_mentioning} messages of other "
                "events mention the user (free text, not covered); nothing was deleted or recorded"
            )
            return
        try:
            report = user_purge(user_id=user_id, actor=Actor.command())
        except BackendUnavailable as exc:
            raise CommandError(
                f"the search cluster is unreachable ({exc}): nothing was purged and the purge is not "
                "recorded; run the command again once the cluster is back"
            ) from exc
        spelling = " (another Unicode spelling)" if alias else ""
        self.stdout.write(f"user {user_id!r}{spelling}: {report.counts()}")
        if not alias and not report.raw_events_deleted and not report.search_documents_deleted:
            self.note(
                f"no stored event names user {user_id!r} (check the ID); the purge is recorded all the same, "
                "so a replay of the archive will not store their events"
            )
