"""Synthetic services: each sends metric events and log lines through its own observatory Tracker.

Requests start at a fixed rate; each gets a correlation ID and touches one to three services, and each
service sends a metric event and a log line for it. Every few seconds a client re-sends a batch the portal
already acknowledged, with the same event_ids, on purpose. The ledger records what was sent and what the
portal acknowledged (the Tracker's on_delivery reports), which is what the reconciliation holds it to.
"""

import random
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from observatory import Delivery, Tracker, correlation

EventKey = tuple[str, str]  # (service, event_id): unique per service, as the portal stores them

_EVENTS = ("request_handled", "search_made", "forecast_made", "position_received")
_ROUTES = ("/search", "/forecast", "/tracks", "/ships", "/health")


@dataclass(frozen=True)
class EventSpec:
    """Everything needed to send an event again byte for byte."""

    kind: str  # "metric" or "log"
    name: str
    properties: dict[str, Any]
    user_id: str
    timestamp: str
    correlation_id: str
    level: str = ""
    message: str = ""


@dataclass
class Ledger:
    """What the clients sent and what became of it, fed from every Tracker's sender thread."""

    sent: dict[EventKey, EventSpec] = field(default_factory=dict)
    acknowledged: set[EventKey] = field(default_factory=set)
    rejected: set[EventKey] = field(default_factory=set)
    failed: set[EventKey] = field(default_factory=set)
    resent: int = 0  # events re-sent on purpose with an already acknowledged event_id
    recent: dict[str, deque[tuple[str, ...]]] = field(default_factory=dict)  # service -> acked batches
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record_sent(self, service: str, event_id: str, spec: EventSpec) -> None:
        with self.lock:
            self.sent[(service, event_id)] = spec

    def record_delivery(self, service: str, delivery: Delivery) -> None:
        with self.lock:
            self.acknowledged.update((service, eid) for eid in delivery.acknowledged)
            self.rejected.update((service, eid) for eid in delivery.rejected)
            self.failed.update((service, eid) for eid in delivery.failed)
            if delivery.acknowledged:
                self.recent.setdefault(service, deque(maxlen=20)).append(delivery.acknowledged)

    def snapshot(self) -> "LedgerSnapshot":
        with self.lock:
            return LedgerSnapshot(
                sent=frozenset(self.sent),
                acknowledged=frozenset(self.acknowledged),
                rejected=frozenset(self.rejected - self.acknowledged),
                failed=frozenset(self.failed - self.acknowledged - self.rejected),
                resent=self.resent,
            )


@dataclass(frozen=True)
class LedgerSnapshot:
    sent: frozenset[EventKey]
    acknowledged: frozenset[EventKey]  # the portal answered 2xx for them: it promised to keep them
    rejected: frozenset[EventKey]  # refused item by item (never acknowledged)
    failed: frozenset[EventKey]  # given up by the client without an acknowledgment
    resent: int


class SyntheticService:
    """One service: a name, its API key and its Tracker."""

    def __init__(self, name: str, api_key: str, portal_url: str, ledger: Ledger, flush_interval: float):
        self.name = name
        self._ledger = ledger
        self.tracker = Tracker(
            url=portal_url,
            api_key=api_key,
            service=name,
            stage="soak",
            batch_size=100,
            flush_interval=flush_interval,
            max_queue=200_000,
            timeout=10.0,
            # Outages last up to a minute or two: keep retrying (capped backoff) rather than give up.
            max_retries=1_000,
            backoff_base=0.5,
            backoff_max=5.0,
            max_retry_time=600.0,
            shutdown_timeout=120.0,
            on_delivery=lambda delivery: ledger.record_delivery(name, delivery),
        )

    def send(self, spec: EventSpec, event_id: str | None = None) -> None:
        """Send an event (new, or again under `event_id`) and note it in the ledger."""
        if spec.kind == "log":
            sent_id = self.tracker.log(
                spec.level,
                spec.message,
                spec.properties,
                spec.user_id,
                timestamp=spec.timestamp,
                correlation_id=spec.correlation_id,
                event_id=event_id,
            )
        else:
            sent_id = self.tracker.track(
                spec.name,
                spec.properties,
                spec.user_id,
                timestamp=spec.timestamp,
                correlation_id=spec.correlation_id,
                event_id=event_id,
            )
        if sent_id is None:
            raise RuntimeError(f"{self.name}: the tracker dropped an event (queue full?)")
        if event_id is None:
            self._ledger.record_sent(self.name, sent_id, spec)


