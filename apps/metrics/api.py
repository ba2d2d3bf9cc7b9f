"""GET /api/v1/metrics/series: a measure over time from the rollups, for charts and scripts;
GET /api/v1/metrics/users: who is behind one point of such a series; and the product analyses over raw
events: /api/v1/metrics/funnel and /api/v1/metrics/retention."""

from datetime import datetime, timedelta

from django.db.models import QuerySet
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
from .eventrows import EventFilter
from .funnel import MAX_WINDOW, OUTCOMES, FunnelQuery, funnel_for
from .people import MAX_LIMIT as MAX_USERS
from .people import FunnelStepPoint, PointQuery, funnel_step_people, point_events, users_behind
from .retention import RETENTION_INTERVALS, RetentionQuery, RetentionQueryError, retention_for
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
            'name of the current series it compares with; "(none)" for the events without the property '
            "(`absent`). Read `kind` and `absent`, never the name, to tell them apart."
        ),
        "kind": serializers.ChoiceField(
            choices=KINDS,
            help_text="value: one breakdown value; rest: every value outside the top N; total: no breakdown; "
            "previous: the period before (listed after the current series, in the same order).",
        ),
        "absent": serializers.BooleanField(
            help_text="true: the group of a property breakdown's events without the property (or with null), "
            'named "(none)"; an event that sends the text "(none)" is a value like any other (false). '
            "Its points' users: /api/v1/metrics/users with absent=true."
        ),
        "estimate": serializers.BooleanField(
            help_text="true: unique users estimated from HyperLogLog sketches, not counted exactly."
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
# A column, or a property: prop:<name>, or its bare name (prop: names one called like a column).
BREAKDOWN_PATTERN = f"^({_NAME})?$"
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
                description="service | stage | event | prop:<name> | <name> (a property; prop: for one "
                "named service, stage or event)",
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


# --- funnels and retention -------------------------------------------------------------------------------

_STEP = f"[^,\\x00]*[^,{_SPACE}\\x00][^,\\x00]*"
STEPS_PATTERN = f"^{_STEP}(,{_STEP}){{1,7}}$"  # 2 to 8 comma-separated names, none blank
NAME_PATTERN = f"^[^\\x00]*[^{_SPACE}\\x00][^\\x00]*$"
ANALYSIS_BREAKDOWN_PATTERN = f"^(?![{_SPACE}]*event[{_SPACE}]*$)({_NAME})?$"  # as a series', but not event
DEFAULT_WINDOW = 86_400
MAX_GROUPS = 50
RETENTION_SPAN = timedelta(days=30)


class FunnelStepSchema(serializers.Serializer):
    """One step of a funnel's answer (one class, so the schema names one component; each list holds its
    own instance, as DRF binds a serializer to the one field that holds it)."""

    event = serializers.CharField()
    count = serializers.IntegerField(help_text="Users who reached this step.")
    conversion = serializers.FloatField(allow_null=True, help_text="count ÷ step-1 count (0 to 1).")
    conversion_from_previous = serializers.FloatField(
        allow_null=True, help_text="count ÷ the previous step's count (0 to 1)."
    )
    median_seconds = serializers.FloatField(
        allow_null=True, help_text="Median seconds from the previous step; null for step 1."
    )

    class Meta:
        ref_name = "FunnelStep"


FunnelGroupSchema = inline_serializer(
    "FunnelGroup",
    fields={
        "name": serializers.CharField(
            help_text='The breakdown value of the users\' step-1 event; "(none)" when `absent`.'
        ),
        "kind": serializers.ChoiceField(choices=["value"]),
        "absent": serializers.BooleanField(
            help_text='true: the users whose step-1 event lacks the property (a value "(none)" is false); '
            "their users: /api/v1/metrics/users with absent=true instead of group."
        ),
        "steps": serializers.ListField(child=FunnelStepSchema()),
    },
)
FunnelResponse = inline_serializer(
    "FunnelResponse",
    fields={
        "steps": serializers.ListField(
            child=FunnelStepSchema(), help_text="Every user, whatever the breakdown."
        ),
        "groups": serializers.ListField(
            child=FunnelGroupSchema,
            required=False,
            help_text="With a breakdown: the top groups by step-1 users.",
        ),
        "other_groups": serializers.IntegerField(required=False, help_text="Groups left out of `groups`."),
    },
)
CohortSchema = inline_serializer(
    "Cohort",
    fields={
        "start": serializers.DateTimeField(help_text="The cohort's bucket start, UTC."),
        "size": serializers.IntegerField(help_text="Users whose first start_event fell in the bucket."),
        "values": serializers.ListField(
            child=serializers.IntegerField(),
            help_text="values[k]: of them, who did return_event k intervals later.",
        ),
        "percentages": serializers.ListField(
            child=serializers.FloatField(allow_null=True),
            help_text="values ÷ size × 100; null for an empty cohort.",
        ),
    },
)
RetentionResponse = inline_serializer(
    "RetentionResponse",
    fields={
        "interval": serializers.ChoiceField(choices=RETENTION_INTERVALS),
        "cohorts": serializers.ListField(child=CohortSchema),
    },
)
FILTER_PARAMETERS = [
    OpenApiParameter(
        "filter",
        {"type": "array", "items": {"type": "string", "pattern": FILTER_PATTERN}},
        description="<property>=<value>: only events with this property value count",
    ),
    OpenApiParameter(
        "service", {"type": "string", "pattern": "^[^\\x00]*$"}, description="only this service's events"
    ),
    OpenApiParameter(
        "stage", {"type": "string", "pattern": "^[^\\x00]*$"}, description="only this stage's events"
    ),
]


def _refused(refused: query_language.QueryError) -> exceptions.ValidationError:
    return exceptions.ValidationError({refused.parameter: refused.message})


def _no_nul(params, names: tuple[str, ...]) -> None:
    for name in names:
        if any("\x00" in value for value in params.getlist(name)):
            raise exceptions.ValidationError({name: "must not contain NUL characters"})


def _range(params, default_span: timedelta) -> tuple[datetime, datetime]:
    start = query_time(params, "from")
    end = query_time(params, "to") or timezone.now()
    start = start or _earlier(end, default_span, "from" if "from" in params else "to")
    if end <= start:
        raise exceptions.ValidationError({"to": "the range must end after it starts"})
    return start, end


def _event_filter(params) -> EventFilter:
    try:
        filters = tuple(query_language.property_filter(raw) for raw in params.getlist("filter"))
    except query_language.QueryError as refused:
        raise _refused(refused) from None
    return EventFilter(
        properties=filters, service=params.get("service", "").strip(), stage=params.get("stage", "").strip()
    )


def funnel_query_from_params(params) -> FunnelQuery:
    """Build a FunnelQuery from query parameters; raise ValidationError naming the bad one."""
    _no_nul(params, ("steps", "breakdown", "filter", "service", "stage"))
    if "steps" not in params:
        raise exceptions.ValidationError({"steps": "give 2 to 8 event names separated by commas"})
    try:
        steps = query_language.funnel_steps(params["steps"])
        breakdown = query_language.analysis_breakdown(params.get("breakdown", ""))
    except query_language.QueryError as refused:
        raise _refused(refused) from None
    window = query_int(
        params, "window", default=DEFAULT_WINDOW, minimum=1, maximum=int(MAX_WINDOW.total_seconds())
    )
    start, end = _range(params, DEFAULT_SPAN)
    return FunnelQuery(
        steps=steps,
        window=timedelta(seconds=window),
        start=start,
        end=end,
        breakdown=breakdown,
        where=_event_filter(params),
        top_n=query_int(params, "top", default=10, minimum=1, maximum=MAX_GROUPS),
    )


def retention_query_from_params(params) -> RetentionQuery:
    """Build a RetentionQuery from query parameters; raise ValidationError naming the bad one."""
    _no_nul(params, ("start_event", "return_event", "interval", "filter", "service", "stage"))
    names = {}
    for name in ("start_event", "return_event"):
        if not params.get(name, "").strip():
            raise exceptions.ValidationError({name: "give an event name"})
        names[name] = params[name].strip()
    interval = params.get("interval", "day")
    if interval not in RETENTION_INTERVALS:
        raise exceptions.ValidationError({"interval": "use day or week"})
    start, end = _range(params, RETENTION_SPAN)
    return RetentionQuery(
        start_event=names["start_event"],
        return_event=names["return_event"],
        start=start,
        end=end,
        interval=interval,
        where=_event_filter(params),
    )


RANGE_PARAMETERS = [
    OpenApiParameter("from", TIME, description="ISO-8601 start (default: 7 days before `to`; retention 30)"),
    OpenApiParameter("to", TIME, description="ISO-8601 end (default: now)"),
]


class FunnelAPI(APIView):
    authentication_classes = [PersonalTokenAuthentication, SessionAuthentication]
    permission_classes = [IsAuthenticated, HasRole]
    required_roles = (PRODUCT,)

    @extend_schema(
        operation_id="metrics_funnel",
        summary="Users through ordered steps within a conversion window",
        description="A user enters at their first step-1 event in the range; each next step is their "
        "earliest such event after the previous step's and within `window` seconds of step 1 (README)",
        parameters=[
            OpenApiParameter(
                "steps",
                {"type": "string", "pattern": STEPS_PATTERN},
                required=True,
                description="2 to 8 event names, in order, separated by commas",
                examples=[
                    OpenApiExample("Three steps", value="search_made,forecast_requested,report_exported")
                ],
            ),
            OpenApiParameter(
                "window",
                {"type": "integer", "minimum": 1, "maximum": int(MAX_WINDOW.total_seconds())},
                description=f"seconds from step 1 by which every step must happen (default {DEFAULT_WINDOW})",
            ),
            *RANGE_PARAMETERS,
            OpenApiParameter(
                "breakdown",
                {"type": "string", "pattern": ANALYSIS_BREAKDOWN_PATTERN},
                description="service | stage | prop:<name> | <name> (a property), of each user's step-1 "
                "event",
            ),
            OpenApiParameter(
                "top",
                {"type": "integer", "minimum": 1, "maximum": MAX_GROUPS},
                description="breakdown groups returned, most step-1 users first (default 10)",
            ),
            *FILTER_PARAMETERS,
        ],
        responses={200: FunnelResponse, **READ_RESPONSES},
        tags=["metrics"],
    )
    def get(self, request: Request) -> Response:
        return Response(funnel_for(funnel_query_from_params(request.query_params)).as_json())


class RetentionAPI(APIView):
    authentication_classes = [PersonalTokenAuthentication, SessionAuthentication]
    permission_classes = [IsAuthenticated, HasRole]
    required_roles = (PRODUCT,)

    @extend_schema(
        operation_id="metrics_retention",
        summary="Cohorts by first start_event, and who returned each interval after",
        parameters=[
            OpenApiParameter(
                "start_event",
                {"type": "string", "pattern": NAME_PATTERN},
                required=True,
                description="the event that puts a user in a cohort (their first in the range)",
                examples=[OpenApiExample("An event", value="login_succeeded")],
            ),
            OpenApiParameter(
                "return_event",
                {"type": "string", "pattern": NAME_PATTERN},
                required=True,
                description="the event that counts as coming back",
                examples=[OpenApiExample("An event", value="search_made")],
            ),
            OpenApiParameter(
                "interval", {"type": "string", "enum": list(RETENTION_INTERVALS)}, description="default day"
            ),
            *RANGE_PARAMETERS,
            *FILTER_PARAMETERS,
        ],
        responses={200: RetentionResponse, **READ_RESPONSES},
        tags=["metrics"],
    )
    def get(self, request: Request) -> Response:
        query = retention_query_from_params(request.query_params)
        try:
            retention = retention_for(query)
        except RetentionQueryError as refused:
            raise exceptions.ValidationError({"detail": str(refused)}) from refused
        return Response(retention.as_json())


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
    "funnel_point": "a funnel step is named by steps and step; event, value, rest, exclude: a series' point",
    "step": "give the step whose users to list: 1 for the funnel's first, up to the number of steps",
    "funnel_only": "step, outcome, window, group, service and stage describe a funnel step: give steps too",
    "dropped_at_1": "nobody drops at step 1: it is where the funnel starts",
    "group": "a group is a value of the funnel's breakdown: add breakdown",
    "funnel_breakdown": "A funnel's steps are events: break it down by service, stage or a property.",
    "absent": "absent is the group of events without a property: it needs breakdown=prop:<property>",
    "absent_and": "give one group: a value (group), absent or rest, not two",
    "exclude_absent": "exclude_absent leaves the absent group out of the rest group: add rest=true",
}
# A series' point has no service or stage filter (its breakdown groups say which): refused, never ignored.
FUNNEL_POINT_PARAMS = ("step", "outcome", "window", "group", "service", "stage")
SERIES_POINT_PARAMS = ("event", "value", "rest", "exclude", "exclude_absent")

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
    absent = _absent(params, breakdown, value is not None or rest)
    exclude_absent = query_bool(params, "exclude_absent")
    if exclude_absent and not rest:
        raise exceptions.ValidationError({"exclude_absent": POINT_REFUSALS["exclude_absent"]})
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
        absent=absent,
        exclude_absent=exclude_absent,
    )


