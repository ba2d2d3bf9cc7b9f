"""The trace search interface shared by the database and Elasticsearch backends."""

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any


class BackendUnavailable(Exception):
    """The search backend could not be reached."""


@dataclass
class IndexOutcome:
    """What became of a chunk sent to the index: stored, refused for good, or to be retried later."""

    indexed: list[int] = field(default_factory=list)
    rejected: dict[int, str] = field(default_factory=dict)
    retry_later: dict[int, str] = field(default_factory=dict)


class TraceBackend(ABC):
    name: str = "abstract"

    @abstractmethod
    def ping(self) -> None:
        """Check the backend answers; raise BackendUnavailable with the reason when it does not."""

    @abstractmethod
    def index_events(self, events: Sequence[Any]) -> IndexOutcome:
        """Make raw events searchable; idempotent (indexing an event twice leaves one document)."""
