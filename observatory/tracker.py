"""The public face of the observatory client: ``Tracker`` and the module-level helpers on a default one.

``track`` only captures the event and queues it; the sender thread encodes, batches, gzips and POSTs it to
``{url}/api/v1/batch`` with retries. The work is split over ``config``, ``encoding``, ``sender``,
``transport`` and ``delivery``; this module wires them together and owns the fork and exit hooks: every
Tracker's events are flushed at interpreter exit, at the exit of a multiprocessing child (which skips
``atexit``), and when a Tracker is collected without ``shutdown()``."""

from __future__ import annotations

import atexit
import logging
import multiprocessing.util
import os
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from . import _guard, correlation, encoding
from .config import BATCH_PATH as BATCH_PATH
from .config import MAX_BATCH_BYTES as MAX_BATCH_BYTES
from .config import MAX_BATCH_EVENTS as MAX_BATCH_EVENTS
from .config import MAX_EVENT_BYTES as MAX_EVENT_BYTES
from .config import TrackerConfig
from .delivery import Counters, Delivery, Reporter, Throttle
from .encoding import (
    AT_INDEX,
    EVENT_ID_INDEX,
    PLAIN,
    capture,
    copy_properties,
    new_event_id,
    next_spare_event_id,
    normalise_level,
    snapshot_properties,
    take_user_id,
)
from .encoding import LOG_LEVELS as LOG_LEVELS
from .sender import ABORT_GRACE_SECONDS as ABORT_GRACE_SECONDS
from .sender import Sender
from .transport import Transport

__all__ = ["Delivery", "Tracker", "flush", "get_tracker", "log", "set_tracker", "shutdown", "track"]

logger = logging.getLogger("observatory.tracker")

_PID_CHECK_INTERVAL = 0.001  # seconds of track() time between two looks at os.getpid() (see _submit)
_CLOSED = float("-inf")  # Tracker._queue_until when track() may not append without the checks of _submit
_now = time.time
_current_correlation_id = correlation.current_get