def _absent(params, breakdown: str, other_group: bool) -> bool:
    """Read `absent` (the group of events without the broken-down property); refuse it without a property
    breakdown or beside another group."""
    absent = query_bool(params, "absent")
    if absent and not breakdown.startswith("prop:"):
        raise exceptions.ValidationError({"absent": POINT_REFUSALS["absent"]})
    if absent and other_group:
        raise exceptions.ValidationError({"absent": POINT_REFUSALS["absent_and"]})
    return absent


def funnel_step_point_from_params(params) -> FunnelStepPoint:
    """Build the funnel step whose users the parameters ask for; raise ValidationError naming the bad one."""
    if any(name in params for name in SERIES_POINT_PARAMS):
        raise exceptions.ValidationError({"steps": POINT_REFUSALS["funnel_point"]})
    query = funnel_query_from_params(params)
    if "step" not in params:
        raise exceptions.ValidationError({"step": POINT_REFUSALS["step"]})
    step = query_int(params, "step", default=1, minimum=1, maximum=8)
    if step > len(query.steps):
        raise exceptions.ValidationError({"step": POINT_REFUSALS["step"]})
    outcome = params.get("outcome", "converted")
    if outcome not in OUTCOMES:
        raise exceptions.ValidationError({"outcome": f"one of {', '.join(OUTCOMES)}"})
    if outcome == "dropped" and step == 1:
        raise exceptions.ValidationError({"outcome": POINT_REFUSALS["dropped_at_1"]})
    group = params.get("group")
    if group is not None and not query.breakdown:
        raise exceptions.ValidationError({"group": POINT_REFUSALS["group"]})
    if group is not None and "\x00" in group:
        raise exceptions.ValidationError({"group": "must not contain NUL characters"})
    absent = _absent(params, query.breakdown, group is not None)
    return FunnelStepPoint(query=query, step=step, outcome=outcome, group=group, absent=absent)


