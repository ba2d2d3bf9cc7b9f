"""Buffered, fork-safe tracker shipping metric and log events to the SkyWatch ingestion API.

``track`` only enqueues; a daemon thread batches, gzips and POSTs to ``{url}/api/v1/batch`` with retries."""

from __future__ import annotations

import atexit
import gzip
import json
import logging
import math
import os
import queue
import random
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from email.utils import parsedate_to_datetime
from typing import Any

import requests

from . import _guard, correlation
from ._version import __version__

__all__ = ["Delivery", "Tracker", "flush", "get_tracker", "log", "set_tracker", "shutdown", "track"]

logger = logging.getLogger("observatory.tracker")

BATCH_PATH = "/api/v1/batch"
MAX_BATCH_EVENTS = 1000
# The server accepts <= 1 MB per batch; keep headroom for the envelope and sent_at.
MAX_BATCH_BYTES = 1_000_000 - 4_096
# The server measures events with the same compact UTF-8 JSON encoding and refuses > 32 KiB; the margin
# covers re-serialisation differences (float spelling and the like).
MAX_EVENT_BYTES = 32 * 1024 - 256
_TRUNCATE_CHARS = 8_192
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
_LEVEL_ALIASES = {"warn": "warning", "fatal": "critical", "exception": "error", "err": "error"}
_TRUE = {"1", "true", "yes", "on"}
# Network failures worth retrying (refused, reset, dropped, timeouts); other RequestExceptions are not.
_TRANSIENT_ERRORS = (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError)

# Put into the queue to wake the sender for flush/shutdown; never sent.
_WAKE = object()


def _env(name: str) -> str | None:
    value = os.environ.get(name, "").strip()
    return value or None


def _utc_iso(value: datetime | float | int | str | None) -> str:
    """Format a timestamp as ISO-8601 UTC; naive datetimes are taken to be UTC already."""
    if value is None:
        moment = datetime.now(UTC)
    elif isinstance(value, str):
        return value
    elif isinstance(value, datetime):
        moment = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    elif isinstance(value, int | float):
        moment = datetime.fromtimestamp(value, UTC)
    else:
        raise TypeError(f"timestamp must be datetime, epoch seconds or ISO string, not {type(value)!r}")
    return moment.isoformat(timespec="microseconds")


def _json_default(obj: Any) -> Any:
    if isinstance(obj, datetime | date):
        return obj.isoformat()
    if isinstance(obj, uuid.UUID | Decimal):
        return str(obj)
    if isinstance(obj, set | frozenset | tuple):
        return list(obj)
    if isinstance(obj, bytes):
        return obj.decode("utf-8", "replace")
    return str(obj)


def _finite(obj: Any) -> Any:
    # NaN/Infinity are not JSON and Postgres jsonb rejects them: send null instead.
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, Mapping):
        return {str(k): _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple | set | frozenset):
        return [_finite(v) for v in obj]
    return obj


def _dumps(obj: Any) -> bytes:
    try:
        text = json.dumps(
            obj, default=_json_default, ensure_ascii=False, separators=(",", ":"), allow_nan=False
        )
    except ValueError:
        # Non-finite floats (or a circular reference, which _finite turns into RecursionError).
        text = json.dumps(_finite(obj), default=_json_default, ensure_ascii=False, separators=(",", ":"))
    return text.encode("utf-8")


def _parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - datetime.now(UTC)).total_seconds()
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


def _normalise_level(level: str | int) -> str:
    if isinstance(level, int):
        for threshold, name in ((50, "critical"), (40, "error"), (30, "warning"), (20, "info")):
            if level >= threshold:
                return name
        return "debug"
    name = str(level).strip().lower()
    name = _LEVEL_ALIASES.get(name, name)
    return name if name in LOG_LEVELS else "info"


class _Throttle:
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


