"""Secret tokens (service keys, personal tokens): how they look and how they are stored.

They are random, so a SHA-256 suffices to store them; the public prefix names one in logs and screens.
"""

import hashlib
import secrets

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
