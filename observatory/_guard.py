"""Thread-local marker for code running inside the library's own send path, so log capture can skip it."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

_state = threading.local()


def active() -> bool:
    """Return whether the current thread is inside the library's send path."""
    return getattr(_state, "depth", 0) > 0


@contextmanager
def sending() -> Iterator[None]:
    """Mark the current thread as sending for the duration of the block (re-entrant)."""
    _state.depth = getattr(_state, "depth", 0) + 1
    try:
        yield
    finally:
        _state.depth -= 1
