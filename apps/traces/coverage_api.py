"""GET /api/v1/coverage: per service, the share of its traffic that carries a correlation ID."""

from datetime import timedelta

from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import exceptions, serializers
from rest_framework.authentication import SessionAuthentication
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.accounts.auth import PersonalTokenAuthentication
from apps.accounts.permissions import HasRole
from apps.accounts.roles import SUPPORT
from apps.common.openapi import READ_RESPONSES
from apps.common.params import query_time

from .coverage import COVERAGE_THRESHOLD, correlation_coverage

DEFAULT_SPAN = timedelta(days=1)
TIME = {"type": "string", "format": "date-time"}

ServiceCoverageSchema = inline_serializer(
    "ServiceCoverage",
    fields={
        "service": serializers.CharField(),
        "events": serializers.IntegerField(
            min_value=1, help_text="Metric events and log lines in the range."
        ),
        "with_correlation_id": serializers.IntegerField(min_value=0),
        "share": serializers.FloatField(min_value=0, max_value=1, help_text="with_correlation_id / events."),
        "trails": serializers.IntegerField(min_value=0, help_text="Distinct correlation IDs carried."),
        "started": serializers.IntegerField(
            min_value=0,
            help_text="Trails whose first event in the range is this service's: it made the ID instead of "
            "continuing one (the entry point should; a service behind it should not).",
        ),
        "continued": serializers.IntegerField(min_value=0, help_text="trails - started."),
        "flagged": serializers.BooleanField(help_text=f"share below {COVERAGE_THRESHOLD:.0%}."),
    },
)
CoverageSchema = inline_serializer(
    "Coverage",
    fields={
        "services": serializers.ListField(child=ServiceCoverageSchema),
        "from": serializers.DateTimeField(),
        "to": serializers.DateTimeField(),
        "threshold": serializers.FloatField(),
    },
)


class CoverageAPI(APIView):
    authentication_classes = [PersonalTokenAuthentication, SessionAuthentication]
    permission_classes = [IsAuthenticated, HasRole]
    required_roles = (SUPPORT,)

    @extend_schema(
        operation_id="correlation_coverage",
        summary="How much of each service's traffic carries a correlation ID",
        parameters=[
            OpenApiParameter("from", TIME, description="ISO-8601 start (default: a day before `to`)"),
            OpenApiParameter("to", TIME, description="ISO-8601 end, excluded (default: now)"),
        ],
        responses={200: CoverageSchema, **READ_RESPONSES},
        tags=["traces"],
    )
    def get(self, request: Request) -> Response:
        end = query_time(request.query_params, "to") or timezone.now()
        start = query_time(request.query_params, "from") or end - DEFAULT_SPAN
        if end < start:
            raise exceptions.ValidationError({"to": "the range must end after it starts"})
        services = correlation_coverage(start=start, end=end)
        return Response(
            {
                "services": [s.as_json() for s in services],
                "from": start,
                "to": end,
                "threshold": COVERAGE_THRESHOLD,
            }
        )
