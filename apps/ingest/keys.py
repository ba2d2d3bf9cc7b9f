"""Service keys looked up by their secret, with the one set of rules: unknown, revoked, expired.

A usable key is kept in this process for INGEST_KEY_CACHE_SECONDS, so that a batch does not pay a query
for its key: a key changed through the ORM (revoked, rotated, its service renamed) is forgotten at once in
the process that changed it (`key_changed`); one changed elsewhere is seen when its entry ends. Expiry at
the end of a rotation's grace is checked on every request against the cached `expires_at`.
"""

import time
from datetime import datetime

from django.conf import settings

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


# secret hash -> (time.monotonic() when read from the database, the key with its service). Only usable
# keys: a flood of unknown secrets cannot grow it, and a dead key is always told from the database.
_usable_keys: dict[str, tuple[float, ApiKey]] = {}


def api_key_for_secret(*, raw: str, now: datetime) -> ApiKey:
    """Return the usable key (with its service) whose secret is `raw`; raise UnknownKey or UnusableKey.

    No query while the key is cached; else one when the key is good, and a second only to tell a dead key
    from an unknown one.
    """
    digest = secret_hash(raw)
    cached = _usable_keys.get(digest)
    if cached is not None and time.monotonic() - cached[0] < settings.INGEST_KEY_CACHE_SECONDS:
        api_key = cached[1]
        if api_key.is_usable(now):
            return api_key
        raise UnusableKey(api_key)
    read_at = time.monotonic()
    api_key = ApiKey.objects.usable(now).select_related("service").filter(key_hash=digest).first()
    if api_key is not None:
        _usable_keys[digest] = (read_at, api_key)
        return api_key
    _usable_keys.pop(digest, None)
    dead = ApiKey.objects.filter(key_hash=digest).first()
    if dead is None:
        raise UnknownKey
    raise UnusableKey(dead)


def keys_forget(*, key_hashes: list[str] | None = None) -> None:
    """Forget cached keys: those with these hashes, or every one (None)."""
    if key_hashes is None:
        _usable_keys.clear()
        return
    for digest in key_hashes:
        _usable_keys.pop(digest, None)


def key_changed(sender, instance: ApiKey, **kwargs) -> None:
    """Receiver of ApiKey saves and deletes: this process stops using its cached copy at once."""
    keys_forget(key_hashes=[instance.key_hash])


def service_changed(sender, instance, **kwargs) -> None:
    """Receiver of Service saves and deletes: cached keys carry their service's name (rare: forget all)."""
    keys_forget()
