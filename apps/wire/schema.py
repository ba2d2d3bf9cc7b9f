"""OpenAPI descriptions of the PostHog, Segment and OTLP endpoints (documentation only: the formats' modules
read the bodies)."""

from drf_spectacular.utils import OpenApiExample, OpenApiResponse, inline_serializer
from rest_framework import serializers

from apps.common.openapi import named_schema
from apps.ingest.schema import RejectedItemSerializer

_ANY = {"help_text": "Text, or anything the SDK sends; conform reads it."}

PostHogEventSchema = inline_serializer(
    "PostHogEvent",
    fields={
        "event": serializers.CharField(help_text="The event's name, e.g. $pageview or search_made."),
        "distinct_id": serializers.CharField(required=False, help_text="Stored as user_id."),
        "uuid": serializers.CharField(
            required=False, help_text="Stored as event_id; free text becomes a UUID derived from it."
        ),
        "timestamp": serializers.CharField(required=False, help_text="ISO-8601 or epoch seconds."),
        "properties": serializers.DictField(
            required=False, help_text="Kept whole ($ names too); a correlation_id property joins a trail."
        ),
        "api_key": serializers.CharField(required=False, help_text="The key, when the body has none."),
    },
)
PostHogBatchSchema = inline_serializer(
    "PostHogBatch",
    fields={
        "api_key": serializers.CharField(help_text="A service key (or `token`, or on each event)."),
        "batch": serializers.ListField(child=PostHogEventSchema, min_length=1, max_length=1000),
        "sent_at": serializers.CharField(required=False, help_text="When the SDK sent it (clock skew)."),
        "historical_migration": serializers.BooleanField(required=False, help_text="Accepted, not used."),
    },
)
PostHogResultSchema = inline_serializer(
    "PostHogResult",
    fields={
        "status": serializers.IntegerField(help_text="1, what posthog SDKs look for."),
        "accepted": serializers.IntegerField(min_value=0),
        "duplicates": serializers.IntegerField(min_value=0, help_text="Events already stored (by uuid)."),
        "rejected": serializers.ListField(child=RejectedItemSerializer()),
    },
)

SegmentMessageSchema = inline_serializer(
    "SegmentMessage",
    fields={
        # Text, not an enum: a second enum on a field named `type` would rename the canonical event's.
        "type": serializers.CharField(
            help_text="track, identify, page, screen, group or alias: required in a batch; the path says it "
            "for one message.",
        ),
        "event": serializers.CharField(required=False, help_text="track: the event's name."),
        "userId": serializers.CharField(required=False, help_text="Stored as user_id."),
        "anonymousId": serializers.CharField(required=False, help_text="user_id when there is no userId."),
        "messageId": serializers.CharField(
            required=False, help_text="Stored as event_id; free text becomes a UUID derived from it."
        ),
        "timestamp": serializers.CharField(required=False, help_text="ISO-8601 (else originalTimestamp)."),
        "properties": serializers.DictField(required=False),
        "traits": serializers.DictField(required=False, help_text="Kept in properties as traits."),
        "context": serializers.DictField(required=False, help_text="Kept in properties as context."),
    },
)
SegmentBatchSchema = inline_serializer(
    "SegmentBatch",
    fields={
        "batch": serializers.ListField(child=SegmentMessageSchema, min_length=1, max_length=1000),
        "sentAt": serializers.CharField(required=False, help_text="When the SDK sent it (clock skew)."),
        "writeKey": serializers.CharField(required=False, help_text="The key, without Basic auth."),
    },
)
SegmentResultSchema = inline_serializer(
    "SegmentResult",
    fields={
        "success": serializers.BooleanField(),
        "accepted": serializers.IntegerField(min_value=0),
        "duplicates": serializers.IntegerField(
            min_value=0, help_text="Messages already stored (by messageId)."
        ),
        "rejected": serializers.ListField(child=RejectedItemSerializer()),
    },
)
PostHogErrorSchema = inline_serializer(
    "PostHogError",
    fields={
        "detail": serializers.CharField(),
        "errors": serializers.DictField(
            child=serializers.CharField(), required=False, help_text="The one event's refused fields (400)."
        ),
    },
)
SegmentErrorSchema = inline_serializer(
    "SegmentError",
    fields={
        "success": serializers.BooleanField(),
        "code": serializers.CharField(),
        "message": serializers.CharField(),
        "detail": serializers.CharField(),
        "errors": serializers.DictField(child=serializers.CharField(), required=False),
    },
)


def _errors(schema, *, single: bool, unusable: str) -> dict[int, OpenApiResponse]:
    """The error answers; `unusable` is where a revoked or expired key is answered ("401" or "403")."""
    bad_key = "No key, an unknown key, or two different keys"
    answers = {
        400: OpenApiResponse(
            schema, description="Malformed body" + (", or the one event was refused." if single else ".")
        ),
        401: OpenApiResponse(
            schema, description=bad_key + (", or a revoked or expired one." if unusable == "401" else ".")
        ),
        411: OpenApiResponse(schema, description="Chunked body the server cannot tell the end of."),
        413: OpenApiResponse(schema, description="Body, batch or decompressed body too large."),
        415: OpenApiResponse(schema, description="Not JSON, or an unsupported encoding."),
        429: OpenApiResponse(schema, description="Throttled; see Retry-After."),
        503: OpenApiResponse(schema, description="Database unavailable; nothing stored; see Retry-After."),
    }
    if unusable == "403":
        answers[403] = OpenApiResponse(schema, description="Revoked or expired key.")
    return dict(sorted(answers.items()))


