"""The trace search interface shared by the database and Elasticsearch backends."""

import re
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
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


# A trail cursor as text: microseconds since 1970 of the event's time and of its received time, then its
# place in the store (the raw row's id), dot-separated. Every text this pattern matches is a cursor the
# backends can read (16 digits of microseconds reach the year 2286), so the API's schema can state it.
CURSOR_PATTERN = r"^[0-9]{1,16}\.[0-9]{1,16}\.[0-9]{1,19}$"
_CURSOR = re.compile(CURSOR_PATTERN.strip("^$"))
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
# The largest row id either store holds (a signed 64-bit integer); a cursor's larger one means the same.
MAX_SEQ = 2**63 - 1


@dataclass(frozen=True)
class TrailCursor:
    """Where a page of a trail stopped: its last event's sort key (time, received time, store sequence),
    which both backends order trails by; the next page is the events after it."""

    timestamp: datetime
    received_at: datetime
    seq: int

    def encode(self) -> str:
        """Return the cursor as the text the API hands out (opaque to clients)."""
        return f"{_micros(self.timestamp)}.{_micros(self.received_at)}.{self.seq}"

    @classmethod
    def decode(cls, text: str) -> "TrailCursor":
        """Return the cursor a text encodes; raise ValueError when it is not one."""
        if not _CURSOR.fullmatch(text):
            raise ValueError(f"{text[:60]!r} is not a trail cursor: pass the `next` of an earlier answer")
        timestamp, received_at, seq = (int(part) for part in text.split("."))
        return cls(_EPOCH + timestamp * _MICROSECOND, _EPOCH + received_at * _MICROSECOND, min(seq, MAX_SEQ))


def _micros(moment: datetime) -> int:
    return (moment - _EPOCH) // _MICROSECOND


@dataclass
class TrailPage:
    """One page of a trail: its events in time order and, when more follow, where to go on from."""

    events: list[TraceEvent]
    next: TrailCursor | None

    @property
    def cut(self) -> bool:
        return self.next is not None


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

    def trail(self, correlation_id: str, *, limit: int = TRAIL_LIMIT) -> list[TraceEvent]:
        """Return the events of one correlation ID in time order (at most `limit`)."""
        return self.trail_page(correlation_id, limit=limit).events

    @abstractmethod
    def trail_page(self, correlation_id: str, *, limit: int, after: TrailCursor | None = None) -> TrailPage:
        """Return at most `limit` events of one correlation ID in time order, those after `after` when
        given, and the cursor of the last one when more follow. Ties on time go by received time, then by
        the raw row's id, on both backends: pages neither skip nor repeat an event."""

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
    def surrounding(
        self, *, service: str, start: datetime, end: datetime, limit: int, newest_first: bool = False
    ) -> list[TraceEvent]:
        """Return a service's events in [start, end] in time order, whatever their correlation ID: the
        earliest `limit` of them, or with `newest_first` the latest `limit`, latest first."""

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
