"""What both wire formats do to make a canonical item of a foreign event: everything the sender said is kept
(fields without a canonical home go into `properties`), the id becomes an idempotency key, and a correlation
ID a property carries joins the event to its trail."""

from typing import Any

from apps.ingest.conform import free_name

from .ids import event_id_for

# Where a free-text id that was turned into a UUID is kept, so support can still search for it.
ORIGINAL_ID_PROPERTY = "original_event_id"
# A property (or, for Segment, a `context` field) by one of these names is read as the correlation ID:
# SDKs that batch in a background thread have no request header per event to carry it.
CORRELATION_KEYS = ("correlation_id", "correlationId", "$correlation_id")


class Refused(Exception):
    """The format itself cannot read this event (field -> what is wrong); only this event is refused."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__(errors)
        self.errors = errors


def keep(properties: dict[str, Any], key: str, value: Any) -> None:
    """Put a field into properties; when a property already has its name, keep both (as `_top.<key>`, or
    with one more `_top.` for each name the sender's properties already use)."""
    properties[free_name(properties, key, prefix="_top.")] = value


def properties_of(value: Any) -> Any:
    """Return a copy of a sent `properties` object ({} for none); anything else as sent, for conform to
    refuse."""
    if value is None:
        return {}
    return dict(value) if isinstance(value, dict) else value


def correlation_from(*sources: Any) -> str | None:
    """Return the first non-blank text under a CORRELATION_KEYS name in the given objects, else None."""
    for source in sources:
        if not isinstance(source, dict):
            continue
        for key in CORRELATION_KEYS:
            value = source.get(key)
            if isinstance(value, str) and value.strip():
                return value
    return None


def canonical_item(
    *,
    service: str,
    event: Any,
    given_id: Any,
    user_id: Any,
    timestamp: Any,
    correlation_id: str | None,
    properties: Any,
) -> dict[str, Any]:
    """Return the item for `events_ingest`; fields left None are left to conform's defaults."""
    event_id, derived = event_id_for(given_id, service=service)
    if derived and isinstance(properties, dict):
        keep(properties, ORIGINAL_ID_PROPERTY, given_id)
    item: dict[str, Any] = {"event": event, "properties": properties}
    for name, value in (
        ("event_id", event_id),
        ("user_id", user_id),
        ("timestamp", timestamp),
        ("correlation_id", correlation_id),
    ):
        if value is not None:
            item[name] = value
    return item
