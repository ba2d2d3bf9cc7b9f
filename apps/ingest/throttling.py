"""Per-key request throttling with a fixed-window counter in the cache (one atomic increment per request)."""

import time

from django.conf import settings
from rest_framework.request import Request
from rest_framework.throttling import BaseThrottle

from apps.common.rates import parse_rate
from apps.common.shortcut_cache import cache_count

from .models import ApiKey


class ApiKeyRateThrottle(BaseThrottle):
    """Allow INGEST_RATE_LIMIT requests per key and window; beyond that answer 429 with Retry-After."""

    def allow_request(self, request: Request, view) -> bool:
        if not isinstance(request.auth, ApiKey):
            return True
        limit, window = parse_rate(settings.INGEST_RATE_LIMIT)
        now = time.time()
        window_start = int(now // window) * window
        cache_key = f"ingest-throttle:{request.auth.pk}:{window_start}"
        self._wait = max(1.0, window_start + window - now)
        count = cache_count(cache_key, timeout=window + 1)
        # With the cache down (None), unthrottled rather than a 500: a 500 would lose the batch.
        return count is None or count <= limit

    def wait(self) -> float:
        return self._wait
