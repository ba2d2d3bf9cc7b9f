"""Segment's HTTP tracking API as Segment and RudderStack SDKs send it: the bodies of /v1/batch and of the
one-message endpoints, and one message mapped onto a canonical item. Pure functions: no database, no settings.

Bodies: `{"batch": [messages], "sentAt": …, "writeKey": …}` (analytics-python sends its key both here and
as the Basic-auth user), or one message for /v1/track, /v1/identify, /v1/page, /v1/screen, /v1/group and
/v1/alias, whose path names its type.
"""

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from .items import Refused, canonical_item, correlation_from, keep, properties_of
from .keys import one_key

TYPES = ("track", "identify", "page", "screen", "group", "alias")
KEY_FIELD = "writeKey"
# Conform's field names, as a Segment sender knows them (for refusals).
WIRE_NAMES = {"event_id": "messageId", "user_id": "userId"}


class TrackingError(ValueError):
    """The body is not a tracking request (400); no message of it is stored."""


@dataclass(frozen=True)
class Tracking:
    messages: list[Any]
    sent_at: Any
    # One message as the whole body: refusing it refuses the request.
    single: bool


def unpack_batch(body: Any) -> Tracking:
    """Return the messages of a /v1/batch body and its `sentAt`; raise TrackingError for anything else."""
    if not isinstance(body, dict) or "batch" not in body:
        raise TrackingError('Send {"batch": [...], "sentAt": ...}.')
    messages = body["batch"]
    if not isinstance(messages, list):
        raise TrackingError("batch must be a JSON array of messages.")
    if not messages:
        raise TrackingError("batch is empty.")
    return Tracking(messages=messages, sent_at=body.get("sentAt"), single=False)


def unpack_single(body: Any, *, kind: str) -> Tracking:
    """Return the one message of a /v1/<kind> body, typed by its path."""
    if not isinstance(body, dict):
        raise TrackingError(f"Send one {kind} message as a JSON object (for many, use /v1/batch).")
    return Tracking(messages=[{**body, "type": kind}], sent_at=body.get("sentAt"), single=True)


def write_key(body: Any) -> str | None:
    """Return the `writeKey` of a body, else the one its messages carry (two different raise
    keys.ConflictingKeys); raise TrackingError for a body that is not a JSON object."""
    if not isinstance(body, dict):
        raise TrackingError("Send a JSON object.")
    key = one_key([body.get(KEY_FIELD)])
    if key is not None or not isinstance(body.get("batch"), list):
        return key
    return one_key(_message_keys(body["batch"]))


def _message_keys(messages: list[Any]) -> Iterator[Any]:
    for message in messages:
        if isinstance(message, dict):
            yield message.get(KEY_FIELD)


def to_item(message: Any, *, service: str) -> Any:
    """Return the canonical item for one message (a non-object is returned for conform to refuse).

    `messageId` -> event_id (a UUID derived from it when it is not one), `userId` (else `anonymousId`) ->
    user_id, `timestamp` (else `originalTimestamp`); the event is `event` for track and the type's name
    otherwise. `properties` kept whole, `traits` and `context` kept in properties under their names, and so
    is every other field (`name`, `category`, `groupId`, `previousId`, `integrations`, ...). A correlation
    ID may come in properties or in context. `writeKey` is never stored.
    """
    if not isinstance(message, dict):
        return message
    fields = {name: value for name, value in message.items() if name != KEY_FIELD}
    kind = fields.pop("type", None)
    if kind not in TYPES:
        raise Refused({"type": f"must be one of {', '.join(TYPES)}"})
    properties = properties_of(fields.pop("properties", None))
    context = fields.get("context")
    user_id = fields.pop("userId", None)
    if user_id is None or user_id == "":
        user_id = fields.pop("anonymousId", None)
    given_id = fields.pop("messageId", None)
    timestamp = fields.pop("timestamp", None)
    if timestamp is None:
        timestamp = fields.pop("originalTimestamp", None)
    name = fields.pop("event", None) if kind == "track" else kind
    fields.pop("sentAt", None)  # the request's, read by unpack
    if isinstance(properties, dict):
        for field, value in fields.items():
            keep(properties, field, value)
    return canonical_item(
        service=service,
        event=name,
        given_id=given_id,
        user_id=user_id,
        timestamp=timestamp,
        correlation_id=correlation_from(properties, context),
        properties=properties,
    )
