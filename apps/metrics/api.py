"""GET /api/v1/metrics/series: a measure over time from the rollups, for charts and scripts."""

from datetime import timedelta

from django.utils import timezone
from django.utils.dateparse import parse_datetime
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import exceptions, serializers
from rest_framework.authentication import SessionAuthentication
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.accounts.auth import PersonalTokenAuthentication
from apps.accounts.permissions import HasRole
from apps.accounts.roles import PRODUCT

from .selectors import SeriesQuery, SeriesQueryError, series_for

DEFAULT_SPAN = timedelta(days=7)

SeriesResponse = inline_serializer(
    "SeriesResponse",
    fields={"series": serializers.ListField(child=serializers.DictField())},
)


def series_query_from_params(params) -> SeriesQuery:
    """Build a SeriesQuery from query parameters; raise ValidationError naming the bad one."""
    events = tuple(e.strip() for raw in params.getlist("event") for e in raw.split(",") if e.strip())
    now = timezone.now()
    end = _time(params, "to") or now
    start = _time(params, "from") or end - DEFAULT_SPAN
    filters = []
    for raw in params.getlist("filter"):
        name, sep, value = raw.partition("=")
        if not sep or not name.strip():
            raise exceptions.ValidationError({"filter": f"{raw!r}: use filter=<property>=<value>"})
        filters.append((name.strip(), value))
    for name in ("event", "filter", "measure", "interval", "breakdown"):
        if any("\x00" in value for value in params.getlist(name)):
            raise exceptions.ValidationError({name: "must not contain NUL characters"})
    top = params.get("top", "5")
    if not top.isdigit():
        raise exceptions.ValidationError({"top": "must be a whole number"})
    return SeriesQuery(
        events=events,
        measure=params.get("measure", "count"),
        interval=params.get("interval", "day"),
        start=start,
        end=end,
        breakdown=params.get("breakdown", ""),
        filters=tuple(filters),
        top_n=int(top),
        compare=params.get("compare", "") in ("1", "true", "yes", "on"),
    )


def _time(params, name: str):
    raw = params.get(name, "").strip()
    if not raw:
        return None
    value = parse_datetime(raw.replace(" ", "+"))
    if value is None:
        raise exceptions.ValidationError({name: f"{raw!r} is not an ISO-8601 date and time"})
    if value.tzinfo is None:
        raise exceptions.ValidationError({name: "give a time zone, e.g. 2026-11-26T00:00:00Z"})
    return value


class SeriesAPI(APIView):
    authentication_classes = [PersonalTokenAuthentication, SessionAuthentication]
    permission_classes = [IsAuthenticated, HasRole]
    required_roles = (PRODUCT,)

    @extend_schema(
        operation_id="metrics_series",
        summary="A measure over time, optionally broken down",
        parameters=[
            OpenApiParameter("event", str, many=True, description="one or more event names"),
            OpenApiParameter("measure", str, description="count | unique_users | sum:<prop> | avg:<prop>"),
            OpenApiParameter("interval", str, enum=["minute", "hour", "day", "week"]),
            OpenApiParameter("from", str, description="ISO-8601 start (default: 7 days before `to`)"),
            OpenApiParameter("to", str, description="ISO-8601 end (default: now)"),
            OpenApiParameter("breakdown", str, description="service | stage | event | prop:<name>"),
            OpenApiParameter("filter", str, many=True, description="<property>=<value>"),
            OpenApiParameter("top", int, description="breakdown values shown before 'other' (1-50)"),
            OpenApiParameter("compare", bool, description="add the previous period"),
        ],
        responses={200: SeriesResponse},
        tags=["metrics"],
    )
    def get(self, request: Request) -> Response:
        query = series_query_from_params(request.query_params)
        try:
            series = series_for(query)
        except SeriesQueryError as exc:
            raise exceptions.ValidationError({"detail": str(exc)}) from exc
        return Response({"series": [s.as_json() for s in series]})
