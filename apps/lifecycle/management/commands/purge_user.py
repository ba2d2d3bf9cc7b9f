"""`manage.py purge_user <user_id>`: remove one user from the database, the search index and the rollups."""

import getpass

from django.core.management.base import BaseCommand, CommandParser

from apps.accounts.models import AuditEntry
from apps.accounts.services import audit_write
from apps.lifecycle.services import user_purge


class Command(BaseCommand):
    help = "Delete a user's raw events and search documents, and take them out of the rollups."

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
        self.stdout.write(
            f"user {user_id!r}: {report.raw_events_deleted} raw events, "
            f"{report.search_documents_deleted} search documents, "
            f"{report.unique_user_rows_deleted} unique-user rollup rows deleted; "
            f"{report.rollup_buckets_corrected} count buckets corrected"
        )
