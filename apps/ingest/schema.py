"""OpenAPI descriptions of the ingestion endpoints (documentation only: validation lives in conform.py)."""

from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema_field, inline_serializer
from rest_framework import serializers

from apps.common.openapi import ErrorSchema

from .conform import LEVELS, MAX_SPAN_ID_LENGTH, TYPES


# Conform reads what services really send, so the documented types are as wide as what it accepts.
# OpenAPI 3.0.3 lets `nullable` add null only beside a `type`: on an anyOf it allows nothing, so the null
# that conform reads as "not sent" is named inside a branch.
@extend_schema_field({"anyOf": [{"type": "string", "nullable": True}, {"type": "number"}]})
class _TimestampField(serializers.Field):
    pass


@extend_schema_field({"anyOf": [{"type": "string", "nullable": True}, {"type": "integer"}]})
class _UserIdField(serializers.Field):
    pass


def _span_id(help_text: str) -> serializers.RegexField:
    # The pattern admits "" (no span, a root span); allow_blank would add a second branch that "" also
    # matches, and a oneOf that two branches match refuses the value.
    return serializers.RegexField(
        rf"^[0-9a-fA-F]{{0,{MAX_SPAN_ID_LENGTH}}}$", required=False, allow_null=True, help_text=help_text
    )


EventSchema = inline_serializer(
    "Event",
    fields={
        "event_id": serializers.UUIDField(
            required=False, allow_null=True, help_text="Client-made idempotency key; the server makes one."
        ),
        "type": serializers.ChoiceField(
            choices=list(TYPES),
            required=False,
            allow_null=True,
            help_text='Default "metric" ("log" for a message without an event name); spans usually come '
            "from OTLP traces.",
        ),
        "event": serializers.CharField(
            required=False,
            allow_null=True,
            min_length=1,
            help_text='Metric name, at most 200 printable characters; logs default to "log".',
        ),
        "timestamp": _TimestampField(
            required=False,
            help_text="ISO-8601, or epoch seconds (number or numeric text); before 2000 is refused, "
            "more than 5 minutes ahead is clamped to the received time. Default: the received time.",
        ),
        "user_id": _UserIdField(required=False, help_text="Text or a whole number; at most 200 characters."),
        "correlation_id": serializers.CharField(
            required=False,
            allow_null=True,
            allow_blank=True,
            help_text="At most 200 printable characters; default: the request's X-Correlation-ID header, "
            "else its Correlation-ID (django-guid's), else the trace id of its W3C traceparent.",
        ),
        "level": serializers.CharField(
            required=False,
            allow_null=True,
            help_text=f"Logs: one of {', '.join(LEVELS)}, in any case; warn, err, fatal, crit and "
            "trace are read as their level. Default for logs: info.",
        ),
        "message": serializers.CharField(required=False, allow_null=True, allow_blank=True),
        "properties": serializers.DictField(required=False, allow_null=True),
        "span_id": _span_id(
            "The span's id, hex (stored in lowercase). Only spans store it; other types keep it in "
            "properties."
        ),
        "parent_span_id": _span_id("Spans: the parent span's id, hex; empty for a root span."),
        "duration_ms": serializers.FloatField(
            required=False,
            allow_null=True,
            min_value=0,
            help_text="Spans: how long it took, in milliseconds.",
        ),
        "service": serializers.CharField(
            required=False, min_length=1, help_text="Only for forwarder keys (default: the key's service)."
        ),
        "stage": serializers.CharField(
            required=False, min_length=1, help_text="Only for forwarder keys (default: the key's stage)."
        ),
    },
)

BatchSchema = inline_serializer(
    "Batch",
    fields={
        "batch": serializers.ListField(
            child=EventSchema,
            min_length=1,
            max_length=1000,
            help_text="Events; each is checked on its own and a refused one is listed in `rejected`.",
        ),
        "sent_at": _TimestampField(
            required=False, help_text="When the client sent the batch, to correct its clock skew."
        ),
    },
)


class RejectedItemSerializer(serializers.Serializer):
    """One refused item of a batch (documentation only)."""

    index = serializers.IntegerField(min_value=0, help_text="Position of the item in the batch.")
    errors = serializers.DictField(child=serializers.CharField(), help_text="Field -> what is wrong.")

    class Meta:
        ref_name = "RejectedItem"


def _rejected_items(**kwargs) -> serializers.ListField:
    return serializers.ListField(child=RejectedItemSerializer(), **kwargs)


IngestResultSchema = inline_serializer(
    "IngestResult",
    fields={
        "accepted": serializers.IntegerField(min_value=0, help_text="Events stored by this request."),
        "duplicates": serializers.IntegerField(min_value=0, help_text="Events already stored (by event_id)."),
        "rejected": _rejected_items(),
    },
)

SingleResultSchema = inline_serializer(
    "SingleIngestResult",
    fields={
        "accepted": serializers.IntegerField(min_value=0, max_value=1),
        "duplicates": serializers.IntegerField(min_value=0, max_value=1),
        "rejected": _rejected_items(max_length=0),
        "event_id": serializers.UUIDField(),
    },
)

RefusedEventSchema = inline_serializer(
    "RefusedEvent",
    fields={
        "detail": serializers.CharField(),
        "errors": serializers.DictField(
            child=serializers.CharField(), required=False, help_text="Field -> what is wrong."
        ),
    },
)

COMMON_RESPONSES = {
    400: OpenApiResponse(ErrorSchema, description="Malformed body."),
    401: OpenApiResponse(ErrorSchema, description="No key or an unknown key."),
    403: OpenApiResponse(ErrorSchema, description="Revoked or expired key."),
    413: OpenApiResponse(ErrorSchema, description="Body, batch or decompressed body too large."),
    415: OpenApiResponse(ErrorSchema, description="Not application/json, or an unsupported encoding."),
    429: OpenApiResponse(ErrorSchema, description="Throttled; see Retry-After."),
    503: OpenApiResponse(ErrorSchema, description="Database unavailable; nothing stored; see Retry-After."),
}
EVENT_RESPONSES = {
    **COMMON_RESPONSES,
    400: OpenApiResponse(RefusedEventSchema, description="Malformed body, or the event is invalid."),
    403: OpenApiResponse(
        RefusedEventSchema, description="Revoked or expired key, or an event for another service or stage."
    ),
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


def complete_batch_request(result: dict, generator, request, public: bool) -> dict:
    """Postprocessing hook: say what drf-spectacular cannot about POST /api/v1/batch and /api/v1/events.

    The envelope takes no other keys (they are refused with 400), and a bare array of events is accepted
    as well as the envelope; one event's body is required (an empty one is a 400).
    """
    # Event has no required field, so drf-spectacular leaves one event's body optional; it is not.
    event_operation = result.get("paths", {}).get("/api/v1/events", {}).get("post")
    if event_operation is not None:
        event_operation["requestBody"]["required"] = True
    batch = result.get("components", {}).get("schemas", {}).get("Batch")
    operation = result.get("paths", {}).get("/api/v1/batch", {}).get("post")
    if batch is None or operation is None:
        return result
    batch["additionalProperties"] = False
    events = batch["properties"]["batch"]
    bare = {key: value for key, value in events.items() if key != "description"}
    body = operation["requestBody"]["content"]["application/json"]
    body["schema"] = {
        "oneOf": [{"$ref": "#/components/schemas/Batch"}, {**bare, "description": "A bare array."}]
    }
    return result
