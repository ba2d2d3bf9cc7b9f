"""Trace search on the portal's own database: the embedded default, no extra server."""

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from django.db import connection
from django.db.models import Count, F, Max, Min, Q, QuerySet, Window
from django.db.models.functions import RowNumber

from apps.common.errors import BackendUnavailable
from apps.common.redact import redact_text
from apps.ingest.conform import user_id_spellings
from apps.ingest.models import RawEvent

from .base import (
    BackendHealth,
    IndexOutcome,
    RequestPage,
    RequestSummary,
    TraceBackend,
    TraceEvent,
    TraceQuery,
    TrailCursor,
    TrailPage,
    unmatchable,
    worst_level,
)

_EVENT_FIELDS = (
    "event_id",
    "type",
    "event",
    "timestamp",
    "received_at",
    "service",
    "stage",
    "user_id",
    "correlation_id",
    "level",
    "message",
    "properties",
    "notes",
    "span_id",
    "parent_span_id",
    "duration_ms",
)


def _trace_event(row: dict[str, Any]) -> TraceEvent:
    fields = {name: row[name] for name in _EVENT_FIELDS}
    return TraceEvent(**{**fields, "event_id": str(row["event_id"])})


class DatabaseTraceBackend(TraceBackend):
    name = "database"

    def ping(self) -> BackendHealth:
        try:
            connection.ensure_connection()
        except Exception as exc:  # any driver error means "unreachable" to a health probe
            raise BackendUnavailable(redact_text(str(exc))) from exc
        return BackendHealth(detail=self.name)

    def index_events(self, events: Sequence[Any]) -> IndexOutcome:
        # The raw event rows are the index here: committed means searchable.
        return IndexOutcome(indexed=[ev.pk for ev in events])

    def trail_page(self, correlation_id: str, *, limit: int, after: TrailCursor | None = None) -> TrailPage:
        if unmatchable(correlation_id):
            return TrailPage([], next=None)
        events = RawEvent.objects.filter(correlation_id=correlation_id)
        if after is not None:
            # Keyset: (timestamp, received_at, id) > the cursor's, spelled out so either database plans it.
            events = events.filter(timestamp__gte=after.timestamp).filter(
                Q(timestamp__gt=after.timestamp)
                | Q(timestamp=after.timestamp, received_at__gt=after.received_at)
                | Q(timestamp=after.timestamp, received_at=after.received_at, pk__gt=after.seq)
            )
        # One row more than the page says whether more follow.
        rows = list(
            events.order_by("timestamp", "received_at", "pk").values(*_EVENT_FIELDS, "pk")[: limit + 1]
        )
        shown = rows[:limit]
        cursor = None
        if len(rows) > limit and shown:
            last = shown[-1]
            cursor = TrailCursor(last["timestamp"], last["received_at"], last["pk"])
        return TrailPage([_trace_event(row) for row in shown], next=cursor)

    def correlation_exists(self, correlation_id: str) -> bool:
        if not correlation_id or unmatchable(correlation_id):
            return False
        return RawEvent.objects.filter(correlation_id=correlation_id).exists()

    def user_exists(self, user_id: str) -> bool:
        if not user_id or unmatchable(user_id):
            return False
        return RawEvent.objects.filter(user_id__in=user_id_spellings(user_id)).exists()

    def search_requests(self, query: TraceQuery, *, page: int, per_page: int) -> RequestPage:
        if unmatchable(*query.strings()):
            return RequestPage([], total=0, page=page, per_page=per_page)
        matching = _filtered(query).exclude(correlation_id="")
        groups = (
            matching.values("correlation_id")
            .annotate(newest=Max("timestamp"))
            .order_by("-newest", "correlation_id")
        )
        total = groups.count()
        offset = (page - 1) * per_page
        cids = [row["correlation_id"] for row in groups[offset : offset + per_page]]
        return RequestPage(_summaries(cids), total=total, page=page, per_page=per_page)

    def newest_requests_of_users(
        self, user_ids: Sequence[str], *, start: datetime | None, end: datetime | None, limit: int
    ) -> dict[str, list[str]]:
        # Each user's requests newest first, numbered per user.
        groups = (
            _filtered(TraceQuery(start=start, end=end))
            .filter(user_id__in=user_ids)
            .exclude(correlation_id="")
            .values("user_id", "correlation_id")
            .annotate(newest=Max("timestamp"))
            .annotate(
                rank=Window(
                    RowNumber(), partition_by=[F("user_id")], order_by=[F("newest").desc(), "correlation_id"]
                )
            )
            .filter(rank__lte=limit)
            .order_by("user_id", "rank")
        )
        found: dict[str, list[str]] = defaultdict(list)
        for row in groups:
            found[row["user_id"]].append(row["correlation_id"])
        return found

    def summarise_requests(self, correlation_ids: list[str]) -> list[RequestSummary]:
        return _summaries(correlation_ids)

    def surrounding(
        self, *, service: str, start: datetime, end: datetime, limit: int, newest_first: bool = False
    ) -> list[TraceEvent]:
        if unmatchable(service):
            return []
        order = ("-timestamp", "-received_at", "-pk") if newest_first else ("timestamp", "received_at", "pk")
        rows = (
            RawEvent.objects.since(start)
            .filter(service=service, timestamp__lte=end)
            .order_by(*order)
            .values(*_EVENT_FIELDS)[:limit]
        )
        return [_trace_event(row) for row in rows]

    def drop_before(self, cutoff: datetime) -> list[str]:
        # Nothing separate to drop: raw event retention removes what this backend searches.
        return []

    def delete_user(self, user_id: str, *, properties: Sequence[str] = ()) -> int:
        # The rows are the index; deleting the user's raw events (the caller does) deletes them here.
        return 0


def _filtered(query: TraceQuery) -> QuerySet:
    qs = RawEvent.objects.all()
    if query.start:
        qs = qs.since(query.start)
    if query.end:
        qs = qs.filter(timestamp__lt=query.end)
    for name in ("correlation_id", "service", "level", "event"):
        value = getattr(query, name)
        if value:
            qs = qs.filter(**{name: value})
    if query.user_id:
        qs = qs.filter(user_id__in=user_id_spellings(query.user_id))
    for word in query.text.split():
        qs = qs.filter(message__icontains=word)
    return qs


def _summaries(cids: list[str]) -> list[RequestSummary]:
    """Summarise whole requests (every event of each ID, not only the matching ones) in three queries."""
    if not cids:
        return []
    events = RawEvent.objects.filter(correlation_id__in=cids)
    stats = {
        row["correlation_id"]: row
        for row in events.values("correlation_id").annotate(
            first=Min("timestamp"), last=Max("timestamp"), n=Count("pk")
        )
    }
    services: dict[str, list[str]] = defaultdict(list)
    for cid, service in (
        events.values_list("correlation_id", "service").distinct().order_by("correlation_id", "service")
    ):
        services[cid].append(service)
    levels: dict[str, list[str]] = defaultdict(list)
    for cid, level in events.values_list("correlation_id", "level").distinct().order_by():
        levels[cid].append(level)
    return [
        RequestSummary(
            correlation_id=cid,
            first=stats[cid]["first"],
            last=stats[cid]["last"],
            services=services[cid],
            count=stats[cid]["n"],
            worst_level=worst_level(levels[cid]),
        )
        for cid in cids
    ]
