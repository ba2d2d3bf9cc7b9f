"""/api/v1/annotations: a deploy step (service key) posts a marked moment; people read those of a range.

One path, two doors: POST authenticates a service key exactly as /api/v1/batch does (and counts against
the same per-key rate); GET takes a person's session or token with a role that reads charts.
"""

import re
from datetime import UTC, datetime, timedelta

from django.utils import timezone
from django.utils.dateparse import parse_datetime
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_field,
    inline_serializer,
)
from rest_framework import exceptions, serializers, status
from rest_framework.authentication import SessionAuthentication
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.accounts.auth import PersonalTokenAuthentication
from apps.accounts.permissions import HasRole
from apps.accounts.roles import PRODUCT, SUPPORT
from apps.common.openapi import READ_RESPONSES, ErrorSchema, ParameterErrorsSchema
from apps.common.params import query_time
from apps.common.timebounds import OUT_OF_RANGE, within_query_bounds
from apps.ingest.auth import ApiKeyAuthentication, HasServiceKey
from apps.ingest.throttling import ApiKeyRateThrottle

from .models import MAX_TEXT_LENGTH, Annotation
from .selectors import MAX_ANNOTATIONS, annotations_between
from .services import create_annotation

DEFAULT_SPAN = timedelta(days=7)
# What str.strip() removes, spelled out (as apps/metrics/api.py does): regex dialects disagree on \s.
_SPACE = "\\t\\n\\x0b\\x0c\\r\\x1c-\\x1f \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000"
# Line breaks and tabs are fine in a deploy note; other control characters are refused, as at ingestion.
_ALLOWED = "[^\\x00-\\x08\\x0b\\x0c\\x0e-\\x1f\\x7f]"
TEXT_PATTERN = f"^{_ALLOWED}*[^{_SPACE}\\x00-\\x1f\\x7f]{_ALLOWED}*$"
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


@extend_schema_field(
    {"type": "string", "minLength": 1, "maxLength": MAX_TEXT_LENGTH, "pattern": TEXT_PATTERN}
)
class AnnotationTextField(serializers.CharField):
    """Text only (a number is refused, not turned into text); surrounding spaces are trimmed."""

    def __init__(self, **kwargs) -> None:
        super().__init__(max_length=MAX_TEXT_LENGTH, trim_whitespace=False, **kwargs)

    def to_internal_value(self, data) -> str:
        if not isinstance(data, str):
            raise serializers.ValidationError("must be a string")
        if _CONTROL.search(data):
            raise serializers.ValidationError(
                "must not contain control characters (tabs and newlines are fine)"
            )
        return super().to_internal_value(data)

    def run_validators(self, value: str) -> None:
        super().run_validators(value)  # length on what was sent, as the schema's maxLength says
        if not value.strip():
            raise serializers.ValidationError("must contain a visible character")


@extend_schema_field({"type": "string", "format": "date-time"})
class AwareTimestampField(serializers.Field):
    """ISO-8601 with a time zone, within the times the read paths compute with (1900–9000)."""

    def to_internal_value(self, data) -> datetime:
        if not isinstance(data, str):
            raise serializers.ValidationError("must be ISO-8601 text, e.g. 2026-12-02T10:00:00Z")
        try:
            # RFC 3339 allows a lowercase t and z; ISO digits are unchanged by upper().
            moment = parse_datetime(data.strip().upper())
        except ValueError:  # well-formed but impossible, e.g. month 13
            moment = None
        if moment is None:
            raise serializers.ValidationError(f"{data[:60]!r} is not an ISO-8601 date and time")
        if moment.tzinfo is None:
            raise serializers.ValidationError("give a time zone, e.g. 2026-12-02T10:00:00Z")
        try:
            moment = moment.astimezone(UTC)
        except OverflowError:  # year 1 with a positive offset
            moment = None
        if moment is None or not within_query_bounds(moment):
            raise serializers.ValidationError(f"{data[:60]!r} {OUT_OF_RANGE}")
        return moment

    def to_representation(self, value: datetime) -> str:
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


class AnnotationInputSerializer(serializers.Serializer):
    text = AnnotationTextField(help_text=f"What happened, at most {MAX_TEXT_LENGTH} characters.")
    timestamp = AwareTimestampField(
        required=False, help_text="When it happened, ISO-8601 with a time zone. Default: the received time."
    )


class AnnotationSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    text = serializers.CharField()
    timestamp = AwareTimestampField()
    service = serializers.CharField(help_text="The posting key's service.")
    stage = serializers.CharField(allow_blank=True, help_text="The posting key's stage.")


