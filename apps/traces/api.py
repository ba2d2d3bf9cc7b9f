"""GET /api/v1/traces/<correlation_id> and /api/v1/users/<user_id>/requests."""

from django.utils.dateparse import parse_datetime
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import exceptions, serializers
from rest_framework.authentication import SessionAuthentication
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.accounts.auth import PersonalTokenAuthentication
from apps.accounts.models import AuditEntry
from apps.accounts.permissions import HasRole
from apps.accounts.roles import SUPPORT
from apps.accounts.services import audit_record

from . import selectors

MAX_PER_PAGE = 200

TraceSchema = inline_serializer(
    "Trace",
    fields={
        "correlation_id": serializers.CharField(),
        "events": serializers.ListField(child=serializers.DictField()),
    },
)
UserRequestsSchema = inline_serializer(
    "UserRequests",
    fields={
        "user_id": serializers.CharField(),
        "requests": serializers.ListField(child=serializers.DictField()),
        "page": serializers.IntegerField(),
        "per_page": serializers.IntegerField(),
        "total": serializers.IntegerField(),
        "has_next": serializers.BooleanField(),
    },
)


class _SupportAPI(APIView):
    authentication_classes = [PersonalTokenAuthentication, SessionAuthentication]
    permission_classes = [IsAuthenticated, HasRole]
    required_roles = (SUPPORT,)


class TraceAPI(_SupportAPI):
    @extend_schema(
        operation_id="trace_get",
        summary="The events of one correlation ID, in time order",
        parameters=[OpenApiParameter("download", bool, description="answer as a file download")],
        responses={200: TraceSchema},
        tags=["traces"],
    )
    def get(self, request: Request, correlation_id: str) -> Response:
        audit_record(request=request, action=AuditEntry.TRAIL_VIEWED, target=correlation_id, via="api")
        events = selectors.trail_get(correlation_id=correlation_id)
        if not events:
            raise exceptions.NotFound(
                f"No events have the correlation ID {correlation_id!r}. Check it was copied whole; events "
                "older than the retention period are deleted."
            )
        response = Response({"correlation_id": correlation_id, "events": [ev.as_json() for ev in events]})
        if request.query_params.get("download"):
            safe_name = "".join(c if c.isalnum() or c in "-_." else "_" for c in correlation_id)[:100]
            response["Content-Disposition"] = f'attachment; filename="trace-{safe_name}.json"'
        return response


class UserRequestsAPI(_SupportAPI):
    @extend_schema(
        operation_id="user_requests",
        summary="One user's requests, newest first",
        parameters=[
            OpenApiParameter("from", str, description="ISO-8601 start"),
            OpenApiParameter("to", str, description="ISO-8601 end (exclusive)"),
            OpenApiParameter("page", int),
            OpenApiParameter("per_page", int, description=f"at most {MAX_PER_PAGE}"),
        ],
        responses={200: UserRequestsSchema},
        tags=["traces"],
    )
    def get(self, request: Request, user_id: str) -> Response:
        audit_record(request=request, action=AuditEntry.USER_VIEWED, target=user_id, via="api")
        params = request.query_params
        start, end = _time(params, "from"), _time(params, "to")
        page = _positive_int(params, "page", 1, 10_000)
        per_page = _positive_int(params, "per_page", 50, MAX_PER_PAGE)
        result = selectors.user_requests(user_id=user_id, start=start, end=end, page=page, per_page=per_page)
        return Response(
            {
                "user_id": user_id,
                "requests": [summary.as_json() for summary in result.requests],
                "page": result.page,
                "per_page": result.per_page,
                "total": result.total,
                "has_next": result.has_next,
            }
        )


def _time(params, name: str):
    raw = params.get(name, "").strip()
    if not raw:
        return None
    value = parse_datetime(raw.replace(" ", "+"))  # a "+" in a query string arrives as a space
    if value is None:
        raise exceptions.ValidationError({name: f"{raw!r} is not an ISO-8601 date and time"})
    if value.tzinfo is None:
        raise exceptions.ValidationError({name: "give a time zone, e.g. 2026-11-26T10:00:00Z"})
    return value


def _positive_int(params, name: str, default: int, maximum: int) -> int:
    raw = params.get(name, "")
    if raw == "":
        return default
    if not raw.isdigit() or not 1 <= int(raw) <= maximum:
        raise exceptions.ValidationError({name: f"must be a whole number from 1 to {maximum}"})
    return int(raw)
