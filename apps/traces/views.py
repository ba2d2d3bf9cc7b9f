"""Pages for support: search requests, one trail, surrounding logs of a service, one user's requests."""

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import wraps

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.dateparse import parse_datetime
from django.utils.http import urlencode
from django.views.decorators.http import require_safe

from apps.accounts.models import AuditEntry
from apps.accounts.permissions import role_required
from apps.accounts.roles import SUPPORT
from apps.accounts.services import audit_record
from apps.common.errors import BackendUnavailable
from apps.common.exceptions import SEARCH_RETRY_AFTER_SECONDS
from apps.common.timebounds import OUT_OF_RANGE, within_query_bounds

from . import api, selectors
from .converters import QUERY_MARKER, id_from, id_url, legacy_id
from .forms import DEFAULT_RANGE, MAX_PAGE, PER_PAGE, QUICK_RANGES, PasteBoxForm, TraceSearchForm
from .paste import LookedUpAs, paste_recognise
from .search.base import LEVEL_RANK, RequestPage, TrailCursor
from .timeline import timeline_for

logger = logging.getLogger(__name__)

SURROUNDING_CHOICES = (10, 30, 60, 300)
# What a user's page shows when its form is not sent: the pager's links carry only the page.
USER_DEFAULT_RANGE = "30d"
# A trail's error events listed at its top, each a link to its row (the rest are counted).
ERRORS_LISTED = 20
# A trail's events table shows this many rows at a time (the timeline and the error list cover them all):
# 5,000 rows made a 7 MB page that took seconds to render and seconds more to lay out.
EVENTS_PER_PART = 1000


@dataclass(frozen=True)
class TrailPart:
    """Which of a trail's events the page lists: rows `first` to `last` (from 1) of `total`, part `number`
    of `count` parts of `size` rows."""

    number: int
    count: int
    size: int
    first: int
    last: int
    total: int
    # The query string every part's link starts with ("" or ending in "&"): the ID when it travels in the
    # query, the cursor of a continuation.
    query: str = ""


