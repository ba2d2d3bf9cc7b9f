"""Passwords set after sign-up, audited through every door: by the person (their other sessions end), or for
them by an admin or an operator (every session and personal token of theirs ends).

The password itself goes nowhere but its hash: not into an audit entry, not into a log line.
"""

from django.contrib.auth.base_user import AbstractBaseUser
from django.db import transaction

from .actors import Actor, audit
from .models import AuditEntry
from .services import user_credentials_end, user_sessions_end


@transaction.atomic
def password_change_own(
    *, actor: Actor, user: AbstractBaseUser, password: str, session_key: str | None
) -> None:
    """Set the signed-in person's new password (checked by the caller's form) and end their sessions but
    `session_key`, the one they changed it from.

    Their personal tokens keep working, and the page says so beside a link to them: a routine change must
    not break their scripts, and a person who fears a leak revokes the tokens there, one by one.
    """
    user.set_password(password)
    user.save(update_fields=["password"])
    user_sessions_end(user_id=user.pk, keep_session_key=session_key)
    audit(actor=actor, action=AuditEntry.PASSWORD_CHANGED, target=user.get_username())


@transaction.atomic
def password_reset_done(*, actor: Actor, user: AbstractBaseUser, keep_session_key: str | None = None) -> None:
    """Someone else has set `user`'s password (or disabled it): end every session and personal token of the
    person, who is presumed compromised, and audit it.

    `keep_session_key`: the session an admin resetting their own password works in, which Django's admin
    has moved to the new password; their other sessions and their tokens end all the same.
    """
    user_credentials_end(user_id=user.pk, keep_session_key=keep_session_key)
    audit(actor=actor, action=AuditEntry.PASSWORD_RESET, target=user.get_username())
