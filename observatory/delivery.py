"""What became of the events a Tracker took: counters, rate-limited warnings and ``on_delivery`` reports.

Every event that reaches the sender ends up in exactly one report: acknowledged, rejected or failed."""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from .encoding import Encoded

__all__ = ["COUNTERS", "Counters", "Delivery", "Reporter", "Throttle"]

logger = logging.getLogger("observatory.tracker")

COUNTERS = (
    "tracked",
    "sent",
    "accepted",
    "duplicates",
    "rejected",
    "dropped",
    "retries",
    "failed_batches",
    "failed_events",
)


@dataclass(frozen=True)
class Delivery:
    """What became of one POST of events, passed to a Tracker's ``on_delivery`` callback.

    Every event a Tracker sends ends up in exactly one Delivery: ``acknowledged`` (the portal answered
    2xx and holds the event, stored now or by an earlier send of the same event_id), ``rejected`` (refused
    item by item in a 2xx answer, or refused before sending because the portal would refuse it: larger
    than its 32 KiB limit even when truncated, or not encodable as JSON; resending cannot help) or
    ``failed`` (given up: after a 4xx, a redirect or a 2xx that is not the portal's answer, when retries ran
    out, on an unexpected error in the send path, or at shutdown, a ``Retry-After`` pause cut short
    included; the portal may or may not have stored it).
    """

    acknowledged: tuple[str, ...] = ()
    rejected: tuple[str, ...] = ()
    failed: tuple[str, ...] = ()
    status: int | None = None  # the HTTP status of the last attempt (None: no answer)
    reason: str = ""  # why the batch failed or the events were rejected before sending


class Counters:
    """Thread-safe event counters behind ``Tracker.stats()``.

    A signal handler runs in the main thread, possibly while that thread holds the lock here, and reading
    stats() or shutting down from it is what SIGTERM handlers do. So the lock is re-entrant, and a writer
    that finds it taken (the sender thread, while the handler waits for it) leaves its deltas in
    ``_pending`` (appends are atomic) for the next holder to apply, instead of waiting for a thread that
    waits for it.
    """

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._values = dict.fromkeys(COUNTERS, 0)
        self._pending: deque[dict[str, int]] = deque()

    def add(self, **deltas: int) -> None:
        """Add to the named counters."""
        if not self._lock.acquire(blocking=False):
            self._pending.append(deltas)
            return
        try:
            self._apply(deltas)
        finally:
            self._lock.release()

    def increment(self, name: str) -> int:
        """Add one to a counter and return its new value (a lower bound while another thread adds)."""
        self.add(**{name: 1})
        return self._values[name]

    def snapshot(self) -> dict[str, int]:
        """Return a copy of every counter."""
        with self._lock:
            self._apply({})
            return dict(self._values)

    def _apply(self, deltas: dict[str, int]) -> None:
        """Add ``deltas`` and whatever other writers left pending; the caller holds the lock."""
        values = self._values
        for name, delta in deltas.items():
            values[name] += delta
        pending = self._pending
        while True:
            try:  # not `while pending`: a signal handler's snapshot() may empty it between test and pop
                left = pending.popleft()
            except IndexError:
                return
            for name, delta in left.items():
                values[name] += delta


class Throttle:
    """Allow an action at most once per ``interval`` seconds per key (used to rate-limit warnings)."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._last: dict[str, float] = {}

    def ready(self, key: str) -> bool:
        """Return True (and start a new interval) if ``key`` was not allowed within the interval."""
        now = time.monotonic()
        last = self._last.get(key)
        if last is not None and now - last < self.interval:
            return False
        self._last[key] = now
        return True


class Reporter:
    """Count each outcome, warn about trouble at most once a while, and tell ``on_delivery``."""

    def __init__(
        self,
        counters: Counters,
        throttle: Throttle,
        on_delivery: Callable[[Delivery], None] | None = None,
    ) -> None:
        self.counters = counters
        self.throttle = throttle
        self.on_delivery = on_delivery

    def acknowledged(self, chunk: list[Encoded], answer: dict[str, Any], status: int) -> None:
        """Record the portal's 2xx ``answer`` to a POST of ``chunk``: accepted, duplicates and items refused
        one by one."""
        rejected = answer.get("rejected") or []
        if not isinstance(rejected, list):
            rejected = []
        duplicates = _as_int(answer.get("duplicates"), 0)
        accepted = _as_int(answer.get("accepted"), len(chunk) - duplicates - len(rejected))
        self.counters.add(sent=len(chunk), accepted=accepted, duplicates=duplicates, rejected=len(rejected))
        self._report(lambda: _success_delivery(chunk, rejected, status))
        if rejected and self.throttle.ready("rejected"):
            logger.warning(
                "observatory: server rejected %d of %d event(s), e.g. %s",
                len(rejected),
                len(chunk),
                rejected[:3],
            )

    def failed(
        self, chunk: list[Encoded], reason: str, *, retryable: bool = True, status: int | None = None
    ) -> None:
        """Record a POST of ``chunk`` given up (refused with a 4xx, out of retries, an unexpected error)."""
        self.counters.add(failed_batches=1, failed_events=len(chunk))
        self._report(lambda: Delivery(failed=_ids(chunk), status=status, reason=reason))
        if self.throttle.ready(f"failed:{retryable}"):
            logger.error("observatory: dropping batch of %d event(s): %s", len(chunk), reason)

    def abandoned(self, event_ids: Iterable[str], reason: str) -> None:
        """Record events never sent: the tracker shut down before their turn, or the sender failed."""
        ids = tuple(event_ids)
        self.counters.add(failed_events=len(ids))
        self._report(lambda: Delivery(failed=ids, reason=reason))

    def refused(self, event_id: str, name: str, reason: str) -> None:
        """Record an event the portal would refuse (too large, not encodable), so it was never sent."""
        self.counters.add(rejected=1)
        self._report(lambda: Delivery(rejected=(event_id,), reason=reason))
        if self.throttle.ready("refused"):
            logger.warning("observatory: event %r not sent: %s", name, reason)

    def _report(self, make: Callable[[], Delivery]) -> None:
        """Pass a Delivery to ``on_delivery`` (built only when there is a callback)."""
        callback = self.on_delivery
        if callback is None:
            return
        try:
            callback(make())
        except Exception:  # the sender's callback must never stop delivery; say so and go on
            logger.exception("observatory: on_delivery callback failed")


def _ids(chunk: list[Encoded]) -> tuple[str, ...]:
    return tuple(item.event_id for item in chunk)


def _success_delivery(chunk: list[Encoded], rejected: list[Any], status: int) -> Delivery:
    """Split a 2xx answer's events into acknowledged and rejected by the answer's per-item indexes."""
    ids = _ids(chunk)
    refused = {
        item["index"]
        for item in rejected
        if isinstance(item, dict) and _as_int(item.get("index"), -1) in range(len(ids))
    }
    return Delivery(
        acknowledged=tuple(eid for i, eid in enumerate(ids) if i not in refused),
        rejected=tuple(ids[i] for i in sorted(refused)),
        status=status,
    )


def _as_int(value: Any, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default
