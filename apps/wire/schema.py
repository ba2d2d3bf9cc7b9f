"""OpenAPI descriptions of the PostHog and Segment endpoints (documentation only: the formats' modules read
the bodies)."""

from drf_spectacular.utils import OpenApiExample, OpenApiResponse, inline_serializer
from rest_framework import serializers

from apps.common.openapi import ErrorSchema
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
    return {200: PostHogResultSchema, **_errors(ErrorSchema, single=True, unusable="401")}


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
