"""Pages for support: search requests, one trail, surrounding logs of a service, one user's requests."""

import logging
from collections.abc import Callable
from functools import wraps

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.dateparse import parse_datetime
from django.views.decorators.http import require_safe

from apps.accounts.models import AuditEntry
from apps.accounts.permissions import role_required
from apps.accounts.roles import SUPPORT
from apps.accounts.services import audit_record
from apps.common.errors import BackendUnavailable
from apps.common.exceptions import SEARCH_RETRY_AFTER_SECONDS
from apps.common.timebounds import OUT_OF_RANGE, within_query_bounds

from . import selectors
from .forms import DEFAULT_RANGE, PER_PAGE, QUICK_RANGES, PasteBoxForm, TraceSearchForm
from .paste import LookedUpAs, paste_recognise
from .timeline import timeline_for

logger = logging.getLogger(__name__)

SURROUNDING_CHOICES = (10, 30, 60, 300)
# What a user's page shows when its form is not sent: the pager's links carry only the page.
USER_DEFAULT_RANGE = "30d"


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
        {"form": form, "result": result, "query_string": _without_page(request)},
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
            return redirect("user-detail", user_id=recognition.value)
        return redirect("trace-detail", correlation_id=recognition.value)

    query_string = _without_page(request)
    audit_record(request=request, action=AuditEntry.REQUESTS_SEARCHED, target=query_string, via="search")
    result = selectors.requests_search(
        query=form.to_query(), page=form.cleaned_data.get("page") or 1, per_page=PER_PAGE
    )
    # A page past the only match has no request to open (total counts all pages).
    if result.total == 1 and result.requests and result.requests[0].correlation_id:
        # Exactly one request holds the text: open its trail, as the box does for an ID.
        messages.info(request, f"Looked up as text: {recognition.value} (one request matched)")
        return redirect("trace-detail", correlation_id=result.requests[0].correlation_id)
    context = {
        "form": form,
        "result": result,
        "query_string": query_string,
        "paste_q": recognition.value,
        "recognition": recognition,
        "range_label": QUICK_RANGES[form.cleaned_data.get("range") or DEFAULT_RANGE][0],
    }
    return render(request, "traces/search.html", context)


@role_required(SUPPORT)
@require_safe  # reads (audited): another method is a 405, not the page
@search_unavailable_is_503
def trace_detail(request: HttpRequest, correlation_id: str) -> HttpResponse:
    """Show one request: a lane per service, then every event in time order."""
    audit_record(request=request, action=AuditEntry.TRAIL_VIEWED, target=correlation_id, via="page")
    events = selectors.trail_get(correlation_id=correlation_id)
    if not events:
        selectors.trail_missing_check(correlation_id=correlation_id)
        raise Http404(f"No events have the correlation ID {correlation_id!r}.")
    user_ids = sorted({ev.user_id for ev in events if ev.user_id})
    context = {
        "correlation_id": correlation_id,
        "events": events,
        "timeline": timeline_for(events),
        "user_ids": user_ids,
        "cut": selectors.trail_is_cut(events),
        "payload": [{"properties": ev.properties} for ev in events],
        "surrounding_seconds": SURROUNDING_CHOICES[1],
    }
    return render(request, "traces/detail.html", context)


@role_required(SUPPORT)
@require_safe  # reads (audited): another method is a 405, not the page
@search_unavailable_is_503
def trace_surrounding(request: HttpRequest, correlation_id: str) -> HttpResponse:
    """Show a service's log lines around one moment of a trail, whatever their correlation ID."""
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
    if not service or at is None or at.tzinfo is None:
        return render(
            request,
            "traces/surrounding.html",
            {"error": "Open this page from an event of a trail."},
            status=400,
        )
    if not within_query_bounds(at):
        return render(request, "traces/surrounding.html", {"error": f"“at” {OUT_OF_RANGE}."}, status=400)
    audit_record(
        request=request,
        action=AuditEntry.TRAIL_VIEWED,
        via="page",
        target=f"surrounding {service} ±{seconds}s at {at.isoformat()}",
    )
    events = selectors.surrounding_events(service=service, at=at, seconds=seconds)
    context = {
        "correlation_id": correlation_id,
        "service": service,
        "at": at,
        "seconds": seconds,
        "events": events,
        "choices": SURROUNDING_CHOICES,
    }
    return render(request, "traces/surrounding.html", context)


@role_required(SUPPORT)
@require_safe  # reads (audited): another method is a 405, not the page
@search_unavailable_is_503
def user_detail(request: HttpRequest, user_id: str) -> HttpResponse:
    """Show one user's requests, newest first."""
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
        {"user_id": user_id, "form": form, "result": result, "query_string": _without_page(request)},
    )


def _without_page(request: HttpRequest) -> str:
    params = request.GET.copy()
    params.pop("page", None)
    return params.urlencode()
