"""POST encoded events to ``/api/v1/batch``: gzip, retries with backoff and jitter, Retry-After, 413 splits.

A retry re-sends the very same events (same event_ids), so the portal stores each once. A ``Retry-After``
pauses the sender thread for as long as it asks, outside the retry budget (see ``Transport.send``)."""

from __future__ import annotations

import gzip
import http.client
import logging
import math
import random
import ssl
import threading
import time
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import requests
import urllib3

from ._version import __version__
from .config import TrackerConfig
from .delivery import Reporter
from .encoding import Encoded, utc_iso

__all__ = ["MAX_PAUSE_SECONDS", "Transport", "parse_retry_after"]

logger = logging.getLogger("observatory.tracker")  # one logger for everything a Tracker says

# Network failures worth retrying (refused, reset, dropped, timeouts); other RequestExceptions are not.
_TRANSIENT_ERRORS = (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError)
# The longest pause a Retry-After gets: the portal's rate limits go down to one an hour, and a broken
# header must not stop a sender for days.
MAX_PAUSE_SECONDS = 3600.0
_READ_SIZE = 65_536  # the most read from the answer's body at once (what the socket has, up to this)
# TLS failures that are the connection cut during the handshake or a read (a proxy restarting, an idle
# keep-alive connection closed by the server): an outage like a reset, retried. Any other TLS error (a
# certificate, https to a plain server) is a setting no retry changes.
_TLS_CUT = (ssl.SSLEOFError, ssl.SSLZeroReturnError, ssl.SSLSyscallError, ConnectionError)


def _tls_cut(exc: BaseException) -> bool:
    """Return whether a requests SSLError is the connection being cut (see ``_TLS_CUT``)."""
    seen: set[int] = set()
    pending: list[Any] = [exc]
    while pending:
        error = pending.pop()
        if not isinstance(error, BaseException) or id(error) in seen:
            continue
        seen.add(id(error))
        if isinstance(error, _TLS_CUT):
            return True
        pending += [error.__cause__, error.__context__, getattr(error, "reason", None), *error.args]
    return False


def parse_retry_after(value: str | None) -> float | None:
    """Return the seconds a ``Retry-After`` header asks to wait (delay or HTTP date), None if unusable."""
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


def _read_answer(response: requests.Response, timeout: Any) -> None:
    """Read the answer's body into ``response`` (for ``.json()``, ``.text``) within ``timeout`` seconds of
    its headers, else raise ``requests.Timeout``.

    ``timeout`` bounds each read, not the answer: one trickling a byte at a time (a stalled proxy) would
    otherwise hold the sender, or a sync caller, for as long as it trickles.
    """
    if isinstance(timeout, tuple):  # requests' (connect, read)
        timeout = timeout[-1]
    deadline = math.inf if timeout is None else time.monotonic() + timeout
    raw = response.raw
    read = getattr(raw, "read1", None) or raw.read  # read1: what has arrived, never waits for more
    parts: list[bytes] = []
    try:
        while True:
            part = read(_READ_SIZE, decode_content=True)
            if not part:
                break
            parts.append(part)
            if time.monotonic() > deadline:
                raise requests.Timeout(f"the answer was still arriving {timeout}s after its headers")
    except requests.RequestException:
        response.close()
        raise
    except (urllib3.exceptions.HTTPError, http.client.HTTPException, OSError) as exc:
        # urllib3's and http.client's errors while reading: as requests' iter_content maps them
        response.close()
        raise requests.ConnectionError(f"{type(exc).__name__}: {exc}") from exc
    response._content = b"".join(parts)  # what requests' own .content does after reading
    response._content_consumed = True


def _portal_answer(response: requests.Response) -> dict[str, Any] | None:
    """Return the portal's answer to a batch (a JSON object counting what it ``accepted``), else None."""
    try:
        answer = response.json()
    except ValueError:
        return None
    if not isinstance(answer, dict):
        return None
    accepted = answer.get("accepted")
    if not isinstance(accepted, int) or isinstance(accepted, bool):
        return None
    return answer


