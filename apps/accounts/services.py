"""Writes for accounts: users and their roles."""

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractUser, Group
from django.contrib.auth.password_validation import validate_password
from django.db import transaction
from django.utils import timezone

from apps.common.secrets import PERSONAL_TOKEN_KIND, new_secret, secret_hash

from .models import AuditEntry, PersonalToken
from .roles import ADMIN, ROLES


class UserExists(Exception):
    """A user of that name exists and replacing it was not asked for."""


@transaction.atomic
def user_create(*, username: str, role: str, password: str, replace: bool = False) -> AbstractUser:
    """Create a user in exactly one role; with replace=True reset an existing user's password and role.

    Admins are also Django staff and superusers so that /admin/ works for them.
    """
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; choose one of {', '.join(ROLES)}")
    user_model = get_user_model()
    user = user_model.objects.filter(username=username).first()
    if user is not None and not replace:
        raise UserExists(f"user {username!r} already exists")
    if user is None:
        user = user_model(username=username)
    validate_password(password, user)
    user.set_password(password)
    user.is_staff = user.is_superuser = role == ADMIN
    user.save()
    group, _ = Group.objects.get_or_create(name=role)
    user.groups.set([group])
    return user


def audit_record(*, request, action: str, target: str, via: str) -> None:
    """Write one audit entry for the signed-in person making `request`."""
    user = request.user if getattr(request.user, "is_authenticated", False) else None
    audit_write(
        actor=user if hasattr(user, "pk") else None,
        actor_name=str(user) if user else "anonymous",
        action=action,
        target=target,
        via=via,
        ip=request.META.get("REMOTE_ADDR") or None,
    )


def audit_write(
    *, actor_name: str, action: str, target: str, via: str, actor=None, ip: str | None = None
) -> None:
    """Write one audit entry (for commands and tasks, which have no request)."""
    AuditEntry.objects.create(
        actor=actor,
        actor_name=actor_name[:150],
        action=action,
        # Whatever was asked for is recorded, even text the database cannot store as is (a NUL).
        target=target.replace("\x00", "\ufffd").encode("utf-8", "replace").decode("utf-8")[:300],
        via=via,
        ip=ip,
    )


def personal_token_create(*, user, label: str = "") -> tuple[PersonalToken, str]:
    """Create a read-API token for a person; return it and the secret, shown once."""
    prefix, raw = new_secret(PERSONAL_TOKEN_KIND)
    return PersonalToken.objects.create(user=user, prefix=prefix, key_hash=secret_hash(raw), label=label), raw


def personal_token_revoke(*, user, prefix: str) -> bool:
    """Revoke one of the person's own tokens; return whether one was revoked."""
    return bool(
        PersonalToken.objects.filter(user=user, prefix=prefix, revoked_at__isnull=True).update(
            revoked_at=timezone.now()
        )
    )
