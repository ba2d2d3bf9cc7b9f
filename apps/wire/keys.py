"""Service keys sent where foreign SDKs put them (a body field, a Basic-auth user); looked up by
`apps.ingest.keys.api_key_for_secret`, with the same rules as the portal's own API."""

from collections.abc import Iterable


class ConflictingKeys(Exception):
    """One request names two different keys."""


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
