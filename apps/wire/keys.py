"""Service keys sent where foreign SDKs put them (a body field, a Basic-auth user), looked up by secret.

`api_key_for_secret` applies the rules of `ApiKeyAuthentication` (unknown, revoked, expired) through public
model methods; it belongs in apps/ingest once that app settles.
"""

from collections.abc import Iterable
from datetime import datetime

from apps.common.secrets import secret_hash
from apps.ingest.models import ApiKey


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


class ConflictingKeys(Exception):
    """One request names two different keys."""


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


def one_key(candidates: Iterable[object]) -> str | None:
    """Return the single key among `candidates` (None and "" skipped); raise ConflictingKeys for two.

    A non-string candidate is returned as its text, so it is refused as an unknown key, never ignored.
    """
    found: str | None = None
    for candidate in candidates:
        if candidate is None or candidate == "":
            continue
        text = candidate if isinstance(candidate, str) else str(candidate)
        if found is not None and text != found:
            raise ConflictingKeys
        found = text
    return found
