"""`manage.py create_user <username> --role support|product|admin --password <password>` (or
`--password-stdin`)."""

import sys

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import CommandError, CommandParser
from django.db import transaction

from apps.accounts.actors import Actor
from apps.accounts.passwords import password_reset_done
from apps.accounts.roles import ROLES
from apps.accounts.services import UserExists, user_create
from apps.common.commands import OperatorCommand


class Command(OperatorCommand):
    help = "Create a portal user in one role (a Django group of that name)."
    examples = (
        "manage.py create_user alice --role admin --password '…'",
        "manage.py create_user bob --role support --password '…' --replace   # a new password and role",
        "pass show portal/carol | manage.py create_user carol --role product --password-stdin",
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username", help="the sign-in name: letters, digits and @.+-_")
        parser.add_argument("--role", required=True, choices=ROLES, help="what the user may see and do")
        password = parser.add_mutually_exclusive_group(required=True)
        password.add_argument(
            "--password", help="checked by the password validators (at least 8 characters); visible to ps"
        )
        password.add_argument(
            "--password-stdin",
            action="store_true",
            help="read the password from the first line of standard input (kept out of ps and shell history)",
        )
        parser.add_argument(
            "--replace",
            action="store_true",
            help="reset the password and role of an existing user (their sessions and personal tokens end)",
        )

    def handle(
        self,
        *args,
        username: str,
        role: str,
        password: str | None,
        password_stdin: bool,
        replace: bool,
        **options,
    ) -> None:
        if password_stdin:
            password = sys.stdin.readline().rstrip("\r\n")
            if not password:
                raise CommandError("--password-stdin: standard input held no password; nothing created")
        try:
            with transaction.atomic():
                replacing = replace and get_user_model()._default_manager.filter(username=username).exists()
                user = user_create(username=username, role=role, password=password, replace=replace)
                if replacing:  # a reset: whoever knew the old password is signed out, their tokens revoked
                    password_reset_done(actor=Actor.command(), user=user)
        except UserExists as exc:
            raise CommandError(f"{exc}; pass --replace to reset its password and role") from exc
        except ValidationError as exc:
            field, messages = next(iter(exc.message_dict.items()))
            raise CommandError(f"{field} refused: " + " ".join(messages)) from exc
        ended = "; their sessions and personal tokens were ended" if replacing else ""
        self.stdout.write(f"user {user.username} has role {role}{ended}")
