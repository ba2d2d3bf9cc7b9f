"""PostHog capture as posthog SDKs send it: the bodies of /batch/, /capture/, /e/ and /i/v0/e/, and one
posthog event mapped onto a canonical item; the answer to their feature-flag requests (/flags/, /decide/),
which is always "no flags", and posthog-js's remote config, where nothing is enabled. Pure functions: no
database, no settings.

Bodies: `{"api_key": …, "batch": [events], "sent_at": …, "historical_migration": …}` (posthog-python, and
the same from posthog-node/-go/-ruby), one event with its `api_key` or `token`, or a bare array of events.
"""

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from .items import canonical_item, correlation_from, keep, properties_of
from .keys import one_key

KEY_FIELDS = ("api_key", "token")
# posthog-js announces its encoding in the query string; lz64 (very old posthog-js) is not read here.
READABLE_COMPRESSION = ("", "gzip", "gzip-js", "base64")
# Conform's field names, as a posthog sender knows them (for refusals).
GROUP_IDENTIFY = "$groupidentify"
WIRE_NAMES = {"event_id": "uuid", "user_id": "distinct_id"}


# Where a flags request names the key: posthog-python sends api_key, posthog-node and posthog-js token.
FLAGS_KEY_FIELDS = ("token", "api_key", "$token")
# What PostHog answers for a project it holds no configuration of (ConfigResponse::fallback in its
# rust/feature-flags): posthog-js reads it with config=true, and picks gzip-js (read here) for its events.
NO_CONFIG: dict[str, Any] = {
    "hasFeatureFlags": False,
    "supportedCompression": ["gzip", "gzip-js"],
    "sessionRecording": False,
    "surveys": False,
    "heatmaps": False,
    "capturePerformance": False,
    "autocaptureExceptions": False,
    "isAuthenticated": False,
    "toolbarParams": {},
    "config": {"enable_collect_everything": True},
}

# What PostHog's /array/<token>/config answers for a project with nothing enabled (RemoteConfig.build_config
# in PostHog/posthog's posthog/models/remote_config.py: no flags, surveys, recording, heatmaps, performance
# or exception capture, no site apps). Left out: `token` (the key, which posthog-js does not read back),
# and `analytics` and `elementsChainAsString`, which PostHog leaves out for some projects too: with them
# posthog-js would move its events to /i/v0/e/ and send autocapture's elements as one string.
REMOTE_CONFIG: dict[str, Any] = {
    "supportedCompression": ["gzip", "gzip-js"],
    "hasFeatureFlags": False,
    "captureDeadClicks": False,
    "capturePerformance": False,
    "autocapture_opt_out": False,
    "autocaptureExceptions": False,
    "errorTracking": {"autocaptureExceptions": False, "suppressionRules": []},
    "sessionRecording": False,
    "heatmaps": False,
    "surveys": False,
    "defaultIdentifiedOnly": True,
    "siteApps": [],
}


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


def query_sent_at(value: str | None) -> datetime | None:
    """Return the request time posthog-js puts in the query string as `_` (epoch milliseconds), else None.

    posthog-js versions that post a bare array of events send no `sent_at` in the body; PostHog's capture
    reads this instead, and ignores what is not milliseconds after 2020 (older SDKs sent seconds), as is
    done here: a value not read is no reason to refuse the events.
    """
    try:
        moment = datetime.fromtimestamp(int(value or "") / 1000, tz=UTC)
    except (ValueError, OverflowError, OSError):
        return None
    return moment if moment.year > 2020 else None


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


def flags_key(body: Any) -> str | None:
    """Return the key a /flags/ or /decide/ body names (None for none); raise CaptureError for a body that is
    not a JSON object, keys.ConflictingKeys for one that names two keys."""
    if not isinstance(body, dict):
        raise CaptureError('Send {"token": ..., "distinct_id": ...} as a JSON object.')
    return one_key(body.get(name) for name in FLAGS_KEY_FIELDS)


def flags_answer(
    *, version: str | None, config: str | None, decide: bool, request_id: str, evaluated_at: int
) -> dict[str, Any]:
    """Return PostHog's answer with no feature flags, in the shape the query asks for.

    As PostHog's rust/feature-flags does (endpoint.rs): `v` that is not a number reads as 1; /flags/ with
    neither `v` nor `config` answers v2 with the config; /decide/ always carries the config, and its v1 and
    v2 are their own shapes (a list, then a map, of enabled flags), v3 is /flags/ v1 and v4 /flags/ v2.
    """
    number = _query_int(version)
    with_config = _query_bool(config)
    if decide:
        with_config = True if with_config is None else with_config
    elif number is None and with_config is None:
        number, with_config = 2, True
    ids = {"requestId": request_id, "evaluatedAt": evaluated_at}
    flags_v2 = {"errorsWhileComputingFlags": False, "flags": {}, **ids}
    flags_v1 = {"errorsWhileComputingFlags": False, "featureFlags": {}, "featureFlagPayloads": {}, **ids}
    if decide and (number is None or number < 4):
        answer = {2: {"featureFlags": {}, **ids}, 3: flags_v1}.get(number, {"featureFlags": [], **ids})
    else:
        answer = flags_v2 if number is not None and number >= 2 else flags_v1
    return {**answer, **NO_CONFIG} if with_config else answer


def _query_int(value: str | None) -> int | None:
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError:
        return 1


def _query_bool(value: str | None) -> bool | None:
    if value is None or value == "":
        return None
    return value.strip().lower() in ("true", "1")


def remote_config_script(key: str) -> str:
    """Return /array/<key>/config.js: the script posthog-js loads before it tries the JSON config, which
    files REMOTE_CONFIG under the key in `window._POSTHOG_REMOTE_CONFIG`, with no site apps (the shape of
    PostHog's RemoteConfig.get_config_js_via_token)."""
    config = {name: value for name, value in REMOTE_CONFIG.items() if name != "siteApps"}
    return (
        "(function() {\n"
        "  window._POSTHOG_REMOTE_CONFIG = window._POSTHOG_REMOTE_CONFIG || {};\n"
        f"  window._POSTHOG_REMOTE_CONFIG[{json.dumps(key)}] = {{\n"
        f"    config: {json.dumps(config)},\n"
        "    siteApps: []\n"
        "  };\n"
        "})();\n"
    )
