"""Service keys looked up by their secret, with the one set of rules: unknown, revoked, expired.

A usable key is kept in the cache (as personal tokens are, `apps/accounts/selectors.py`) for
INGEST_KEY_CACHE_SECONDS, so that a batch does not pay a query for its key. A key or service changed through
the ORM (revoked, rotated, renamed, deleted) is forgotten at once (`key_changed`, `service_changed`): in
every process with a shared CACHE_URL, else in the process that changed it, the others seeing it when the
entry ends. Expiry at the end of a rotation's grace is checked on every request against the cached
`expires_at`.
"""

from datetime import datetime

from django.conf import settings

from apps.common.instances import partial_instance
from apps.common.secrets import secret_hash
from apps.common.shortcut_cache import cache_invalidate, cache_put, cached

from .models import ApiKey, Service


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


def key_cache_key(key_hash: str) -> str:
    return f"ingest-key:v1:{key_hash}"


# Only usable keys are cached (a flood of unknown secrets cannot grow the cache, and a dead key is always
# told from the database), as plain values: nothing to unpickle into a class a newer deployment changed.
_KEY_FIELDS = ("id", "prefix", "stage", "can_forward", "label", "revoked_at", "expires_at", "service_id")


def api_key_for_secret(*, raw: str, now: datetime) -> ApiKey:
    """Return the usable key (with its service) whose secret is `raw`; raise UnknownKey or UnusableKey.

    No query while the key is cached; else one when the key is good, and a second only to tell a dead key
    from an unknown one.
    """
    digest = secret_hash(raw)
    values = cached(key_cache_key(digest))
    if values is not None:
        api_key = _from_cached(digest, values)
        if api_key.is_usable(now):
            return api_key
        raise UnusableKey(api_key)
    api_key = ApiKey.objects.usable(now).select_related("service").filter(key_hash=digest).first()
    if api_key is not None:
        values = (*(getattr(api_key, name) for name in _KEY_FIELDS), api_key.service.name)
        cache_put(key_cache_key(digest), values, timeout=settings.INGEST_KEY_CACHE_SECONDS)
        return api_key
    dead = ApiKey.objects.filter(key_hash=digest).first()
    if dead is None:
        raise UnknownKey
    raise UnusableKey(dead)


def _from_cached(digest: str, values: tuple) -> ApiKey:
    *fields, service_name = values
    api_key = partial_instance(ApiKey, {**dict(zip(_KEY_FIELDS, fields, strict=True)), "key_hash": digest})
    api_key.service = partial_instance(Service, {"id": api_key.service_id, "name": service_name})
    return api_key


def key_changed(sender, instance: ApiKey, **kwargs) -> None:
    """Receiver of ApiKey saves and deletes: the cached copy is not used again."""
    if kwargs.get("created"):  # a new secret: nothing cached, and its first requests may cache it
        return
    cache_invalidate([key_cache_key(instance.key_hash)], hold=settings.INGEST_KEY_CACHE_SECONDS)


def service_changed(sender, instance: Service, **kwargs) -> None:
    """Receiver of Service saves and deletes: its keys' cached copies carry its name."""
    hashes = ApiKey.objects.filter(service_id=instance.pk).values_list("key_hash", flat=True)
    cache_invalidate([key_cache_key(digest) for digest in hashes], hold=settings.INGEST_KEY_CACHE_SECONDS)
