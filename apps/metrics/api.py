"""GET /api/v1/metrics/series: a measure over time from the rollups, for charts and scripts; and
GET /api/v1/metrics/users: who is behind one point of such a series."""

from datetime import datetime, timedelta

from django.utils import timezone
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema, inline_serializer
from rest_framework import exceptions, serializers
from rest_framework.authentication import SessionAuthentication
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.utils.urls import replace_query_param
from rest_framework.views import APIView

from apps.accounts.auth import PersonalTokenAuthentication
from apps.accounts.permissions import HasRole
from apps.accounts.roles import PRODUCT
from apps.common.openapi import READ_RESPONSES
from apps.common.params import query_bool, query_int, query_time

from . import query as query_language
from .buckets import INTERVALS
from .people import MAX_LIMIT as MAX_USERS
from .people import PointQuery, point_events, users_behind
from .selectors import KINDS, SeriesQuery, SeriesQueryError, series_for

DEFAULT_SPAN = timedelta(days=7)
MAX_TOP = 50

SeriesPointSchema = inline_serializer(
    "SeriesPoint",
    fields={
        "t": serializers.DateTimeField(help_text="Bucket start, UTC."),
        "v": serializers.FloatField(allow_null=True, help_text="null: an average over no events."),
    },
)
SeriesSchema = inline_serializer(
    "Series",
    fields={
        "name": serializers.CharField(
            help_text='"total", a breakdown value, or "other" for the rest; a previous-period series has the '
            "name of the current series it compares with. Read `kind`, never the name, to tell them apart."
        ),
        "kind": serializers.ChoiceField(
            choices=KINDS,
            help_text="value: one breakdown value; rest: every value outside the top N; total: no breakdown; "
            "previous: the period before (listed after the current series, in the same order).",
        ),
        "points": serializers.ListField(child=SeriesPointSchema),
    },
)
SeriesResponse = inline_serializer(
    "SeriesResponse", fields={"series": serializers.ListField(child=SeriesSchema)}
)

# What the parser below accepts, so generated requests and the docs agree with it. Patterns are searched,
# not anchored, unless they say so. No NUL anywhere: PostgreSQL cannot store or compare it.
# What str.strip() removes, spelled out: regex dialects disagree on what \s matches (\x1c-\x1f, \x85).
_SPACE = "\\t\\n\\x0b\\x0c\\r\\x1c-\\x1f \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000"
EVENT_PATTERN = f"^[^\\x00]*[^,{_SPACE}\\x00][^\\x00]*$"  # at least one name once split on commas
# A property name: no control characters, at least one that is not a space (query.name's rule).
_NAME = f"[^\\x00-\\x1f\\x7f]*[^{_SPACE}\\x00-\\x1f\\x7f][^\\x00-\\x1f\\x7f]*"
FILTER_PATTERN = f"^[^=\\x00-\\x1f\\x7f]*[^={_SPACE}\\x00-\\x1f\\x7f][^=\\x00-\\x1f\\x7f]*=[^\\x00]*$"
MEASURE_PATTERN = f"^(count|unique_users|(sum|avg):{_NAME})$"
BREAKDOWN_PATTERN = f"^(service|stage|event|prop:{_NAME})?$"
TIME = {"type": "string", "format": "date-time"}


def series_query_from_params(params) -> SeriesQuery:
    """Build a SeriesQuery from query parameters; raise ValidationError naming the bad one."""
    for name in ("event", "filter", "measure", "interval", "breakdown"):
        if any("\x00" in value for value in params.getlist(name)):
            raise exceptions.ValidationError({name: "must not contain NUL characters"})
    events = tuple(e.strip() for raw in params.getlist("event") for e in raw.split(",") if e.strip())
    start = query_time(params, "from")
    end = query_time(params, "to") or timezone.now()
    start = start or _earlier(end, DEFAULT_SPAN, "to")
    compare = query_bool(params, "compare")
    if compare and start < end:
        _earlier(start, end - start, "from")  # the previous period must exist on the calendar
    try:
        filters = [query_language.property_filter(raw) for raw in params.getlist("filter")]
    except query_language.QueryError as refused:
        raise exceptions.ValidationError({refused.parameter: refused.message}) from None
    return SeriesQuery(
        events=events,
        measure=params.get("measure", "count"),
        interval=params.get("interval", "day"),
        start=start,
        end=end,
        breakdown=params.get("breakdown", ""),
        filters=tuple(filters),
        top_n=query_int(params, "top", default=5, minimum=1, maximum=MAX_TOP),
        compare=compare,
    )


