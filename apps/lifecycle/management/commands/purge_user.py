"""`manage.py purge_user <user_id>`: remove one user from the database, the search index and the rollups."""

from django.core.management.base import BaseCommand, CommandParser

from apps.accounts.actors import Actor
from apps.lifecycle.services import user_purge


class Command(BaseCommand):
    help = (
        "Delete every raw event and search document that stores the user ID (top-level user_id, or the "
        "properties user_id, userId, userID, user, uid, enduser.id, user.id) and take them out of the "
        "rollups. Not covered: free text in messages (counted in the output) and the audit log."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("user_id")

    def handle(self, *args, user_id: str, **options) -> None:
        report = user_purge(user_id=user_id, actor=Actor.command())
        self.stdout.write(f"user {user_id!r}: {report.counts()}")
