"""Fixtures shared by the funnel and retention tests."""

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext


@pytest.fixture
def raw_event_reads() -> Callable:
    """A context manager collecting the statements that read raw events (a funnel's or a retention table's
    session settings and savepoints around them are not reads)."""

    @contextmanager
    def capture() -> Iterator[list[str]]:
        reads: list[str] = []
        with CaptureQueriesContext(connection) as queries:
            yield reads
        reads.extend(q["sql"] for q in queries.captured_queries if "ingest_rawevent" in q["sql"])

    return capture
