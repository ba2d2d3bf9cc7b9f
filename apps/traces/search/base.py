"""The trace search interface shared by the database and Elasticsearch backends."""

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from apps.ingest.conform import LEVELS

# Worst first is highest: "" (a metric, no level) ranks below every level.
LEVEL_RANK = {"": 0, **{level: rank for rank, level in enumerate(LEVELS, start=1)}}
TRAIL_LIMIT = 5000
# The deepest result either backend pages to (Elasticsearch's index.max_result_window for from + size).
MAX_RESULT_WINDOW = 10_000


@dataclass
class IndexOutcome:
    """What became of a chunk sent to the index: stored, refused for good, or to be retried later."""

    indexed: list[int] = field(default_factory=list)
    rejected: dict[int, str] = field(default_factory=dict)
    retry_later: dict[int, str] = field(default_factory=dict)


@dataclass(frozen=True)
class BackendHealth:
    """What a ping found of a backend that answers. `degraded`: it serves every search and write, but with
    less redundancy than configured (an Elasticsearch cluster with replicas not assigned: yellow)."""

    detail: str
    degraded: bool = False


@dataclass(frozen=True)
class TraceQuery:
    """What support searches for. Empty fields do not filter; `text` is free text over messages."""

    start: datetime | None = None
    end: datetime | None = None
    correlation_id: str = ""
    user_id: str = ""
    service: str = ""
    level: str = ""
    event: str = ""
    text: str = ""

    def strings(self) -> tuple[str, ...]:
        return (self.correlation_id, self.user_id, self.service, self.level, self.event, self.text)


@dataclass
class TraceEvent:
    """One event or log line of a trail, the same whichever backend found it."""

    event_id: str
    type: str
    event: str
    timestamp: datetime
    received_at: datetime
    service: str
    stage: str
    user_id: str
    correlation_id: str
    level: str
    message: str
    properties: dict[str, Any]
    notes: list[str]
    # Spans only: hex ids ("" otherwise) and how long the span took (None otherwise).
    span_id: str = ""
    parent_span_id: str = ""
    duration_ms: float | None = None

    @property
    def is_span(self) -> bool:
        return self.type == "span"

    def as_json(self) -> dict[str, Any]:
        # Field by field: dataclasses.asdict deep-copies `properties`, which cost more than the rest of the
        # answer. The dict shares `properties` and `notes` with this event.
        return {
            "event_id": self.event_id,
            "type": self.type,
            "event": self.event,
            "timestamp": self.timestamp.isoformat(),
            "received_at": self.received_at.isoformat(),
            "service": self.service,
            "stage": self.stage,
            "user_id": self.user_id,
            "correlation_id": self.correlation_id,
            "level": self.level,
            "message": self.message,
            "properties": self.properties,
            "notes": self.notes,
            "span_id": self.span_id,
            "parent_span_id": self.parent_span_id,
            "duration_ms": self.duration_ms,
        }


@dataclass
class RequestSummary:
    """One request (all events sharing a correlation ID): where it went, when, and how badly it went."""

    correlation_id: str
    first: datetime
    last: datetime
    services: list[str]
    count: int
    worst_level: str

    @property
    def duration_seconds(self) -> float:
        return (self.last - self.first).total_seconds()

    def as_json(self) -> dict[str, Any]:
        return {
            "correlation_id": self.correlation_id,
            "first": self.first.isoformat(),
            "last": self.last.isoformat(),
            "duration_seconds": self.duration_seconds,
            "services": self.services,
            "count": self.count,
            "worst_level": self.worst_level,
        }


@dataclass
class RequestPage:
    requests: list[RequestSummary]
    total: int
    page: int
    per_page: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))

    @property
    def has_next(self) -> bool:
        return self.page < self.pages


@dataclass
class UserRequests:
    """One user's newest requests, and whether the user has more in the range."""

    requests: list[RequestSummary]
    has_more: bool


def unmatchable(*values: str) -> bool:
    """Return whether any searched value can match nothing stored (a NUL or an unpaired surrogate, which
    ingestion refuses), so a backend answers "nothing" instead of passing it to a database that errors."""
    for value in values:
        if "\x00" in value:
            return True
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return True
    return False


