"""PostHog capture as posthog SDKs send it: the bodies of /batch/, /capture/, /e/ and /i/v0/e/, and one
posthog event mapped onto a canonical item. Pure functions: no database, no settings.

Bodies: `{"api_key": …, "batch": [events], "sent_at": …, "historical_migration": …}` (posthog-python, and
the same from posthog-node/-go/-ruby), one event with its `api_key` or `token`, or a bare array of events.
"""

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from .items import canonical_item, correlation_from, keep, properties_of
from .keys import one_key

KEY_FIELDS = ("api_key", "token")
# posthog-js announces gzip in the query string; its other encodings are not read here.
READABLE_COMPRESSION = ("", "gzip", "gzip-js")
# Conform's field names, as a posthog sender knows them (for refusals).
GROUP_IDENTIFY = "$groupidentify"
WIRE_NAMES = {"event_id": "uuid", "user_id": "distinct_id"}


class CaptureError(ValueError):
    """The body is not a capture request (400); no event of it is stored."""


@dataclass(frozen=True)
class Capture:
    events: list[Any]
    sent_at: Any
    # One event as the whole body (not a batch): refusing it refuses the request.
    single: bool
    # The service key the body names (see project_key), None when it names none.
    key: str | None


def unpack(body: Any) -> Capture:
    """Return the events of a capture body, its `sent_at` and its key; raise CaptureError for a body that
    is not a capture request, keys.ConflictingKeys for one that names two keys."""
    if isinstance(body, list):
        events, sent_at, single = body, None, False
    elif isinstance(body, dict) and "batch" in body:
        events, sent_at, single = body["batch"], body.get("sent_at"), False
        if not isinstance(events, list):
            raise CaptureError("batch must be a JSON array of events.")
    elif isinstance(body, dict):
        events, sent_at, single = [body], body.get("sent_at"), True
    else:
        raise CaptureError('Send {"api_key": ..., "batch": [...]}, one event, or a JSON array of events.')
    if not events:
        raise CaptureError("batch is empty.")
    return Capture(events=events, sent_at=sent_at, single=single, key=project_key(body))


def project_key(body: Any) -> str | None:
    """Return the key of a capture body: its `api_key` or `token`, else the one its events carry.

    Events may carry it as `api_key`, `token` or `properties.token` (posthog-js); two different keys where
    the key is looked for raise keys.ConflictingKeys.
    """
    if isinstance(body, dict) and "batch" in body:
        key = one_key(body.get(name) for name in KEY_FIELDS)
        if key is not None or not isinstance(body["batch"], list):
            return key
        return one_key(_event_keys(body["batch"]))
    if isinstance(body, dict):
        return one_key(_event_keys([body]))
    if isinstance(body, list):
        return one_key(_event_keys(body))
    return None


def _event_keys(events: list[Any]) -> Iterator[Any]:
    for event in events:
        if isinstance(event, dict):
            yield from (event.get(name) for name in KEY_FIELDS)
            properties = event.get("properties")
            if isinstance(properties, dict):
                yield properties.get("token")


def to_item(event: Any, *, service: str) -> Any:
    """Return the canonical item for one posthog event (a non-object is returned for conform to refuse).

    `distinct_id` (else `properties.distinct_id` / `$distinct_id`) -> user_id (kept in properties instead for
    a `$groupidentify`, whose distinct_id names a group), `uuid` -> event_id (a UUID
    derived from it when it is not one), `event`, `timestamp`; `properties` kept whole, `$` names included;
    other top-level fields (`$set`, `$set_once`, `offset`, ...) kept in properties. `api_key`, `token` and
    `properties.token` (the key, in posthog's names) are never stored.
    """
    if not isinstance(event, dict):
        return event
    fields = {name: value for name, value in event.items() if name not in KEY_FIELDS}
    properties = properties_of(fields.pop("properties", None))
    if isinstance(properties, dict):
        properties.pop("token", None)  # posthog's name for the project key, wherever it came from
    user_id = fields.pop("distinct_id", None)
    if user_id is None and isinstance(properties, dict):
        user_id = properties.get("distinct_id", properties.get("$distinct_id"))
    given_id = fields.pop("uuid", None)
    name = fields.pop("event", None)
    if name == GROUP_IDENTIFY and isinstance(properties, dict) and user_id is not None:
        # A group's record, not a person's: its distinct_id is "$<group type>_<group key>", no user to count.
        keep(properties, "distinct_id", user_id)
        user_id = None
    timestamp = fields.pop("timestamp", None)
    fields.pop("sent_at", None)  # the request's, read by unpack()
    if isinstance(properties, dict):
        for field, value in fields.items():
            keep(properties, field, value)
    return canonical_item(
        service=service,
        event=name,
        given_id=given_id,
        user_id=user_id,
        timestamp=timestamp,
        correlation_id=correlation_from(properties),
        properties=properties,
    )
