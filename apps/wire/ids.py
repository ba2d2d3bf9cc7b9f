"""Event IDs from foreign SDKs: their own id when it is a UUID, else a UUID derived from it.

Segment's `messageId` and some PostHog senders' `uuid` are free text (`ajs-next-…`). Refusing those would lose
events; a random UUID would store a re-sent event twice. A UUID5 over the service and the given id is the
same on every retry, so the (service, event_id) idempotency key still holds.
"""

import hashlib
import uuid
from typing import Any

# uuid5(NAMESPACE_URL, "https://skywatch-portal/wire/event-id"), written out because it is fixed forever:
# a new namespace would store every re-sent free-text id as a new event.
NAMESPACE = uuid.UUID("87dc5bb3-22f4-5ef2-afa5-69e8e0f3ae7a")


def event_id_for(given: Any, *, service: str) -> tuple[Any, bool]:
    """Return (the event_id to hand to conform, whether it was derived from free text).

    None or "" stays None (the server assigns one). A UUID in any spelling `uuid.UUID` reads is returned in
    canonical form; other text or a whole number is derived; anything else is returned as given, for
    conform to refuse with its usual message.
    """
    if given is None or given == "":
        return None, False
    if isinstance(given, str):
        try:
            return str(uuid.UUID(given)), False
        except ValueError:
            pass
    elif isinstance(given, bool) or not isinstance(given, int):
        return given, False
    return uuid5_text(NAMESPACE, f"{service}\n{given}"), True


def uuid5_text(namespace: uuid.UUID, name: str) -> str:
    """Return `str(uuid.uuid5(namespace, name))`, made without UUID objects (a few µs less per event, which
    OTLP pays for every record): the SHA-1 of the namespace and the name, version 5, RFC 4122 variant."""
    digest = bytearray(hashlib.sha1(namespace.bytes + name.encode()).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50
    digest[8] = (digest[8] & 0x3F) | 0x80
    text = digest.hex()
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"