def worst_level(levels: Sequence[str]) -> str:
    """Return the most severe of the given levels ("" when none is set)."""
    return max(levels, key=lambda lv: LEVEL_RANK.get(lv, 0), default="")


class TraceBackend(ABC):
    name: str = "abstract"
    # Whether searching reads the portal's own database (whose connection belongs to the request's thread).
    # A backend that does not may search on another thread while the request writes its audit entry.
    uses_database: bool = True

    @abstractmethod
    def ping(self) -> BackendHealth:
        """Check the backend answers and say how well; raise BackendUnavailable with the reason when it
        does not, or cannot serve every search and write (a red cluster)."""

    @abstractmethod
    def index_events(self, events: Sequence[Any]) -> IndexOutcome:
        """Make raw events searchable; idempotent (indexing an event twice leaves one document)."""

    @abstractmethod
    def trail(self, correlation_id: str, *, limit: int = TRAIL_LIMIT) -> list[TraceEvent]:
        """Return the events of one correlation ID in time order (at most `limit`)."""

    @abstractmethod
    def correlation_exists(self, correlation_id: str) -> bool:
        """Return whether any event has exactly this correlation ID (one cheap look-up; "" never exists)."""

    @abstractmethod
    def user_exists(self, user_id: str) -> bool:
        """Return whether any event has exactly this user ID (one cheap look-up; "" never exists)."""

    @abstractmethod
    def search_requests(self, query: TraceQuery, *, page: int, per_page: int) -> RequestPage:
        """Return the requests with an event matching the query, newest first, one page of them."""

    def requests_of_users(
        self, user_ids: Sequence[str], *, start: datetime | None, end: datetime | None, per_user: int
    ) -> dict[str, UserRequests]:
        """Return each user's newest `per_user` requests in [start, end), as `search_requests` of the user
        would, for a list of users in a fixed number of queries (not one search per user)."""
        wanted = [user_id for user_id in dict.fromkeys(user_ids) if user_id and not unmatchable(user_id)]
        # One more than shown says whether a user has more.
        found = (
            self.newest_requests_of_users(wanted, start=start, end=end, limit=per_user + 1) if wanted else {}
        )
        shown = {user_id: found.get(user_id, [])[:per_user] for user_id in user_ids}
        summaries = {
            summary.correlation_id: summary
            for summary in self.summarise_requests(sorted({cid for cids in shown.values() for cid in cids}))
        }
        return {
            user_id: UserRequests(
                [summaries[cid] for cid in cids], has_more=len(found.get(user_id, [])) > per_user
            )
            for user_id, cids in shown.items()
        }

    @abstractmethod
    def newest_requests_of_users(
        self, user_ids: Sequence[str], *, start: datetime | None, end: datetime | None, limit: int
    ) -> dict[str, list[str]]:
        """Return the correlation IDs of each user's newest `limit` requests in [start, end), newest first
        (ties by correlation ID, as `search_requests` orders them)."""

    @abstractmethod
    def summarise_requests(self, correlation_ids: list[str]) -> list[RequestSummary]:
        """Summarise whole requests: every event of each ID, not only those a search matched."""

    @abstractmethod
    def surrounding(self, *, service: str, start: datetime, end: datetime, limit: int) -> list[TraceEvent]:
        """Return a service's events in [start, end] in time order, whatever their correlation ID."""

    def missing_days(self, days: Sequence[date]) -> list[date]:
        """Return which of these days' stored periods (daily indices) are gone; none where the database is
        the index."""
        return []

    @abstractmethod
    def drop_before(self, cutoff: datetime) -> list[str]:
        """Drop whole stored periods (daily indices) that end before `cutoff`; return what was dropped."""

    @abstractmethod
    def delete_user(self, user_id: str, *, properties: Sequence[str] = ()) -> int:
        """Delete every searchable document that holds `user_id` as its user or in one of the top-level
        `properties`; return how many were deleted."""
