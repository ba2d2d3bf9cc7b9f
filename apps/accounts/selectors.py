"""Reads for accounts: what a personal token grants, cached for a few seconds so that a read API call does
not pay a token lookup and a role query each time (see `services.personal_tokens_forget` for invalidation)."""

from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractUser

from apps.common.instances import partial_instance
from apps.common.shortcut_cache import cache_put, cached

from .models import PersonalToken


def token_cache_seconds() -> int:
    """Seconds a token's grant may be served from the cache (settings.PERSONAL_TOKEN_CACHE_SECONDS): the
    longest a revocation, a role change or a deactivation can go unnoticed by a process that did not make
    the change (the one that did forgets it at once, and with a shared Redis cache every process does)."""
    return settings.PERSONAL_TOKEN_CACHE_SECONDS


def token_cache_key(key_hash: str) -> str:
    return f"personal-token:v1:{key_hash}"


@dataclass(frozen=True)
class TokenGrant:
    """A personal token, its owner and the owner's roles, as the read APIs need them."""

    token_id: int
    prefix: str
    revoked: bool
    user_id: int
    username: str
    is_superuser: bool
    roles: frozenset[str]
    last_used_at: datetime | None

    def user(self) -> AbstractUser:
        """Return the owner as a user with only the fields the APIs read loaded (others load on access) and
        their roles attached, so that the role check asks the database nothing."""
        user_model = get_user_model()
        user = partial_instance(
            user_model,
            {
                user_model._meta.pk.attname: self.user_id,
                user_model.USERNAME_FIELD: self.username,
                "is_active": True,
                "is_superuser": self.is_superuser,
            },
        )
        user._role_names = self.roles
        return user

    def token(self) -> PersonalToken:
        return partial_instance(
            PersonalToken,
            {
                "id": self.token_id,
                "user_id": self.user_id,
                "prefix": self.prefix,
                "last_used_at": self.last_used_at,
            },
        )

    def as_cached(self) -> tuple:
        # Plain values only: nothing to unpickle into a class that a newer deployment has changed.
        return (
            self.token_id,
            self.prefix,
            self.user_id,
            self.username,
            self.is_superuser,
            sorted(self.roles),
            self.last_used_at,
        )

    @classmethod
    def from_cached(cls, value: tuple) -> "TokenGrant":
        token_id, prefix, user_id, username, is_superuser, roles, last_used_at = value
        return cls(token_id, prefix, False, user_id, username, is_superuser, frozenset(roles), last_used_at)


def personal_token_grant(*, key_hash: str) -> TokenGrant | None:
    """Return what the token with this hash grants (None when unknown or its owner is inactive).

    Only live tokens are cached, for `PERSONAL_TOKEN_CACHE_SECONDS`; a revoked one is read from the
    database every time, so that it is refused with its own message.
    """
    key = token_cache_key(key_hash)
    values = cached(key)
    if values is not None:
        return TokenGrant.from_cached(values)
    token = PersonalToken.objects.select_related("user").filter(key_hash=key_hash).first()
    if token is None or not token.user.is_active:
        return None
    user = token.user
    grant = TokenGrant(
        token_id=token.pk,
        prefix=token.prefix,
        revoked=token.revoked_at is not None,
        user_id=user.pk,
        username=user.get_username(),
        is_superuser=user.is_superuser,
        roles=frozenset(user.groups.values_list("name", flat=True)),
        last_used_at=token.last_used_at,
    )
    if not grant.revoked:
        cache_put(key, grant.as_cached(), timeout=token_cache_seconds())
    return grant