AnnotationListSchema = inline_serializer(
    "AnnotationList",
    fields={
        "annotations": AnnotationSerializer(many=True),
        "truncated": serializers.BooleanField(
            help_text=f"True when the range holds more than {MAX_ANNOTATIONS}: only the oldest are listed."
        ),
    },
)

CREATE_RESPONSES = {
    400: OpenApiResponse(ParameterErrorsSchema, description="The body is not JSON, or a field is invalid."),
    401: OpenApiResponse(ErrorSchema, description="No key or an unknown key."),
    403: OpenApiResponse(ErrorSchema, description="Revoked or expired key."),
    413: OpenApiResponse(ErrorSchema, description="Body too large."),
    415: OpenApiResponse(ErrorSchema, description="Not application/json."),
    429: OpenApiResponse(ErrorSchema, description="Throttled; see Retry-After."),
    503: OpenApiResponse(ErrorSchema, description="Database unavailable; nothing stored; see Retry-After."),
}


def annotation_json(annotation: Annotation) -> dict:
    return AnnotationSerializer(annotation).data


def _flat_errors(errors: dict) -> dict[str, str]:
    """Return serializer errors as {field: "message"}, the shape every 400 of the read APIs has."""
    return {name: " ".join(str(m) for m in messages) for name, messages in errors.items()}


class AnnotationsAPI(APIView):
    required_roles = (PRODUCT, SUPPORT)

    # The door depends on the method: a service key to post, a person to read.
    def get_authenticators(self):
        if getattr(self, "request", None) is not None and self.request.method == "POST":
            return [ApiKeyAuthentication()]
        return [PersonalTokenAuthentication(), SessionAuthentication()]

    def get_permissions(self):
        if self.request.method == "POST":
            return [HasServiceKey()]
        return [IsAuthenticated(), HasRole()]

    def get_throttles(self):
        # A key's ingestion rate to post; a person's read rate (the default) to read.
        return [ApiKeyRateThrottle()] if self.request.method == "POST" else super().get_throttles()

    @extend_schema(
        operation_id="annotations_create",
        summary="Mark a moment (a deploy, say) on every chart that covers it",
        request=AnnotationInputSerializer,
        responses={201: AnnotationSerializer, **CREATE_RESPONSES},
        examples=[
            OpenApiExample(
                "A deploy",
                value={"text": "deploy v2.14.0 (a1b2c3d)", "timestamp": "2026-12-02T10:00:00Z"},
                request_only=True,
            )
        ],
        tags=["annotations"],
    )
    def post(self, request: Request) -> Response:
        """Store an annotation for the key's service and stage."""
        if not isinstance(request.data, dict):
            raise exceptions.ValidationError({"body": "must be a JSON object with text and timestamp"})
        form = AnnotationInputSerializer(data=request.data)
        if not form.is_valid():
            raise exceptions.ValidationError(_flat_errors(form.errors))
        api_key = request.auth
        annotation = create_annotation(
            service=api_key.service.name,
            stage=api_key.stage,
            text=form.validated_data["text"].strip(),
            timestamp=form.validated_data.get("timestamp") or timezone.now(),
            key_prefix=api_key.prefix,
        )
        return Response(annotation_json(annotation), status=status.HTTP_201_CREATED)

    @extend_schema(
        operation_id="annotations_list",
        summary="The annotations of a time range, oldest first",
        parameters=[
            OpenApiParameter(
                "from",
                {"type": "string", "format": "date-time"},
                description="ISO-8601 start (default: 7 days before `to`)",
            ),
            OpenApiParameter(
                "to", {"type": "string", "format": "date-time"}, description="ISO-8601 end (default: now)"
            ),
        ],
        responses={200: AnnotationListSchema, **READ_RESPONSES},
        tags=["annotations"],
    )
    def get(self, request: Request) -> Response:
        """List the annotations with from <= timestamp <= to."""
        end = query_time(request.query_params, "to") or timezone.now()
        start = query_time(request.query_params, "from") or end - DEFAULT_SPAN
        if end < start:
            raise exceptions.ValidationError({"to": "the range must end after it starts"})
        found = annotations_between(start, end, limit=MAX_ANNOTATIONS + 1)
        return Response(
            {
                "annotations": [annotation_json(a) for a in found[:MAX_ANNOTATIONS]],
                "truncated": len(found) > MAX_ANNOTATIONS,
            }
        )
