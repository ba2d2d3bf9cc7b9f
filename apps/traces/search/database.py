"""Trace search on the portal's own database: the embedded default, no extra server."""

from collections.abc import Sequence
from typing import Any

from django.db import connection

from .base import BackendUnavailable, IndexOutcome, TraceBackend


class DatabaseTraceBackend(TraceBackend):
    name = "database"

    def ping(self) -> None:
        try:
            connection.ensure_connection()
        except Exception as exc:  # any driver error means "unreachable" to a health probe
            raise BackendUnavailable(str(exc)) from exc

    def index_events(self, events: Sequence[Any]) -> IndexOutcome:
        # The raw event rows are the index here: committed means searchable.
        return IndexOutcome(indexed=[ev.pk for ev in events])