TOO_EARLY = "is too early: the range (and with compare, the period before it) must start after year 1"


def _earlier(moment: datetime, span: timedelta, name: str) -> datetime:
    """Return moment - span; a ValidationError naming the parameter when that is before year 1."""
    try:
        return moment - span
    except OverflowError:
        raise exceptions.ValidationError({name: TOO_EARLY}) from None


class SeriesAPI(APIView):
    authentication_classes = [PersonalTokenAuthentication, SessionAuthentication]
    permission_classes = [IsAuthenticated, HasRole]
    required_roles = (PRODUCT,)

    @extend_schema(
        operation_id="metrics_series",
        summary="A measure over time, optionally broken down",
        parameters=[
            OpenApiParameter(
                "event",
                {"type": "array", "items": {"type": "string", "pattern": EVENT_PATTERN}, "minItems": 1},
                required=True,
                description="one or more event names (repeat the parameter, or separate them with commas)",
                examples=[OpenApiExample("An event", value=["search_made"])],
            ),
            OpenApiParameter(
                "measure",
                {"type": "string", "pattern": MEASURE_PATTERN},
                description="count (default) | unique_users | sum:<prop> | avg:<prop>",
            ),
            OpenApiParameter(
                "interval", {"type": "string", "enum": list(INTERVALS)}, description="default day"
            ),
            OpenApiParameter(
                "from",
                TIME,
                description="ISO-8601 start (default: 7 days before `to`)",
            ),
            OpenApiParameter("to", TIME, description="ISO-8601 end (default: now)"),
            OpenApiParameter(
                "breakdown",
                {"type": "string", "pattern": BREAKDOWN_PATTERN},
                description="service | stage | event | prop:<name>",
            ),
            OpenApiParameter(
                "filter",
                {"type": "array", "items": {"type": "string", "pattern": FILTER_PATTERN}},
                description="<property>=<value>",
            ),
            OpenApiParameter(
                "top",
                {"type": "integer", "minimum": 1, "maximum": MAX_TOP},
                description="breakdown values shown before 'other' (default 5)",
            ),
            OpenApiParameter("compare", bool, description="add the previous period"),
        ],
        responses={200: SeriesResponse, **READ_RESPONSES},
        tags=["metrics"],
    )
    def get(self, request: Request) -> Response:
        query = series_query_from_params(request.query_params)
        try:
            series = series_for(query)
        except SeriesQueryError as exc:
            raise exceptions.ValidationError({"detail": str(exc)}) from exc
        return Response({"series": [s.as_json() for s in series]})


# --- GET /api/v1/metrics/users: who is behind a point ------------------------------------------------------

DEFAULT_USERS = 50
MAX_OFFSET = 100_000
# Parameters each valid alone but not together (what JSON Schema cannot say; the fuzz test knows them).
POINT_REFUSALS = {
    "range": "must be after from",
    "value": "a value needs a breakdown (service, stage, event or prop:<property>)",
    "rest": "the rest group needs a breakdown",
    "both": "give either a value or rest, not both",
    "exclude": "exclude lists the top values the rest group leaves out: add rest=true",
}

PointUserSchema = inline_serializer(
    "PointUser",
    fields={
        "user_id": serializers.CharField(),
        "count": serializers.IntegerField(help_text="The user's events in the point."),
        "first": serializers.DateTimeField(help_text="The user's first event in the point, UTC."),
        "last": serializers.DateTimeField(help_text="The user's last event in the point, UTC."),
    },
)
UsersResponse = inline_serializer(
    "PointUsersResponse",
    fields={
        "users": serializers.ListField(child=PointUserSchema),
        "next": serializers.URLField(allow_null=True, help_text="The next page, or null on the last one."),
    },
)


