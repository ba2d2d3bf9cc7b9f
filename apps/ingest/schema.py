"""OpenAPI descriptions of the ingestion endpoints (documentation only: validation lives in conform.py)."""

from drf_spectacular.utils import OpenApiExample, OpenApiResponse, inline_serializer
from rest_framework import serializers

LEVEL_CHOICES = ["debug", "info", "warning", "error", "critical"]

EventSchema = inline_serializer(
    "Event",
    fields={
        "event_id": serializers.UUIDField(required=False, help_text="Client-made idempotency key."),
        "type": serializers.ChoiceField(choices=["metric", "log"], required=False, default="metric"),
        "event": serializers.CharField(max_length=200, required=False, help_text='Metric name; logs: "log".'),
        "timestamp": serializers.CharField(required=False, help_text="ISO-8601, or epoch seconds."),
        "user_id": serializers.CharField(max_length=200, required=False),
        "correlation_id": serializers.CharField(max_length=200, required=False),
        "level": serializers.ChoiceField(choices=LEVEL_CHOICES, required=False),
        "message": serializers.CharField(required=False),
        "properties": serializers.DictField(required=False),
        "service": serializers.CharField(required=False, help_text="Only for forwarder keys."),
        "stage": serializers.CharField(required=False, help_text="Only for forwarder keys."),
    },
)

BatchSchema = inline_serializer(
    "Batch",
    fields={
        "batch": serializers.ListField(child=EventSchema, max_length=1000),
        "sent_at": serializers.CharField(required=False, help_text="When the client sent it (clock skew)."),
    },
)

IngestResultSchema = inline_serializer(
    "IngestResult",
    fields={
        "accepted": serializers.IntegerField(),
        "duplicates": serializers.IntegerField(),
        "rejected": serializers.ListField(child=serializers.DictField()),
    },
)

SingleResultSchema = inline_serializer(
    "SingleIngestResult",
    fields={
        "accepted": serializers.IntegerField(),
        "duplicates": serializers.IntegerField(),
        "rejected": serializers.ListField(child=serializers.DictField()),
        "event_id": serializers.UUIDField(),
    },
)

ErrorSchema = inline_serializer("Error", fields={"detail": serializers.CharField()})

COMMON_RESPONSES = {
    400: OpenApiResponse(ErrorSchema, description="Malformed body."),
    401: OpenApiResponse(ErrorSchema, description="No key or an unknown key."),
    403: OpenApiResponse(ErrorSchema, description="Revoked key, or a record out of the key's scope."),
    413: OpenApiResponse(ErrorSchema, description="Body, batch or decompressed body too large."),
    415: OpenApiResponse(ErrorSchema, description="Not application/json, or an unsupported encoding."),
    429: OpenApiResponse(ErrorSchema, description="Throttled; see Retry-After."),
    503: OpenApiResponse(ErrorSchema, description="Database unavailable; nothing stored; see Retry-After."),
}

METRIC_EXAMPLE = OpenApiExample(
    "A metric event",
    value={
        "event_id": "4f8e2d3c-1b7a-4c55-9e51-2f0c8f1d7a10",
        "event": "search_made",
        "timestamp": "2026-11-26T10:15:00Z",
        "user_id": "1234",
        "correlation_id": "8d0f6f8e-5d0b-4e37-9a52-2b3c1e0f9a77",
        "properties": {"query": "ships near Rotterdam", "n_results": 12},
    },
    request_only=True,
)
LOG_RECORD_EXAMPLE = OpenApiExample(
    "A shipped log record (forwarder key)",
    value={
        "message": "Downloaded img",
        "userId": "1234",
        "imgId": "1d3x5",
        "service": "download-server",
        "time": "1509385330",
    },
    request_only=True,
)
BATCH_EXAMPLE = OpenApiExample(
    "A batch",
    value={
        "sent_at": "2026-11-26T10:15:01Z",
        "batch": [
            {"event": "search_made", "user_id": "1234", "properties": {"n_results": 12}},
            {"type": "log", "level": "error", "message": "tile cache miss", "correlation_id": "req-77"},
        ],
    },
    request_only=True,
)
