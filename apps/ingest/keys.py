"""API key material: how keys look and how they are hashed (keys are random, so SHA-256 suffices)."""

import hashlib
import secrets

KEY_PREFIX = "swk"
PREFIX_LENGTH = 8


def key_hash(raw_key: str) -> str:
    """Return the stored form of a key."""
    return hashlib.sha256(raw_key.encode("utf-8", "surrogatepass")).hexdigest()


def new_key() -> tuple[str, str]:
    """Return (public prefix, full secret key); the key starts with its prefix so logs can name it."""
    prefix = secrets.token_hex(PREFIX_LENGTH // 2)
    return prefix, f"{KEY_PREFIX}_{prefix}_{secrets.token_urlsafe(32)}"


def prefix_of(raw_key: str) -> str:
    """Return the public prefix of a key as sent, or "" when it does not look like one of ours."""
    parts = raw_key.split("_", 2)
    if len(parts) == 3 and parts[0] == KEY_PREFIX and len(parts[1]) == PREFIX_LENGTH:
        return parts[1]
    return ""
