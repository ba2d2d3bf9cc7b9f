"""GET /api/v1/traces/<correlation_id> and /api/v1/users/<user_id>/requests."""

import logging
from collections.abc import Iterator
from urllib.parse import quote

from django.db import DatabaseError
from django.http import StreamingHttpResponse
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    inline_serializer,
)
from rest_framework import exceptions, serializers
from rest_framework.authentication import SessionAuthentication
from rest_framework.permissions import IsAuthenticated
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.accounts.auth import PersonalTokenAuthentication
from apps.accounts.models import AuditEntry
from apps.accounts.permissions import HasRole
from apps.accounts.roles import SUPPORT
from apps.accounts.services import audit_while
from apps.common.errors import BackendUnavailable
from apps.common.openapi import READ_RESPONSES, ErrorSchema
from apps.common.params import query_bool, query_int, query_time
from apps.ingest.conform import TYPES

from . import selectors
from .search.base import CURSOR_PATTERN, LEVEL_RANK, MAX_RESULT_WINDOW, TRAIL_LIMIT, TrailCursor, TrailPage

logger = logging.getLogger(__name__)

MAX_PER_PAGE = 200
# A download holds at most this many pages of TRAIL_LIMIT events (100,000): the whole of any trail a
# person reads, streamed a page at a time; a longer one ends with `next`, as an answer does.
DOWNLOAD_PAGES = 20
# Shown in the API docs (and used by the schema fuzz, which seeds a request with these IDs).
EXAMPLE_CORRELATION_ID = "8d0f6f8e-5d0b-4e37-9a52-2b3c1e0f9a77"
EXAMPLE_USER_ID = "1234"


def _level() -> serializers.ChoiceField:
    # A new field each time: DRF binds a field to one serializer.
    return serializers.ChoiceField(
        choices=[level for level in LEVEL_RANK if level], allow_blank=True, help_text="Empty for metrics."
    )


TraceEventSchema = inline_serializer(
    "TraceEvent",
    fields={
        "event_id": serializers.UUIDField(),
        "type": serializers.ChoiceField(choices=list(TYPES)),
        "event": serializers.CharField(),
        "timestamp": serializers.DateTimeField(),
        "received_at": serializers.DateTimeField(),
        "service": serializers.CharField(),
        "stage": serializers.CharField(),
        "user_id": serializers.CharField(allow_blank=True),
        "correlation_id": serializers.CharField(allow_blank=True),
        "level": _level(),
        "message": serializers.CharField(allow_blank=True),
        "properties": serializers.DictField(),
        "notes": serializers.ListField(child=serializers.CharField(), help_text="What conform changed."),
        "span_id": serializers.CharField(allow_blank=True, help_text="Spans: hex id; empty otherwise."),
        "parent_span_id": serializers.CharField(
            allow_blank=True, help_text="Spans: the parent's hex id; empty for a root span and otherwise."
        ),
        "duration_ms": serializers.FloatField(
            allow_null=True, min_value=0, help_text="Spans: milliseconds from start to end; null otherwise."
        ),
    },
)
TraceSchema = inline_serializer(
    "Trace",
    fields={
        "correlation_id": serializers.CharField(),
        "events": serializers.ListField(child=TraceEventSchema, min_length=1),
        "cut": serializers.BooleanField(
            help_text="true when the request has more events than this answer lists (at most "
            f"{TRAIL_LIMIT:,}; a download up to {DOWNLOAD_PAGES * TRAIL_LIMIT:,}): they come after the last "
            "one listed"
        ),
        "next": serializers.CharField(
            allow_null=True,
            help_text="When cut: the cursor of the events that follow; pass it as `after` to read them. null "
            "otherwise. Opaque: use it as given.",
        ),
    },
)
RequestSummarySchema = inline_serializer(
    "RequestSummary",
    fields={
        "correlation_id": serializers.CharField(),
        "first": serializers.DateTimeField(),
        "last": serializers.DateTimeField(),
        "duration_seconds": serializers.FloatField(min_value=0),
        "services": serializers.ListField(child=serializers.CharField()),
        "count": serializers.IntegerField(min_value=1),
        "worst_level": _level(),
    },
)
UserRequestsSchema = inline_serializer(
    "UserRequests",
    fields={
        "user_id": serializers.CharField(),
        "requests": serializers.ListField(child=RequestSummarySchema),
        "page": serializers.IntegerField(min_value=1),
        "per_page": serializers.IntegerField(min_value=1, max_value=MAX_PER_PAGE),
        "total": serializers.IntegerField(min_value=0),
        "has_next": serializers.BooleanField(),
    },
)
# Parsed by apps.common.params.query_time.
TIME = {"type": "string", "format": "date-time"}