def people_from_params(params) -> tuple[PointQuery | FunnelStepPoint, QuerySet, list[str] | None]:
    """Read a series' point or a funnel's step (`steps` given) from the parameters; return it, the events
    to count and, for a funnel step, the users to list (None: everyone behind the events)."""
    if "steps" in params:
        funnel_point = funnel_step_point_from_params(params)
        events, among = funnel_step_people(funnel_point)
        return funnel_point, events, among
    if any(name in params for name in FUNNEL_POINT_PARAMS):
        raise exceptions.ValidationError({"steps": POINT_REFUSALS["funnel_only"]})
    point = point_query_from_params(params)
    return point, point_events(point), None


class PointUsersAPI(APIView):
    authentication_classes = [PersonalTokenAuthentication, SessionAuthentication]
    permission_classes = [IsAuthenticated, HasRole]
    required_roles = (PRODUCT,)

    @extend_schema(
        operation_id="metrics_users",
        summary="Who is behind a point of a chart, most active first",
        description="The users of the events a series counted in one point: the same events, filters and "
        "breakdown group as /api/v1/metrics/series, over [from, to) (a point's bucket). Events without a "
        "user ID are counted in the series but listed nowhere. Or, with `steps` (and `step`, `outcome`, "
        "`window`, `group`, the funnel's `breakdown` and filters, as /api/v1/metrics/funnel), the users of "
        "one funnel step: those who reached it, or who reached the step before it and not this one "
        "(dropped); "
        "their counts are of the step's event (the last one reached, for those who dropped).",
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
                description="service | stage | event | prop:<name> | <name>, as the series was broken down",
            ),
            OpenApiParameter(
                "value",
                {"type": "string", "pattern": "^[^\\x00]*$"},
                description="the breakdown value of the point's series (the text itself: a series with "
                "`absent` is asked for with absent=true)",
            ),
            OpenApiParameter(
                "absent",
                bool,
                description="with breakdown=prop:<name>: the group of events without the property (a series "
                "or a funnel group with `absent`), instead of value, group or rest",
            ),
            OpenApiParameter("rest", bool, description="the series' rest group: every value but `exclude`"),
            OpenApiParameter(
                "exclude",
                {"type": "array", "items": {"type": "string", "pattern": "^[^\\x00]*$"}, "maxItems": MAX_TOP},
                description="with rest: the top values the rest leaves out",
            ),
            OpenApiParameter(
                "exclude_absent",
                bool,
                description="with rest: the rest leaves out the absent group too (it is one of the top N)",
            ),
            OpenApiParameter(
                "filter",
                {"type": "array", "items": {"type": "string", "pattern": FILTER_PATTERN}},
                description="<property>=<value>",
            ),
            OpenApiParameter(
                "steps",
                {"type": "string", "pattern": STEPS_PATTERN},
                description="a funnel's steps, comma-separated (as /api/v1/metrics/funnel)",
            ),
            OpenApiParameter(
                "step",
                {"type": "integer", "minimum": 1, "maximum": 8},
                description="with steps: 1 for the first",
            ),
            OpenApiParameter(
                "outcome",
                {"type": "string", "enum": list(OUTCOMES)},
                description="with steps: converted (reached the step, the default) or dropped",
            ),
            OpenApiParameter(
                "window",
                {"type": "integer", "minimum": 1, "maximum": int(MAX_WINDOW.total_seconds())},
                description="with steps: the funnel's conversion window in seconds",
            ),
            OpenApiParameter(
                "group",
                {"type": "string", "pattern": "^[^\\x00]*$"},
                description="with steps and a breakdown: one group's users (its value; a group with "
                "`absent` is asked for with absent=true)",
            ),
            *(
                OpenApiParameter(
                    name,
                    {"type": "string", "pattern": "^[^\\x00]*$"},
                    description=f"with steps: only this {name}'s events (as /api/v1/metrics/funnel)",
                )
                for name in ("service", "stage")
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
        _point, events, among = people_from_params(request.query_params)
        limit = query_int(request.query_params, "limit", default=DEFAULT_USERS, minimum=1, maximum=MAX_USERS)
        offset = query_int(request.query_params, "offset", default=0, minimum=0, maximum=MAX_OFFSET)
        page = users_behind(events=events, limit=limit, offset=offset, among=among)
        next_url = None
        if page.has_next and offset + limit <= MAX_OFFSET:
            next_url = replace_query_param(request.build_absolute_uri(), "offset", offset + limit)
        return Response({"users": [u.as_json() for u in page.users], "next": next_url})
