"""The queue between ``track()`` and the network, and the daemon thread that empties it in batches.

Callers only append to a deque (no lock); the thread encodes, chunks and sends. ``flush`` waits for it."""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections import deque
from collections.abc import Iterable
from typing import Any

from . import _guard, encoding
from .config import MAX_BATCH_BYTES, MAX_EVENT_BYTES, TrackerConfig
from .delivery import Reporter
from .encoding import EVENT_ID_INDEX, Encoded, PendingEvent, unflatten
from .transport import Transport

__all__ = ["ABORT_GRACE_SECONDS", "Sender", "chunks"]

logger = logging.getLogger("observatory.tracker")  # one logger for everything a Tracker says

_NEVER = sys.maxsize  # a queue length no caller reaches: nobody needs waking
# How long close() waits past its deadline for an aborted sender thread to give up (and count) its events.
ABORT_GRACE_SECONDS = 1.0


def chunks(events: list[Encoded], max_count: int, max_bytes: int) -> Iterable[list[Encoded]]:
    """Split encoded events, in order, into lists within a count and a byte size (a comma each)."""
    chunk: list[Encoded] = []
    size = 0
    for item in events:
        if chunk and (len(chunk) >= max_count or size + len(item.data) + 1 > max_bytes):
            yield chunk
            chunk, size = [], 0
        chunk.append(item)
        size += len(item.data) + 1
    if chunk:
        yield chunk