class _SupportAPI(APIView):
    authentication_classes = [PersonalTokenAuthentication, SessionAuthentication]
    permission_classes = [IsAuthenticated, HasRole]
    required_roles = (SUPPORT,)


class TraceAPI(_SupportAPI):
    @extend_schema(
        operation_id="trace_get",
        summary="The events of one correlation ID, in time order",
        parameters=[
            OpenApiParameter(
                "correlation_id",
                str,
                OpenApiParameter.PATH,
                examples=[OpenApiExample("A request", value=EXAMPLE_CORRELATION_ID)],
            ),
            OpenApiParameter(
                "after",
                {"type": "string", "pattern": CURSOR_PATTERN},
                description=f"the `next` of an earlier answer: the {TRAIL_LIMIT:,} events after that one's "
                "last, in the same order (pages neither skip nor repeat an event); a text that is not a "
                "cursor is a 400",
            ),
            OpenApiParameter(
                "download",
                bool,
                description="answer as a file download: the whole trail (from `after` when given) up to "
                f"{DOWNLOAD_PAGES * TRAIL_LIMIT:,} events, streamed; past that, `cut` and `next` as in an "
                "answer",
            ),
        ],
        responses={
            200: TraceSchema,
            **READ_RESPONSES,
            404: OpenApiResponse(
                ErrorSchema, description="No events have this correlation ID (or none come after `after`)."
            ),
        },
        tags=["traces"],
    )
    def get(self, request: Request, correlation_id: str) -> Response | StreamingHttpResponse:
        download = query_bool(request.query_params, "download")
        after = _query_cursor(request.query_params, "after")
        # Every read is audited: the entry is committed before any event is answered (a failed write fails
        # the request); PostgreSQL writes it while Elasticsearch searches.
        with audit_while(
            request=request,
            action=AuditEntry.TRAIL_VIEWED,
            target=correlation_id,
            via="api",
            block_uses_database=selectors.search_uses_database(),
        ):
            page = selectors.trail_page(correlation_id=correlation_id, after=after)
        if not page.events:
            if after is not None:
                raise exceptions.NotFound(
                    f"No events of the correlation ID {correlation_id!r} come after this cursor."
                )
            selectors.trail_missing_check(correlation_id=correlation_id)
            raise exceptions.NotFound(
                f"No events have the correlation ID {correlation_id!r}. Check it was copied whole; events "
                "older than the retention period are deleted."
            )
        if download and page.cut:
            # The rest of the trail is read page by page while the file is sent, never held whole.
            response = StreamingHttpResponse(
                _download_chunks(correlation_id, page), content_type="application/json"
            )
        else:
            response = Response(_trace_answer(correlation_id, page))
        if download:
            response["Content-Disposition"] = attachment_disposition(f"trace-{correlation_id[:100]}.json")
        return response


def _query_cursor(params, name: str) -> TrailCursor | None:
    """Return the trail cursor a query parameter holds; None when it is absent; a 400 naming it when it
    holds anything else."""
    raw = params.get(name)
    if raw is None:
        return None
    try:
        return TrailCursor.decode(raw)
    except ValueError as exc:
        raise exceptions.ValidationError({name: str(exc)}) from exc


def _trace_answer(correlation_id: str, page: TrailPage) -> dict:
    return {
        "correlation_id": correlation_id,
        "events": [ev.as_json() for ev in page.events],
        "cut": page.cut,
        "next": page.next.encode() if page.next else None,
    }