@dataclass(frozen=True)
class Delivery:
    """What became of one POST of events, passed to a Tracker's ``on_delivery`` callback.

    Every event a Tracker sends ends up in exactly one Delivery: ``acknowledged`` (the portal answered
    2xx and holds the event, stored now or by an earlier send of the same event_id), ``rejected`` (refused
    item by item in a 2xx answer: resending cannot help) or ``failed`` (the batch was given up after a 4xx
    or when retries ran out; the portal may or may not have stored it).
    """

    acknowledged: tuple[str, ...] = ()
    rejected: tuple[str, ...] = ()
    failed: tuple[str, ...] = ()
    status: int | None = None  # the HTTP status of the last attempt (None: no answer)
    reason: str = ""  # why the batch failed


class Tracker:
    """Collect metric and log events and deliver them in the background to the SkyWatch portal.

    Unset ``url``, ``api_key``, ``service`` and ``stage`` come from the environment variables
    ``OBSERVATORY_URL``, ``OBSERVATORY_API_KEY``, ``SERVICE_NAME`` and ``STAGE``; ``sync=None`` reads
    ``OBSERVATORY_SYNC``. A tracker without a URL drops events (counted in ``stats()["dropped"]``) and warns
    once instead of failing the caller.

    The portal takes service and stage from the API key, so events leave them out by default. A log
    shipper whose key may forward for other services passes ``send_service=True`` to name them.

    ``on_delivery``, when given, is called with a :class:`Delivery` after every POST outcome (from the
    sender thread, or the caller's in sync mode), so a sender can learn which event_ids the portal holds.

    Create one Tracker per process (or use the module-level :func:`track`): each owns a sender thread.
    """

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
        url = url if url is not None else _env("OBSERVATORY_URL")
        self.url: str | None = url.rstrip("/") if url else None
        self.endpoint: str | None = None
        if self.url:
            self.endpoint = self.url if self.url.endswith(BATCH_PATH) else self.url + BATCH_PATH
        self.api_key = api_key if api_key is not None else _env("OBSERVATORY_API_KEY")
        self.service = service if service is not None else _env("SERVICE_NAME")
        self.stage = stage if stage is not None else _env("STAGE")
        self.sync = bool(sync) if sync is not None else (_env("OBSERVATORY_SYNC") or "").lower() in _TRUE
        self.batch_size = max(1, min(int(batch_size), MAX_BATCH_EVENTS))
        self.flush_interval = max(0.0, float(flush_interval))
        self.max_queue = max(1, int(max_queue))
        self.timeout = timeout
        self.max_retries = max(0, int(max_retries))
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.max_retry_time = max_retry_time
        self.shutdown_timeout = shutdown_timeout
        self.gzip_body = gzip_body
        self.send_service = send_service
        self.on_delivery = on_delivery
        self._throttle = _Throttle(warn_interval)
        self._warned_unconfigured = False
        self._init_process_state()
        _live_trackers.add(self)
        if self.url and not self.api_key:
            logger.warning("observatory: OBSERVATORY_API_KEY is not set; the portal will answer 401")

    # -- process-local state -------------------------------------------------------------------

    def _init_process_state(self) -> None:
        """Create everything that must not be shared with a forked child: queue, locks, thread, session."""
        self._pid = os.getpid()
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=self.max_queue)
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._send_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._thread_failed = False
        self._stopping = threading.Event()
        self._abort = threading.Event()
        self._closed = False
        self._enqueued = 0  # events ever put in the queue
        self._done = 0  # of those, events delivered or given up (FIFO, so a prefix)
        self._flush_target = 0
        self._session = requests.Session()
        self._counters = dict.fromkeys(
            (
                "tracked",
                "sent",
                "accepted",
                "duplicates",
                "rejected",
                "dropped",
                "retries",
                "failed_batches",
                "failed_events",
            ),
            0,
        )

    def _after_fork_in_child(self) -> None:
        # The parent's queued events stay the parent's job; the child starts empty with its own
        # thread (lazily), so nothing is ever sent twice and no lock is inherited in a held state.
        self._init_process_state()

    def _check_pid(self) -> None:
        if self._pid != os.getpid():  # forked without os.fork() hooks (rare); same remedy
            self._init_process_state()

    # -- public API ----------------------------------------------------------------------------

    @property
    def enabled(self) -> bool:
        """Return whether a URL is configured (otherwise every event is dropped)."""
        return self.endpoint is not None

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
        """
        payload = self._build("metric", str(event), properties, user_id, timestamp, correlation_id, event_id)
        return self._submit(payload)

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
        ``event_id`` as for :meth:`track`.
        """
        payload = self._build("log", "log", properties, user_id, timestamp, correlation_id, event_id)
        payload["level"] = _normalise_level(level)
        payload["message"] = str(message)
        return self._submit(payload)

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every event queued before this call was delivered or given up.

        Return True when that happened within ``timeout`` seconds (None waits indefinitely).
        """
        if self.sync:
            return True  # sync mode delivers inside track()
        self._check_pid()
        with self._lock:
            target = self._enqueued
            if self._done >= target:
                return True
            self._flush_target = max(self._flush_target, target)
        if threading.current_thread() is self._thread:
            return False  # waiting on ourselves would deadlock
        if not self._ensure_thread():
            # No sender thread (e.g. interpreter shutdown refused a new thread): deliver here.
            self._drain_in_caller(None if timeout is None else time.monotonic() + timeout)
        self._wake()
        with self._cond:
            return self._cond.wait_for(lambda: self._done >= target, timeout)

    def shutdown(self, timeout: float | None = None) -> bool:
        """Flush (waiting at most ``timeout``, default ``shutdown_timeout``), then stop the sender thread.

        Events still pending after the timeout are abandoned and counted in ``failed_events``. Return
        whether everything was delivered. Called automatically at interpreter exit.
        """
        self._check_pid()
        if self._closed:
            return True
        timeout = self.shutdown_timeout if timeout is None else timeout
        deadline = time.monotonic() + max(0.0, timeout)
        delivered = self.flush(timeout)
        self._closed = True
        self._stopping.set()
        if not delivered:
            pending = self.stats()["queued"]
            self._abort.set()  # cut short retries/backoff so the thread can exit
            logger.warning("observatory: shutdown timed out; %d event(s) were not delivered", pending)
        self._wake()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(max(0.05, deadline - time.monotonic()))
        self._session.close()
        return delivered

    def stats(self) -> dict[str, int]:
        """Return counters: queued (pending now), sent, accepted, duplicates, rejected, dropped, retries,
        failed_batches, plus tracked (ever enqueued) and failed_events."""
        with self._lock:
            result = dict(self._counters)
            result["queued"] = max(0, self._enqueued - self._done)
        return result

    def __repr__(self) -> str:
        return f"<Tracker url={self.url!r} service={self.service!r} sync={self.sync}>"

    # -- building and enqueueing ---------------------------------------------------------------

    def _build(
        self,
        kind: str,
        name: str,
        properties: Mapping[str, Any] | None,
        user_id: Any,
        timestamp: datetime | float | str | None,
        correlation_id: str | None,
        event_id: str | uuid.UUID | None = None,
    ) -> dict[str, Any]:
        if properties is None:
            props: dict[str, Any] = {}
        elif isinstance(properties, Mapping):
            props = dict(properties)  # copy: we pop user_id and must not touch the caller's dict
        else:
            props = {"value": properties}
        # Both spellings are removed so user ids never end up duplicated inside properties.
        from_props = props.pop("user_id", None)
        camel = props.pop("userId", None)
        if user_id is None:
            user_id = from_props if from_props is not None else camel
        try:
            stamp = _utc_iso(timestamp)
        except TypeError:
            stamp = _utc_iso(None)
        payload: dict[str, Any] = {
            "event_id": str(event_id) if event_id is not None else str(uuid.uuid4()),
            "type": kind,
            "event": name,
            "timestamp": stamp,
            "properties": props,
        }
        if user_id is not None:
            payload["user_id"] = str(user_id)
        cid = correlation_id if correlation_id is not None else correlation.get()
        if cid is not None:
            payload["correlation_id"] = str(cid)
        if self.send_service:
            if self.service is not None:
                payload["service"] = self.service
            if self.stage is not None:
                payload["stage"] = self.stage
        return payload

    def _encode(self, payload: dict[str, Any]) -> bytes | None:
        """Serialise now (a snapshot the caller can't mutate later), shrinking oversized events."""
        try:
            data = _dumps(payload)
        except Exception:  # circular references, broken __str__ ...: keep the event, lose the properties
            payload["properties"] = {"_unserialisable": True}
            data = _dumps(payload)
        if len(data) <= MAX_EVENT_BYTES:
            return data
        # Usually a huge log message or traceback: keep the head of long strings, then the rest.
        original = len(data)
        if "message" in payload:
            payload["message"] = _truncate(payload["message"])
        payload["properties"] = {k: _truncate(v) for k, v in payload["properties"].items()}
        data = _dumps(payload)
        if len(data) > MAX_EVENT_BYTES:
            payload["properties"] = {"_truncated": True, "_original_bytes": original}
            data = _dumps(payload)
        if len(data) > MAX_EVENT_BYTES:
            return None
        return data

    def _submit(self, payload: dict[str, Any]) -> str | None:
        self._check_pid()
        if self.endpoint is None:
            self._count("dropped")
            if not self._warned_unconfigured:
                self._warned_unconfigured = True
                logger.warning("observatory: OBSERVATORY_URL is not set; events are dropped")
            return None
        if self._closed:
            self._count("dropped")
            if self._throttle.ready("closed"):
                logger.warning("observatory: event tracked after shutdown(); dropped")
            return None
        data = self._encode(payload)
        if data is None:
            self._count("rejected")
            if self._throttle.ready("too-large"):
                logger.warning(
                    "observatory: event %r is larger than %d bytes even when truncated; dropped",
                    payload.get("event"),
                    MAX_EVENT_BYTES,
                )
            return None
        if self.sync:
            with self._lock:
                self._counters["tracked"] += 1
            with _guard.sending():
                self._deliver([data])
            return payload["event_id"]
        with self._lock:
            try:
                self._queue.put_nowait(data)
            except queue.Full:
                self._counters["dropped"] += 1
                dropped = self._counters["dropped"]
            else:
                self._enqueued += 1
                self._counters["tracked"] += 1
                dropped = -1
        if dropped >= 0:
            if self._throttle.ready("queue-full"):
                logger.warning(
                    "observatory: queue full (max_queue=%d); %d event(s) dropped so far",
                    self.max_queue,
                    dropped,
                )
            return None
        self._ensure_thread()
        return payload["event_id"]

    def _count(self, key: str, n: int = 1) -> None:
        with self._lock:
            self._counters[key] += n

    # -- sender thread -------------------------------------------------------------------------

    def _ensure_thread(self) -> bool:
        """Start the sender thread if needed; return whether one is running."""
        thread = self._thread
        if thread is not None and thread.is_alive():
            return True
        if self._thread_failed or self._stopping.is_set():
            return False
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return True
            thread = threading.Thread(target=self._run, name="observatory-sender", daemon=True)
            try:
                thread.start()
            except RuntimeError:  # "can't create new thread at interpreter shutdown"
                self._thread_failed = True
                return False
            self._thread = thread
        return True

    def _wake(self) -> None:
        try:
            self._queue.put_nowait(_WAKE)
        except queue.Full:
            pass  # a full queue keeps the sender busy anyway

    def _urgent(self) -> bool:
        return self._stopping.is_set() or self._flush_target > self._done

    def _next_batch(self) -> list[bytes]:
        """Collect up to batch_size events, waiting at most flush_interval after the first one."""
        batch: list[bytes] = []
        deadline = 0.0
        while len(batch) < self.batch_size:
            try:
                if not batch:
                    item = self._queue.get(timeout=5.0)  # idle; the timeout is only a safety net
                elif self._urgent():
                    item = self._queue.get_nowait()
                else:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    item = self._queue.get(timeout=remaining)
            except queue.Empty:
                break
            if item is _WAKE:
                if batch or self._urgent():
                    break
                continue
            batch.append(item)
            if len(batch) == 1:
                deadline = time.monotonic() + self.flush_interval
        return batch

    def _run(self) -> None:
        with _guard.sending():  # nothing logged from this thread may be captured back into the tracker
            while True:
                batch: list[bytes] = []
                try:
                    batch = self._next_batch()
                    if batch:
                        if self._abort.is_set():
                            self._count("failed_events", len(batch))
                            self._report(lambda b=batch: Delivery(failed=_event_ids(b), reason="shutdown"))
                        else:
                            self._deliver(batch)
                except Exception:  # never let the sender die: that would silently stall flush()
                    logger.exception("observatory: unexpected error in sender thread")
                finally:
                    if batch:
                        self._mark_done(len(batch))
                if self._stopping.is_set() and self._queue.empty():
                    return

    def _drain_in_caller(self, deadline: float | None) -> None:
        with _guard.sending():
            while deadline is None or time.monotonic() < deadline:
                batch: list[bytes] = []
                try:
                    while len(batch) < self.batch_size:
                        item = self._queue.get_nowait()
                        if item is not _WAKE:
                            batch.append(item)
                except queue.Empty:
                    pass
                if not batch:
                    return
                try:
                    self._deliver(batch)
                finally:
                    self._mark_done(len(batch))

    def _mark_done(self, n: int) -> None:
        with self._cond:
            self._done += n
            self._cond.notify_all()

    # -- delivery ------------------------------------------------------------------------------

    def _deliver(self, events: list[bytes]) -> None:
        """Send events in chunks that respect the server's count and size limits."""
        for chunk in _chunks(events, self.batch_size, MAX_BATCH_BYTES):
            with self._send_lock:
                self._post(chunk)

    def _post(self, chunk: list[bytes]) -> bool:
        """POST one chunk, retrying the very same events (so the server dedupes); return success."""
        endpoint = self.endpoint
        if endpoint is None:  # unreachable: _submit drops events when no URL is configured
            return self._give_up(chunk, "no OBSERVATORY_URL configured", retryable=False)
        started = time.monotonic()
        attempt = 0
        status: int | None = None
        while True:
            sent_at = _utc_iso(None).encode()
            body = b'{"batch":[' + b",".join(chunk) + b'],"sent_at":"' + sent_at + b'"}'
            headers = {
                "Content-Type": "application/json",
                "Accept": "application/json",
                "User-Agent": f"observatory-python/{__version__}",
            }
            if self.gzip_body:
                body = gzip.compress(body, compresslevel=5, mtime=0)
                headers["Content-Encoding"] = "gzip"
            if self.api_key:
                headers["Authorization"] = f"Bearer {self.api_key}"
            retry_after: float | None = None
            try:
                response = self._session.post(endpoint, data=body, headers=headers, timeout=self.timeout)
            except _TRANSIENT_ERRORS as exc:
                reason, status = f"{type(exc).__name__}: {exc}", None
            except requests.RequestException as exc:  # bad URL and the like: retrying cannot help
                return self._give_up(chunk, f"{type(exc).__name__}: {exc}")
            else:
                status = response.status_code
                if 200 <= status < 300:
                    self._record_success(chunk, response)
                    return True
                if status == 413 and len(chunk) > 1:
                    # Too large for this server's limit: split and send halves (same event_ids).
                    middle = len(chunk) // 2
                    first = self._post(chunk[:middle])
                    second = self._post(chunk[middle:])
                    return first and second
                if status not in (408, 429) and status < 500:
                    return self._give_up(
                        chunk, f"HTTP {status}: {response.text[:300]!r}", retryable=False, status=status
                    )
                reason = f"HTTP {status}"
                retry_after = _parse_retry_after(response.headers.get("Retry-After"))
                response.close()
            attempt += 1
            if attempt > self.max_retries:
                return self._give_up(chunk, f"{reason} after {attempt} attempt(s)", status=status)
            if retry_after is not None:
                delay = retry_after
            else:  # exponential backoff with full jitter
                delay = random.uniform(0, min(self.backoff_max, self.backoff_base * 2 ** (attempt - 1)))
            if time.monotonic() - started + delay > self.max_retry_time:
                return self._give_up(
                    chunk, f"{reason}; retry budget of {self.max_retry_time}s exhausted", status=status
                )
            self._count("retries")
            logger.debug("observatory: %s; retry %d in %.2fs", reason, attempt, delay)
            if self._abort.wait(delay):
                return self._give_up(chunk, f"{reason}; aborted by shutdown", status=status)

    def _record_success(self, chunk: list[bytes], response: requests.Response) -> None:
        try:
            answer = response.json()
        except ValueError:
            answer = {}
        if not isinstance(answer, dict):
            answer = {}
        rejected = answer.get("rejected") or []
        if not isinstance(rejected, list):
            rejected = []
        duplicates = _as_int(answer.get("duplicates"), 0)
        accepted = _as_int(answer.get("accepted"), len(chunk) - duplicates - len(rejected))
        with self._lock:
            self._counters["sent"] += len(chunk)
            self._counters["accepted"] += accepted
            self._counters["duplicates"] += duplicates
            self._counters["rejected"] += len(rejected)
        self._report(lambda: _success_delivery(chunk, rejected, response.status_code))
        if rejected and self._throttle.ready("rejected"):
            logger.warning(
                "observatory: server rejected %d of %d event(s), e.g. %s",
                len(rejected),
                len(chunk),
                rejected[:3],
            )

    def _give_up(
        self, chunk: list[bytes], reason: str, retryable: bool = True, status: int | None = None
    ) -> bool:
        with self._lock:
            self._counters["failed_batches"] += 1
            self._counters["failed_events"] += len(chunk)
        self._report(lambda: Delivery(failed=_event_ids(chunk), status=status, reason=reason))
        if self._throttle.ready(f"failed:{retryable}"):
            logger.error("observatory: dropping batch of %d event(s): %s", len(chunk), reason)
        return False

    def _report(self, make: Callable[[], Delivery]) -> None:
        """Pass a Delivery to ``on_delivery`` (built only when there is a callback)."""
        callback = self.on_delivery
        if callback is None:
            return
        try:
            callback(make())
        except Exception:  # the sender's callback must never stop delivery; say so and go on
            logger.exception("observatory: on_delivery callback failed")


def _event_ids(chunk: list[bytes]) -> tuple[str, ...]:
    """Return the event_ids of encoded events (only read when someone asked for deliveries)."""
    return tuple(str(json.loads(data).get("event_id")) for data in chunk)


def _success_delivery(chunk: list[bytes], rejected: list[Any], status: int) -> Delivery:
    """Split a 2xx answer's events into acknowledged and rejected by the answer's per-item indexes."""
    ids = _event_ids(chunk)
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


def _truncate(value: Any) -> Any:
    if isinstance(value, str) and len(value) > _TRUNCATE_CHARS:
        return value[:_TRUNCATE_CHARS] + "...[truncated]"
    return value


def _as_int(value: Any, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _chunks(events: list[bytes], max_count: int, max_bytes: int) -> Iterable[list[bytes]]:
    chunk: list[bytes] = []
    size = 0
    for data in events:
        if chunk and (len(chunk) >= max_count or size + len(data) + 1 > max_bytes):
            yield chunk
            chunk, size = [], 0
        chunk.append(data)
        size += len(data) + 1
    if chunk:
        yield chunk


# -- process-wide registry: fork hooks, atexit, default tracker ---------------------------------

_live_trackers: weakref.WeakSet[Tracker] = weakref.WeakSet()
_default: Tracker | None = None
_default_lock = threading.Lock()


def _after_fork_in_child() -> None:
    global _default_lock
    _default_lock = threading.Lock()
    for tracker in list(_live_trackers):
        tracker._after_fork_in_child()


def shutdown_all(timeout: float | None = None) -> None:
    """Shut down every live Tracker of this process (run at exit and by the Celery integration)."""
    for tracker in list(_live_trackers):
        try:
            tracker.shutdown(timeout)
        except Exception:  # one broken tracker must not keep the others from flushing
            logger.exception("observatory: error while shutting down %r", tracker)


os.register_at_fork(after_in_child=_after_fork_in_child)
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
    return get_tracker().track(
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