def point_query_from_params(params) -> PointQuery:
    """Build the PointQuery the parameters describe (the series' meaning); raise ValidationError naming the
    bad parameter."""
    for name in ("event", "filter", "breakdown", "value", "exclude"):
        if any("\x00" in value for value in params.getlist(name)):
            raise exceptions.ValidationError({name: "must not contain NUL characters"})
    events = tuple(e.strip() for raw in params.getlist("event") for e in raw.split(",") if e.strip())
    if "event" in params and not events:
        raise exceptions.ValidationError({"event": "give an event name, or leave event out for every event"})
    end = query_time(params, "to") or timezone.now()
    start = query_time(params, "from") or _earlier(end, DEFAULT_SPAN, "to")
    if end <= start:
        raise exceptions.ValidationError({"to": POINT_REFUSALS["range"]})
    try:
        breakdown = query_language.breakdown(params.get("breakdown", ""))
        filters = tuple(query_language.property_filter(raw) for raw in params.getlist("filter"))
    except query_language.QueryError as refused:
        raise exceptions.ValidationError({refused.parameter: refused.message}) from None
    value = params.get("value")
    rest = query_bool(params, "rest")
    exclude = tuple(params.getlist("exclude"))
    if value is not None and not breakdown:
        raise exceptions.ValidationError({"value": POINT_REFUSALS["value"]})
    if rest and not breakdown:
        raise exceptions.ValidationError({"rest": POINT_REFUSALS["rest"]})
    if rest and value is not None:
        raise exceptions.ValidationError({"rest": POINT_REFUSALS["both"]})
    if exclude and not rest:
        raise exceptions.ValidationError({"exclude": POINT_REFUSALS["exclude"]})
    if len(exclude) > MAX_TOP:
        raise exceptions.ValidationError({"exclude": f"at most {MAX_TOP} values (the top N of a series)"})
    return PointQuery(
        events=events,
        start=start,
        end=end,
        breakdown=breakdown,
        value=value,
        rest=rest,
        exclude=exclude,
        filters=filters,
    )


class PointUsersAPI(APIView):
    authentication_classes = [PersonalTokenAuthentication, SessionAuthentication]
    permission_classes = [IsAuthenticated, HasRole]
    required_roles = (PRODUCT,)

    @extend_schema(
        operation_id="metrics_users",
        summary="Who is behind a point of a chart, most active first",
        description="The users of the events a series counted in one point: the same events, filters and "
        "breakdown group as /api/v1/metrics/series, over [from, to) (a point's bucket). Events without a "
        "user ID are counted in the series but listed nowhere.",
        parameters=[
            OpenApiParameter(
                "event",
                {"type": "array", "items": {"type": "string", "pattern": EVENT_PATTERN}, "minItems": 1},
                description="one or more event names (repeat the parameter, or separate them with commas); "
                "left out: every event (as the overview's daily active users)",
                examples=[OpenApiExample("An event", value=["search_made"])],
            ),
            OpenApiParameter("from", TIME, description="ISO-8601 start: the point's bucket start"),
            OpenApiParameter("to", TIME, description="ISO-8601 end, excluded: the bucket's end"),
            OpenApiParameter(
                "breakdown",
                {"type": "string", "pattern": BREAKDOWN_PATTERN},
                description="service | stage | event | prop:<name>, as the series was broken down",
            ),
            OpenApiParameter(
                "value",
                {"type": "string", "pattern": "^[^\\x00]*$"},
                description="the breakdown value of the point's series ((none): events without the property)",
            ),
            OpenApiParameter("rest", bool, description="the series' rest group: every value but `exclude`"),
            OpenApiParameter(
                "exclude",
                {"type": "array", "items": {"type": "string", "pattern": "^[^\\x00]*$"}, "maxItems": MAX_TOP},
                description="with rest: the top values the rest leaves out",
            ),
            OpenApiParameter(
                "filter",
                {"type": "array", "items": {"type": "string", "pattern": FILTER_PATTERN}},
                description="<property>=<value>",
            ),
            OpenApiParameter(
                "limit",
                {"type": "integer", "minimum": 1, "maximum": MAX_USERS},
                description=f"users per page (default {DEFAULT_USERS})",
            ),
            OpenApiParameter(
                "offset",
                {"type": "integer", "minimum": 0, "maximum": MAX_OFFSET},
                description="users skipped",
            ),
        ],
        responses={200: UsersResponse, **READ_RESPONSES},
        tags=["metrics"],
    )
    def get(self, request: Request) -> Response:
        point = point_query_from_params(request.query_params)
        limit = query_int(request.query_params, "limit", default=DEFAULT_USERS, minimum=1, maximum=MAX_USERS)
        offset = query_int(request.query_params, "offset", default=0, minimum=0, maximum=MAX_OFFSET)
        page = users_behind(events=point_events(point), limit=limit, offset=offset)
        next_url = None
        if page.has_next and offset + limit <= MAX_OFFSET:
            next_url = replace_query_param(request.build_absolute_uri(), "offset", offset + limit)
        return Response({"users": [u.as_json() for u in page.users], "next": next_url})