class Traffic:
    """A thread that starts requests at a fixed rate and re-sends acknowledged batches now and then."""

    def __init__(
        self,
        services: list[SyntheticService],
        ledger: Ledger,
        *,
        requests_per_second: float,
        resend_every: float,
        seed: int,
    ) -> None:
        self.services = services
        self.ledger = ledger
        self.period = 1.0 / requests_per_second
        self.resend_every = resend_every
        self.requests = 0
        self._rng = random.Random(seed)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="soak-traffic", daemon=True)
        self.error: BaseException | None = None

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)
        if self.error is not None:
            raise RuntimeError("the traffic thread failed") from self.error

    def flush(self, timeout: float) -> bool:
        """Wait until every tracker delivered or gave up everything; then stop their sender threads."""
        deadline = time.monotonic() + timeout
        done = all(s.tracker.flush(max(0.1, deadline - time.monotonic())) for s in self.services)
        for service in self.services:
            service.tracker.shutdown(timeout=1)
        return done

    def client_stats(self) -> dict[str, int]:
        """Return the Trackers' counters summed: retries, server-side duplicates, failures."""
        totals: dict[str, int] = {}
        for service in self.services:
            for key, value in service.tracker.stats().items():
                totals[key] = totals.get(key, 0) + value
        return totals

    def _run(self) -> None:
        try:
            started = time.monotonic()
            next_resend = started + self.resend_every
            while not self._stop.is_set():
                self._request()
                self.requests += 1
                now = time.monotonic()
                if now >= next_resend:
                    self._resend_one_batch()
                    next_resend = now + self.resend_every
                # A fixed schedule (not a fixed sleep): the rate holds even when a step ran late.
                delay = started + self.requests * self.period - time.monotonic()
                if delay > 0:
                    self._stop.wait(delay)
        except BaseException as exc:  # reported by stop(): a silent traffic stall would fake a pass
            self.error = exc

    def _request(self) -> None:
        rng = self._rng
        cid = correlation.make()
        user = f"user-{rng.randint(1, 400)}"
        route = rng.choice(_ROUTES)
        for service in rng.sample(self.services, k=min(len(self.services), rng.randint(1, 3))):
            duration = rng.randint(1, 900)
            now = datetime.now(UTC).isoformat(timespec="microseconds")
            metric = EventSpec(
                kind="metric",
                name=rng.choice(_EVENTS),
                properties={"duration_ms": duration, "route": route, "status": 200},
                user_id=user,
                timestamp=now,
                correlation_id=cid,
            )
            service.send(metric)
            slow = duration > 700
            log = EventSpec(
                kind="log",
                name="log",
                properties={"route": route, "duration_ms": duration},
                user_id=user,
                timestamp=now,
                correlation_id=cid,
                level="warning" if slow else "info",
                message=f"{'slow ' if slow else ''}{route} handled in {duration} ms",
            )
            service.send(log)

    def _resend_one_batch(self) -> None:
        """Re-send an acknowledged batch with the same event_ids: the portal must store none of it again."""
        with self.ledger.lock:
            candidates = [(name, batches[-1]) for name, batches in self.ledger.recent.items() if batches]
        if not candidates:
            return
        name, event_ids = self._rng.choice(candidates)
        service = next(s for s in self.services if s.name == name)
        with self.ledger.lock:
            specs = [(eid, self.ledger.sent.get((name, eid))) for eid in event_ids]
        for event_id, spec in specs:
            if spec is not None:
                service.send(spec, event_id=event_id)
        with self.ledger.lock:
            self.ledger.resent += sum(1 for _, spec in specs if spec is not None)
