"""Per-person throttling of the read APIs: a series, a funnel or a trace search costs the database or the
search cluster seconds, so one person's script (or a stuck browser tab) cannot take them all.

One count per person, whichever door they use (a session or a personal token), in a fixed window in the
cache (one atomic increment per request), as ingestion counts per service key.
"""

import time

from django.conf import settings
from rest_framework.request import Request
from rest_framework.throttling import BaseThrottle

from apps.common.rates import parse_rate
from apps.common.shortcut_cache import cache_count


class PersonRateThrottle(BaseThrottle):
    """Allow API_READ_RATE_LIMIT requests per person and window; beyond that DRF answers 429 with
    Retry-After. Callers that are no person (service keys, anonymous) are left to their own limits."""

    def allow_request(self, request: Request, view) -> bool:
        user = request.user
        # A person has a primary key; a service key's principal and AnonymousUser have none.
        if not getattr(user, "is_authenticated", False) or getattr(user, "pk", None) is None:
            return True
        limit, window = parse_rate(settings.API_READ_RATE_LIMIT)
        now = time.time()
        window_start = int(now // window) * window
        self._wait = max(1.0, window_start + window - now)
        count = cache_count(f"read-throttle:{user.pk}:{window_start}", timeout=window + 1)
        # With the cache down (None), unthrottled rather than a 500.
        return count is None or count <= limit

    def wait(self) -> float:
        return self._wait
