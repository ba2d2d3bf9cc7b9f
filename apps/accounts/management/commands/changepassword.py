"""`manage.py changepassword <username>`: Django's command, which also ends the person's sessions and personal
tokens (audited), as every password someone else sets does."""

import getpass

from django.contrib.auth import get_user_model
from django.contrib.auth.management.commands import changepassword
from django.db import DEFAULT_DB_ALIAS

from apps.accounts.actors import Actor
from apps.accounts.passwords import password_reset_done
from apps.common.commands import OperatorCommand


class Command(OperatorCommand, changepassword.Command):
    help = (
        "Change a user's password (asked for twice, checked by the password validators); their sessions "
        "end and their personal tokens are revoked."
    )
    examples = (
        "manage.py changepassword alice   # asks for the new password twice",
        "manage.py changepassword   # the account named as the one who runs it",
    )

    def handle(self, *args, **options) -> str:
        # Django's asks for the password and saves it, then the person is signed out everywhere. No
        # transaction around both: it would stay open while someone types at the prompt.
        done = super().handle(*args, **options)
        user_model = get_user_model()
        username = options.get("username") or getpass.getuser()  # Django's default: whoever runs it
        person = user_model._default_manager.using(options.get("database") or DEFAULT_DB_ALIAS).get(
            **{user_model.USERNAME_FIELD: username}
        )
        password_reset_done(actor=Actor.command(), user=person)
        return f"{done}; their sessions and personal tokens were ended"