class _Setting:
    """A read-only Tracker attribute showing one field of ``Tracker.config`` (``tracker.url`` and so on)."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, tracker: Tracker | None, owner: type | None = None) -> Any:
        if tracker is None:
            return self
        return getattr(tracker.config, self.name)

    def __set__(self, tracker: Tracker, value: Any) -> None:
        raise AttributeError(f"{self.name} is fixed when the Tracker is made; make another Tracker")


class Tracker:
    """Collect metric and log events and deliver them in the background to the SkyWatch portal.

    Unset ``url``, ``api_key``, ``service`` and ``stage`` come from the environment variables
    ``OBSERVATORY_URL``, ``OBSERVATORY_API_KEY``, ``SERVICE_NAME`` and ``STAGE``; ``sync=None`` reads
    ``OBSERVATORY_SYNC``. A tracker without a URL drops events (counted in ``stats()["dropped"]``) and warns
    once instead of failing the caller; an API key that an HTTP header cannot carry (not latin-1) raises
    ValueError here rather than failing every send.

    Failed POSTs are retried within ``max_retries`` and ``max_retry_time``. An answer with ``Retry-After``
    (the portal throttling, or down for a while) pauses the sender instead, for as long as it asks (at
    most an hour): the batch stays at the head, new events queue up to ``max_queue`` and overflow as usual.

    The portal takes service and stage from the API key, so events leave them out by default. A log
    shipper whose key may forward for other services passes ``send_service=True`` to name them.

    ``on_delivery``, when given, is called with a :class:`Delivery` after every POST outcome (from the
    sender thread, or the caller's in sync mode), so a sender can learn which event_ids the portal holds.
    An event the portal would refuse (over its 32 KiB limit even when truncated) is never sent and is
    reported there as rejected.

    Create one Tracker per process (or use the module-level :func:`track`): each owns a sender thread.
    A Tracker dropped without :meth:`shutdown` is not lost: once it is collected, its thread delivers what
    it holds and ends, and what it has not delivered by interpreter exit is flushed then.
    """

    url = _Setting()
    endpoint = _Setting()
    api_key = _Setting()
    service = _Setting()
    stage = _Setting()
    sync = _Setting()
    batch_size = _Setting()
    flush_interval = _Setting()
    max_queue = _Setting()
    timeout = _Setting()
    max_retries = _Setting()
    backoff_base = _Setting()
    backoff_max = _Setting()
    max_retry_time = _Setting()
    shutdown_timeout = _Setting()
    gzip_body = _Setting()
    send_service = _Setting()

    def __init__(
        self,
        url: str | None = None,
        api_key: str | None = None,
        service: str | None = None,
        stage: str | None = None,
        *,
        batch_size: int = 100,
        flush_interval: float = 1.0,
        max_queue: int = 10_000,
        sync: bool | None = None,
        timeout: float = 5.0,
        max_retries: int = 8,
        backoff_base: float = 0.5,
        backoff_max: float = 30.0,
        max_retry_time: float = 120.0,
        shutdown_timeout: float = 5.0,
        warn_interval: float = 60.0,
        gzip_body: bool = True,
        send_service: bool = False,
        on_delivery: Callable[[Delivery], None] | None = None,
    ) -> None:
        self.config = TrackerConfig.resolve(
            url,
            api_key,
            service,
            stage,
            batch_size=batch_size,
            flush_interval=flush_interval,
            max_queue=max_queue,
            sync=sync,
            timeout=timeout,
            max_retries=max_retries,
            backoff_base=backoff_base,
            backoff_max=backoff_max,
            max_retry_time=max_retry_time,
            shutdown_timeout=shutdown_timeout,
            warn_interval=warn_interval,
            gzip_body=gzip_body,
            send_service=send_service,
        )
        self._throttle = Throttle(self.config.warn_interval)
        self._warned_unconfigured = False
        self._init_process_state(on_delivery)
        _live_trackers.add(self)
        if self.config.url and not self.config.api_key:
            logger.warning("observatory: OBSERVATORY_API_KEY is not set; the portal will answer 401")

    # -- process-local state -------------------------------------------------------------------

    def _init_process_state(self, on_delivery: Callable[[Delivery], None] | None) -> None:
        """Create everything that must not be shared with a forked child: queue, locks, thread, session."""
        self._pid = os.getpid()
        self._closed = False
        self._shutdown_delivered = True  # what shutdown() returned, for a second call
        # The fast path of _submit: a URL, not sync mode, not shut down.
        self._queueing = self.config.endpoint is not None and not self.config.sync
        self._counters = Counters()
        self._reporter = Reporter(self._counters, self._throttle, on_delivery)
        self._abort = threading.Event()  # set when shutdown gives up: cut retries and back-off short
        self._transport = Transport(self.config, self._reporter, self._abort)
        self._sender = Sender(self.config, self._transport, self._reporter, self._abort)
        self._queue = self._sender.queue  # track() appends here itself (see Sender)
        self._pid_checked(time.time())
        # The sender outlives a collected Tracker until it delivered what it holds (see _orphan); only
        # this finalizer, not the registry of live Trackers, knows which sender is this Tracker's.
        previous = getattr(self, "_orphan_when_collected", None)
        if previous is not None:
            previous.detach()  # a forked child's copy: the parent's sender is not this process's
        self._orphan_when_collected = weakref.finalize(self, _orphan, self._sender)
        self._orphan_when_collected.atexit = False  # exit is shutdown_all's job

    def _pid_checked(self, at: float) -> None:
        """Note that the process ID was checked at ``at``: track() may append without checks until
        ``_queue_until`` (while queueing at all, and as long as the clock does not go back before ``at``)."""
        self._pid_checked_at = at
        self._queue_until = at + _PID_CHECK_INTERVAL if self._queueing else _CLOSED

    def _after_fork_in_child(self) -> None:
        # The parent's queued events stay the parent's job; the child starts empty with its own
        # thread (lazily), so nothing is ever sent twice and no lock is inherited in a held state.
        self._init_process_state(self._reporter.on_delivery)

    def _check_pid(self) -> None:
        if self._pid != os.getpid():  # forked without os.fork() hooks (rare); same remedy
            encoding.discard_spare_event_ids()
            self._after_fork_in_child()

    # -- public API ----------------------------------------------------------------------------

    @property
    def on_delivery(self) -> Callable[[Delivery], None] | None:
        """The callback told about every delivery outcome (settable)."""
        return self._reporter.on_delivery

    @on_delivery.setter
    def on_delivery(self, callback: Callable[[Delivery], None] | None) -> None:
        self._reporter.on_delivery = callback

    @property
    def enabled(self) -> bool:
        """Return whether a URL is configured (otherwise every event is dropped)."""
        return self.config.endpoint is not None

    def track(
        self,
        event: str,
        properties: Mapping[str, Any] | None = None,
        user_id: Any = None,
        *,
        timestamp: datetime | float | str | None = None,
        correlation_id: str | None = None,
        event_id: str | uuid.UUID | None = None,
    ) -> str | None:
        """Record a metric event without blocking; return its event_id, or None if it was dropped.

        ``user_id`` falls back to ``properties["user_id"]`` (or ``"userId"``), which is then removed from
        the properties; ``correlation_id`` falls back to the current context's correlation ID. ``event_id``
        (a UUID) is new by default; pass the one of an event sent before to re-send it: the portal stores
        an event_id once per service, so a replay (from an outbox, say) is never stored twice.

        The properties are copied now: changing them after ``track()`` returned does not change the event.
        Encoding and the size limit are the sender thread's work; an event too large for the portal is
        reported to ``on_delivery`` as rejected.
        """
        # encoding.capture's steps and _submit's queueing in this one frame: at about a microsecond a call,
        # each call layer, attribute or global lookup saved here shows (log() takes the plain route).
        at = _now()
        props = properties.copy() if type(properties) is dict else copy_properties(properties)
        if "user_id" in props or "userId" in props:
            user_id = take_user_id(props, user_id)
        for value in props.values():
            if type(value) not in PLAIN:
                props = snapshot_properties(props)
                break
        if correlation_id is None:
            correlation_id = _current_correlation_id()
        if event_id is None:
            try:
                event_id = next_spare_event_id()
            except IndexError:
                event_id = new_event_id()
        else:
            event_id = str(event_id)
        record = (
            "metric",
            str(event),
            None if user_id is None else str(user_id),
            timestamp,
            at,
            None if correlation_id is None else str(correlation_id),
            event_id,
            None,
            None,
            *props,
            *props.values(),
        )
        if self._pid_checked_at <= at < self._queue_until:
            queue = self._queue
            if len(queue) < self._sender.append_below:  # room, and nobody to wake (see Sender)
                queue.append(record)
                return event_id
        return self._submit(record)

    def log(
        self,
        level: str | int,
        message: Any,
        properties: Mapping[str, Any] | None = None,
        user_id: Any = None,
        *,
        timestamp: datetime | float | str | None = None,
        correlation_id: str | None = None,
        event_id: str | uuid.UUID | None = None,
    ) -> str | None:
        """Record a log line (``type: "log"``) without blocking; return its event_id, or None if dropped.

        ``level`` is a name (debug/info/warning/error/critical) or a :mod:`logging` level number;
        ``event_id`` and the copying of properties as for :meth:`track`.
        """
        return self._submit(
            capture(
                "log",
                "log",
                properties,
                user_id,
                timestamp,
                correlation_id,
                event_id,
                normalise_level(level),
                str(message),
            )
        )

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every event queued before this call was delivered or given up.

        Return True when that happened within ``timeout`` seconds (None waits indefinitely). A flush that
        times out gives nothing up: during a ``Retry-After`` pause, the events wait for its end.
        """
        if self.config.sync:
            # Sync mode delivers inside track(), but for events tracked during a send (see _submit_otherwise).
            if self._queue and not self._transport.sending_here():
                self._sender.send_queued()
            return True
        self._check_pid()
        return self._sender.flush(timeout)

    def shutdown(self, timeout: float | None = None) -> bool:
        """Flush (waiting at most ``timeout``, default ``shutdown_timeout``), then stop the sender thread.

        Events still pending after the timeout are abandoned: reported failed to ``on_delivery`` (the
        reason names a ``Retry-After`` pause that shutdown cut short) and counted in ``failed_events``. The
        sender thread gets up to ``ABORT_GRACE_SECONDS`` more to finish a request in flight and count them.
        Return whether everything was delivered: True only when the flush finished in time and no event
        this Tracker took was ever given up (``failed_events``) or dropped (a full queue, no URL). Events
        the portal refused one by one are not counted here (see ``rejected`` and ``on_delivery``). Called
        automatically at interpreter exit and at the exit of a multiprocessing child.
        """
        self._check_pid()
        if self._closed:
            return self._shutdown_delivered  # a second call says what the first found
        timeout = self.config.shutdown_timeout if timeout is None else timeout
        deadline = time.monotonic() + max(0.0, timeout)
        delivered = self.flush(timeout)
        self._queueing = False
        self._queue_until = _CLOSED
        self._closed = True
        self._sender.close(delivered, deadline)
        counts = self._counters.snapshot()
        self._shutdown_delivered = delivered and not counts["failed_events"] and not counts["dropped"]
        return self._shutdown_delivered

    def stats(self) -> dict[str, int]:
        """Return counters: queued (pending now), sent, accepted, duplicates, rejected, dropped, retries,
        failed_batches, plus tracked (ever enqueued) and failed_events."""
        result = self._counters.snapshot()
        tracked, queued = self._sender.progress()
        result["tracked"] += tracked
        result["queued"] = queued
        return result

    def __repr__(self) -> str:
        return f"<Tracker url={self.url!r} service={self.service!r} sync={self.sync}>"

    # -- enqueueing ----------------------------------------------------------------------------

    def _submit(self, event: tuple[Any, ...]) -> str | None:
        """Queue (or in sync mode send) an event made by ``encoding.capture``; return its event_id."""
        # os.getpid() is a system call (0.2 µs, as much as the rest of the queueing): check it once a
        # millisecond of track() time, not on every call. Forks through os.fork() reset the tracker
        # anyway (see _after_fork_in_child); this catches the others (uWSGI's, say).
        at = event[AT_INDEX]
        checked = self._pid_checked_at
        if not checked <= at < checked + _PID_CHECK_INTERVAL:
            self._check_pid()
            self._pid_checked(at)
        if self._queueing and self._sender.put(event):
            return event[EVENT_ID_INDEX]
        return self._submit_otherwise(event)

    def _submit_otherwise(self, event: tuple[Any, ...]) -> str | None:
        """Drop the event (no URL, shut down, queue full) or, in sync mode, send it now."""
        config = self.config
        if config.endpoint is None:
            self._counters.add(dropped=1)
            if not self._warned_unconfigured:
                self._warned_unconfigured = True
                logger.warning("observatory: OBSERVATORY_URL is not set; events are dropped")
            return None
        if self._closed:
            self._counters.add(dropped=1)
            if self._throttle.ready("closed"):
                logger.warning("observatory: event tracked after shutdown(); dropped")
            return None
        if config.sync:
            if self._transport.sending_here():
                # An on_delivery callback or a signal handler inside this thread's own send: sending now
                # would wait for that send's lock for ever. The send it interrupted takes the event after.
                self._queue.append(event)
                return event[EVENT_ID_INDEX]
            self._counters.add(tracked=1)
            with _guard.sending():
                self._sender.deliver([event])
            if self._queue:
                self._sender.send_queued()
            return event[EVENT_ID_INDEX]
        dropped = self._counters.increment("dropped")
        if self._throttle.ready("queue-full"):
            logger.warning(
                "observatory: queue full (max_queue=%d); %d event(s) dropped so far",
                config.max_queue,
                dropped,
            )
        return None


# -- process-wide registry: fork hooks, atexit, default tracker ---------------------------------

_live_trackers: weakref.WeakSet[Tracker] = weakref.WeakSet()
# Senders of Trackers collected without shutdown(), held until they delivered what they hold. A set the
# garbage collector may add to from any thread: read it through copy() (one C call, no collection inside).
_orphans: set[Sender] = set()
_default: Tracker | None = None
_default_lock = threading.Lock()
# After every other exit hook of a multiprocessing child, so events they track are flushed too.
_MULTIPROCESSING_EXIT_PRIORITY = -100


def _orphan(sender: Sender) -> None:
    """Let the sender of a collected Tracker deliver what it holds, and keep it for exit until it did."""
    for done in [other for other in _orphans.copy() if other.finished()]:
        _orphans.discard(done)
    if not sender.finished():
        _orphans.add(sender)
    sender.release()


def _after_fork_in_child() -> None:
    global _default_lock
    _default_lock = threading.Lock()
    _orphans.clear()  # the parent's job, like the live trackers' queued events
    for tracker in list(_live_trackers):
        tracker._after_fork_in_child()


def _flush_at_multiprocessing_exit(shutdown: Callable[[], None]) -> None:
    # multiprocessing's children (a fork Process, a Pool worker) leave through os._exit: atexit never
    # runs there, multiprocessing's exit hooks do. Registered after each such fork, once multiprocessing
    # has cleared the hooks the child inherited.
    multiprocessing.util.Finalize(None, shutdown, exitpriority=_MULTIPROCESSING_EXIT_PRIORITY)


def shutdown_all(timeout: float | None = None) -> None:
    """Shut down every Tracker of this process and flush the senders of collected ones (run at exit, at
    the exit of a multiprocessing child and by the Celery integration)."""
    for tracker in list(_live_trackers):
        try:
            tracker.shutdown(timeout)
        except Exception:  # one broken tracker must not keep the others from flushing
            logger.exception("observatory: error while shutting down %r", tracker)
    for sender in _orphans.copy():
        wait = sender.config.shutdown_timeout if timeout is None else timeout
        try:
            sender.close(sender.flush(wait), time.monotonic() + max(0.0, wait))
        except Exception:  # as above: one broken sender must not keep the others from flushing
            logger.exception("observatory: error while flushing a collected tracker's events")
        _orphans.discard(sender)


os.register_at_fork(after_in_child=_after_fork_in_child)
multiprocessing.util.register_after_fork(shutdown_all, _flush_at_multiprocessing_exit)
atexit.register(shutdown_all)


def get_tracker() -> Tracker:
    """Return the process-wide default Tracker, creating it from the environment on first use."""
    global _default
    tracker = _default
    if tracker is None:
        with _default_lock:
            if _default is None:
                _default = Tracker()
            tracker = _default
    return tracker


def set_tracker(tracker: Tracker | None) -> None:
    """Replace the default Tracker used by the module-level helpers (None: recreate lazily from env)."""
    global _default
    with _default_lock:
        _default = tracker


def track(
    event: str,
    properties: Mapping[str, Any] | None = None,
    user_id: Any = None,
    *,
    timestamp: datetime | float | str | None = None,
    correlation_id: str | None = None,
    event_id: str | uuid.UUID | None = None,
) -> str | None:
    """Record a metric event on the default Tracker (see :meth:`Tracker.track`)."""
    tracker = _default
    if tracker is None:
        tracker = get_tracker()
    if timestamp is None and correlation_id is None and event_id is None:
        return tracker.track(event, properties, user_id)  # no keyword packing when there is nothing to pass
    return tracker.track(
        event, properties, user_id, timestamp=timestamp, correlation_id=correlation_id, event_id=event_id
    )


def log(
    level: str | int,
    message: Any,
    properties: Mapping[str, Any] | None = None,
    user_id: Any = None,
    *,
    timestamp: datetime | float | str | None = None,
    correlation_id: str | None = None,
    event_id: str | uuid.UUID | None = None,
) -> str | None:
    """Record a log line on the default Tracker (see :meth:`Tracker.log`)."""
    return get_tracker().log(
        level,
        message,
        properties,
        user_id,
        timestamp=timestamp,
        correlation_id=correlation_id,
        event_id=event_id,
    )


def flush(timeout: float | None = None) -> bool:
    """Flush the default Tracker (see :meth:`Tracker.flush`)."""
    return get_tracker().flush(timeout)


def shutdown(timeout: float | None = None) -> bool:
    """Shut down the default Tracker if one was created (see :meth:`Tracker.shutdown`)."""
    tracker = _default
    return True if tracker is None else tracker.shutdown(timeout)
