"""`manage.py purge_user <user_id>`: remove one user from the database, the search index and the rollups."""

import getpass

from django.core.management.base import BaseCommand, CommandParser

from apps.accounts.models import AuditEntry
from apps.accounts.services import audit_write
from apps.lifecycle.services import user_purge


class Command(BaseCommand):
    help = (
        "Delete every raw event and search document that stores the user ID (top-level user_id, or the "
        "properties user_id, userId, userID, user, uid) and take them out of the rollups. Not covered: "
        "free text in messages (counted in the output) and the audit log."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("user_id")

    def handle(self, *args, user_id: str, **options) -> None:
        report = user_purge(user_id=user_id)
        audit_write(
            actor_name=f"command:{getpass.getuser()}",
            action=AuditEntry.USER_PURGED,
            target=user_id,
            via="command",
        )
        self.stdout.write(f"user {user_id!r}: {report.counts()}")
