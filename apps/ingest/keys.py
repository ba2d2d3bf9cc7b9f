"""Service keys looked up by their secret, with the one set of rules: unknown, revoked, expired."""

from datetime import datetime

from apps.common.secrets import secret_hash

from .models import ApiKey


class UnknownKey(Exception):
    """No key has this secret."""


class UnusableKey(Exception):
    """The key exists but is revoked or past the end of its rotation grace."""

    def __init__(self, api_key: ApiKey) -> None:
        super().__init__(api_key.prefix)
        self.api_key = api_key

    @property
    def reason(self) -> str:
        if self.api_key.is_revoked:
            return f"API key {self.api_key.prefix} was revoked."
        return f"API key {self.api_key.prefix} was rotated and has expired; use its successor."


def api_key_for_secret(*, raw: str, now: datetime) -> ApiKey:
    """Return the usable key (with its service) whose secret is `raw`; raise UnknownKey or UnusableKey.

    One query when the key is good; a second only to tell a dead key from an unknown one.
    """
    digest = secret_hash(raw)
    api_key = ApiKey.objects.usable(now).select_related("service").filter(key_hash=digest).first()
    if api_key is not None:
        return api_key
    dead = ApiKey.objects.filter(key_hash=digest).first()
    if dead is None:
        raise UnknownKey
    raise UnusableKey(dead)
