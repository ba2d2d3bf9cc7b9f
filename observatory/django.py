"""Django middleware giving every request a correlation ID (imports Django only here).

Add ``"observatory.django.CorrelationIdMiddleware"`` near the top of ``MIDDLEWARE``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

try:
    from asgiref.sync import iscoroutinefunction, markcoroutinefunction  # installed with Django
except ImportError as exc:  # pragma: no cover - only without Django
    raise ImportError("observatory.django needs Django: pip install './observatory[django]'") from exc

from . import correlation

__all__ = ["CorrelationIdMiddleware"]


class CorrelationIdMiddleware:
    """Set the request's correlation ID for the view, on ``request.correlation_id`` and in the response.

    The ID comes from ``X-Correlation-ID``, ``Correlation-ID`` or ``traceparent``, in that order (else a new
    UUID4; see :func:`correlation.from_headers`); the response always carries ``X-Correlation-ID``. Works
    for WSGI and ASGI (sync and async middleware chains).
    """

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[Any], Any]) -> None:
        self.get_response = get_response
        self._async = iscoroutinefunction(get_response)
        if self._async:
            markcoroutinefunction(self)

    def __call__(self, request: Any) -> Any:
        """Handle one request."""
        if self._async:
            return self._acall(request)
        cid = self._assign(request)
        with correlation.use(cid):
            response = self.get_response(request)
        response[correlation.HEADER] = cid
        return response

    async def _acall(self, request: Any) -> Any:
        cid = self._assign(request)
        with correlation.use(cid):
            get_response: Callable[[Any], Awaitable[Any]] = self.get_response
            response = await get_response(request)
        response[correlation.HEADER] = cid
        return response

    @staticmethod
    def _assign(request: Any) -> str:
        cid = correlation.from_headers(request.headers)
        request.correlation_id = cid
        return cid
