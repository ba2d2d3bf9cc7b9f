"""A Tracker's settings, resolved once from its arguments and the environment, and the portal's limits."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

__all__ = ["BATCH_PATH", "MAX_BATCH_BYTES", "MAX_BATCH_EVENTS", "MAX_EVENT_BYTES", "TrackerConfig"]

BATCH_PATH = "/api/v1/batch"
MAX_BATCH_EVENTS = 1000
# The server accepts <= 1 MB per batch; keep headroom for the envelope and sent_at.
MAX_BATCH_BYTES = 1_000_000 - 4_096
# The server measures events as json.dumps writes them (compact, UTF-8) and refuses > 32 KiB; the client
# measures alike (float spelling included, see encoding._fits) and keeps a margin for what else may differ.
MAX_EVENT_BYTES = 32 * 1024 - 256
_TRUE = {"1", "true", "yes", "on"}
logger = logging.getLogger(__name__)


def _env(name: str) -> str | None:
    value = os.environ.get(name, "").strip()
    return value or None


def _check_api_key(api_key: str) -> None:
    """Raise ValueError for a key that cannot go into an HTTP header (every send would fail)."""
    try:
        api_key.encode("latin-1")  # what http.client writes header values as
    except UnicodeEncodeError as exc:
        # Name the character, never the key: it is a secret.
        raise ValueError(
            f"the API key contains {api_key[exc.start]!r} at position {exc.start}, which an HTTP header "
            "cannot carry (a typographic character pasted with it?)"
        ) from None


@dataclass(frozen=True)
class TrackerConfig:
    """Everything a Tracker was told, with unset values taken from the environment and bounds applied."""

    url: str | None
    endpoint: str | None
    api_key: str | None
    service: str | None
    stage: str | None
    sync: bool
    batch_size: int
    flush_interval: float
    max_queue: int
    timeout: float
    max_retries: int
    backoff_base: float
    backoff_max: float
    max_retry_time: float
    shutdown_timeout: float
    warn_interval: float
    gzip_body: bool
    send_service: bool

    @classmethod
    def resolve(
        cls,
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
    ) -> TrackerConfig:
        """Return the configuration for these arguments; None means ``OBSERVATORY_URL``,
        ``OBSERVATORY_API_KEY``, ``SERVICE_NAME``, ``STAGE`` and ``OBSERVATORY_SYNC`` respectively.

        Raise ValueError for an API key argument that is not latin-1 (HTTP headers cannot carry it). The same
        in ``OBSERVATORY_API_KEY`` is logged as an error instead: the default Tracker is made on the first
        ``track()``, which must not raise into a request; every send then fails, reported as such."""
        url = url if url is not None else _env("OBSERVATORY_URL")
        url = url.rstrip("/") if url else None
        endpoint = None
        if url:
            endpoint = url if url.endswith(BATCH_PATH) else url + BATCH_PATH
        if api_key is not None:
            _check_api_key(api_key)
        else:
            api_key = _env("OBSERVATORY_API_KEY")
            try:
                _check_api_key(api_key or "")
            except ValueError as exc:
                logger.error("observatory: OBSERVATORY_API_KEY is unusable, every send will fail: %s", exc)
        return cls(
            url=url,
            endpoint=endpoint,
            api_key=api_key,
            service=service if service is not None else _env("SERVICE_NAME"),
            stage=stage if stage is not None else _env("STAGE"),
            sync=bool(sync) if sync is not None else (_env("OBSERVATORY_SYNC") or "").lower() in _TRUE,
            batch_size=max(1, min(int(batch_size), MAX_BATCH_EVENTS)),
            flush_interval=max(0.0, float(flush_interval)),
            max_queue=max(1, int(max_queue)),
            timeout=timeout,
            max_retries=max(0, int(max_retries)),
            backoff_base=backoff_base,
            backoff_max=backoff_max,
            max_retry_time=max_retry_time,
            shutdown_timeout=shutdown_timeout,
            warn_interval=warn_interval,
            gzip_body=gzip_body,
            send_service=send_service,
        )