def _download_chunks(correlation_id: str, page: TrailPage) -> Iterator[bytes]:
    """Yield a trail's download as an answer's JSON, page after page up to DOWNLOAD_PAGES. A page the
    backend fails to read ends the file short (not valid JSON), never as if the trail ended there."""
    render = JSONRenderer().render  # the encoding of every other answer
    head = render({"correlation_id": correlation_id, "events": []})
    yield head[: head.rindex(b"[") + 1]
    pages = 1
    while True:
        yield render([ev.as_json() for ev in page.events])[1:-1]
        if page.next is None or pages >= DOWNLOAD_PAGES:
            break
        try:
            following = selectors.trail_page(correlation_id=correlation_id, after=page.next)
        except (BackendUnavailable, DatabaseError):  # the 200 is sent: the log is where this failure shows
            logger.exception("trail download of %r failed after %d pages", correlation_id, pages)
            raise
        if not following.events:  # purged meanwhile: the trail ends where the last page did
            page = following
            break
        yield b","
        page, pages = following, pages + 1
    # (The renderer makes nothing of None.)
    cursor = render(page.next.encode()) if page.next else b"null"
    yield b'],"cut":%b,"next":%b}' % (render(page.cut), cursor)


def attachment_disposition(filename: str) -> str:
    """Return a Content-Disposition naming a download as RFC 6266 says: an ASCII `filename` every client
    reads and, when the name has other characters, the whole name in `filename*` (RFC 5987, UTF-8).

    Letters and digits of any script are kept, anything else (quotes, slashes, control characters) is "_".
    """
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in filename)
    fallback = "".join(c if c.isascii() else "_" for c in safe)
    header = f'attachment; filename="{fallback}"'
    if fallback != safe:
        header += f"; filename*=UTF-8''{quote(safe, safe='')}"
    return header


class UserRequestsAPI(_SupportAPI):
    @extend_schema(
        operation_id="user_requests",
        summary="One user's requests, newest first",
        parameters=[
            OpenApiParameter(
                "user_id",
                str,
                OpenApiParameter.PATH,
                examples=[OpenApiExample("A user", value=EXAMPLE_USER_ID)],
            ),
            OpenApiParameter("from", TIME, description="ISO-8601 start, with a time zone"),
            OpenApiParameter(
                "to",
                TIME,
                description="ISO-8601 end (exclusive), with a time zone",
            ),
            OpenApiParameter(
                "page",
                {"type": "integer", "minimum": 1, "maximum": MAX_RESULT_WINDOW},
                description=f"page × per_page may not pass {MAX_RESULT_WINDOW} (default 1)",
            ),
            OpenApiParameter(
                "per_page",
                {"type": "integer", "minimum": 1, "maximum": MAX_PER_PAGE},
                description="default 50",
            ),
        ],
        responses={200: UserRequestsSchema, **READ_RESPONSES},
        tags=["traces"],
    )
    def get(self, request: Request, user_id: str) -> Response:
        params = request.query_params
        start, end = query_time(params, "from"), query_time(params, "to")
        page = query_int(params, "page", default=1, minimum=1, maximum=MAX_RESULT_WINDOW)
        per_page = query_int(params, "per_page", default=50, minimum=1, maximum=MAX_PER_PAGE)
        if page * per_page > MAX_RESULT_WINDOW:
            window = f"only the first {MAX_RESULT_WINDOW} requests can be paged through; narrow the range"
            raise exceptions.ValidationError({"page": window})
        # Audited as a trail is (see TraceAPI), once the parameters were accepted.
        with audit_while(
            request=request,
            action=AuditEntry.USER_VIEWED,
            target=user_id,
            via="api",
            block_uses_database=selectors.search_uses_database(),
        ):
            result = selectors.user_requests(
                user_id=user_id, start=start, end=end, page=page, per_page=per_page
            )
        if not result.total:
            selectors.user_missing_check(user_id=user_id, start=start, end=end)
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