class Transport:
    """One process's HTTP session to the portal; ``send`` delivers a chunk or gives it up, and reports."""

    def __init__(self, config: TrackerConfig, reporter: Reporter, abort: threading.Event) -> None:
        self.config = config
        self.reporter = reporter
        self._abort = abort  # set at shutdown: cut retries, back-off and pauses short
        self._session = requests.Session()
        self._lock = threading.Lock()  # one POST at a time (sender thread, sync callers, flush in caller)
        self._sending_in: int | None = None  # the thread holding _lock
        # The Retry-After pause that shutdown cut short, so the events left behind are given up with it.
        self.interrupted_pause: str | None = None

    def send(self, chunk: list[Encoded], *, may_pause: bool = False) -> bool:
        """POST one chunk (within the portal's count and size limits); return whether all of it arrived.

        Every outcome is reported, unexpected errors included (as failed, not retried). 429/5xx and network
        errors are retried within ``max_retries`` and ``max_retry_time``. An answer with ``Retry-After``
        is different when ``may_pause`` (the sender thread): the portal said when to come back, so the
        thread waits that long (at most ``MAX_PAUSE_SECONDS``) and tries again, as often as it is told to,
        outside the retry budget; only shutdown cuts the pause short. A caller's thread (sync mode) never
        pauses: an answer asking for more than the retry budget gives the chunk up.
        """
        with self._lock:
            self._sending_in = threading.get_ident()
            try:
                return self._post(chunk, may_pause)
            finally:
                self._sending_in = None

    def sending_here(self) -> bool:
        """Return whether the current thread is inside ``send`` (an ``on_delivery`` callback or a signal
        handler that interrupted it): sending from there would wait for itself."""
        return self._sending_in == threading.get_ident()

    def close(self) -> None:
        """Close the session's pooled connections."""
        self._session.close()

    def _post(self, chunk: list[Encoded], may_pause: bool) -> bool:
        config = self.config
        endpoint = config.endpoint
        if endpoint is None:  # unreachable: the Tracker drops events when no URL is configured
            self.reporter.failed(chunk, "no OBSERVATORY_URL configured", retryable=False)
            return False
        events = b",".join(item.data for item in chunk)
        started = time.monotonic()
        attempt = 0
        status: int | None = None
        while True:
            sent_at = utc_iso(None).encode()
            body = b'{"batch":[' + events + b'],"sent_at":"' + sent_at + b'"}'
            headers = {
                "Content-Type": "application/json",
                "Accept": "application/json",
                "User-Agent": f"observatory-python/{__version__}",
            }
            if config.gzip_body:
                body = gzip.compress(body, compresslevel=5, mtime=0)
                headers["Content-Encoding"] = "gzip"
            if config.api_key:
                headers["Authorization"] = f"Bearer {config.api_key}"
            retry_after: float | None = None
            try:
                # Redirects are not followed: requests would turn the POST into a GET (nginx's http ->
                # https 301, a login page's 302) and count the page's 200 as the batch delivered.
                response = self._session.post(
                    endpoint,
                    data=body,
                    headers=headers,
                    timeout=config.timeout,
                    stream=True,
                    allow_redirects=False,
                )
                _read_answer(response, config.timeout)
            except requests.exceptions.SSLError as exc:
                if _tls_cut(exc):  # a handshake or read cut short: retried like any dropped connection
                    reason, status = f"{type(exc).__name__}: {exc}", None
                else:  # a certificate or TLS setting (requests counts it a ConnectionError): no retry helps
                    self.reporter.failed(chunk, f"TLS: {exc}", retryable=False)
                    return False
            except _TRANSIENT_ERRORS as exc:
                reason, status = f"{type(exc).__name__}: {exc}", None
            except requests.RequestException as exc:  # bad URL and the like: retrying cannot help
                self.reporter.failed(chunk, f"{type(exc).__name__}: {exc}")
                return False
            except Exception as exc:
                # Not the network: a setting or a bug no retry can get past. The chunk must still be
                # reported, or its events vanish without a trace.
                logger.exception("observatory: unexpected error while sending %d event(s)", len(chunk))
                self.reporter.failed(chunk, f"unexpected {type(exc).__name__}: {exc}", retryable=False)
                return False
            else:
                status = response.status_code
                if 200 <= status < 300:
                    answer = _portal_answer(response)
                    if answer is None:
                        # A catch-all (a default web site, a health endpoint) answers 2xx to anything;
                        # only the portal's own answer says the events were stored.
                        kind = response.headers.get("Content-Type", "no Content-Type")
                        self.reporter.failed(
                            chunk,
                            f"HTTP {status} ({kind}) is not the portal's answer: {response.text[:100]!r}; "
                            "check that OBSERVATORY_URL is the portal's address",
                            retryable=False,
                            status=status,
                        )
                        return False
                    self.reporter.acknowledged(chunk, answer, status)
                    return True
                if 300 <= status < 400:
                    location = response.headers.get("Location", "")
                    self.reporter.failed(
                        chunk,
                        f"HTTP {status}: the portal's address redirects to {location!r}; set "
                        "OBSERVATORY_URL to the address it names",
                        retryable=False,
                        status=status,
                    )
                    return False
                if status == 413 and len(chunk) > 1:
                    # Too large for this server's limit: split and send halves (same event_ids).
                    middle = len(chunk) // 2
                    first = self._post(chunk[:middle], may_pause)
                    second = self._post(chunk[middle:], may_pause)
                    return first and second
                if status not in (408, 429) and status < 500:
                    self.reporter.failed(
                        chunk, f"HTTP {status}: {response.text[:300]!r}", retryable=False, status=status
                    )
                    return False
                reason = f"HTTP {status}"
                retry_after = parse_retry_after(response.headers.get("Retry-After"))
                response.close()
            if retry_after and may_pause:
                pause = min(retry_after, MAX_PAUSE_SECONDS)
                paused_at = time.monotonic()
                if not self._pause(pause, reason):
                    self.reporter.failed(
                        chunk,
                        f"{reason}; shut down during a Retry-After pause of {pause:.0f}s",
                        status=status,
                    )
                    return False
                started += time.monotonic() - paused_at  # the pause is not spent from the retry budget
                self.reporter.counters.add(retries=1)
                continue
            attempt += 1
            if attempt > config.max_retries:
                self.reporter.failed(chunk, f"{reason} after {attempt} attempt(s)", status=status)
                return False
            if retry_after is not None:
                delay = retry_after
            else:  # exponential backoff with full jitter
                delay = random.uniform(0, min(config.backoff_max, config.backoff_base * 2 ** (attempt - 1)))
            if time.monotonic() - started + delay > config.max_retry_time:
                if retry_after is not None:
                    reason = f"{reason} with Retry-After {retry_after:.0f}s"
                self.reporter.failed(
                    chunk, f"{reason}; retry budget of {config.max_retry_time}s exhausted", status=status
                )
                return False
            self.reporter.counters.add(retries=1)
            logger.debug("observatory: %s; retry %d in %.2fs", reason, attempt, delay)
            if self._abort.wait(delay):
                self.reporter.failed(chunk, f"{reason}; aborted by shutdown", status=status)
                return False

    def _pause(self, seconds: float, reason: str) -> bool:
        """Wait ``seconds`` as the portal asked; return False when shutdown cut the wait short."""
        if self.reporter.throttle.ready("paused"):
            logger.warning("observatory: %s; the portal asked to wait %.0fs, sending paused", reason, seconds)
        if self._abort.wait(seconds):
            self.interrupted_pause = f"a Retry-After pause of {seconds:.0f}s ({reason})"
            return False
        return True
