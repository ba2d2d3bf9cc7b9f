"""`manage.py create_user <username> --role support|product|admin --password <password>`."""

from django.core.exceptions import ValidationError
from django.core.management.base import CommandError, CommandParser

from apps.accounts.roles import ROLES
from apps.accounts.services import UserExists, user_create
from apps.common.commands import OperatorCommand


class Command(OperatorCommand):
    help = "Create a portal user in one role (a Django group of that name)."
    examples = (
        "manage.py create_user alice --role admin --password '…'",
        "manage.py create_user bob --role support --password '…' --replace   # a new password and role",
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username", help="the sign-in name: letters, digits and @.+-_")
        parser.add_argument("--role", required=True, choices=ROLES, help="what the user may see and do")
        parser.add_argument(
            "--password", required=True, help="checked by the password validators (at least 8 characters)"
        )
        parser.add_argument(
            "--replace", action="store_true", help="reset the password and role of an existing user"
        )

    def handle(self, *args, username: str, role: str, password: str, replace: bool, **options) -> None:
        try:
            user = user_create(username=username, role=role, password=password, replace=replace)
        except UserExists as exc:
            raise CommandError(f"{exc}; pass --replace to reset its password and role") from exc
        except ValidationError as exc:
            field, messages = next(iter(exc.message_dict.items()))
            raise CommandError(f"{field} refused: " + " ".join(messages)) from exc
        self.stdout.write(f"user {user.username} has role {role}")