class Sender:
    """One process's event queue and sender thread (started on the first event).

    Events are counted twice: ``_taken`` when the thread (or a flush in the caller) takes them off the
    queue, ``_done`` once they were delivered or given up. Both only grow and the queue is FIFO, so
    "every event queued before now is done" is ``_done >= _taken + len(queue)`` as read now.
    """

    def __init__(
        self, config: TrackerConfig, transport: Transport, reporter: Reporter, abort: threading.Event
    ) -> None:
        self.config = config
        self.transport = transport
        self.reporter = reporter
        self.thread: threading.Thread | None = None
        # The caller's side is Tracker.track, which appends to ``queue`` itself while it is shorter than
        # ``append_below`` (a call layer here would cost as much as the append), and calls put() otherwise.
        self.queue: deque[tuple[Any, ...]] = deque()  # events as encoding.capture made them
        self.max_queue = config.max_queue
        # Re-entrant for signal handlers, as Counters' lock; the condition's wait releases it whole.
        self._lock = threading.RLock()
        self._done_changed = threading.Condition(self._lock)
        self._taken = 0
        self._done = 0
        self._flush_target = 0
        # The thread sleeps on _wakeup; a caller whose append makes the queue wake_at long calls wake().
        # 1 at first: the first event starts the thread.
        self._wakeup = threading.Event()
        self._set_wake_at(1)
        self._thread_failed = False
        self._stopping = threading.Event()
        self._abort = abort

    # -- the caller's side -------------------------------------------------------------------------

    def put(self, event: tuple[Any, ...]) -> bool:
        """Queue an event without blocking; return False when the queue is full (track() inlines this)."""
        queue = self.queue
        # Without a lock, threads tracking at the same instant may overshoot max_queue by one each.
        if len(queue) >= self.max_queue:
            return False
        queue.append(event)
        if len(queue) >= self.wake_at:
            self.wake()
        return True

    def wake(self) -> None:
        """Start the sender thread, or wake it: the queue just became ``wake_at`` long."""
        self._set_wake_at(_NEVER)
        if self.thread is None:
            if not self._thread_failed:
                self._start_thread()
        else:
            self._wakeup.set()

    def _set_wake_at(self, length: int) -> None:
        """Ask to be woken when the queue is ``length`` long (_NEVER: not at all).

        ``append_below`` goes with it: a caller finding the queue shorter may append without put()'s
        checks, since its event neither fills the queue nor makes it ``wake_at`` long.
        """
        self.wake_at = length
        self.append_below = min(self.max_queue, length - 1)

    def progress(self) -> tuple[int, int]:
        """Return (events ever queued, events queued and not yet delivered or given up)."""
        with self._lock:
            queued = len(self.queue)
            return self._taken + queued, self._taken - self._done + queued

    def deliver(self, events: list[tuple[Any, ...]], *, may_pause: bool = False) -> None:
        """Encode captured events and send them in chunks within the portal's limits; report refusals.

        Every event ends in one report, even when something here raises: the events not reported yet are
        then reported failed. ``may_pause``: see ``Transport.send``.
        """
        config = self.config
        service = config.service if config.send_service else None
        stage = config.stage if config.send_service else None
        encoded: list[Encoded] = []
        seen = 0  # events of ``events`` encoded or reported
        sent = 0  # events of ``encoded`` handed to the transport, which reports them
        try:
            for event in map(unflatten, events):
                data = self._encode(event, service, stage)
                if data is not None:
                    encoded.append(Encoded(event.event_id, data))
                seen += 1
            for chunk in chunks(encoded, config.batch_size, MAX_BATCH_BYTES):
                self.transport.send(chunk, may_pause=may_pause)
                sent += len(chunk)
        except Exception as exc:
            logger.exception("observatory: unexpected error while delivering %d event(s)", len(events))
            unreported = [item.event_id for item in encoded[sent:]]
            unreported += [fields[EVENT_ID_INDEX] for fields in events[seen:]]
            if unreported:
                self.reporter.abandoned(unreported, f"unexpected {type(exc).__name__} in the sender: {exc}")

    def _encode(self, event: PendingEvent, service: str | None, stage: str | None) -> bytes | None:
        """Return the event's JSON, or None once it was reported rejected (too large, not encodable)."""
        try:
            data = encoding.encode(event, service, stage)
        except Exception as exc:  # reported (as rejected) and logged by the reporter
            self.reporter.refused(event.event_id, event.name, f"cannot be encoded as JSON: {exc}")
            return None
        if data is None:
            self.reporter.refused(
                event.event_id,
                event.name,
                f"larger than the portal's limit of {MAX_EVENT_BYTES} bytes even when truncated",
            )
        return data

    def flush(self, timeout: float | None) -> bool:
        """Wait until every event queued before this call was delivered or given up (see Tracker.flush)."""
        with self._lock:
            target = self._taken + len(self.queue)
            if self._done >= target:
                return True
            self._flush_target = max(self._flush_target, target)
        if threading.current_thread() is self.thread:
            return False  # waiting on ourselves would deadlock
        if not self._ensure_thread():
            # No sender thread (e.g. interpreter shutdown refused a new thread): deliver here.
            self._drain_in_caller(None if timeout is None else time.monotonic() + timeout)
        self._wakeup.set()
        with self._done_changed:
            return self._done_changed.wait_for(lambda: self._done >= target, timeout)

    def stop(self, deadline: float) -> None:
        """Let the thread finish what it holds (unless aborted) and wait for it until ``deadline``."""
        self._stopping.set()
        self._wakeup.set()
        thread = self.thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(max(0.05, deadline - time.monotonic()))

    def close(self, delivered: bool, deadline: float) -> None:
        """Stop after a flush that ``delivered`` everything or not; if not, give up what is left.

        Abandoned events are counted in ``failed_events`` by the thread once it sees the abort, which may
        take it the end of an HTTP request: it gets ``ABORT_GRACE_SECONDS`` past ``deadline`` for that.
        """
        if not delivered:
            pending = self.progress()[1]
            self._abort.set()
            logger.warning("observatory: shutdown timed out; %d event(s) were not delivered", pending)
            deadline = max(deadline, time.monotonic() + ABORT_GRACE_SECONDS)
        self.stop(deadline)
        self.transport.close()

    def release(self) -> None:
        """Let the thread deliver what is queued and end: its Tracker was collected. Never blocks.

        This runs inside the garbage collector, in whichever thread it struck, so it must not wait for
        anything that thread may hold: the sender thread wakes itself within its idle timeout.
        """
        self._stopping.set()
        if threading.current_thread() is not self.thread:
            self._wakeup.set()

    def finished(self) -> bool:
        """Return whether nothing is queued and no thread is running."""
        thread = self.thread
        return not self.queue and (thread is None or not thread.is_alive())

    # -- the thread ---------------------------------------------------------------------------------

    def _ensure_thread(self) -> bool:
        """Start the sender thread if needed; return whether one is running."""
        thread = self.thread
        if thread is not None and thread.is_alive():
            return True
        if self._thread_failed or self._stopping.is_set():
            return False
        return self._start_thread()

    def _start_thread(self) -> bool:
        with self._lock:
            if self.thread is not None and self.thread.is_alive():
                return True
            thread = threading.Thread(target=self._run, name="observatory-sender", daemon=True)
            try:
                thread.start()
            except RuntimeError:  # "can't create new thread at interpreter shutdown"
                self._thread_failed = True
                return False
            self.thread = thread
        return True

    def _run(self) -> None:
        with _guard.sending():  # nothing logged from this thread may be captured back into the tracker
            while True:
                batch: list[tuple[Any, ...]] = []
                try:
                    batch = self._next_batch()
                    if batch:
                        if self._abort.is_set():
                            ids = (event[EVENT_ID_INDEX] for event in batch)
                            self.reporter.abandoned(ids, self._abandon_reason())
                        else:
                            self.deliver(batch, may_pause=True)
                except Exception:  # never let the sender die: that would silently stall flush()
                    logger.exception("observatory: unexpected error in sender thread")
                finally:
                    if batch:
                        self._mark_done(len(batch))
                if self._stopping.is_set() and not self.queue:
                    self.transport.close()
                    return

    def _abandon_reason(self) -> str:
        pause = self.transport.interrupted_pause
        return "shutdown" if pause is None else f"shut down during {pause}"

    def _urgent(self) -> bool:
        return self._stopping.is_set() or self._flush_target > self._done

    def _next_batch(self) -> list[tuple[Any, ...]]:
        """Take up to batch_size events, waiting at most flush_interval after the first one."""
        queue = self.queue
        batch_size = self.config.batch_size
        while not queue:
            if self._stopping.is_set():
                return []
            self._sleep_until(1, 5.0)  # idle; the timeout is only a safety net
        if len(queue) < batch_size and not self._urgent():
            deadline = time.monotonic() + self.config.flush_interval
            while len(queue) < batch_size and not self._urgent():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._sleep_until(batch_size, remaining)
        return self._take(batch_size)

    def _sleep_until(self, length: int, timeout: float) -> None:
        """Sleep until the queue is ``length`` long, flush or stop set ``_wakeup``, or ``timeout`` passed."""
        self._wakeup.clear()
        self._set_wake_at(length)
        # Checked after publishing wake_at: an append before this is seen here, one after sets _wakeup.
        if len(self.queue) < length and not self._urgent():
            self._wakeup.wait(timeout)
        self._set_wake_at(_NEVER)

    def _take(self, limit: int) -> list[tuple[Any, ...]]:
        with self._lock:
            queue = self.queue
            batch = [queue.popleft() for _ in range(min(limit, len(queue)))]
            self._taken += len(batch)
        return batch

    def send_queued(self) -> None:
        """Deliver in the caller the events queued now (sync mode: those tracked while the caller was
        sending). Events the callbacks of these sends track wait for the next track() or flush(): an
        ``on_delivery`` that tracks each failure would otherwise keep the caller sending for ever."""
        pending = len(self.queue)
        with _guard.sending():
            while pending > 0:
                batch = self._take(min(self.config.batch_size, pending))
                if not batch:
                    return
                pending -= len(batch)
                try:
                    self.deliver(batch)
                finally:
                    self._mark_done(len(batch))

    def _drain_in_caller(self, deadline: float | None) -> None:
        with _guard.sending():
            while deadline is None or time.monotonic() < deadline:
                batch = self._take(self.config.batch_size)
                if not batch:
                    return
                try:
                    self.deliver(batch)
                finally:
                    self._mark_done(len(batch))

    def _mark_done(self, count: int) -> None:
        with self._done_changed:
            self._done += count
            self._done_changed.notify_all()