def posthog_responses() -> dict:
    return {200: PostHogResultSchema, **_errors(PostHogErrorSchema, single=True, unusable="401")}


def segment_responses(*, single: bool) -> dict:
    return {200: SegmentResultSchema, **_errors(SegmentErrorSchema, single=single, unusable="403")}


POSTHOG_BATCH_EXAMPLE = OpenApiExample(
    "What posthog-python sends",
    value={
        "api_key": "swk_0123abcd_…",
        "batch": [
            {
                "event": "search_made",
                "distinct_id": "user-1234",
                "uuid": "0190b6a2-3c4d-7e8f-9a0b-1c2d3e4f5a6b",
                "timestamp": "2026-11-26T10:15:00+00:00",
                "properties": {"n_results": 12, "$lib": "posthog-python", "correlation_id": "req-77"},
            }
        ],
        "historical_migration": False,
        "sent_at": "2026-11-26T10:15:01+00:00",
    },
    request_only=True,
)
SEGMENT_BATCH_EXAMPLE = OpenApiExample(
    "What analytics-python sends",
    value={
        "batch": [
            {
                "type": "track",
                "event": "Search Made",
                "userId": "user-1234",
                "messageId": "5c8c3d9e-2b1f-4d6a-9f0e-8a7b6c5d4e3f",
                "timestamp": "2026-11-26T10:15:00.000+00:00",
                "properties": {"n_results": 12},
                "context": {"library": {"name": "analytics-python", "version": "2.4.0"}},
                "integrations": {},
            }
        ],
        "sentAt": "2026-11-26T10:15:01+00:00",
        "writeKey": "swk_0123abcd_…",
    },
    request_only=True,
)


# --- OTLP/HTTP ----------------------------------------------------------------------------------------
# OTLP JSON as the specification spells it (lowerCamelCase keys, hex ids, integer enums); the endpoints
# read it with opentelemetry-proto's messages, which also ignore fields they do not know.

_ANY_VALUE = {
    "type": "object",
    "description": "An AnyValue: one of stringValue, boolValue, intValue, doubleValue, arrayValue "
    "({values: [...]}), kvlistValue ({values: [{key, value}]}) or bytesValue (base64).",
}
_ATTRIBUTES = {
    "type": "array",
    "items": {"type": "object", "properties": {"key": {"type": "string"}, "value": _ANY_VALUE}},
}
_NANOS = {
    "anyOf": [{"type": "integer", "minimum": 0}, {"type": "string", "pattern": "^[0-9]+$"}],
    "description": "Nanoseconds since the epoch (a 64-bit integer: a number or decimal text).",
}


def _hex(digits: int, description: str) -> dict:
    return {"type": "string", "pattern": f"^([0-9a-fA-F]{{{digits}}})?$", "description": description}


_RESOURCE = {
    "type": "object",
    "properties": {"attributes": _ATTRIBUTES},
    "description": "service.name is the service (the key's when absent); deployment.environment[.name] the "
    "stage. Both must be the key's unless it is a forwarder key.",
}
_SCOPE = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "version": {"type": "string"}, "attributes": _ATTRIBUTES},
}
_LOG_RECORD = {
    "type": "object",
    "properties": {
        "timeUnixNano": _NANOS,
        "observedTimeUnixNano": _NANOS,
        "severityNumber": {"type": "integer", "minimum": 0, "maximum": 24},
        "severityText": {"type": "string"},
        "body": _ANY_VALUE,
        "attributes": _ATTRIBUTES,
        "traceId": _hex(32, "Stored as the correlation ID."),
        "spanId": _hex(16, "In properties as otel.span_id (_otel.span_id if an attribute has that name)."),
        "eventName": {"type": "string", "description": 'Stored as the event (default "log").'},
    },
}
_SPAN = {
    "type": "object",
    "properties": {
        "traceId": _hex(32, "Required; stored as the correlation ID."),
        "spanId": _hex(16, "Required."),
        "parentSpanId": _hex(16, "Empty for a root span."),
        "name": {"type": "string", "description": "Stored as the event."},
        "kind": {"type": "integer", "minimum": 0, "maximum": 5},
        "startTimeUnixNano": _NANOS,
        "endTimeUnixNano": _NANOS,
        "attributes": _ATTRIBUTES,
        "events": {"type": "array", "items": {"type": "object"}},
        "links": {"type": "array", "items": {"type": "object"}},
        "status": {
            "type": "object",
            "properties": {
                "code": {
                    "type": "integer",
                    "minimum": 0,
                    "maximum": 2,
                    "description": "2 (error): level error.",
                },
                "message": {"type": "string"},
            },
        },
    },
}