def search_unavailable_is_503(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Answer a page whose search backend cannot answer with a 503 saying so, as the API does: not a 500."""

    @wraps(view)
    def wrapped(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        try:
            return view(request, *args, **kwargs)
        except BackendUnavailable as exc:
            logger.error("search backend unavailable: %s", exc)
            response = render(request, "traces/unavailable.html", status=503)
            response["Retry-After"] = str(SEARCH_RETRY_AFTER_SECONDS)
            return response

    return wrapped


@role_required(SUPPORT)
@require_safe  # reads (audited): another method is a 405, not the page
@search_unavailable_is_503
def trace_search(request: HttpRequest) -> HttpResponse:
    """Search requests by correlation ID, user, service, level, event and message text; or, given `q` (the
    paste box), open what it names directly."""
    if request.GET.get("q", "").strip():
        return _paste_box(request)
    data = request.GET.copy()
    if not data.get("range"):  # the range searched is the one the form shows (and sends next)
        data["range"] = DEFAULT_RANGE
    form = TraceSearchForm(data)
    result = None
    if form.is_valid() and form.has_criteria():
        if form.cleaned_data["user_id"]:
            audit_record(
                request=request,
                action=AuditEntry.USER_VIEWED,
                target=form.cleaned_data["user_id"],
                via="search",
            )
        else:  # results show user IDs too: every search is accountable
            audit_record(
                request=request,
                action=AuditEntry.REQUESTS_SEARCHED,
                target=_without_page(request),
                via="search",
            )
        result = selectors.requests_search(
            query=form.to_query(), page=form.cleaned_data.get("page") or 1, per_page=PER_PAGE
        )
    return render(
        request,
        "traces/search.html",
        {
            "form": form,
            "result": result,
            "query_string": _without_page(request),
            "older_query": _older_requests_query(request, form, result),
        },
    )


def _paste_box(request: HttpRequest) -> HttpResponse:
    """Open the trail or the user that `q` names, else search it as message text."""
    paste = PasteBoxForm(request.GET)
    # The rest of the query string (range, page) is the detailed form's, for the text search.
    data = request.GET.copy()
    data.pop("q")
    data.setdefault("range", DEFAULT_RANGE)
    if paste.is_valid():
        data["text"] = paste.cleaned_data["q"]
    form = TraceSearchForm(data)
    if not paste.is_valid() or not form.is_valid():
        context = {
            "form": form,
            "result": None,
            "paste_q": request.GET["q"],
            "paste_errors": paste.errors.get("q", []),
        }
        return render(request, "traces/search.html", context, status=400)

    recognition = paste_recognise(value=paste.cleaned_data["q"])
    if recognition.found is not None:
        # The page opened audits the view itself (a trail or a user's requests), as when opened by a link.
        messages.info(request, f"Looked up as {recognition.found.label}: {recognition.value}")
        if recognition.found == LookedUpAs.USER_ID:
            return redirect(id_url("user-detail", recognition.value))
        return redirect(id_url("trace-detail", recognition.value))

    query_string = _without_page(request)
    audit_record(request=request, action=AuditEntry.REQUESTS_SEARCHED, target=query_string, via="search")
    result = selectors.requests_search(
        query=form.to_query(), page=form.cleaned_data.get("page") or 1, per_page=PER_PAGE
    )
    # A page past the only match has no request to open (total counts all pages).
    if result.total == 1 and result.requests and result.requests[0].correlation_id:
        # Exactly one request holds the text: open its trail, as the box does for an ID.
        messages.info(request, f"Looked up as text: {recognition.value} (one request matched)")
        return redirect(id_url("trace-detail", result.requests[0].correlation_id))
    context = {
        "form": form,
        "result": result,
        "query_string": query_string,
        "older_query": _older_requests_query(request, form, result),
        "paste_q": recognition.value,
        "recognition": recognition,
        "range_label": QUICK_RANGES[form.cleaned_data.get("range") or DEFAULT_RANGE][0],
    }
    return render(request, "traces/search.html", context)


@role_required(SUPPORT)
@require_safe  # reads (audited): another method is a 405, not the page
@search_unavailable_is_503
def trace_detail(request: HttpRequest, correlation_id: str) -> HttpResponse:
    """Show one request: a lane per service, its errors, then its events in time order (EVENTS_PER_PART rows
    a page: `part` says which). A trail longer than TRAIL_LIMIT events goes on at `after` (a cursor)."""
    segment, correlation_id = correlation_id, id_from(correlation_id, request.GET, "correlation_id")
    after = None
    if "after" in request.GET:
        try:
            after = TrailCursor.decode(request.GET["after"])
        except ValueError as exc:
            return render(request, "traces/bad_link.html", {"error": f"after: {exc}"}, status=400)
    audit_record(request=request, action=AuditEntry.TRAIL_VIEWED, target=correlation_id, via="page")
    page = selectors.trail_page(correlation_id=correlation_id, after=after)
    events = page.events
    if not events:
        older = _legacy_target(segment, exists=lambda cid: selectors.correlation_exists(correlation_id=cid))
        if older is not None:
            return redirect(id_url("trace-detail", older, **_legacy_query(request, "correlation_id")))
        if after is None:
            selectors.trail_missing_check(correlation_id=correlation_id)
            raise Http404(f"No events have the correlation ID {correlation_id!r}.")
        raise Http404(f"No events of the correlation ID {correlation_id!r} come after this cursor.")
    try:
        number = int(request.GET.get("part", "1"))
    except ValueError:
        number = 0
    count = -(-len(events) // EVENTS_PER_PART)
    if not 1 <= number <= count:
        raise Http404(f"This request's events make {count} part{'s' if count > 1 else ''}.")
    offset = (number - 1) * EVENTS_PER_PART
    rows = [(index, events[index]) for index in range(offset, min(offset + EVENTS_PER_PART, len(events)))]
    kept = _id_query(segment, "correlation_id", correlation_id) + (
        [("after", request.GET["after"])] if after else []
    )
    part = TrailPart(
        number, count, EVENTS_PER_PART, offset + 1, offset + len(rows), len(events), _query_prefix(kept)
    )
    user_ids = sorted({ev.user_id for ev in events if ev.user_id})
    errors = [
        (index, ev) for index, ev in enumerate(events) if LEVEL_RANK.get(ev.level, 0) >= LEVEL_RANK["error"]
    ]
    context = {
        "correlation_id": correlation_id,
        "events": events,
        "timeline": timeline_for(events),
        "user_ids": user_ids,
        "cut": page.cut,
        # Where the events shown stop, and the link to those after them.
        "cut_at": events[-1].timestamp if page.cut else None,
        "next_url": id_url("trace-detail", correlation_id, after=page.next.encode()) if page.next else None,
        "continued": after is not None,
        "start_url": id_url("trace-detail", correlation_id),
        "download_url": id_url("api-trace", correlation_id, download=1),
        "download_limit": api.DOWNLOAD_PAGES * selectors.base.TRAIL_LIMIT,
        "errors": errors,
        "errors_shown": errors[:ERRORS_LISTED],
        "rows": rows,
        "part": part,
        "payload": [{"properties": ev.properties} for _, ev in rows],
        "surrounding_seconds": SURROUNDING_CHOICES[1],
    }
    return render(request, "traces/detail.html", context)


@role_required(SUPPORT)
@require_safe  # reads (audited): another method is a 405, not the page
@search_unavailable_is_503
def trace_surrounding(request: HttpRequest, correlation_id: str) -> HttpResponse:
    """Show a service's log lines around one moment of a trail, whatever their correlation ID: those nearest
    the moment on both sides of it, or (`from_moment`) those from the moment on."""
    segment, correlation_id = correlation_id, id_from(correlation_id, request.GET, "correlation_id")
    older = _legacy_target(segment, exists=lambda cid: selectors.correlation_exists(correlation_id=cid))
    if older is not None:
        return redirect(id_url("trace-surrounding", older, **_legacy_query(request, "correlation_id")))
    service = request.GET.get("service", "")
    try:
        at = parse_datetime(request.GET.get("at", "").replace(" ", "+"))
    except ValueError:  # well-formed but impossible, e.g. month 13
        at = None
    try:
        seconds = int(request.GET.get("seconds", SURROUNDING_CHOICES[1]))
    except ValueError:
        seconds = SURROUNDING_CHOICES[1]
    seconds = min(max(seconds, 1), 3600)
    # From the moment on (2 × seconds after it) instead of around it: where a window holds more events than
    # a page, the way to go on from the last one shown.
    from_moment = request.GET.get("from_moment") == "1"
    if not service or at is None or at.tzinfo is None:
        return render(
            request,
            "traces/surrounding.html",
            {"error": "Open this page from an event of a trail."},
            status=400,
        )
    if not within_query_bounds(at):
        return render(request, "traces/surrounding.html", {"error": f"“at” {OUT_OF_RANGE}."}, status=400)
    window = f"+{2 * seconds}s from" if from_moment else f"±{seconds}s at"
    audit_record(
        request=request,
        action=AuditEntry.TRAIL_VIEWED,
        via="page",
        target=f"surrounding {service} {window} {at.isoformat()}",
    )
    if from_moment:
        if not within_query_bounds(at + timedelta(seconds=2 * seconds)):
            return render(request, "traces/surrounding.html", {"error": f"“at” {OUT_OF_RANGE}."}, status=400)
        shown = selectors.events_from(service=service, start=at, seconds=2 * seconds)
    else:
        shown = selectors.surrounding_events(service=service, at=at, seconds=seconds)
    events = shown.events
    context = {
        "correlation_id": correlation_id,
        "trail_url": id_url("trace-detail", correlation_id),
        # The ID, when it travels in the query string, leads every link of the page that changes the rest.
        "id_query": _query_prefix(_id_query(segment, "correlation_id", correlation_id)),
        "service": service,
        "at": at,
        "seconds": seconds,
        "from_moment": from_moment,
        "window_seconds": 2 * seconds,
        "events": events,
        "cut_before": shown.cut_before,
        "cut_after": shown.cut_after,
        "first_at": events[0].timestamp if events else None,
        "last_at": events[-1].timestamp if events else None,
        "choices": SURROUNDING_CHOICES,
    }
    return render(request, "traces/surrounding.html", context)


@role_required(SUPPORT)
@require_safe  # reads (audited): another method is a 405, not the page
@search_unavailable_is_503
def user_detail(request: HttpRequest, user_id: str) -> HttpResponse:
    """Show one user's requests, newest first."""
    segment, user_id = user_id, id_from(user_id, request.GET, "user_id")
    older = _legacy_target(segment, exists=lambda uid: selectors.user_exists(user_id=uid))
    if older is not None:
        return redirect(id_url("user-detail", older, **_legacy_query(request, "user_id")))
    audit_record(request=request, action=AuditEntry.USER_VIEWED, target=user_id, via="page")
    data = request.GET.copy()
    data.setdefault("range", USER_DEFAULT_RANGE)
    form = TraceSearchForm(data)
    result = None  # a refused parameter is said on the page, never read as "all time"
    if form.is_valid():
        start, end = form.time_bounds()
        page = form.cleaned_data.get("page") or 1
        result = selectors.user_requests(user_id=user_id, start=start, end=end, page=page, per_page=PER_PAGE)
        if not result.total:
            selectors.user_missing_check(user_id=user_id, start=start, end=end)
    return render(
        request,
        "traces/user.html",
        {
            "user_id": user_id,
            "id_in_query": segment == QUERY_MARKER and "user_id" in request.GET,
            "form": form,
            "result": result,
            "query_string": _without_page(request),
            "older_query": _older_requests_query(request, form, result),
        },
    )


def _older_requests_query(
    request: HttpRequest, form: TraceSearchForm, result: RequestPage | None
) -> str | None:
    """Return the query string of the requests older than the last page a search serves (MAX_PAGE), when
    there are more: the same search, its range ending just after the last request shown (it may show again
    first; none is skipped, as the list is ordered by each request's newest matching event)."""
    if result is None or result.page < MAX_PAGE or not result.has_next or not result.requests:
        return None
    start, _ = form.time_bounds()
    params = request.GET.copy()
    for name in ("page", "q", "range", "start", "end"):
        params.pop(name, None)
    if "q" in request.GET:  # the paste box searched it as text: the detailed form's field says so
        params["text"] = form.cleaned_data["text"]
    params["range"] = "custom"
    # Naive UTC to the millisecond, as the form's datetime-local fields show (and send) it again.
    params["start"] = _form_time(start) if start else ""
    params["end"] = _form_time(result.requests[-1].last + timedelta(milliseconds=1))
    return params.urlencode()


def _legacy_target(segment: str, *, exists: Callable[[str], bool]) -> str | None:
    """Return the ID an old twice-encoded link in the path meant, when the ID as decoded once has no events
    and that one has (None otherwise: most IDs cost no look-up at all)."""
    older = legacy_id(segment)
    if older is None or segment == QUERY_MARKER:
        return None
    if exists(segment) or not exists(older):
        return None
    return older


def _legacy_query(request: HttpRequest, name: str) -> dict[str, str]:
    """Return the query an old link's redirect keeps: all of it but the ID's parameter, which meant nothing
    beside an ID in the path and would otherwise name the page the redirect opens."""
    return {key: value for key, value in request.GET.dict().items() if key != name}


def _id_query(segment: str, name: str, value: str) -> list[tuple[str, str]]:
    """Return the query parameter that names the ID, when the URL carries it there (QUERY_MARKER)."""
    return [(name, value)] if segment == QUERY_MARKER else []


def _query_prefix(pairs: list[tuple[str, str]]) -> str:
    """Return query parameters as the start of a query string, ready for more ("" or ending in "&")."""
    return urlencode(pairs) + "&" if pairs else ""


def _form_time(moment: datetime) -> str:
    """Return a UTC moment as a datetime-local field's value, cut to the millisecond."""
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="milliseconds")


def _without_page(request: HttpRequest) -> str:
    params = request.GET.copy()
    params.pop("page", None)
    return params.urlencode()
