"""Secret tokens (service keys, personal tokens): how they look and how they are stored.

They are random, so a SHA-256 suffices to store them; the public prefix names one in logs and screens.
"""

import hashlib
import secrets
from collections.abc import Callable
from typing import TypeVar

from django.db import IntegrityError, transaction

Stored = TypeVar("Stored")

PREFIX_LENGTH = 8
SERVICE_KEY_KIND = "swk"
PERSONAL_TOKEN_KIND = "swp"


def secret_hash(raw: str) -> str:
    """Return the stored form of a secret."""
    return hashlib.sha256(raw.encode("utf-8", "surrogatepass")).hexdigest()


def new_secret(kind: str) -> tuple[str, str]:
    """Return (public prefix, full secret) for a kind such as "swk"; the secret starts with its prefix."""
    prefix = secrets.token_hex(PREFIX_LENGTH // 2)
    return prefix, f"{kind}_{prefix}_{secrets.token_urlsafe(32)}"


# Draws of a prefix before giving up: with a million secrets stored, five taken in a row is one in 10^17.
_PREFIX_DRAWS = 5


def secret_store(
    kind: str, store: Callable[[str, str], Stored], *, taken: Callable[[str], bool]
) -> tuple[Stored, str]:
    """Make a secret and store it with `store(prefix, raw)`; return what it stored and the secret.

    Prefixes are unique and random (32 bits), so with thousands of secrets a new one now and then draws
    one that is taken: it draws again (`taken` tells that refusal from any other, which is raised).
    """
    for _ in range(_PREFIX_DRAWS - 1):
        prefix, raw = new_secret(kind)
        try:
            with transaction.atomic():  # a savepoint: the caller's transaction goes on after a refusal
                return store(prefix, raw), raw
        except IntegrityError:
            if not taken(prefix):
                raise
    prefix, raw = new_secret(kind)
    return store(prefix, raw), raw