def _export_request(resources: str, scopes: str, records: str, record: dict) -> dict:
    scope_group = {
        "type": "object",
        "properties": {"scope": _SCOPE, records: {"type": "array", "items": record}},
    }
    resource_group = {
        "type": "object",
        "properties": {"resource": _RESOURCE, scopes: {"type": "array", "items": scope_group}},
    }
    return {"type": "object", "properties": {resources: {"type": "array", "items": resource_group}}}


_OTLP_JSON_REQUESTS = {
    "logs": _export_request("resourceLogs", "scopeLogs", "logRecords", _LOG_RECORD),
    "traces": _export_request("resourceSpans", "scopeSpans", "spans", _SPAN),
}
_BINARY = {"type": "string", "format": "binary"}
_STATUS = named_schema(
    "GoogleRpcStatus",
    {
        "type": "object",
        "description": "A google.rpc.Status (in protobuf, for a protobuf request).",
        "properties": {
            "code": {"type": "integer", "description": "A gRPC code, for troubleshooting only."},
            "message": {"type": "string"},
            "details": {"type": "array", "items": {"type": "object"}},
        },
    },
)


def otlp_request(signal) -> dict:
    """Return the request body of an OTLP endpoint: protobuf or OTLP JSON."""
    return {"application/x-protobuf": _BINARY, "application/json": _OTLP_JSON_REQUESTS[signal.name]}


def otlp_responses(signal) -> dict:
    """Return the answers of an OTLP endpoint, each in protobuf and in JSON (the request's encoding)."""
    rejected = "rejectedLogRecords" if signal.name == "logs" else "rejectedSpans"
    success = {
        "type": "object",
        "description": f"A {signal.response_type.__name__}: empty when every record was stored (or "
        "already was).",
        "properties": {
            "partialSuccess": {
                "type": "object",
                "properties": {
                    rejected: {"anyOf": [{"type": "integer"}, {"type": "string", "pattern": "^[0-9]+$"}]},
                    "errorMessage": {
                        "type": "string",
                        "description": "Where each refused record sat, and why.",
                    },
                },
            }
        },
    }
    failures = {
        400: "The body does not decode (malformed protobuf or JSON, an id that is not hex).",
        401: "No key, or an unknown one.",
        403: "Revoked or expired key.",
        411: "Chunked body the server cannot tell the end of.",
        413: "Body, decompressed body or record count over the limit.",
        415: "Not application/x-protobuf or application/json, or an encoding other than gzip.",
        429: "Throttled; retry after Retry-After.",
        503: "Database unavailable; nothing stored; retry after Retry-After.",
    }
    answers: dict = {}
    for code, (json_schema, description) in {
        200: (success, "Stored; refused records (if any) counted in partialSuccess."),
        **{code: (_STATUS, text) for code, text in failures.items()},
    }.items():
        answers[(code, "application/json")] = OpenApiResponse(json_schema, description=description)
        answers[(code, "application/x-protobuf")] = OpenApiResponse(_BINARY, description=description)
    return answers


_OTLP_RESOURCE = {
    "attributes": [
        {"key": "service.name", "value": {"stringValue": "tiles-api"}},
        {"key": "deployment.environment.name", "value": {"stringValue": "prod"}},
    ]
}
_OTLP_SCOPE = {"name": "tiles.handlers", "version": "2.3.0"}
OTLP_EXAMPLES = {
    "logs": OpenApiExample(
        "OTLP JSON log records",
        value={
            "resourceLogs": [
                {
                    "resource": _OTLP_RESOURCE,
                    "scopeLogs": [
                        {
                            "scope": _OTLP_SCOPE,
                            "logRecords": [
                                {
                                    "timeUnixNano": "1795687200000000000",
                                    "severityNumber": 17,
                                    "severityText": "ERROR",
                                    "traceId": "5b8efff798038103d269b633813fc60c",
                                    "spanId": "eee19b7ec3c1b174",
                                    "body": {"stringValue": "tile cache miss"},
                                    "attributes": [
                                        {"key": "enduser.id", "value": {"stringValue": "1234"}},
                                        {"key": "tile.zoom", "value": {"intValue": "12"}},
                                    ],
                                }
                            ],
                        }
                    ],
                }
            ]
        },
        request_only=True,
    ),
    "traces": OpenApiExample(
        "OTLP JSON spans",
        value={
            "resourceSpans": [
                {
                    "resource": _OTLP_RESOURCE,
                    "scopeSpans": [
                        {
                            "scope": _OTLP_SCOPE,
                            "spans": [
                                {
                                    "traceId": "5b8efff798038103d269b633813fc60c",
                                    "spanId": "eee19b7ec3c1b174",
                                    "parentSpanId": "eee19b7ec3c1b173",
                                    "name": "GET /tiles/{z}/{x}/{y}",
                                    "kind": 2,
                                    "startTimeUnixNano": "1795687200000000000",
                                    "endTimeUnixNano": "1795687200042000000",
                                    "status": {"code": 2, "message": "upstream timed out"},
                                }
                            ],
                        }
                    ],
                }
            ]
        },
        request_only=True,
    ),
}
