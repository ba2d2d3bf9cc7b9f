"""Reads for the trace viewer, on whichever search backend is configured."""

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models.functions import TruncDate
from django.utils import timezone

from apps.common.errors import BackendUnavailable
from apps.ingest.conform import user_id_spellings
from apps.ingest.models import AWAITING_INDEX, RawEvent

from .search import base, get_trace_backend
from .search.base import RequestPage, TraceEvent, TraceQuery, TrailCursor, TrailPage, UserRequests

# The most events a surrounding window shows, nearest the moment: half before it, half from it on (a side
# with fewer leaves its share to the other).
SURROUNDING_LIMIT = 500


def search_uses_database() -> bool:
    """Return whether searching reads the portal's database (the embedded default) or leaves it alone."""
    return get_trace_backend().uses_database


def trail_get(*, correlation_id: str) -> list[TraceEvent]:
    """Return one request's events in time order: the first TRAIL_LIMIT of them (trail_page says whether
    there are more, and where they start)."""
    return trail_page(correlation_id=correlation_id).events


def trail_page(*, correlation_id: str, after: TrailCursor | None = None) -> TrailPage:
    """Return one page of a request's events in time order: TRAIL_LIMIT of them at most, from its start or
    after a cursor, with the cursor of the next page when more follow."""
    return get_trace_backend().trail_page(correlation_id, limit=base.TRAIL_LIMIT, after=after)


def trail_missing_check(*, correlation_id: str) -> None:
    """Raise BackendUnavailable when a trail the search backend found empty has events that were made
    searchable and are still kept there (younger than RETENTION_INDEX_DAYS) on a day whose index is gone
    (deleted, dropped by hand, a prefix re-pointed): "no events have this ID" would send support looking
    for a request that exists. Call it after an empty trail_get, outside any block that must leave the
    database alone: it reads the database (one look-up by the correlation ID's index), then asks the search
    backend whether those days' indices exist (one that exists but has not refreshed yet is no outage)."""
    if base.unmatchable(correlation_id):
        return
    lost = _lost_days(correlation_id=correlation_id)
    if lost:
        raise BackendUnavailable(
            f"the search index of {_days_text(lost)} is missing: it held events of the trail "
            f"{correlation_id!r}, which the database says were indexed"
        )


def user_missing_check(*, user_id: str, start: datetime | None, end: datetime | None) -> None:
    """Raise BackendUnavailable when a user's requests the search backend found none of, in this range, have
    events on a day whose index is gone: as trail_missing_check, for the user page and API (one look-up by
    the user ID's index)."""
    if base.unmatchable(user_id):
        return
    lost = _lost_days(user_id__in=user_id_spellings(user_id), start=start, end=end)
    if lost:
        raise BackendUnavailable(
            f"the search index of {_days_text(lost)} is missing: it held requests of user {user_id!r}, "
            "which the database says were indexed"
        )


# Days looked at for one ID: enough to find a lost index, few enough for one cheap look-up.
_DAYS_CHECKED = 31


def _lost_days(*, start: datetime | None = None, end: datetime | None = None, **match: Any) -> list[date]:
    """Return the days whose index is gone although events matching `match` in the range were made
    searchable on them and are still kept (younger than RETENTION_INDEX_DAYS); none when the database is
    the index."""
    if search_uses_database():  # the rows are the index: nothing can be missing from it
        return []
    kept_since = timezone.now() - timedelta(days=settings.RETENTION_INDEX_DAYS)
    events = RawEvent.objects.since(max(kept_since, start) if start else kept_since).filter(
        index_rejected_at__isnull=True, **match
    )
    if end is not None:
        events = events.filter(timestamp__lt=end)
    days = list(
        events.exclude(AWAITING_INDEX)
        .annotate(day=TruncDate("timestamp", tzinfo=UTC))
        .order_by("day")
        .values_list("day", flat=True)
        .distinct()[:_DAYS_CHECKED]
    )
    return get_trace_backend().missing_days(days) if days else []


def _days_text(days: list[date]) -> str:
    shown = ", ".join(f"{day}" for day in days[:3])
    return shown + (f" and {len(days) - 3} more days" if len(days) > 3 else "")


def requests_search(*, query: TraceQuery, page: int = 1, per_page: int = 50) -> RequestPage:
    """Return the requests matching a search, newest first."""
    return get_trace_backend().search_requests(query, page=page, per_page=per_page)


def user_requests(
    *,
    user_id: str,
    start: datetime | None = None,
    end: datetime | None = None,
    page: int = 1,
    per_page: int = 50,
) -> RequestPage:
    """Return one user's requests, newest first."""
    return requests_search(
        query=TraceQuery(user_id=user_id, start=start, end=end), page=page, per_page=per_page
    )


def requests_of_users(
    *, user_ids: list[str], start: datetime | None, end: datetime | None, per_user: int
) -> dict[str, UserRequests]:
    """Return each user's newest requests in the range (as user_requests' first page), for a page of users
    in a fixed number of queries."""
    return get_trace_backend().requests_of_users(user_ids, start=start, end=end, per_user=per_user)


@dataclass(frozen=True)
class SurroundingWindow:
    """A service's events in a window, in time order, and whether the window holds more of them before or
    after those shown."""

    events: list[TraceEvent]
    cut_before: bool
    cut_after: bool


_MICROSECOND = timedelta(microseconds=1)


def surrounding_events(*, service: str, at: datetime, seconds: int) -> SurroundingWindow:
    """Return a service's events within ± seconds of a moment, whatever their correlation ID: the
    SURROUNDING_LIMIT nearest the moment, up to half of them before it (more when fewer follow it)."""
    window, limit = timedelta(seconds=seconds), SURROUNDING_LIMIT
    backend = get_trace_backend()
    # Each side read nearest first, one more than a page holds (to tell whether it is cut). Times are
    # microseconds on both backends: "before" ends one microsecond before the moment, which is "after"'s.
    before = backend.surrounding(
        service=service, start=at - window, end=at - _MICROSECOND, limit=limit + 1, newest_first=True
    )
    after = backend.surrounding(service=service, start=at, end=at + window, limit=limit + 1)
    after_shown = min(len(after), max(limit - limit // 2, limit - len(before)))
    before_shown = min(len(before), limit - after_shown)
    return SurroundingWindow(
        events=before[:before_shown][::-1] + after[:after_shown],
        cut_before=len(before) > before_shown,
        cut_after=len(after) > after_shown,
    )


def events_from(*, service: str, start: datetime, seconds: int) -> SurroundingWindow:
    """Return a service's first SURROUNDING_LIMIT events from a moment on, for `seconds`, whatever their
    correlation ID."""
    limit = SURROUNDING_LIMIT
    after = get_trace_backend().surrounding(
        service=service, start=start, end=start + timedelta(seconds=seconds), limit=limit + 1
    )
    return SurroundingWindow(events=after[:limit], cut_before=False, cut_after=len(after) > limit)


def correlation_exists(*, correlation_id: str) -> bool:
    """Return whether any event carries exactly this correlation ID."""
    return get_trace_backend().correlation_exists(correlation_id)


def user_exists(*, user_id: str) -> bool:
    """Return whether any event carries exactly this user ID."""
    return get_trace_backend().user_exists(user_id)
